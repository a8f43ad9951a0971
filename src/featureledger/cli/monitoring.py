"""Monitoring commands: statistics, drift, reports and monitors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _store, app, handled


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


@app.command("drift")
@handled
def drift_cmd(
    reference: Annotated[str, typer.Argument(help="Reference identity.")],
    current: Annotated[str, typer.Argument(help="Current identity.")],
    features: Annotated[list[str] | None, typer.Option("--feature", help="Only these.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Drift of CURRENT against REFERENCE per feature; exit 1 on an alert."""
    report = _store(repo).drift(reference, current, features=features)
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
    current: Annotated[str, typer.Argument(help="Current identity.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")],
    png_dir: Annotated[Path | None, typer.Option(help="Also write each plot as PNG here.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Write a self-contained HTML drift report with a plot per feature."""
    path = _store(repo).report(reference, current, output, png_dir=png_dir)
    out.ok(f"wrote {path}" + (f" and plots in {png_dir}" if png_dir else ""))


monitor_app = typer.Typer(
    help="Monitors: drift and freshness checks with actions.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.command("run")
@handled
def monitor_run(repo: RepoOpt = Path(".")) -> None:
    """Evaluate monitors.yaml; keep the findings; exit 1 when a blocking one is open."""
    findings = _store(repo).run_monitors()
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
