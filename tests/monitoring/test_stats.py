"""Column statistics: values checked against numpy, the stored form round-trips, and the
whole table is one DuckDB query."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from featureledger.monitoring.stats import (
    QUANTILES,
    ColumnStats,
    Histogram,
    bins_of,
    compute_stats,
    stats_from_dict,
    stats_from_json,
    stats_to_dict,
    stats_to_json,
)

rng = np.random.default_rng(11)


def numpy_histogram(x: np.ndarray, edges: np.ndarray) -> list[int]:
    """[below, numpy's bins (last one closed), above] -- the layout `Histogram` documents."""
    inside = x[(x >= edges[0]) & (x <= edges[-1])]
    return [
        int((x < edges[0]).sum()),
        *np.histogram(inside, edges)[0].tolist(),
        int((x > edges[-1]).sum()),
    ]


def test_numeric_stats_match_numpy():
    x = rng.gamma(2.0, 3.0, 2000)
    table = pa.table({"x": pa.array(np.append(x, [np.nan, np.inf]))})
    table = pa.concat_tables([table, pa.table({"x": pa.array([None], pa.float64())})])
    s = compute_stats(table)["x"]
    assert (s.kind, s.count, s.nulls, s.nonfinite, s.valid) == ("numeric", 2003, 1, 2, 2000)
    assert s.min == x.min() and s.max == x.max()
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    for name, p in QUANTILES.items():
        assert s.quantiles[name] == pytest.approx(np.quantile(x, p), rel=1e-12)
    assert s.distinct == pytest.approx(2000, rel=0.1)  # HyperLogLog estimate
    # own bins: equal-frequency, edges are this data's percentiles
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 101)))
    assert s.histogram.edges == pytest.approx(edges.tolist(), rel=1e-12)
    assert list(s.histogram.counts) == numpy_histogram(x, np.asarray(s.histogram.edges))
    assert s.histogram.counts[0] == s.histogram.counts[-1] == 0
    assert max(s.histogram.counts) - min(s.histogram.counts[1:-1]) <= 2


def test_reference_bins_count_other_data_against_them():
    ref = compute_stats(pa.table({"x": rng.normal(size=1000)}))
    cur_x = rng.normal(size=800) * 2 + 1
    cur = compute_stats(pa.table({"x": cur_x}), reference_bins=bins_of(ref))["x"]
    edges = np.asarray(ref["x"].histogram.edges)
    assert cur.histogram.edges == ref["x"].histogram.edges
    assert list(cur.histogram.counts) == numpy_histogram(cur_x, edges)
    assert cur.histogram.counts[0] > 0 and cur.histogram.counts[-1] > 0  # outside the range
    assert cur.histogram.total == 800


def test_repeated_edges_merge_and_a_value_on_an_edge_goes_up():
    # 60% zeros: the first 60 percentiles are one edge
    x = np.concatenate([np.zeros(600), np.arange(1, 401, dtype=float)])
    h = compute_stats(pa.table({"x": x}))["x"].histogram
    assert len(set(h.edges)) == len(h.edges)
    assert h.counts[1] >= 600  # the zeros sit in the first bin [0, e1)
    assert list(h.counts) == numpy_histogram(x, np.asarray(h.edges))
    given = compute_stats(pa.table({"x": [0.0, 1.0, 2.0, 3.0]}), reference_bins={"x": [0, 1, 2, 3]})
    assert given["x"].histogram.counts == (0, 1, 1, 2, 0)  # 1 -> [1, 2), 3 -> closed last bin


def test_constant_column_is_one_bin():
    s = compute_stats(pa.table({"k": np.full(50, 4.5)}))["k"]
    assert s.histogram == Histogram((4.5, 4.5), (0, 50, 0))
    assert (s.min, s.max, s.std, s.quantiles["p50"]) == (4.5, 4.5, 0.0, 4.5)
    other = compute_stats(pa.table({"k": [4.0, 4.5, 5.0]}), reference_bins=bins_of({"k": s}))
    assert other["k"].histogram.counts == (1, 1, 1)


def test_single_value_all_null_and_empty():
    one = compute_stats(pa.table({"x": [2.0]}))["x"]
    assert (one.count, one.min, one.std, one.histogram.counts) == (1, 2.0, None, (0, 1, 0))
    null = compute_stats(pa.table({"x": pa.array([None, None], pa.float64())}))["x"]
    assert (null.count, null.nulls, null.valid, null.histogram, null.quantiles) == (
        2,
        2,
        0,
        None,
        {},
    )
    empty = compute_stats(pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())}))
    assert empty["x"].count == 0 and empty["x"].histogram is None
    assert empty["s"].frequencies == {} and empty["s"].other == 0
    assert compute_stats(pa.table({"x": [1]}), columns=[]) == {}


