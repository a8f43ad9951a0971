"""A self-contained HTML monitoring report and PNG plots of each feature's distribution.

The page needs no network: CSS is inline and each plot is a base64 PNG in an ``<img>``.
Plots are drawn by matplotlib (Agg, no display, no pyplot state) from *statistics*, never
from raw data, so a report of two stored versions reads nothing but the registry:

- numeric features: the density of each side over its histogram bins (mass / width), the
  reference filled, the current as a line; values outside the reference range are noted;
- categorical features: the share of each category on both sides, side by side.

matplotlib is imported only here and only when a plot is drawn.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from featureledger.monitoring.drift import DriftReport, FeatureDrift, cdf_knots
from featureledger.monitoring.metrics import DEFAULT_THRESHOLDS, METRICS
from featureledger.monitoring.monitors import Finding
from featureledger.monitoring.skew import SkewReport
from featureledger.monitoring.stats import ColumnStats

#: plot size in inches at `PLOT_DPI`: 800 x 450 pixels, shown at that size in the report
PLOT_SIZE = (8.0, 4.5)
PLOT_DPI = 100
REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
#: categories drawn per categorical plot (the rest are summed into "other")
MAX_CATEGORIES = 12
_STATUS_COLOR = {"ok": "#2e7d32", "warn": "#b26a00", "alert": "#c62828", "n/a": "#757575"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid #ddd;padding-bottom:.25rem}
.meta{color:#555;margin:.1rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600;border-radius:3px;padding:0 .35rem;color:#fff}
.ok{background:#2e7d32}.warn{background:#b26a00}.alert{background:#c62828}.na{background:#757575}
.info{background:#eceff1;color:#37474f;border:1px solid #b0bec5}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,820px),1fr));gap:1rem}
figure.plot{margin:0;border:1px solid #eee;border-radius:4px;padding:.5rem;max-width:820px}
figure.plot img{display:block;width:100%;max-width:800px;height:auto}
figcaption{color:#444;font-size:.95rem;margin-top:.35rem}
.empty{color:#777;font-style:italic}footer{margin-top:2rem;color:#666;font-size:.85rem}
"""


def render_report(
    title: str,
    drift_report: DriftReport | None = None,
    findings: Sequence[Finding] = (),
    skew_report: SkewReport | None = None,
    stats_reference: Mapping[str, ColumnStats] | None = None,
    stats_current: Mapping[str, ColumnStats] | None = None,
    *,
    generated_at: datetime | None = None,
) -> str:
    """One HTML page: summary, drift table, a distribution plot per drift-report feature
    (reference vs current), findings (monitors, freshness SLOs, gates) and skew.

    The statistics default to those the drift report compared.
    """
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
    ]
    if drift_report is not None:
        parts.append(
            f'<p class="meta">reference <code>{_e(drift_report.reference)}</code> → current '
            f"<code>{_e(drift_report.current)}</code></p>"
        )
    parts.append(f'<p class="meta">generated {when}</p>')
    parts.append(_summary(drift_report, findings, skew_report))
    parts.append("</header>")
    if drift_report is not None:
        parts.append(_drift_section(drift_report))
        plots = render_plots(drift_report, stats_reference, stats_current)
        parts.append('<section id="plots"><h2>Distributions: reference vs current</h2>')
        parts.append('<div class="grid">')
        for feature, png in plots.items():
            f = drift_report.features[feature]
            width, height = (round(v * PLOT_DPI) for v in PLOT_SIZE)
            parts.append(
                f'<figure class="plot" data-feature="{_e(feature)}">'
                f'<img alt="distribution of {_e(feature)}: reference vs current" '
                f'width="{width}" height="{height}" '
                f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
                f"<figcaption>{_e(feature)}: {_badge(f.status)} {_e(_headline(f))}"
                "</figcaption></figure>"
            )
        parts.append("</div></section>")
    parts.append(_findings_section(findings))
    if skew_report is not None:
        parts.append(_skew_section(skew_report))
    parts.append(_footer())
    parts.append("</body></html>")
    return "\n".join(parts)


