"""Column statistics of a table, computed in one DuckDB query and stored as JSON.

What is kept per column (`ColumnStats`):

- every column: rows, nulls, an approximate distinct count (HyperLogLog);
- numeric (integers, floats, decimals): non-finite count (NaN, +-inf; excluded from what
  follows), min, max, mean, sample standard deviation, exact quantiles p1 p5 p25 p50 p75 p95
  p99, and a fixed-bin `Histogram`;
- categorical (strings, booleans, dictionaries): the exact counts of the ``top_k`` most
  frequent values, plus those of any categories asked for, and the count of all others;
- temporal (timestamps, dates): min and max, as ISO 8601 text.

Histogram bins are *equal-frequency* bins of the data they were first computed on: edges are
the min, the 1/bins ... (bins-1)/bins quantiles and the max (repeated edges merged), so each
bin holds about 1/bins of the reference's values whatever the shape of the distribution.
Equal-width bins between min and max were the alternative; one outlier squeezes almost every
value of a skewed feature (amounts, counts) into the first of them, and PSI then sees nothing.
Computing the statistics of newer data with the edges of a reference (``reference_bins``) keeps
the bins aligned, so drift needs only the two stored objects; values outside the reference's
range land in the underflow and overflow bins.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from featureledger.offline.duckdb import q

if TYPE_CHECKING:
    import pyarrow.dataset as ds

#: the quantiles every numeric column records, by name
QUANTILES: Mapping[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
#: equal-frequency histogram bins per numeric column (percentiles: fine enough for KS and
#: Wasserstein from stored stats; PSI merges them into deciles)
DEFAULT_BINS = 100
DEFAULT_TOP_K = 10
#: version of the stored layout, written by `stats_to_dict`
FORMAT = 1

Kind = Literal["numeric", "categorical", "temporal", "other"]
#: per column, histogram edges (numeric) or categories (categorical) to count against
ReferenceBins = Mapping[str, Sequence[float] | Sequence[str]]


@dataclass(frozen=True)
class Histogram:
    """Counts over fixed bins. ``edges`` e_0 <= ... <= e_n bound n bins [e_0, e_1), ...,
    [e_(n-1), e_n] (the last closed); ``counts`` has n + 2 entries: below e_0, the n bins,
    above e_n. A constant column has edges (c, c): one bin holding c."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.edges) < 2 or len(self.counts) != len(self.edges) + 1:
            raise ValueError(
                f"a histogram needs >= 2 edges and len(edges) + 1 counts, got "
                f"{len(self.edges)} edges and {len(self.counts)} counts"
            )

    @property
    def total(self) -> int:
        return int(sum(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        return cls(tuple(float(e) for e in data["edges"]), tuple(int(c) for c in data["counts"]))


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one column; see the module docstring for what each kind records."""

    kind: Kind
    dtype: str
    count: int
    nulls: int
    distinct: int | None = None
    nonfinite: int = 0
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: Mapping[str, float] = field(default_factory=dict)
    histogram: Histogram | None = None
    frequencies: Mapping[str, int] | None = None
    other: int | None = None

    @property
    def missing(self) -> int:
        """Rows without a usable value: nulls plus (numeric) NaN and infinities."""
        return self.nulls + self.nonfinite

    @property
    def valid(self) -> int:
        return self.count - self.missing

    def knows(self, category: str) -> bool:
        """Whether this column's count of ``category`` is known exactly (listed, or no other
        categories exist)."""
        return self.frequencies is not None and (category in self.frequencies or self.other == 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct,
        }
        if self.kind == "numeric":
            out |= {
                "nonfinite": self.nonfinite,
                "min": _finite(self.min),
                "max": _finite(self.max),
                "mean": _finite(self.mean),
                "std": _finite(self.std),
                "quantiles": {k: _finite(v) for k, v in self.quantiles.items()},
                "histogram": None if self.histogram is None else self.histogram.to_dict(),
            }
        elif self.kind == "categorical":
            out |= {"frequencies": dict(self.frequencies or {}), "other": self.other}
        elif self.kind == "temporal":
            out |= {"min": self.min, "max": self.max}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnStats:
        hist = data.get("histogram")
        freqs = data.get("frequencies")
        return cls(
            kind=data["kind"],
            dtype=data["dtype"],
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            distinct=data.get("distinct"),
            nonfinite=int(data.get("nonfinite", 0)),
            min=data.get("min"),
            max=data.get("max"),
            mean=data.get("mean"),
            std=data.get("std"),
            quantiles={k: v for k, v in (data.get("quantiles") or {}).items() if v is not None},
            histogram=None if hist is None else Histogram.from_dict(hist),
            frequencies=None if freqs is None else {str(k): int(v) for k, v in freqs.items()},
            other=data.get("other"),
        )


TableStats = dict[str, ColumnStats]


def stats_to_dict(stats: Mapping[str, ColumnStats]) -> dict[str, Any]:
    """The JSON-ready form the registry stores: ``{"format": 1, "columns": {...}}``."""
    return {"format": FORMAT, "columns": {name: s.to_dict() for name, s in stats.items()}}


def stats_from_dict(data: Mapping[str, Any]) -> TableStats:
    if data.get("format") != FORMAT:
        raise ValueError(
            f"statistics in format {data.get('format')!r} cannot be read by this version "
            f"(format {FORMAT}); recompute them from the data"
        )
    return {name: ColumnStats.from_dict(d) for name, d in data["columns"].items()}


def stats_to_json(stats: Mapping[str, ColumnStats]) -> str:
    return json.dumps(stats_to_dict(stats), sort_keys=True, allow_nan=False)


def stats_from_json(text: str) -> TableStats:
    return stats_from_dict(json.loads(text))


def bins_of(stats: Mapping[str, ColumnStats]) -> dict[str, list[float] | list[str]]:
    """The ``reference_bins`` that make other data's statistics comparable with ``stats``:
    histogram edges of numeric columns, the listed categories of categorical ones."""
    out: dict[str, list[float] | list[str]] = {}
    for name, s in stats.items():
        if s.histogram is not None:
            out[name] = list(s.histogram.edges)
        elif s.frequencies:
            out[name] = list(s.frequencies)
    return out


def column_kind(dtype: pa.DataType) -> Kind:
    if pa.types.is_dictionary(dtype):
        return "categorical"
    if pa.types.is_boolean(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "categorical"
    if pa.types.is_string_view(dtype):
        return "categorical"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "temporal"
    return "other"


def compute_stats(
    table: pa.Table | ds.Dataset,
    *,
    reference_bins: ReferenceBins | None = None,
    top_k: int = DEFAULT_TOP_K,
    bins: int = DEFAULT_BINS,
    columns: Sequence[str] | None = None,
) -> TableStats:
    """Statistics of every column of ``table`` (or of ``columns``), in one DuckDB query.

    ``reference_bins`` maps a column to the histogram edges (numeric) or the categories
    (categorical) to count against, usually ``bins_of(reference_stats)``; other numeric
    columns get ``bins`` equal-frequency bins of their own, other categorical columns their
    ``top_k`` values. Cost: one scan for the aggregates plus one sort per numeric column
    (exact quantiles) and one group-by per categorical column (top-k).

    ``table`` may be a ``pyarrow.dataset.Dataset`` (e.g. the Parquet files of a Delta
    snapshot): DuckDB then streams it with only the needed columns, never holding it whole.
    """
    if bins < 1 or top_k < 0:
        raise ValueError(f"bins must be >= 1 and top_k >= 0, got bins={bins}, top_k={top_k}")
    present = list(table.schema.names)
    names = list(present if columns is None else columns)
    missing = [n for n in names if n not in present]
    if missing:
        raise KeyError(f"columns {missing} are not in the table (it has {present})")
    reference_bins = reference_bins or {}
    plans = [
        _plan(i, n, table.schema.field(n).type, reference_bins, bins) for i, n in enumerate(names)
    ]
    if not plans:
        return {}
    sql, params = _query(plans, top_k)
    import duckdb  # here: the CLI's light commands import this module, never call it

    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.register("__fl_stats", table.select(names) if isinstance(table, pa.Table) else table)
        row = con.sql(sql, params=params or None).to_arrow_table().to_pylist()[0]
    finally:
        con.close()
    return {p.name: _column_stats(p, row) for p in plans}


# -- query building -------------------------------------------------------------------------------
@dataclass
class _Plan:
    i: int
    name: str
    dtype: pa.DataType
    kind: Kind
    edges: list[float] | None = None  # given edges; None: own equal-frequency edges
    edge_probs: list[float] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # every quantile the query computes
    categories: list[str] = field(default_factory=list)


def _plan(i: int, name: str, dtype: pa.DataType, reference: ReferenceBins, bins: int) -> _Plan:
    plan = _Plan(i, name, dtype, column_kind(dtype))
    given = reference.get(name)
    if plan.kind == "numeric":
        if given is not None:
            edges = [float(e) for e in given]
            if len(edges) < 2 or any(b < a for a, b in itertools.pairwise(edges)):
                raise ValueError(
                    f"reference bins of {name!r} must be >= 2 ascending edges, got {edges}"
                )
            if not all(math.isfinite(e) for e in edges):
                raise ValueError(f"reference bins of {name!r} must be finite, got {edges}")
            plan.edges = edges
        else:
            plan.edge_probs = [k / bins for k in range(bins + 1)]
        plan.probs = sorted(set(QUANTILES.values()) | set(plan.edge_probs))
    elif plan.kind == "categorical" and given is not None:
        plan.categories = [str(c) for c in given]
    return plan


def _query(plans: list[_Plan], top_k: int) -> tuple[str, dict[str, Any]]:
    src, qs, aggs, tops = [], [], ["count(*) AS n"], []
    params: dict[str, Any] = {}
    for p in plans:
        col, c, v = q(p.name), f"c{p.i}", f"v{p.i}"
        if p.kind == "numeric":
            src.append(f"{col} AS {c}")
            src.append(f"CASE WHEN isfinite({col}::DOUBLE) THEN {col}::DOUBLE END AS {v}")
            qs.append(f"quantile_cont({v}, [{', '.join(map(repr, p.probs))}]) AS q{p.i}")
            if p.edges is not None:
                params[f"e{p.i}"] = p.edges
                edges = [f"$e{p.i}[{k + 1}]" for k in range(len(p.edges))]
            else:
                at = {prob: k for k, prob in enumerate(p.probs)}
                edges = [f"__fl_q.q{p.i}[{at[prob] + 1}]" for prob in p.edge_probs]
            aggs += [
                f"count({v}) AS f{p.i}",
                f"min({v}) AS min{p.i}",
                f"max({v}) AS max{p.i}",
                f"avg({v}) AS mean{p.i}",
                f"stddev_samp({v}) AS std{p.i}",
                f"histogram({_bucket(v, edges)}) AS h{p.i}",
            ]
        elif p.kind == "categorical":
            src.append(f"{col}::VARCHAR AS {c}")
            wanted = ""
            if p.categories:
                params[f"k{p.i}"] = p.categories
                wanted = f" OR list_contains($k{p.i}, {c})"
            tops.append(
                f"(SELECT list({{'value': v, 'count': n}} ORDER BY n DESC, v) FROM "
                f"(SELECT {c} AS v, count(*) AS n FROM __fl_src WHERE {c} IS NOT NULL "
                f"GROUP BY {c} QUALIFY row_number() OVER (ORDER BY count(*) DESC, {c}) <= "
                f"{int(top_k)}{wanted})) AS top{p.i}"
            )
        else:
            src.append(f"{col} AS {c}")
            if p.kind == "temporal":
                aggs += [f"min({c}) AS min{p.i}", f"max({c}) AS max{p.i}"]
        aggs.append(f"count({c}) AS nn{p.i}")
        if p.kind != "other":
            aggs.append(f"approx_count_distinct({c}) AS d{p.i}")
    ctes = [f"__fl_src AS (SELECT {', '.join(src)} FROM __fl_stats)"]
    from_ = "__fl_src"
    if qs:
        ctes.append(f"__fl_q AS (SELECT {', '.join(qs)} FROM __fl_src)")
        from_ += ", __fl_q"
    ctes.append(f"__fl_agg AS (SELECT {', '.join(aggs)} FROM {from_})")
    select = ["__fl_agg.*", *(["__fl_q.*"] if qs else []), *tops]
    final_from = "__fl_agg" + (", __fl_q" if qs else "")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM {final_from}", params


def _bucket(v: str, edges: list[str]) -> str:
    """Bin index: 0 below e_0, k for [e_(k-1), e_k), n for the closed last bin, n + 1 above.

    A binary search written as nested CASEs: about log2(n) comparisons per value instead
    of n / 2 for a flat chain.
    """
    n = len(edges) - 1

    def inner(lo: int, hi: int) -> str:
        # the bin among lo..hi (1-based) holding v, given e_(lo-1) <= v <= e_n
        if lo == hi:
            return str(lo)
        mid = (lo + hi) // 2  # bins lo..mid lie below e_mid
        return f"CASE WHEN {v} < {edges[mid]} THEN {inner(lo, mid)} ELSE {inner(mid + 1, hi)} END"

    return (
        f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} < {edges[0]} THEN 0 "
        f"WHEN {v} > {edges[n]} THEN {n + 1} ELSE {inner(1, n)} END"
    )


# -- results --------------------------------------------------------------------------------------
def _column_stats(p: _Plan, row: Mapping[str, Any]) -> ColumnStats:
    count = int(row["n"])
    nonnull = int(row[f"nn{p.i}"])
    common: dict[str, Any] = {
        "kind": p.kind,
        "dtype": str(p.dtype),
        "count": count,
        "nulls": count - nonnull,
        # HyperLogLog can overshoot; more distinct values than values is never right
        "distinct": None if p.kind == "other" else min(int(row[f"d{p.i}"]), nonnull),
    }
    if p.kind == "numeric":
        finite = int(row[f"f{p.i}"])
        quantiles = row[f"q{p.i}"]
        histogram = None
        if finite:
            by_prob = dict(zip(p.probs, quantiles, strict=True))
            edges = p.edges if p.edges is not None else [by_prob[e] for e in p.edge_probs]
            histogram = _histogram(edges, row[f"h{p.i}"])
        return ColumnStats(
            **common,
            nonfinite=nonnull - finite,
            min=_float(row[f"min{p.i}"]),
            max=_float(row[f"max{p.i}"]),
            mean=_float(row[f"mean{p.i}"]),
            std=_float(row[f"std{p.i}"]),
            quantiles={k: float(by_prob[v]) for k, v in QUANTILES.items()} if finite else {},
            histogram=histogram,
        )
    if p.kind == "categorical":
        listed = {str(e["value"]): int(e["count"]) for e in row[f"top{p.i}"] or []}
        frequencies = dict(listed)
        for cat in p.categories:
            frequencies.setdefault(cat, 0)  # asked for and absent: known to be zero
        return ColumnStats(**common, frequencies=frequencies, other=nonnull - sum(listed.values()))
    if p.kind == "temporal":
        return ColumnStats(**common, min=_iso(row[f"min{p.i}"]), max=_iso(row[f"max{p.i}"]))
    return ColumnStats(**common)


def _histogram(edges: Sequence[float], counts_by_bin: Any) -> Histogram:
    """Counts from DuckDB's ``histogram`` map, with repeated edges merged: a zero-width
    inner bin is empty; a zero-width last bin (values equal to the max) joins the one before."""
    n = len(edges) - 1
    raw = np.zeros(n + 2, dtype=np.int64)
    for k, c in counts_by_bin or []:
        raw[int(k)] = int(c)
    e = np.asarray(edges, dtype=np.float64)
    unique = np.unique(e)
    if unique.size == 1:
        unique = np.array([unique[0], unique[0]])
    inner = np.clip(np.searchsorted(unique, e[:-1], side="left"), 0, unique.size - 2)
    counts = np.zeros(unique.size + 1, dtype=np.int64)
    counts[0], counts[-1] = raw[0], raw[-1]
    np.add.at(counts, inner + 1, raw[1:-1])
    return Histogram(tuple(float(x) for x in unique), tuple(int(c) for c in counts))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
