"""Drift between a reference and a current dataset: per feature, every applicable metric with
its value, threshold and status.

Either side may be an Arrow table, a pyarrow dataset or stored statistics (`compute_stats`
output). Binned metrics (PSI, JS, chi-square, null fraction) always come from statistics --
computed on the fly for data, the current side with the reference's bins -- so the numbers
from data and from stored statistics agree exactly. KS and Wasserstein use the samples when
both sides are in-memory tables, and otherwise are approximated from the two histograms with
a stated error bound (see docs/monitoring.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.monitoring.metrics import (
    DEFAULT_THRESHOLDS,
    Status,
    Threshold,
    chi_square,
    js_divergence,
    ks_2samp,
    ks_pvalue,
    normed,
    psi_from_counts,
    wasserstein,
    worst,
)
from featureledger.monitoring.stats import ColumnStats, bins_of, compute_stats
from featureledger.offline import OfflineEngine

if TYPE_CHECKING:
    import pyarrow.dataset as ds

#: data (a table, or a dataset streamed from files) or its stored statistics
Source: TypeAlias = "pa.Table | ds.Dataset | Mapping[str, ColumnStats]"
#: reference-mass bins PSI and JS use for numeric columns (the usual decile PSI)
PSI_BINS = 10
_COMPARED = ("numeric", "categorical")


@dataclass(frozen=True)
class MetricResult:
    """One metric of one feature: ``value`` is the number judged against ``threshold``
    (see `featureledger.monitoring.metrics.METRICS`); ``detail`` holds the rest
    (statistic, p-value, dof, raw distance, error bound). ``approximate``: computed from
    histograms rather than samples, or over merged categories."""

    metric: str
    value: float
    status: Status
    threshold: Threshold
    approximate: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": _json_float(self.value),
            "status": self.status,
            "threshold": self.threshold.to_dict(),
            "approximate": self.approximate,
            "detail": {k: _json_float(v) for k, v in self.detail.items()},
        }


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    status: Status
    metrics: tuple[MetricResult, ...] = ()
    reference_rows: int = 0
    current_rows: int = 0
    note: str = ""

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "status": self.status,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "note": self.note,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of ``current`` against ``reference`` (identities or labels), per feature."""

    reference: str
    current: str
    features: Mapping[str, FeatureDrift]
    from_samples: bool = False
    #: the statistics compared (for plots; not part of `to_dict`)
    reference_stats: Mapping[str, ColumnStats] = field(default_factory=dict, repr=False)
    current_stats: Mapping[str, ColumnStats] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.features.values())

    @property
    def drifted(self) -> list[str]:
        """Features whose status is warn or alert, worst first."""
        bad = [f for f in self.features.values() if f.status in ("warn", "alert")]
        return [f.feature for f in sorted(bad, key=lambda f: f.status != "alert")]

    def values(self, metric: str, features: Iterable[str] = ()) -> dict[str, float]:
        """``metric``'s value per feature (only features where it applies)."""
        wanted = set(features)
        out = {}
        for name, f in self.features.items():
            m = f.metric(metric)
            if m is not None and (not wanted or name in wanted):
                out[name] = m.value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "current": self.current,
            "status": self.status,
            "drifted": self.drifted,
            "from_samples": self.from_samples,
            "features": {k: f.to_dict() for k, f in self.features.items()},
        }


