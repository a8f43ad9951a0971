"""Lineage, models, deployments and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import (
    RepoOpt,
    _store,
    app,
    handled,
    model_app,
)


@app.command()
@handled
def lineage(
    identity: Annotated[str, typer.Argument(help="Any identity, e.g. deployment/fraud.")],
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream/--upstream",
            help="What was made from it, or what it was made from (default).",
        ),
    ] = False,
    depth: Annotated[int | None, typer.Option(help="Hops to follow (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, json, dot or mermaid.")] = "text",
    repo: RepoOpt = Path("."),
) -> None:
    """Print the lineage graph around an identity."""
    from featureledger.lineage.render import FORMATS

    _one_of(fmt, FORMATS)
    text = _store(repo).lineage(
        identity, direction="downstream" if downstream else "upstream", depth=depth, format=fmt
    )
    out.console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
@handled
def impact(
    identity: Annotated[str, typer.Argument(help="e.g. feature_group/user_stats@v1#7")],
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    repo: RepoOpt = Path("."),
) -> None:
    """Which training sets, models and deployments are affected if this is bad."""
    from featureledger.lineage.render import IMPACT_FORMATS

    _one_of(fmt, IMPACT_FORMATS)
    out.console.print(
        _store(repo).impact_report(identity, format=fmt),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _one_of(fmt: str, formats: tuple[str, ...]) -> None:
    if fmt not in formats:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(formats)}", param_hint="--format"
        )


deployment_app = typer.Typer(help="Deployment pointers and their history.", no_args_is_help=True)
app.add_typer(deployment_app, name="deployment")


@model_app.command("register")
@handled
def model_register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    artifact: Annotated[Path, typer.Argument(help="Model file or folder.")],
    training_dataset: Annotated[str | None, typer.Option(help="Training dataset identity.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE; repeat a name for repeated evaluations.")
    ] = None,
    gate: Annotated[list[str] | None, typer.Option(help="e.g. 'auc>=0.9' or 'auc>+0.01'.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Register a model artifact; refused when a gate fails."""
    from featureledger.contracts.gates import parse_gate

    metrics: dict[str, list[float]] = {}
    for item in metric or []:
        key, _, value = item.partition("=")
        try:
            metrics.setdefault(key, []).append(float(value))
        except ValueError:
            out.fail(f"--metric {item!r}: expected NAME=NUMBER, e.g. auc=0.91")
            raise typer.Exit(2) from None
    try:
        gates = [parse_gate(g) for g in gate or []]
    except ValueError as exc:
        out.fail(str(exc))
        raise typer.Exit(2) from None
    record = _store(repo).register_model(
        name, artifact, training_dataset=training_dataset, metrics=metrics, gates=gates
    )
    out.ok(
        f"{record.identity}: artifact sha256 {record.artifact_hash[:16]}…, trained on "
        f"{record.training_dataset or 'unknown'}"
    )
    for g in record.gates:
        out.info(f"  gate {g['gate']}: passed ({g['detail']})")


@model_app.command("list")
@handled
def model_list(
    name: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """List registered model versions."""
    out.table(
        "models",
        ["identity", "registered", "training dataset", "metrics", "artifact"],
        [
            [
                m.identity,
                m.created_at,
                m.training_dataset or "-",
                {k: round(v["mean"], 6) for k, v in m.metrics.get("summary", {}).items()},
                m.artifact_hash[:16],
            ]
            for m in _store(repo).models(name)
        ],
    )


@app.command()
@handled
def deploy(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Option(help="Model version (default latest).")] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Point a deployment at a model version."""
    record = _store(repo).deploy(deployment, model, version, reason=reason)
    out.ok(f"{record.identity} -> {record.model_identity}")


@deployment_app.command("rollback")
@handled
def deployment_rollback(
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """End a canary or shadow; without one, point back at the model served before."""
    record = _store(repo).rollback_deployment(deployment, reason=reason)
    out.ok(f"{record.identity} -> {record.model_identity} (rolled back)")


@deployment_app.command("history")
@handled
def deployment_history(
    deployment: Annotated[str | None, typer.Argument(help="Deployment name.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Every move of every deployment pointer."""
    out.table(
        "deployments",
        ["deployment", "#", "model", "action", "reason", "by", "at (UTC)"],
        [
            [d.identity, d.seq, d.model_identity, d.action, d.reason, d.user, d.at]
            for d in _store(repo).deployments(deployment)
        ],
    )


audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("log")
@handled
def audit_log(
    identity: Annotated[str | None, typer.Option("--object", help="Identity prefix.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Print audit entries, oldest first."""
    entries = _store(repo).audit_log(identity)
    out.table(
        "audit",
        ["#", "at (UTC)", "user", "action", "object", "details"],
        [[e.seq, e.at, e.user, e.action, e.object, e.details] for e in entries],
    )


@audit_app.command("verify")
@handled
def audit_verify(
    against: Annotated[
        Path | None,
        typer.Option(help="A head checkpoint from `audit head --out`: detects truncation."),
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Check the keyed chain and the version rows it records; exit 1 on any tampering."""
    import json

    head = None
    if against is not None:
        try:
            head = json.loads(against.read_text())
        except (OSError, ValueError) as exc:
            out.fail(f"{against}: not a readable head checkpoint ({exc})")
            raise typer.Exit(2) from None
    problems = _store(repo).audit_verify(head)
    if problems:
        for p in problems:
            out.fail(p)
        raise typer.Exit(1)
    suffix = f", and matches the checkpoint {against}" if against is not None else ""
    out.ok("audit chain intact" + suffix)


@audit_app.command("head")
@handled
def audit_head(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the checkpoint here (default: print).")
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Export a signed checkpoint of the newest entry (seq, MAC, count); keep it elsewhere."""
    import json

    text = json.dumps(_store(repo).audit_head(), indent=2, sort_keys=True) + "\n"
    if out_file is None:
        typer.echo(text, nl=False)
        return
    out_file.write_text(text)
    out.ok(f"checkpoint of the audit chain written to {out_file}")


@audit_app.command("rotate-key")
@handled
def audit_rotate_key(
    reason: Annotated[str, typer.Option(help="Why (recorded in the re-keyed entry).")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Move the chain to a new key file: verified under the old key, re-MAC-ed, audited."""
    count = _store(repo).rotate_audit_key(reason=reason)
    out.ok(
        f"audit key rotated: {count} entries re-MAC-ed under the new .featureledger/audit.key; "
        "checkpoints exported before no longer verify: export a new one (`audit head --out`)"
    )
