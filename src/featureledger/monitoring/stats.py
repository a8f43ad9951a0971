"""Column statistics of a table, measured by one engine scan and stored as JSON.

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

if TYPE_CHECKING:
    import pyarrow.dataset as ds

from featureledger.offline import ColumnScan, OfflineEngine, StatsColumn, default_engine

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
    engine: OfflineEngine | None = None,
) -> TableStats:
    """Statistics of every column of ``table`` (or of ``columns``), in one scan by
    ``engine`` (default: an embedded DuckDB engine; `OfflineEngine.column_stats`).

    ``reference_bins`` maps a column to the histogram edges (numeric) or the categories
    (categorical) to count against, usually ``bins_of(reference_stats)``; other numeric
    columns get ``bins`` equal-frequency bins of their own, other categorical columns their
    ``top_k`` values.

    ``table`` may be a ``pyarrow.dataset.Dataset`` (e.g. the Parquet files of a Delta
    snapshot): the engine then streams it with only the needed columns, never holding it
    whole.
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
    found = (engine or default_engine()).column_stats(
        table, [p.request for p in plans], top_k=top_k
    )
    return {p.name: _column_stats(p, found.columns[p.name], found.rows) for p in plans}


# -- planning -------------------------------------------------------------------------------
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

    @property
    def request(self) -> StatsColumn:
        return StatsColumn(
            self.name,
            self.kind,
            probs=tuple(self.probs),
            edges=None if self.edges is None else tuple(self.edges),
            edge_probs=tuple(self.edge_probs),
            categories=tuple(self.categories),
        )


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


# -- results --------------------------------------------------------------------------------------
def _column_stats(p: _Plan, scan: ColumnScan, count: int) -> ColumnStats:
    nonnull = scan.nonnull
    common: dict[str, Any] = {
        "kind": p.kind,
        "dtype": str(p.dtype),
        "count": count,
        "nulls": count - nonnull,
        # HyperLogLog can overshoot; more distinct values than values is never right
        "distinct": None if scan.distinct is None else min(scan.distinct, nonnull),
    }
    if p.kind == "numeric":
        finite = scan.finite
        histogram = None
        if finite:
            by_prob = dict(zip(p.probs, scan.quantiles, strict=True))
            edges = p.edges if p.edges is not None else [by_prob[e] for e in p.edge_probs]
            histogram = _histogram(edges, scan.bins)
        return ColumnStats(
            **common,
            nonfinite=nonnull - finite,
            min=_float(scan.min),
            max=_float(scan.max),
            mean=_float(scan.mean),
            std=_float(scan.std),
            quantiles={k: float(by_prob[v]) for k, v in QUANTILES.items()} if finite else {},
            histogram=histogram,
        )
    if p.kind == "categorical":
        listed = dict(scan.top)
        frequencies = dict(listed)
        for cat in p.categories:
            frequencies.setdefault(cat, 0)  # asked for and absent: known to be zero
        return ColumnStats(**common, frequencies=frequencies, other=nonnull - sum(listed.values()))
    if p.kind == "temporal":
        return ColumnStats(**common, min=_iso(scan.min), max=_iso(scan.max))
    return ColumnStats(**common)


def _histogram(edges: Sequence[float], counts_by_bin: Mapping[int, int]) -> Histogram:
    """Counts from the scan's bin counts, with repeated edges merged: a zero-width inner
    bin is empty; a zero-width last bin (values equal to the max) joins the one before."""
    n = len(edges) - 1
    raw = np.zeros(n + 2, dtype=np.int64)
    for k, c in counts_by_bin.items():
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