def drift(
    reference: Source,
    current: Source,
    *,
    features: Sequence[str] | None = None,
    thresholds: Mapping[str, Threshold] | None = None,
    reference_id: str = "reference",
    current_id: str = "current",
    engine: OfflineEngine | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference``, feature by feature.

    ``features`` defaults to the numeric and categorical columns the two sides share;
    ``thresholds`` overrides entries of `DEFAULT_THRESHOLDS`. Numeric columns get
    null_fraction, PSI, JS, KS and Wasserstein; categorical ones null_fraction, PSI, JS and
    chi-square. A feature's status is the worst of its decisive metrics. ``engine``
    computes the statistics of table sides (default: an embedded DuckDB engine).
    """
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    # data is anything but a mapping of statistics (not checked against pyarrow.dataset's
    # classes: importing that module costs pandas, and the CLI imports this one)
    ref_table = None if isinstance(reference, Mapping) else reference
    cur_table = None if isinstance(current, Mapping) else current
    ref_cols = _columns(reference)
    cur_cols = _columns(current)
    names = list(features) if features is not None else [c for c in ref_cols if c in cur_cols]

    # statistics of a table side, with the other side's bins when that side is stored
    if ref_table is not None:
        wanted = [n for n in names if n in ref_cols]
        given = None if cur_table is not None else bins_of(_only(current, wanted))
        ref_stats = compute_stats(ref_table, columns=wanted, reference_bins=given, engine=engine)
    else:
        ref_stats = dict(reference)
    if cur_table is not None:
        wanted = [n for n in names if n in cur_cols]
        cur_stats = compute_stats(
            cur_table,
            columns=wanted,
            reference_bins=bins_of(_only(ref_stats, wanted)),
            engine=engine,
        )
    else:
        cur_stats = dict(current)

    # exact KS and Wasserstein need both samples in memory: tables, not datasets
    samples = isinstance(ref_table, pa.Table) and isinstance(cur_table, pa.Table)
    out: dict[str, FeatureDrift] = {}
    for name in names:
        r, c = ref_stats.get(name), cur_stats.get(name)
        if features is None and r is not None and r.kind not in _COMPARED:
            continue
        out[name] = _feature(
            name,
            r,
            c,
            limits,
            (ref_table, cur_table) if samples else None,
        )
    return DriftReport(
        reference_id,
        current_id,
        out,
        samples,
        _only(ref_stats, list(out)),
        _only(cur_stats, list(out)),
    )


# -- per feature ----------------------------------------------------------------------------------
def _feature(
    name: str,
    r: ColumnStats | None,
    c: ColumnStats | None,
    limits: Mapping[str, Threshold],
    tables: tuple[pa.Table, pa.Table] | None,
) -> FeatureDrift:
    if r is None or c is None:
        side = "reference" if r is None else "current"
        kind = (c or r).kind if (c or r) is not None else "missing"  # type: ignore[union-attr]
        return FeatureDrift(name, kind, "n/a", note=f"column {name!r} is not in the {side}")
    rows = {"reference_rows": r.count, "current_rows": c.count}
    metrics = [_null_fraction(r, c, limits["null_fraction"])]
    note = ""
    if r.kind != c.kind:
        note = f"kinds differ ({r.kind} {r.dtype} vs {c.kind} {c.dtype}); only nulls compared"
    elif r.kind == "numeric":
        metrics += _numeric(name, r, c, limits, tables)
    elif r.kind == "categorical":
        metrics += _categorical(name, r, c, limits, tables)
    else:
        note = f"{r.kind} columns are compared on missing values only"
    if r.valid == 0 or c.valid == 0:
        side = "reference" if r.valid == 0 else "current"
        note = note or f"no non-null values in the {side}: distributions not compared"
    status = worst(m.status for m in metrics if m.threshold.decisive)
    return FeatureDrift(name, r.kind, status, tuple(metrics), note=note, **rows)


def _result(
    metric: str, value: float, limit: Threshold, approximate: bool = False, **detail: Any
) -> MetricResult:
    return MetricResult(metric, float(value), limit.status(value), limit, approximate, detail)


def _null_fraction(r: ColumnStats, c: ColumnStats, limit: Threshold) -> MetricResult:
    if r.count == 0 or c.count == 0:
        return _result("null_fraction", float("nan"), limit)
    fr, fc = r.missing / r.count, c.missing / c.count
    return _result("null_fraction", abs(fc - fr), limit, reference=fr, current=fc)


def _numeric(
    name: str,
    r: ColumnStats,
    c: ColumnStats,
    limits: Mapping[str, Threshold],
    tables: tuple[pa.Table, pa.Table] | None,
) -> list[MetricResult]:
    nan = float("nan")
    if r.histogram is None or c.histogram is None:
        return [
            _result("psi", nan, limits["psi"]),
            _result("js", nan, limits["js"]),
            _result("ks", nan, limits["ks"], statistic=nan, pvalue=nan),
            _result("wasserstein", nan, limits["wasserstein"], distance=nan),
        ]
    ref_counts = np.asarray(r.histogram.counts, dtype=np.float64)
    aligned = r.histogram.edges == c.histogram.edges
    cur_counts = (
        np.asarray(c.histogram.counts, dtype=np.float64)
        if aligned
        else _rebin(c, np.asarray(r.histogram.edges))
    )
    groups = _coarse_groups(ref_counts, PSI_BINS)
    rg = np.bincount(groups, weights=ref_counts)
    cg = np.bincount(groups, weights=cur_counts, minlength=rg.size)
    used = int(np.count_nonzero(rg + cg))
    out = [
        _result("psi", psi_from_counts(rg, cg), limits["psi"], not aligned, bins=used),
        _result("js", js_divergence(rg, cg), limits["js"], not aligned, bins=used),
    ]
    ka, kb = cdf_knots(r), cdf_knots(c)
    if tables is not None:
        a, b = _finite_values(tables[0], name), _finite_values(tables[1], name)
        ks = ks_2samp(a, b)
        out.append(_result("ks", ks.pvalue, limits["ks"], statistic=ks.statistic, pvalue=ks.pvalue))
        w = wasserstein(a, b)
        out.append(
            _result(
                "wasserstein",
                normed(w, r.std),
                limits["wasserstein"],
                distance=w,
                reference_std=r.std or 0.0,
            )
        )
        return out
    d, d_err = _ks_from_knots(ka, kb)
    p = ks_pvalue(d, r.valid, c.valid)
    out.append(_result("ks", p, limits["ks"], True, statistic=d, pvalue=p, error_bound=d_err))
    w, w_err = _w1_from_knots(ka, kb)
    out.append(
        _result(
            "wasserstein",
            normed(w, r.std),
            limits["wasserstein"],
            True,
            distance=w,
            reference_std=r.std or 0.0,
            error_bound=w_err,
        )
    )
    return out


def _categorical(
    name: str,
    r: ColumnStats,
    c: ColumnStats,
    limits: Mapping[str, Threshold],
    tables: tuple[pa.Table, pa.Table] | None,
) -> list[MetricResult]:
    if tables is not None:
        rf, cf = _value_counts(tables[0], name), _value_counts(tables[1], name)
        cats = list(dict.fromkeys([*rf, *cf]))
        rc = np.array([rf.get(k, 0) for k in cats], dtype=np.float64)
        cc = np.array([cf.get(k, 0) for k in cats], dtype=np.float64)
        merged = False
    else:
        rfreq, cfreq = r.frequencies or {}, c.frequencies or {}
        cats = [k for k in dict.fromkeys([*rfreq, *cfreq]) if r.knows(k) and c.knows(k)]
        rc = np.array([rfreq.get(k, 0) for k in cats] + [0], dtype=np.float64)
        cc = np.array([cfreq.get(k, 0) for k in cats] + [0], dtype=np.float64)
        # whatever is not known on both sides is compared as one "other" bucket
        rc[-1], cc[-1] = r.valid - rc.sum(), c.valid - cc.sum()
        merged = bool(rc[-1] or cc[-1])
    chi = chi_square(rc, cc)
    n = len(cats) + int(merged)
    return [
        _result("psi", psi_from_counts(rc, cc), limits["psi"], merged, bins=n),
        _result("js", js_divergence(rc, cc), limits["js"], merged, bins=n),
        _result(
            "chi2",
            chi.pvalue,
            limits["chi2"],
            merged,
            statistic=chi.statistic,
            dof=chi.dof,
            pvalue=chi.pvalue,
        ),
    ]


# -- histogram geometry ---------------------------------------------------------------------------
def _coarse_groups(ref_counts: np.ndarray, k: int) -> np.ndarray:
    """Merge the inner bins into about ``k`` groups of equal reference mass (a heavy tie
    stays one group); the underflow and overflow bins stay groups of their own."""
    inner = ref_counts[1:-1]
    total = inner.sum()
    if total <= 0:
        g = np.ones(inner.size, dtype=np.int64)
    else:
        before = (np.cumsum(inner) - inner) / total
        g = np.minimum(np.floor(before * k + 1e-9), k - 1).astype(np.int64) + 1
    return np.concatenate([[0], g, [k + 1]])


def cdf_knots(s: ColumnStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Piecewise-linear CDF through the histogram (values spread evenly within each bin):
    x knots, CDF at them, and each bin's mass and width. The underflow bin spans
    [min, min(e_0, max)] and the overflow bin [max(e_n, min), max] of the column's own
    min and max, so data lying wholly outside the reference range keeps its place."""
    assert s.histogram is not None
    e = np.asarray(s.histogram.edges, dtype=np.float64)
    counts = np.asarray(s.histogram.counts, dtype=np.float64)
    smin = e[0] if s.min is None else float(s.min)
    smax = e[-1] if s.max is None else float(s.max)
    lo, under_hi = min(smin, e[0]), min(e[0], max(smax, smin))
    over_lo, hi = max(e[-1], min(smin, smax)), max(smax, e[-1])
    xs = np.concatenate([[lo, under_hi], e, [over_lo, hi]])
    total = counts.sum()
    cum = np.cumsum(counts) / total  # F at e_0 ... e_n, then 1
    cdf = np.concatenate([[0.0, cum[0]], cum[:-1], [cum[-2], 1.0]])
    width = np.concatenate([[under_hi - lo], np.diff(e), [hi - over_lo]])
    return xs, cdf, counts / total, width


def _cdf(xs: np.ndarray, cdf: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The knots' CDF at ``x``: right-continuous values (side="right") or left limits."""
    i = np.searchsorted(xs, x, side=side)  # type: ignore[call-overload]
    out = np.where(i >= xs.size, 1.0, 0.0)
    mid = (i > 0) & (i < xs.size)
    j = i[mid]
    x0, x1 = xs[j - 1], xs[j]
    f0, f1 = cdf[j - 1], cdf[j]
    out[mid] = f0 + (f1 - f0) * (x[mid] - x0) / (x1 - x0)
    return out


def _rebin(s: ColumnStats, edges: np.ndarray) -> np.ndarray:
    """Counts of ``s`` over another histogram layout, from its piecewise-linear CDF."""
    xs, cdf, _, _ = cdf_knots(s)
    left = _cdf(xs, cdf, edges, "left")
    right_last = _cdf(xs, cdf, edges[-1:], "right")[0]
    props = np.concatenate(
        [[left[0]], np.diff(left[:-1]), [right_last - left[-2]], [1 - right_last]]
    )
    return np.clip(props, 0.0, None) * s.valid


def _grid(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.unique(np.concatenate([a[0], b[0]]))


def _ks_from_knots(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """KS statistic of the two piecewise-linear CDFs and a bound on its error: within a bin
    the true CDF and the linear one share their end values, so each is off by at most that
    bin's mass."""
    u = _grid(a, b)
    gaps = [
        np.abs(_cdf(a[0], a[1], u, side) - _cdf(b[0], b[1], u, side)) for side in ("left", "right")
    ]
    d = float(max(g.max() for g in gaps))
    return d, float(min(a[2].max() + b[2].max(), 1.0))


def _w1_from_knots(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """Integral of |F_a - F_b| for the piecewise-linear CDFs (exact for them), and a bound on
    the error against the data: spreading a bin's mass over the bin moves each value by at
    most the bin width, so W1 moves by at most sum(mass * width) per side."""
    u = _grid(a, b)
    if u.size < 2:
        return 0.0, 0.0
    d0 = _cdf(a[0], a[1], u[:-1], "right") - _cdf(b[0], b[1], u[:-1], "right")
    d1 = _cdf(a[0], a[1], u[1:], "left") - _cdf(b[0], b[1], u[1:], "left")
    width = np.diff(u)
    same = d0 * d1 >= 0
    absum = np.abs(d0) + np.abs(d1)
    area = np.where(
        same,
        absum / 2 * width,
        np.divide(d0**2 + d1**2, 2 * absum, out=np.zeros_like(absum), where=absum > 0) * width,
    )
    return float(area.sum()), float((a[2] * a[3]).sum() + (b[2] * b[3]).sum())


# -- samples --------------------------------------------------------------------------------------
def _finite_values(table: pa.Table, name: str) -> np.ndarray:
    values = pc.drop_null(table.column(name)).cast(pa.float64()).to_numpy()
    return values[np.isfinite(values)]


def _value_counts(table: pa.Table, name: str) -> dict[str, int]:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_boolean(col.type):
        col = pc.if_else(col, "true", "false")
    counts = pc.value_counts(pc.drop_null(col).cast(pa.string()))
    return dict(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )


def _columns(source: Source) -> list[str]:
    return list(source if isinstance(source, Mapping) else source.schema.names)


def _only(stats: Mapping[str, ColumnStats], names: Sequence[str]) -> dict[str, ColumnStats]:
    return {n: stats[n] for n in names if n in stats}


def _json_float(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
