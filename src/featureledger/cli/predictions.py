"""Batch inference and deployment strategies: ``predict`` and ``deployment promote |
status | canary | shadow | configure`` (``rollback`` and ``history`` live in governance)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _serving_store, _store, app, handled
from featureledger.cli.governance import deployment_app

ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the history and audit trail).")]


@app.command()
@handled
def predict(
    model: Annotated[str, typer.Argument(help="Model name or model/NAME/N.")],
    entities: Annotated[Path, typer.Argument(help="Entity frame (Parquet or CSV).")],
    latest: Annotated[
        bool,
        typer.Option("--latest", help="Read the features current now, not as of each row's time."),
    ] = False,
    output: Annotated[
        str | None, typer.Option(help="Write predictions/OUTPUT (default: the model's name).")
    ] = None,
    timestamp_column: Annotated[str, typer.Option(help="Time column of the entity frame.")] = (
        "event_timestamp"
    ),
    transforms: Annotated[
        str | None, typer.Option(help="Fitted model-dependent transforms, model/NAME/N.")
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Score an entity frame with a registered model into a versioned predictions table.

    Features are read point-in-time at each row's time (or current with --latest); the
    rows are the next data version of predictions/OUTPUT and are logged (role batch)."""
    result = _serving_store(repo).batch_predict(
        model,
        entities,
        as_of="latest" if latest else "point_in_time",
        output=output,
        timestamp_column=timestamp_column,
        transforms=transforms,
    )
    out.ok(f"{result.identity}: {result.rows:,} predictions by {result.model}")
    out.table(None, ["feature group", "data version"], sorted(result.feature_versions.items()))


Deployment = Annotated[str, typer.Argument(help="Deployment name.")]
Model = Annotated[str, typer.Argument(help="Model name.")]
VersionOpt = Annotated[int | None, typer.Option(help="Model version (default latest).")]


@deployment_app.command("canary")
@handled
def deployment_canary(
    deployment: Deployment,
    model: Model,
    version: VersionOpt = None,
    weight: Annotated[float, typer.Option(help="Share of entities it answers, 0-1.")] = 0.1,
    reason: ReasonOpt = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Send a share of the entities (sticky by a hash of their key) to another model."""
    record = _store(repo).canary(deployment, model, version, weight=weight, reason=reason)
    canary = record.config["canary"]
    out.ok(
        f"{record.identity}: {1 - weight:.0%} -> {record.model_identity}, {weight:.0%} -> "
        f"model/{canary['model']}/{canary['version']} (canary)"
    )


@deployment_app.command("shadow")
@handled
def deployment_shadow(
    deployment: Deployment,
    model: Model,
    version: VersionOpt = None,
    reason: ReasonOpt = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Score a copy of every request with a challenger; logged, never returned."""
    record = _store(repo).shadow(deployment, model, version, reason=reason)
    arm = record.config["shadow"]
    out.ok(f"{record.identity}: model/{arm['model']}/{arm['version']} shadows it")


@deployment_app.command("promote")
@handled
def deployment_promote(
    deployment: Deployment, reason: ReasonOpt = "", repo: RepoOpt = Path(".")
) -> None:
    """Make the canary (else the shadow) the primary model."""
    record = _store(repo).promote(deployment, reason=reason)
    out.ok(f"{record.identity} -> {record.model_identity} (promoted)")


@deployment_app.command("configure")
@handled
def deployment_configure(
    deployment: Deployment,
    fallback: Annotated[
        str | None, typer.Option(help="Fallback model name ('' removes it).")
    ] = None,
    fallback_version: Annotated[int | None, typer.Option(help="Its version.")] = None,
    last_prediction: Annotated[
        bool | None,
        typer.Option(
            "--last-prediction/--no-last-prediction",
            help="Answer with the entity's last prediction when nothing else can.",
        ),
    ] = None,
    transforms: Annotated[
        str | None, typer.Option(help="Fitted transforms model/NAME/N ('' removes them).")
    ] = None,
    reason: ReasonOpt = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Set a deployment's fallback and model-dependent transforms."""
    record = _store(repo).configure_deployment(
        deployment,
        fallback=fallback,
        fallback_version=fallback_version,
        last_prediction=last_prediction,
        transforms=transforms,
        reason=reason,
    )
    out.ok(f"{record.identity}: {record.config or 'no strategy'}")


@deployment_app.command("status")
@handled
def deployment_status(deployment: Deployment, repo: RepoOpt = Path(".")) -> None:
    """Traffic split, models, and predictions served per role."""
    status = _store(repo).deployment_status(deployment)
    traffic = status["traffic"]
    rows = [["primary", status["primary"], f"{traffic['primary']:.0%}"]]
    if status["canary"]:
        rows.append(["canary", status["canary"], f"{traffic['canary']:.0%}"])
    if status["shadow"]:
        rows.append(["shadow", status["shadow"], "copy"])
    if status["fallback"]:
        rows.append(["fallback", status["fallback"], "on failure"])
    if status["last_prediction_fallback"]:
        rows.append(["fallback", "last prediction of the entity", "on failure"])
    out.table(
        f"deployment/{deployment} ({status['action']} at {status['since']})",
        ["role", "model", "traffic"],
        rows,
    )
    served = [
        [role, model, count]
        for role, models in sorted(status["served"].items())
        for model, count in sorted(models.items())
    ]
    out.table("served", ["role", "model", "predictions"], served)