def export_plots(
    directory: str | Path,
    drift_report: DriftReport,
    stats_reference: Mapping[str, ColumnStats] | None = None,
    stats_current: Mapping[str, ColumnStats] | None = None,
) -> list[Path]:
    """Write each feature's plot as ``<directory>/<feature>.png``; returns the paths."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for feature, png in render_plots(drift_report, stats_reference, stats_current).items():
        path = out_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", feature) + ".png")
        path.write_bytes(png)
        paths.append(path)
    return paths


def render_plots(
    drift_report: DriftReport,
    stats_reference: Mapping[str, ColumnStats] | None = None,
    stats_current: Mapping[str, ColumnStats] | None = None,
    *,
    dpi: int = PLOT_DPI,
) -> dict[str, bytes]:
    """PNG bytes of one plot per feature of ``drift_report``, in its order."""
    ref = stats_reference if stats_reference is not None else drift_report.reference_stats
    cur = stats_current if stats_current is not None else drift_report.current_stats
    return {
        name: _plot(name, f, ref.get(name), cur.get(name), dpi)
        for name, f in drift_report.features.items()
    }


# -- plots ----------------------------------------------------------------------------------------
def _plot(
    name: str, f: FeatureDrift, r: ColumnStats | None, c: ColumnStats | None, dpi: int
) -> bytes:
    buf = io.BytesIO()
    _figure(name, f, r, c, dpi).savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _figure(
    name: str, f: FeatureDrift, r: ColumnStats | None, c: ColumnStats | None, dpi: int
) -> Any:
    """The plot's matplotlib Figure: the title above the axes (figure title), a note on
    values beyond the reference range in the axes' own title row below it, so the two
    never share a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fig.suptitle(
        f"{name}  [{f.status}]  {_headline(f)}",
        fontsize=13,
        x=0.01,
        ha="left",
        color=_STATUS_COLOR[f.status],
        fontweight="bold",
    )
    drawn = False
    if r is not None and c is not None and r.kind == c.kind == "numeric":
        drawn = _numeric_plot(ax, r, c)
    elif r is not None and c is not None and r.kind == c.kind == "categorical":
        drawn = _categorical_plot(ax, r, c)
    if not drawn:
        ax.text(
            0.5,
            0.5,
            f.note or "no values to plot",
            ha="center",
            va="center",
            fontsize=11,
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=10)
    return fig


def _numeric_plot(ax: Any, r: ColumnStats, c: ColumnStats) -> bool:
    """Densities over each side's bins; if a side has mass at a single point (a constant,
    or everything beyond the reference range at one value), densities are meaningless and
    both CDFs are drawn instead."""
    sides = [
        (label, color, fill, cdf_knots(s))
        for s, label, color, fill in (
            (r, "reference", REFERENCE_COLOR, True),
            (c, "current", CURRENT_COLOR, False),
        )
        if s.histogram is not None and s.histogram.total > 0
    ]
    if not sides:
        return False
    spike = any(bool(((w == 0) & (m > 0)).any()) for *_, (_, _, m, w) in sides)
    for label, color, fill, (xs, cdf, mass, _) in sides:
        if spike:
            ax.plot(xs, cdf, color=color, linewidth=1.8, label=label)
            continue
        seg = np.diff(xs)
        # segments between knots: underflow, gap, the bins, gap, overflow
        seg_mass = np.concatenate([[mass[0], 0.0], mass[1:-1], [0.0, mass[-1]]])
        density = np.divide(seg_mass, seg, out=np.zeros_like(seg), where=seg > 0)
        ax.stairs(
            density,
            xs,
            fill=fill,
            alpha=0.45 if fill else 1.0,
            color=color,
            linewidth=1.5,
            label=label,
        )
    ax.set_ylabel("cumulative share" if spike else "density", fontsize=10)
    if not spike:
        lows = [s.quantiles["p1"] for s in (r, c) if "p1" in s.quantiles]
        highs = [s.quantiles["p99"] for s in (r, c) if "p99" in s.quantiles]
        if lows and highs and max(highs) > min(lows):
            pad = (max(highs) - min(lows)) * 0.05
            ax.set_xlim(min(lows) - pad, max(highs) + pad)
            ax.set_xlabel("p1 to p99 of both sides", fontsize=10)
    notes = []
    for label, _, _, (_, _, mass, _) in sides:
        outside = [f"{p:.1%} {w}" for p, w in ((mass[0], "below"), (mass[-1], "above")) if p]
        if outside and label == "current":
            notes.append(f"{label}: {', '.join(outside)} the reference range")
    ax.legend(fontsize=10, frameon=False)
    if notes:
        ax.set_title("; ".join(notes), fontsize=10, loc="left", color="#555")
    return True