def test_integers_and_decimals_are_numeric():
    s = compute_stats(
        pa.table(
            {
                "i": pa.array([1, 2, 3, 4], pa.int32()),
                "d": pa.array([Decimal("1.50"), Decimal("2.50"), None, None], pa.decimal128(8, 2)),
            }
        )
    )
    assert s["i"].kind == "numeric" and s["i"].mean == 2.5
    assert s["d"].kind == "numeric" and s["d"].mean == 2.0 and s["d"].nulls == 2


def test_categorical_top_k_and_requested_categories():
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 30 + ["d"] * 5 + ["e"] * 1 + [None] * 4
    s = compute_stats(pa.table({"s": values}), top_k=3)["s"]
    counts = Counter(v for v in values if v is not None)
    assert s.frequencies == {"a": 50, "b": 30, "c": 30}  # ties by value
    assert list(s.frequencies) == ["a", "b", "c"]
    assert s.other == counts["d"] + counts["e"] and s.nulls == 4
    assert s.knows("a") and not s.knows("d")
    asked = compute_stats(pa.table({"s": values}), top_k=1, reference_bins={"s": ["e", "zz"]})["s"]
    assert asked.frequencies == {"a": 50, "e": 1, "zz": 0}
    assert asked.knows("zz") and asked.other == 65


def test_booleans_and_dictionaries_are_categorical():
    s = compute_stats(
        pa.table(
            {
                "b": [True, False, True, None],
                "d": pa.array(["x", "y", "x", "x"]).dictionary_encode(),
            }
        )
    )
    assert s["b"].kind == "categorical" and s["b"].frequencies == {"true": 2, "false": 1}
    assert s["d"].kind == "categorical" and s["d"].frequencies == {"x": 3, "y": 1}
    assert s["d"].other == 0 and s["d"].knows("never-seen")  # all categories listed


def test_temporal_columns_keep_min_and_max():
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    ts = pa.array([t0, t0 + timedelta(hours=5), None], pa.timestamp("us", tz="UTC"))
    s = compute_stats(pa.table({"t": ts, "l": [[1], None, [2]]}))
    assert s["t"].kind == "temporal"
    assert datetime.fromisoformat(s["t"].max) == t0 + timedelta(hours=5)
    assert s["t"].nulls == 1
    assert s["l"].kind == "other" and s["l"].nulls == 1 and s["l"].distinct is None


def test_json_round_trip_without_nan():
    table = pa.table(
        {
            "x": pa.array([1.0, None, 3.0]),
            "n": pa.array([None, None, None], pa.float64()),
            "one": [5.0, 5.0, 5.0],
            "s": ["a", None, "b"],
            "t": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
        }
    )
    s = compute_stats(table)
    text = stats_to_json(s)
    json.loads(text)  # strict JSON: no NaN or Infinity
    assert stats_from_json(text) == s
    assert stats_from_dict(stats_to_dict(s)) == s
    assert ColumnStats.from_dict(s["x"].to_dict()) == s["x"]
    with pytest.raises(ValueError, match="format"):
        stats_from_dict({"format": 99, "columns": {}})


def test_bad_reference_bins_and_columns_are_refused():
    with pytest.raises(ValueError, match="ascending"):
        compute_stats(pa.table({"x": [1.0]}), reference_bins={"x": [2.0, 1.0]})
    with pytest.raises(KeyError, match="not in the table"):
        compute_stats(pa.table({"x": [1.0]}), columns=["y"])


def test_odd_column_names_are_quoted():
    s = compute_stats(pa.table({'we"ird col': [1.0, 2.0], "select": ["a", "b"]}))
    assert s['we"ird col'].mean == 1.5 and s["select"].frequencies == {"a": 1, "b": 1}


def test_one_query_per_table(monkeypatch):
    calls: list[str] = []
    real = duckdb.connect

    class Counting:
        def __init__(self, con):
            self._con = con

        def sql(self, query, **kw):
            calls.append(query)
            return self._con.sql(query, **kw)

        def __getattr__(self, name):
            return getattr(self._con, name)

    # compute_stats imports duckdb when it runs, so it finds the patched connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: Counting(real(*a, **k)))
    table = pa.table(
        {
            "a": rng.normal(size=100),
            "b": rng.integers(0, 5, 100),
            "s": ["x", "y"] * 50,
            "t": pa.array(np.arange(100), pa.timestamp("us", tz="UTC")),
        }
    )
    compute_stats(table)
    assert len(calls) == 1


def test_a_dataset_of_parquet_files_is_streamed(tmp_path):
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    parts = [pa.table({"x": rng.normal(size=300), "s": ["a", "b", "c"] * 100}) for _ in range(3)]
    for i, part in enumerate(parts):
        pq.write_table(part, tmp_path / f"part-{i}.parquet")
    from_files = compute_stats(ds.dataset(sorted(str(p) for p in tmp_path.glob("*.parquet"))))
    assert from_files == compute_stats(pa.concat_tables(parts))
