"""Monitoring commands: statistics, drift, reports and monitors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _store, app, handled, model_app


@app.command()
@handled
def stats(
    identity: Annotated[str, typer.Argument(help="Data version or training dataset.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Statistics of a data version or training dataset (computed once, then kept)."""
    from featureledger.monitoring import stats_to_dict

    result = _store(repo).stats(identity)
    if as_json:
        out.as_json(stats_to_dict(result))
        return
    out.table(
        identity,
        ["column", "count", "nulls", "distinct", "min", "p50", "max", "mean", "std"],
        [
            [
                name,
                st.count,
                st.nulls,
                st.distinct,
                st.min,
                (st.quantiles or {}).get("p50"),
                st.max,
                st.mean,
                st.std,
            ]
            for name, st in result.items()
        ],
    )


FeaturesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--features", "--feature", help="Only these features (repeat, or separate by commas)."
    ),
]


def _names(given: list[str] | None) -> list[str] | None:
    if not given:
        return None
    return [n.strip() for item in given for n in item.split(",") if n.strip()]


@app.command("drift")
@handled
def drift_cmd(
    reference: Annotated[str, typer.Argument(help="Reference identity.")],
    current: Annotated[
        str, typer.Argument(help="Current identity, or served features: served/VIEW:1d.")
    ],
    features: FeaturesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Drift of CURRENT against REFERENCE per feature; exit 1 on an alert.

    Either side is a data version, a training dataset, or the features a view served in a
    recent window, written served/VIEW[:WINDOW] (e.g. served/fraud:1d).
    """
    report = _store(repo).drift(reference, current, features=_names(features))
    if as_json:
        out.as_json(report.to_dict())
    else:
        rows = []
        for name, fd in report.features.items():
            metrics = ", ".join(
                f"{m.metric}={m.value:.4g}" for m in fd.metrics if m.value is not None
            )
            rows.append([name, fd.kind, fd.status, metrics])
        out.table(
            f"drift {report.current} vs {report.reference}",
            ["feature", "kind", "status", "metrics"],
            rows,
        )
    if report.status == "alert":
        raise typer.Exit(1)


@app.command()
@handled
def report(
    reference: Annotated[str, typer.Argument(help="Reference identity.")],
    current: Annotated[str, typer.Argument(help="Current identity or served/VIEW:WINDOW.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")],
    png_dir: Annotated[Path | None, typer.Option(help="Also write each plot as PNG here.")] = None,
    features: FeaturesOpt = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Write a self-contained HTML drift report with a plot per feature."""
    path = _store(repo).report(
        reference, current, output, png_dir=png_dir, features=_names(features)
    )
    out.ok(f"wrote {path}" + (f" and plots in {png_dir}" if png_dir else ""))


monitor_app = typer.Typer(
    help="Monitors: drift and freshness checks with actions.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.command("run")
@handled
def monitor_run(repo: RepoOpt = Path(".")) -> None:
    """Evaluate monitors.yaml; keep the findings; exit 1 when a blocking one is open."""
    store = _store(repo)
    if not store.monitors():
        # a scheduled run with nothing to evaluate would otherwise pass silently forever
        out.fail(
            f"no monitors declared: add them to {store.repo / 'monitors.yaml'}, e.g.\n"
            "  monitors:\n"
            "    - name: spend_drift\n"
            "      target: feature_group/user_stats\n"
            "      metric: psi\n"
            "      alert: 0.3\n"
            '(every key: docs/monitoring.md, "Monitors, findings and actions")'
        )
        raise typer.Exit(1)
    findings = store.run_monitors()
    out.table(
        "monitors",
        ["monitor", "target", "metric", "status", "action", "message"],
        [[f.monitor, f.target, f.metric, f.status, f.action, f.message] for f in findings],
    )
    if any(f.blocking for f in findings):
        raise typer.Exit(1)


@monitor_app.command("list")
@handled
def monitor_list(repo: RepoOpt = Path(".")) -> None:
    """Open findings of the latest monitor runs."""
    rows = _store(repo).open_findings()
    out.table(
        "open findings",
        ["#", "monitor", "target", "status", "blocking", "message"],
        [
            [f["id"], f["monitor"], f["target"], f["status"], f["blocking"], f["message"]]
            for f in rows
        ],
    )


@monitor_app.command("resolve")
@handled
def monitor_resolve(
    monitor: Annotated[str, typer.Argument(help="Monitor name.")],
    reason: Annotated[str, typer.Option(help="Why the finding is accepted (audit log).")],
    repo: RepoOpt = Path("."),
) -> None:
    """Accept a monitor's open findings, which lifts a block."""
    n = _store(repo).resolve_monitor(monitor, reason=reason)
    out.ok(f"{n} finding(s) of {monitor} resolved")


@app.command("skew")
@handled
def skew_cmd(
    view: Annotated[str, typer.Argument(help="Feature view name.")],
    window: Annotated[
        str | None, typer.Option(help="Served rows of this recent window, e.g. 1d (default all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Training-serving skew of a view's logged features; exit 1 when a feature skews."""
    from datetime import UTC, datetime

    from featureledger.definitions.contract import parse_duration

    end = datetime.now(UTC)
    start = None if window is None else end - parse_duration(window)
    report = _store(repo).skew(view, start=start, end=end)
    if as_json:
        out.as_json(report.to_dict())
    else:
        out.table(
            f"skew of feature_view/{view}: {report.joined_rows:,} of {report.online_rows:,} "
            "served rows compared",
            ["feature", "status", "match rate", "mean abs diff", "mismatches", "cause", "detail"],
            [
                [
                    f.feature,
                    f.status,
                    f.match_rate,
                    f.mean_abs_diff,
                    f.compared - f.matches,
                    f.cause or "-",
                    f.detail,
                ]
                for f in report.features.values()
            ],
        )
    if report.skewed:
        raise typer.Exit(1)


@model_app.command("check")
@handled
def model_check(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Option(help="Model version (default latest).")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="NAME=V1,V2,... measured now (latency, cost); repeat for more."),
    ] = None,
    gate: Annotated[
        list[str] | None, typer.Option(help="Extra gate, e.g. 'latency_p99_ms<=20'.")
    ] = None,
    window: Annotated[str, typer.Option(help="Served-feature window for drift and skew.")] = "1d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Release gates for a model candidate (quality, drift, freshness, skew, latency,
    cost); failures are kept as blocking findings; exit 1 when a gate fails."""
    from featureledger.contracts.gates import parse_gate
    from featureledger.monitoring import DEFAULT_RELEASE_GATES

    values: dict[str, list[float]] = {}
    for item in metric or []:
        key, _, text = item.partition("=")
        try:
            values.setdefault(key.strip(), []).extend(float(v) for v in text.split(","))
        except ValueError:
            out.fail(
                f"--metric {item!r}: expected NAME=NUMBER[,NUMBER...], e.g. latency_ms=1.2,1.3"
            )
            raise typer.Exit(2) from None
    try:
        gates = [parse_gate(g) for g in [*DEFAULT_RELEASE_GATES, *(gate or [])]]
    except ValueError as exc:
        out.fail(str(exc))
        raise typer.Exit(2) from None
    result = _store(repo).release_check(name, version, gates=gates, metrics=values, window=window)
    if as_json:
        out.as_json(result.to_dict())
    else:
        out.table(
            f"release gates of {result.model}",
            ["gate", "result", "detail"],
            [
                [
                    r.gate,
                    "skipped" if r.gate in result.skipped else "passed" if r.passed else "FAILED",
                    r.detail,
                ]
                for r in result.results
            ],
        )
        for note in result.notes:
            out.info(f"  note: {note}")
        if not result.passed:
            out.fail(
                f"{result.model} failed {len(result.failed)} gate(s); deploy is blocked until a "
                f"later check passes or `featureledger monitor resolve release:{name}/"
                f"{result.model.rsplit('/', 1)[-1]} --reason ...` accepts it"
            )
    if not result.passed:
        raise typer.Exit(1)
