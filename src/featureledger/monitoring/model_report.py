"""A self-contained HTML page monitoring one model: estimated against realized performance
per chunk with the estimate's band and the reference band, the PCA reconstruction error
against its reference band, prediction drift and the model's open findings. Plots are
base64 PNGs drawn by matplotlib (Agg), imported only here."""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featureledger.monitoring.performance import (
    ChunkPerformance,
    ModelDriftReport,
    PerformanceReport,
)
from featureledger.monitoring.report import (
    _CSS,
    CURRENT_COLOR,
    PLOT_DPI,
    PLOT_SIZE,
    REFERENCE_COLOR,
    _badge,
    _drift_section,
    _e,
    _num,
)

REALIZED_COLOR = "#2e7d32"


def render_model_report(
    model: str,
    performance: PerformanceReport,
    drift: ModelDriftReport | None,
    findings: Sequence[Mapping[str, Any]] = (),
    *,
    fitted_on: str = "",
    generated_at: datetime | None = None,
    png_dir: str | Path | None = None,
) -> str:
    """The page; with ``png_dir`` each plot is also written there as PNG."""
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    plots: dict[str, bytes] = {
        f"performance_{m}": performance_plot(performance, m) for m in performance.metrics[:2]
    }
    if drift is not None and drift.multivariate:
        plots["reconstruction_error"] = reconstruction_plot(drift)
    if png_dir is not None:
        out = Path(png_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, png in plots.items():
            (out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png").write_bytes(png)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(model)}: model monitoring</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(model)}: model monitoring</h1>",
        f'<p class="meta">task {_e(performance.task)}; estimator fitted on '
        f"<code>{_e(fitted_on or 'a reference frame')}</code></p>",
        f'<p class="meta">generated {when}</p></header>',
        '<section id="performance"><h2>Performance per chunk: estimated vs realized</h2>',
        _performance_table(performance),
        '<div class="grid">',
    ]
    for name, png in plots.items():
        parts.append(_figure(name, png))
    parts.append("</div></section>")
    if drift is not None:
        parts.append(
            '<section id="drift"><h2>Multivariate drift (PCA reconstruction error)</h2>'
            f'<p class="meta">components explain {drift.explained_variance:.0%} of the '
            "reference's variance</p>"
        )
        parts.append(_drift_table(drift))
        parts.append("</section>")
        parts.append('<section id="prediction-drift"><h2>Prediction drift</h2>')
        parts.append(_drift_section(drift.prediction))
        parts.append("</section>")
    parts.append(_findings(findings))
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(name: str, png: bytes) -> str:
    width, height = (round(v * PLOT_DPI) for v in PLOT_SIZE)
    return (
        f'<figure class="plot" data-plot="{_e(name)}"><img alt="{_e(name)}" width="{width}" '
        f'height="{height}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        f"<figcaption>{_e(name.replace('_', ' '))}</figcaption></figure>"
    )


def _performance_table(report: PerformanceReport) -> str:
    rows = [
        "<table><tr><th>chunk</th><th>rows</th><th>labelled</th><th>metric</th>"
        "<th>estimated</th><th>band</th><th>reference band</th><th>realized</th>"
        "<th>status</th></tr>"
    ]
    for r in report.rows:
        if r.metric not in report.metrics[:2]:
            continue
        rows.append(
            f"<tr><td>{_e(r.chunk)}</td><td class=num>{r.rows}</td><td class=num>{r.labelled}</td>"
            f"<td>{_e(r.metric)}</td><td class=num>{_num(r.estimated)}</td>"
            f"<td class=num>{_num(r.lower)} – {_num(r.upper)}</td>"
            f"<td class=num>{_num(r.reference_lower)} – {_num(r.reference_upper)}</td>"
            f"<td class=num>{_num(r.realized)}</td>"
            f"<td>{_badge('alert' if r.alert else 'ok')}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _drift_table(report: ModelDriftReport) -> str:
    rows = [
        "<table><tr><th>chunk</th><th>rows</th><th>error</th><th>reference band</th>"
        "<th>z</th><th>status</th></tr>"
    ]
    for c in report.multivariate:
        rows.append(
            f"<tr><td>{_e(c.chunk)}</td><td class=num>{c.rows}</td><td class=num>{_num(c.error)}"
            f"</td><td class=num>{_num(c.lower)} – {_num(c.upper)}</td>"
            f"<td class=num>{_num(c.z)}</td><td>{_badge('alert' if c.alert else 'ok')}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _findings(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return '<section id="findings"><h2>Open findings</h2><p class="empty">none</p></section>'
    rows = ["<table><tr><th>monitor</th><th>status</th><th>message</th></tr>"]
    for f in findings:
        rows.append(
            f"<tr><td>{_e(f.get('monitor', ''))}</td><td>{_badge(str(f.get('status', '')))}</td>"
            f"<td>{_e(f.get('message', ''))}</td></tr>"
        )
    rows.append("</table>")
    return '<section id="findings"><h2>Open findings</h2>' + "\n".join(rows) + "</section>"


# -- plots ----------------------------------------------------------------------------------------
def _axes() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI)
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _reference_band(ax: Any, bands: list[tuple[float, float, float]], label: str) -> None:
    """The reference's (lower, centre, upper) per chunk: a shaded band and a dashed centre."""
    x = list(range(len(bands)))
    ax.fill_between(
        x,
        [lo for lo, _, _ in bands],
        [hi for _, _, hi in bands],
        color=REFERENCE_COLOR,
        alpha=0.15,
        step="mid",
        label=label,
    )
    ax.plot(x, [mid for _, mid, _ in bands], color=REFERENCE_COLOR, lw=1, ls="--")


def _alerts(ax: Any, points: list[tuple[int, float]], label: str) -> None:
    """Red markers on the chunks outside their band (none drawn, no legend entry, if none)."""
    if points:
        ax.scatter(
            [i for i, _ in points],
            [v for _, v in points],
            color="#c62828",
            zorder=5,
            s=60,
            label=label,
        )


def performance_plot(report: PerformanceReport, metric: str) -> bytes:
    """Estimated ``metric`` per chunk with its band, the reference band, and the realized
    values where labels exist."""
    series: list[ChunkPerformance] = report.series(metric)
    fig, ax = _axes()
    x = list(range(len(series)))
    _reference_band(
        ax,
        [(r.reference_lower, r.reference, r.reference_upper) for r in series],
        "reference band (±3 sampling errors)",
    )
    ax.errorbar(
        x,
        [r.estimated for r in series],
        yerr=[[r.estimated - r.lower for r in series], [r.upper - r.estimated for r in series]],
        color=CURRENT_COLOR,
        marker="o",
        capsize=3,
        label="estimated (band)",
    )
    realized = [(i, r.realized) for i, r in enumerate(series) if math.isfinite(r.realized)]
    if realized:
        ax.plot(
            [i for i, _ in realized],
            [v for _, v in realized],
            color=REALIZED_COLOR,
            marker="s",
            label="realized",
        )
    _alerts(
        ax, [(i, r.estimated) for i, r in enumerate(series) if r.alert], "outside reference band"
    )
    ax.set_xticks(x, [_short(r.chunk) for r in series], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{report.model or 'model'}: {metric}, estimated vs realized")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def reconstruction_plot(report: ModelDriftReport) -> bytes:
    """Mean PCA reconstruction error per chunk against the reference band."""
    fig, ax = _axes()
    chunks = report.multivariate
    x = list(range(len(chunks)))
    _reference_band(ax, [(c.lower, c.reference, c.upper) for c in chunks], "reference band")
    ax.plot(x, [c.error for c in chunks], color=CURRENT_COLOR, marker="o", label="chunk error")
    _alerts(ax, [(i, c.error) for i, c in enumerate(chunks) if c.alert], "outside band")
    ax.set_xticks(x, [_short(c.chunk) for c in chunks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("reconstruction error")
    ax.set_title(f"{report.model or 'model'}: multivariate drift")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _short(chunk: str) -> str:
    return chunk[:16] if "T" in chunk else chunk