def _categorical_plot(ax: Any, r: ColumnStats, c: ColumnStats) -> bool:
    rf, cf = dict(r.frequencies or {}), dict(c.frequencies or {})
    if r.valid == 0 and c.valid == 0:
        return False
    cats = list(dict.fromkeys([*rf, *cf]))
    cats.sort(key=lambda k: -(rf.get(k, 0) / max(r.valid, 1) + cf.get(k, 0) / max(c.valid, 1)))
    cats = cats[:MAX_CATEGORIES]
    rs = [rf.get(k, 0) / max(r.valid, 1) for k in cats]
    cs = [cf.get(k, 0) / max(c.valid, 1) for k in cats]
    rest_r, rest_c = 1 - sum(rs), 1 - sum(cs)
    if rest_r > 1e-9 or rest_c > 1e-9:
        cats.append("(other)")
        rs.append(max(rest_r, 0.0) if r.valid else 0.0)
        cs.append(max(rest_c, 0.0) if c.valid else 0.0)
    y = np.arange(len(cats))
    ax.barh(y - 0.2, rs, height=0.4, color=REFERENCE_COLOR, alpha=0.7, label="reference")
    ax.barh(y + 0.2, cs, height=0.4, color=CURRENT_COLOR, alpha=0.9, label="current")
    ax.set_yticks(y, [k if len(k) <= 18 else k[:17] + "…" for k in cats])
    ax.invert_yaxis()
    ax.set_xlabel("share of non-null values", fontsize=10)
    ax.legend(fontsize=10, frameon=False)
    return True


# -- HTML sections --------------------------------------------------------------------------------
def _summary(
    drift_report: DriftReport | None, findings: Sequence[Finding], skew_report: SkewReport | None
) -> str:
    items = []
    if drift_report is not None:
        n = len(drift_report.features)
        items.append(
            f"drift {_badge(drift_report.status)} {len(drift_report.drifted)} of {n} "
            "feature(s) drifted"
        )
    if findings:
        breached = sum(f.breached for f in findings)
        blocking = sum(f.blocking for f in findings)
        items.append(f"{breached} of {len(findings)} finding(s) breached, {blocking} blocking")
    if skew_report is not None:
        items.append(
            f"skew {_badge(skew_report.status)} {len(skew_report.skewed)} of "
            f"{len(skew_report.features)} feature(s) differ"
        )
    return '<p class="meta summary">' + " · ".join(items) + "</p>" if items else ""


def _drift_section(report: DriftReport) -> str:
    rows = []
    for f in report.features.values():
        metrics = f.metrics or ()
        span = max(len(metrics), 1)
        head = (
            f'<td rowspan="{span}">{_e(f.feature)}</td><td rowspan="{span}">{_e(f.kind)}</td>'
            f'<td rowspan="{span}">{_badge(f.status)}</td>'
        )
        if not metrics:
            rows.append(f'<tr>{head}<td colspan="5" class="empty">{_e(f.note)}</td></tr>')
            continue
        for i, m in enumerate(metrics):
            detail = ", ".join(
                f"{k} {_num(v)}" for k, v in m.detail.items() if k not in ("pvalue",)
            )
            if m.approximate:
                detail += (", " if detail else "") + "approximate"
            # an informational metric does not decide the feature's status: a red badge
            # there would raise an alarm the feature's own status does not
            badge = _badge(m.status) if m.threshold.decisive else _info_badge(m.status)
            cells = (
                f"<td>{_e(m.metric)}{'' if m.threshold.decisive else ' <small>(info)</small>'}"
                f'</td><td class="num">{_num(m.value)}</td>'
                f"<td>{_e(m.threshold.describe())}</td><td>{badge}</td>"
                f"<td><small>{_e(detail)}</small></td>"
            )
            rows.append(f"<tr>{head if i == 0 else ''}{cells}</tr>")
    notes = "".join(
        f"<li>{_e(f.feature)}: {_e(f.note)}</li>" for f in report.features.values() if f.note
    )
    return (
        '<section id="drift"><h2>Drift</h2>'
        '<table class="drift"><thead><tr><th>feature</th><th>kind</th><th>status</th>'
        "<th>metric</th><th>value</th><th>threshold</th><th>metric status</th><th>detail</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</section>"
    )


