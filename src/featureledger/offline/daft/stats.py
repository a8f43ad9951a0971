"""Statistics scans as Daft plans (`OfflineEngine.column_stats`), run by the workers.

Every measure is an aggregation Daft computes per partition and combines, so only
aggregates reach the driver:

- counts, min, max, mean, sample standard deviation, HyperLogLog distinct counts: one
  global aggregation over every column;
- **exact quantiles** (DuckDB's ``quantile_cont``: the values at ranks floor and ceil of
  (n - 1) p, interpolated as DuckDB does, `_interpolate`) by distributed selection instead of a
  sort: each column's finite values are normalized to u = (v - min) / (max - min) and
  counted per cell of a grid of 4096 cells (`CELL_BITS`); the cell holding each wanted
  rank is refined on a 4096x finer grid in the next pass, over only the rows of the
  chosen cells. A cell whose values are all equal answers at once; a cell of at most
  `COLLECT` rows (or any cell after `LEVELS` passes) has its values collected and the
  rank picked on the driver. Scaling u by a power of two is exact, so a finer cell always
  lies inside its parent. Typical data needs two passes;
- histogram bins: one grouped count per column (edges from those quantiles);
- top-k values: a grouped count per value, then the histogram of those counts (small:
  at most ~sqrt(2n) distinct counts) gives the k-th count; the values above it and the
  ties at it (the smallest texts first, `smallest`) are collected.

Approximate distinct counts are Daft's HyperLogLog, not DuckDB's: both are estimates
(a few percent), so they may differ between engines; every other measure is equal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureledger.offline.base import ColumnScan, StatsColumn, StatsScan
from featureledger.offline.daft._frames import zero_signs
from featureledger.offline.daft.select import smallest

if TYPE_CHECKING:
    import daft

#: log2 of the cells per grid level; 4 levels reach 2^48 cells, the precision of u
CELL_BITS = 12
LEVELS = 4
#: a cell with at most this many rows is collected and the rank found on the driver
COLLECT = 50_000
#: ties at the k-th count collected at once when at most this many, else `smallest`
TIES_COLLECT = 50_000


def column_stats(
    frame: daft.DataFrame, schema: pa.Schema, columns: Sequence[StatsColumn], top_k: int
) -> StatsScan:
    """`OfflineEngine.column_stats` over ``frame`` (in ``schema``)."""
    from daft import col

    frame = frame.select(*[c.name for c in columns])
    # measured in several passes: held once on the workers (the cluster's memory)
    frame = _prepared(frame, schema, columns).collect()
    aggs: list[Any] = [col("__fl_n").count("all").alias("n")]
    for i, p in enumerate(columns):
        c = col(f"c{i}")
        aggs.append(c.count("valid").alias(f"nn{i}"))
        if p.kind != "other":
            aggs.append(c.approx_count_distinct().alias(f"d{i}"))
        if p.kind == "numeric":
            v = col(f"v{i}")
            aggs += [
                v.count("valid").alias(f"f{i}"),
                v.min().alias(f"min{i}"),
                v.max().alias(f"max{i}"),
                v.mean().alias(f"mean{i}"),
                v.stddev(ddof=1).alias(f"std{i}"),
            ]
        elif p.kind == "temporal":
            aggs += [c.min().alias(f"min{i}"), c.max().alias(f"max{i}")]
    row = frame.agg(*aggs).to_pylist()[0]
    numeric = {i: p for i, p in enumerate(columns) if p.kind == "numeric"}
    quantiles = _quantiles(frame, numeric, row)
    bins = _bins(frame, numeric, quantiles)
    tops = _tops(frame, {i: p for i, p in enumerate(columns) if p.kind == "categorical"}, top_k)
    out = {}
    for i, p in enumerate(columns):
        nonnull, distinct = int(row[f"nn{i}"]), None if p.kind == "other" else int(row[f"d{i}"])
        if p.kind == "numeric":
            finite = int(row[f"f{i}"])
            out[p.name] = ColumnScan(
                nonnull,
                distinct,
                finite=finite,
                min=row[f"min{i}"],
                max=row[f"max{i}"],
                mean=row[f"mean{i}"],
                std=row[f"std{i}"] if finite > 1 else None,
                quantiles=quantiles.get(i, ()),
                bins=bins.get(i, {}),
            )
        elif p.kind == "categorical":
            out[p.name] = ColumnScan(nonnull, distinct, top=tops.get(i, ()))
        elif p.kind == "temporal":
            out[p.name] = ColumnScan(nonnull, distinct, min=row[f"min{i}"], max=row[f"max{i}"])
        else:
            out[p.name] = ColumnScan(nonnull, distinct)
    return StatsScan(int(row["n"]), out)


def _prepared(
    frame: daft.DataFrame, schema: pa.Schema, columns: Sequence[StatsColumn]
) -> daft.DataFrame:
    """Columns ``c{i}`` (categorical as text), ``v{i}`` (numeric finite values as double,
    else NULL) and ``__fl_n`` (a non-null column to count rows by)."""
    from daft import DataType, col, lit
    from daft.functions import when

    items: list[Any] = [lit(1).alias("__fl_n")]
    for i, p in enumerate(columns):
        c = col(p.name)
        if p.kind == "categorical":
            items.append(c.cast(DataType.string()).alias(f"c{i}"))
            continue
        if p.kind == "numeric" and pa.types.is_floating(schema.field(p.name).type):
            c = zero_signs(c)
        items.append(c.alias(f"c{i}"))
        if p.kind == "numeric":
            v = c.cast(DataType.float64())
            items.append(when(~(v.is_nan() | v.is_inf()), v).alias(f"v{i}"))
    return frame.select(*items)


# -- exact quantiles by distributed selection ------------------------------------------------------
def _cell(i: int, level: int, lo: float, hi: float) -> Any:
    """The cell of ``v{i}`` at ``level``: floor(u * 2^(12 level)), u = (v - lo) / (hi - lo)
    computed on halves, so that no difference overflows."""
    from daft import DataType, col, lit

    size = float(1 << (CELL_BITS * level))
    u = (col(f"v{i}") * lit(0.5) - lit(lo * 0.5)) / lit(hi * 0.5 - lo * 0.5)
    return (u * lit(size)).floor().clip(lit(0.0), lit(size - 1)).cast(DataType.int64())


def _quantiles(
    frame: daft.DataFrame, numeric: dict[int, StatsColumn], row: dict[str, Any]
) -> dict[int, tuple[float, ...]]:
    """Each numeric column's ``probs`` quantiles, exactly as DuckDB's ``quantile_cont``."""
    found: dict[int, dict[int, float]] = defaultdict(dict)  # column -> rank -> value
    # column -> rank -> (level of the parent cell, parent cell, rows below the parent)
    pending: dict[int, dict[int, tuple[int, int, int]]] = {}
    grid: dict[int, tuple[float, float]] = {}  # column -> (min, max)
    for i, p in numeric.items():
        n = int(row[f"f{i}"])
        if not p.probs or n == 0:
            continue
        ranks = {r for prob in p.probs for r in _ranks(prob, n)}
        lo, hi = float(row[f"min{i}"]), float(row[f"max{i}"])
        if lo == hi:
            found[i] = dict.fromkeys(ranks, lo)
            continue
        grid[i] = (lo, hi)
        pending[i] = {r: (0, 0, 0) for r in ranks}
    to_collect: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    for level in range(1, LEVELS + 1):
        if not any(pending.values()):
            break
        cells = _count_cells(frame, level, pending, grid)
        nxt: dict[int, dict[int, tuple[int, int, int]]] = {}
        for i, asked in pending.items():
            for rank, (_, parent, before) in asked.items():
                cell, n, vmin, vmax, below = _child(cells[(i, parent)], rank, before)
                if vmin == vmax:
                    found[i][rank] = vmin
                elif n <= COLLECT or level == LEVELS:
                    to_collect[(i, level, cell)].append((rank, below))
                else:
                    nxt.setdefault(i, {})[rank] = (level, cell, below)
        pending = nxt
    collected = _collect_cells(frame, list(to_collect), grid)
    for (i, level, cell), wanted in to_collect.items():
        for rank, below in wanted:
            found[i][rank] = collected[(i, level, cell)][rank - below]
    out = {}
    for i, p in numeric.items():
        n = int(row[f"f{i}"])
        if not p.probs or n == 0:
            continue
        values = []
        for prob in p.probs:
            h = (n - 1) * prob
            a, b = found[i][math.floor(h)], found[i][math.ceil(h)]
            values.append(a if h == math.floor(h) else _interpolate(a, b, h - math.floor(h)))
        out[i] = tuple(values)
    return out


def _child(
    children: list[tuple[int, int, float, float]], rank: int, below: int
) -> tuple[int, int, float, float, int]:
    """Of a parent's children in order (cell, rows, min, max), the one holding ``rank``,
    and the rows below it (``below``: the rows below the parent)."""
    for cell, n, vmin, vmax in children:
        if rank < below + n:
            return cell, n, vmin, vmax, below
        below += n
    raise AssertionError(f"rank {rank} lies beyond its cell's rows")  # counts are exact


def _interpolate(lo: float, hi: float, d: float) -> float:
    """DuckDB's interpolation to the bit: ``lo * (1 - d) + hi * d`` with the first
    product fused into the sum (its compiled code is an FMA, found by comparing results),
    computed exactly with fractions and rounded once."""
    return float(Fraction(lo) * Fraction(1 - d) + Fraction(hi * d))


def _ranks(prob: float, n: int) -> tuple[int, int]:
    h = (n - 1) * prob
    return math.floor(h), math.ceil(h)


def _count_cells(
    frame: daft.DataFrame,
    level: int,
    pending: dict[int, dict[int, tuple[int, int, int]]],
    grid: dict[int, tuple[float, float]],
) -> dict[tuple[int, int], list[tuple[int, int, float, float]]]:
    """Rows, min and max per cell at ``level`` inside the cells the pending ranks are in:
    (column, parent cell) -> [(cell, rows, min, max)] in cell order."""
    from daft import col, lit

    parts = []
    for i, ranks in pending.items():
        if not ranks:
            continue
        lo, hi = grid[i]
        keep = col(f"v{i}").not_null()
        if level > 1:
            parents = sorted({parent for _, parent, _ in ranks.values()})
            keep = keep & _cell(i, level - 1, lo, hi).is_in(parents)
        parts.append(
            frame.where(keep).select(
                lit(i).alias("var"),
                _cell(i, level, lo, hi).alias("cell"),
                col(f"v{i}").alias("v"),
            )
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.union_all(part)
    counted = (
        union.groupby("var", "cell")
        .agg(
            col("v").count().alias("n"),
            col("v").min().alias("lo"),
            col("v").max().alias("hi"),
        )
        .to_arrow()
        .sort_by([("var", "ascending"), ("cell", "ascending")])
        .to_pylist()
    )
    out: dict[tuple[int, int], list[tuple[int, int, float, float]]] = defaultdict(list)
    for r in counted:
        parent = r["cell"] >> CELL_BITS
        out[(r["var"], parent)].append((r["cell"], r["n"], r["lo"], r["hi"]))
    return out


def _collect_cells(
    frame: daft.DataFrame,
    wanted: list[tuple[int, int, int]],
    grid: dict[int, tuple[float, float]],
) -> dict[tuple[int, int, int], list[float]]:
    """The sorted values of each wanted (column, level, cell), keyed as asked."""
    from daft import col, lit

    if not wanted:
        return {}
    by: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, level, cell in wanted:
        by[(i, level)].append(cell)
    parts = []
    for (i, level), cells in by.items():
        lo, hi = grid[i]
        c = _cell(i, level, lo, hi)
        parts.append(
            frame.where(col(f"v{i}").not_null() & c.is_in(sorted(cells))).select(
                lit(i).alias("var"),
                lit(level).alias("level"),
                c.alias("cell"),
                col(f"v{i}").alias("v"),
            )
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.union_all(part)
    table = union.to_arrow().sort_by(
        [("var", "ascending"), ("level", "ascending"), ("cell", "ascending"), ("v", "ascending")]
    )
    values: dict[tuple[int, int, int], list[float]] = defaultdict(list)
    for r in table.to_pylist():
        values[(r["var"], r["level"], r["cell"])].append(r["v"])
    return values


# -- histograms and top values -----------------------------------------------------------------
def _union(parts: list[daft.DataFrame]) -> daft.DataFrame:
    out = parts[0]
    for part in parts[1:]:
        out = out.union_all(part)
    return out


def _bin(v: Any, edges: Sequence[float]) -> Any:
    """DuckDB's bin index (`offline/duckdb/stats._bucket`): 0 below e_0, k for
    [e_(k-1), e_k), n for the closed last bin, n + 1 above; a binary search of WHENs."""
    from daft import lit
    from daft.functions import when

    n = len(edges) - 1

    def inner(lo: int, hi: int) -> Any:
        if lo == hi:
            return lit(lo)
        mid = (lo + hi) // 2
        return when(v < lit(edges[mid]), inner(lo, mid)).otherwise(inner(mid + 1, hi))

    return (
        when(v < lit(edges[0]), lit(0)).when(v > lit(edges[n]), lit(n + 1)).otherwise(inner(1, n))
    )


def _bins(
    frame: daft.DataFrame,
    numeric: dict[int, StatsColumn],
    quantiles: dict[int, tuple[float, ...]],
) -> dict[int, dict[int, int]]:
    """Values per bin of each numeric column, one grouped count for all columns."""
    from daft import col, lit

    parts = []
    for i, p in numeric.items():
        if p.edges is not None:
            edges: Sequence[float] = p.edges
        elif p.edge_probs and i in quantiles:
            at = dict(zip(p.probs, quantiles[i], strict=True))
            edges = [at[prob] for prob in p.edge_probs]
        else:
            continue
        if len(edges) < 2:
            continue
        v = col(f"v{i}")
        parts.append(
            frame.where(v.not_null()).select(lit(i).alias("var"), _bin(v, edges).alias("bin"))
        )
    if not parts:
        return {}
    out: dict[int, dict[int, int]] = defaultdict(dict)
    counted = _union(parts).groupby("var", "bin").agg(col("var").count().alias("n"))
    for r in counted.to_pylist():
        out[r["var"]][int(r["bin"])] = int(r["n"])
    return out


def _tops(
    frame: daft.DataFrame, categorical: dict[int, StatsColumn], top_k: int
) -> dict[int, tuple[tuple[str, int], ...]]:
    """The ``top_k`` most frequent values of each categorical column (ties to the smaller
    text) and each asked-for category present, most frequent first."""
    from daft import col, lit

    if not categorical:
        return {}
    parts = [
        frame.where(col(f"c{i}").not_null()).select(lit(i).alias("var"), col(f"c{i}").alias("val"))
        for i in categorical
    ]
    counts = _union(parts).groupby("var", "val").agg(col("var").count().alias("n")).collect()
    # how many values have each count: at most ~sqrt(2 rows) distinct counts per column
    spread = counts.groupby("var", "n").agg(col("val").count().alias("values")).to_pylist()
    by: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in spread:
        by[r["var"]].append((int(r["n"]), int(r["values"])))
    full: dict[int, int | None] = {}  # column -> values with this count or more are all in
    ties: dict[int, tuple[int, int]] = {}  # column -> (count at the cut, values wanted there)
    for i, spread_i in by.items():
        taken, lowest = 0, None
        for n, values in sorted(spread_i, reverse=True):
            if taken + values <= top_k:
                taken, lowest = taken + values, n
                continue
            if top_k > taken:
                ties[i] = (n, top_k - taken)
            break
        full[i] = lowest
    wanted: list[Any] = []
    for i, p in categorical.items():
        if i not in by:
            continue
        mine = col("var") == lit(i)
        lowest = full[i]
        if lowest is not None:
            wanted.append(mine & (col("n") >= lit(lowest)))
        if p.categories:
            wanted.append(mine & col("val").is_in(list(p.categories)))
    picked: list[dict[str, Any]] = []
    if wanted:
        cond = wanted[0]
        for w in wanted[1:]:
            cond = cond | w
        picked = counts.where(cond).to_pylist()
    for i, (n, k) in ties.items():
        at_cut = (col("var") == lit(i)) & (col("n") == lit(n))
        tie_count = next(v for c, v in by[i] if c == n)
        if tie_count <= TIES_COLLECT:
            rows = counts.where(at_cut).select("val").to_arrow()
            names = sorted(rows.column("val").to_pylist())[:k]
        else:
            names = [r["val"] for r in smallest(counts, {"tie": at_cut}, ["val"], k)["tie"]]
        picked += [{"var": i, "val": v, "n": n} for v in names]
    out: dict[int, list[tuple[str, int]]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    for r in picked:
        if (r["var"], r["val"]) not in seen:
            seen.add((r["var"], r["val"]))
            out[r["var"]].append((str(r["val"]), int(r["n"])))
    return {i: tuple(sorted(v, key=lambda e: (-e[1], e[0]))) for i, v in out.items()}