def _findings_section(findings: Sequence[Finding]) -> str:
    if not findings:
        return (
            '<section id="findings"><h2>Monitors and freshness</h2>'
            '<p class="empty">no findings</p></section>'
        )
    rows = []
    for f in sorted(findings, key=lambda f: (not f.blocking, f.status != "alert", f.monitor)):
        action = f.action + (" (blocking)" if f.blocking else "")
        if f.rollback_to:
            action += f" → {f.rollback_to}"
        rows.append(
            f"<tr><td>{_e(f.monitor)}</td><td>{_e(f.target)}</td><td>{_e(f.metric)}</td>"
            f"<td>{_badge(f.status)}</td><td>{_e(f.severity)}</td><td>{_e(action)}</td>"
            f"<td>{_e(f.owner)}</td><td>{_e(f.message)}</td></tr>"
        )
    return (
        '<section id="findings"><h2>Monitors and freshness</h2>'
        '<table class="findings"><thead><tr><th>monitor</th><th>target</th><th>metric</th>'
        "<th>status</th><th>severity</th><th>action</th><th>owner</th><th>message</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _skew_section(report: SkewReport) -> str:
    rows = []
    for f in report.features.values():
        rows.append(
            f"<tr><td>{_e(f.feature)}</td><td>{_badge(f.status)}</td>"
            f'<td class="num">{_num(f.match_rate)}</td><td class="num">{f.compared}</td>'
            f'<td class="num">{_num(f.mean_abs_diff)}</td>'
            f'<td class="num">{f.online_nulls} / {f.offline_nulls}</td>'
            f'<td class="num">{f.stale}</td><td>{_e(f.cause or "")}</td>'
            f"<td><small>{_e(f.detail)}</small></td></tr>"
        )
    return (
        '<section id="skew"><h2>Training-serving skew</h2>'
        f'<p class="meta">{report.joined_rows} of {report.online_rows} served row(s) joined on '
        f"{_e(', '.join(report.keys))}; tolerance {report.tolerance:g}</p>"
        '<table class="skew"><thead><tr><th>feature</th><th>status</th><th>match rate</th>'
        "<th>rows</th><th>mean |diff|</th><th>nulls online / offline only</th><th>stale</th>"
        "<th>likely cause</th><th>detail</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _footer() -> str:
    items = "".join(
        f"<li><b>{_e(k)}</b>: {_e(v)}; default {_e(DEFAULT_THRESHOLDS[k].describe())}</li>"
        for k, v in METRICS.items()
        if k in DEFAULT_THRESHOLDS
    )
    return f"<footer><p>Metrics (see docs/monitoring.md):</p><ul>{items}</ul></footer>"


def _headline(f: FeatureDrift) -> str:
    parts = [
        f"{m.metric.upper()} {_num(m.value)}"
        for m in f.metrics
        if m.metric in ("psi", "js") and not math.isnan(m.value)
    ]
    return ", ".join(parts)


def _badge(status: str) -> str:
    css = "na" if status == "n/a" else status
    return f'<span class="status {css}">{_e(status)}</span>'


def _info_badge(status: str) -> str:
    """A neutral badge for a metric shown for information only."""
    level = "" if status in ("ok", "n/a") else f": beyond its {status} level"
    return (
        f'<span class="status info" title="informational{_e(level)}; does not decide the '
        f"feature's status\">info</span>"
    )


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return _e(str(value))


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
