"""Every engine gives DuckDB's answers: statistics, contract scans, SQL transforms and
diffs of the engine under test compared with the embedded DuckDB engine's on the same
data (hypothesis-generated where ties, NULLs, NaN and infinities matter).

For DuckDB itself the comparison is trivially true; for Daft (native and on Ray) it is
the check that the worker-side plans (`offline/daft/stats.py`, `contracts.py`, `sql.py`,
`select.py`) compute what DuckDB computes. Approximate distinct counts are HyperLogLog
estimates in both engines, with different sketches, so they are compared within a few
percent; means and standard deviations within float rounding (partial sums are added in
another order); everything else exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    Unique,
)
from featureledger.offline import OfflineEngine, StatsColumn
from featureledger.offline.base import ContractScan, StatsScan
from featureledger.offline.duckdb import DuckDBEngine

from .conftest import write_group

BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TS = pa.timestamp("us", tz="UTC")
DUCK = DuckDBEngine()
SLOW = settings(
    max_examples=8,
    deadline=None,
    # no shrinking: each example is a few engine queries (on Ray, a few seconds), and a
    # failing example is printed as found
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def same_stats(got: StatsScan, want: StatsScan) -> None:
    assert got.rows == want.rows
    assert got.columns.keys() == want.columns.keys()
    for name, w in want.columns.items():
        g = got.columns[name]
        where = f"column {name}"
        assert (g.nonnull, g.finite, g.min, g.max) == (w.nonnull, w.finite, w.min, w.max), where
        assert g.quantiles == w.quantiles, where
        assert dict(g.bins) == dict(w.bins), where
        assert g.top == w.top, where
        for a, b in ((g.mean, w.mean), (g.std, w.std)):
            assert (a is None) == (b is None), where
            if b is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), where
        if w.distinct is None:
            assert g.distinct is None
        else:
            assert g.distinct is not None
            assert abs(g.distinct - w.distinct) <= max(2, 0.05 * w.distinct), where


def _failed(rule: Any, scan: Any) -> int | None:
    return 0 if isinstance(rule, Range) and scan.failed is None else scan.failed


def same_contracts(got: ContractScan, want: ContractScan) -> None:
    assert got.rows == want.rows
    for rule, g, w in zip(RULES, got.rules, want.rules, strict=True):
        where = rule.name
        assert g.error is None and w.error is None, where

        # DuckDB's count_if and sum give NULL over no non-NULL input (a Range over a
        # column without values, a Unique without duplicates); the Daft plans count 0
        assert _failed(rule, g) == _failed(rule, w), where
        assert g.observed.keys() == w.observed.keys(), where
        for key, b in w.observed.items():
            a = g.observed[key]
            if key == "duplicate_keys":
                a, b = a or 0, b or 0
            if isinstance(b, float):
                assert a == pytest.approx(b, nan_ok=True), (where, key)
            else:
                assert a == b, (where, key)
        gf = [] if g.failing_rows is None else g.failing_rows.tolist()
        wf = [] if w.failing_rows is None else w.failing_rows.tolist()
        assert gf == wf, where


# -- statistics ---------------------------------------------------------------------------------
FLOATS = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.5, float("nan"), float("inf"), -float("inf")]),
    st.floats(-1e6, 1e6, allow_nan=False),
)
WORDS = st.one_of(st.none(), st.sampled_from(["a", "b", "b", "c", "é", "zz", ""]))


@SLOW
@given(
    xs=st.lists(FLOATS, min_size=0, max_size=60),
    ints=st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=60, max_size=60),
    words=st.lists(WORDS, min_size=60, max_size=60),
    top_k=st.integers(0, 4),
)
def test_column_stats_equal_duckdbs(
    engine: OfflineEngine, xs: list[float | None], ints: list[int | None], words: Any, top_k: int
) -> None:
    n = len(xs)
    table = pa.table(
        {
            "x": pa.array(xs, pa.float64()),
            "i": pa.array(ints[:n], pa.int64()),
            "w": pa.array(words[:n], pa.string()),
            "ts": pa.array([BASE + (k % 7) * SECOND for k in range(n)], TS),
        }
    )
    probs = (0.0, 0.1, 0.25, 0.5, 0.9, 1.0)
    asked = [
        StatsColumn("x", "numeric", probs=probs, edges=(-1.0, 0.0, 1.0, 1e3)),
        StatsColumn("i", "numeric", probs=probs, edge_probs=(0.0, 0.5, 1.0)),
        StatsColumn("w", "categorical", categories=("zz", "nope")),
        StatsColumn("ts", "temporal"),
    ]
    same_stats(
        engine.column_stats(table, asked, top_k=top_k), DUCK.column_stats(table, asked, top_k=top_k)
    )


def test_quantiles_of_skewed_values_are_exact(engine: OfflineEngine, tmp_path: Path) -> None:
    """One outlier puts every other value in the first cell of each coarse grid, so the
    selection refines through every level before it collects (`stats.LEVELS`)."""
    rng = np.random.default_rng(3)
    x = rng.random(120_000)
    x[17] = 1e12
    x[:50] = 0.25  # ties
    table = pa.table({"x": x})
    probs = tuple(k / 20 for k in range(21))
    asked = [StatsColumn("x", "numeric", probs=probs, edge_probs=probs)]
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "x.parquet", row_group_size=30_000)
    dataset = pads.dataset(str(tmp_path / "x.parquet"))
    got = engine.column_stats(dataset, asked, top_k=3)
    same_stats(got, DUCK.column_stats(table, asked, top_k=3))
    assert got.columns["x"].quantiles == pytest.approx(np.quantile(x, probs), rel=1e-12)


def test_top_values_among_many_ties(engine: OfflineEngine) -> None:
    words = [f"w{k:05d}" for k in range(3000)] * 2 + ["top"] * 5
    table = pa.table({"w": list(reversed(words))})
    asked = [StatsColumn("w", "categorical", categories=("w02999",))]
    got = engine.column_stats(table, asked, top_k=4)
    assert got.columns["w"].top == (
        ("top", 5),
        ("w00000", 2),
        ("w00001", 2),
        ("w00002", 2),
        ("w02999", 2),
    )
    same_stats(got, DUCK.column_stats(table, asked, top_k=4))


# -- contract scans -----------------------------------------------------------------------------
RULES = [
    NotNull("x"),
    MaxNullFraction("s", 0.5),
    Range("x", min=0.0, max=1.0),
    Range("i", min=-1),
    AllowedValues("s", ["a", "b"]),
    Regex("s", "[a-b]+"),
    Unique(["i"]),
    Unique(["i", "s"]),
    Cardinality("s", max=2),
    Check("x < 1"),
    Check("i + 1 > 0 AND s <> 'c'"),
    # a DuckDB-only function: Daft cannot parse it, the driver's DuckDB measures it
    Check("regexp_full_match(s, 'a+')"),
    Freshness("et", timedelta(days=1)),
    IngestionDelay("et", "ct", timedelta(seconds=2)),
]


@SLOW
@given(
    data=st.lists(
        st.tuples(
            FLOATS,
            st.one_of(st.none(), st.integers(-2, 3)),
            st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "c", "ba"])),
            st.integers(0, 5),
            st.integers(0, 5),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_contract_scans_equal_duckdbs(engine: OfflineEngine, data: list[tuple[Any, ...]]) -> None:
    table = pa.table(
        {
            "x": pa.array([d[0] for d in data], pa.float64()),
            "i": pa.array([d[1] for d in data], pa.int64()),
            "s": pa.array([d[2] for d in data], pa.string()),
            "et": pa.array([BASE + d[3] * SECOND for d in data], TS),
            "ct": pa.array([BASE + (d[3] + d[4]) * SECOND for d in data], TS),
        }
    )
    same_contracts(engine.contract_scan(table, RULES), DUCK.contract_scan(table, RULES))


# -- SQL transforms -----------------------------------------------------------------------------
QUERIES = [
    "SELECT user_id, sum(amount) AS total, count(*) AS n, max(ts) AS ts FROM source "
    "WHERE ts >= $start AND ts < $end GROUP BY user_id ORDER BY user_id",
    "SELECT user_id, amount * 2 AS twice, ts FROM source WHERE amount > $floor "
    "ORDER BY user_id, ts",
    "SELECT user_id, avg(amount) AS mean, min(amount) AS low FROM source GROUP BY user_id "
    "HAVING count(*) > 1 ORDER BY user_id",
    # DuckDB-only syntax: Daft cannot plan it, so the driver's DuckDB runs it
    "SELECT user_id, amount FROM source QUALIFY row_number() OVER "
    "(PARTITION BY user_id ORDER BY ts DESC) = 1 ORDER BY user_id",
]


@pytest.mark.parametrize("query", QUERIES)
def test_transforms_equal_duckdbs(engine: OfflineEngine, query: str) -> None:
    n = 50
    source = pa.table(
        {
            "user_id": pa.array([k % 7 for k in range(n)], pa.int64()),
            "amount": pa.array([float(k % 11) - 3.5 for k in range(n)]),
            "ts": pa.array([BASE + k * SECOND for k in range(n)], TS),
        }
    )
    params = {"start": BASE + 5 * SECOND, "end": BASE + 40 * SECOND, "floor": 1.0}
    got = engine.transform(query, source, params)
    want = DUCK.transform(query, source, params)
    assert got.schema.names == want.schema.names
    assert got.cast(want.schema).to_pylist() == want.to_pylist()


# -- diff ---------------------------------------------------------------------------------------
@SLOW
@given(
    old=st.dictionaries(
        st.tuples(st.integers(0, 6), st.integers(0, 1)),
        st.one_of(st.none(), st.integers(0, 2)),
        max_size=20,
    ),
    new=st.dictionaries(
        st.tuples(st.integers(0, 6), st.integers(0, 1)),
        st.one_of(st.none(), st.integers(0, 2)),
        max_size=20,
    ),
    examples=st.integers(1, 4),
)
def test_diffs_equal_duckdbs(
    engine: OfflineEngine,
    tmp_path_factory: pytest.TempPathFactory,
    old: dict[tuple[int, int], int | None],
    new: dict[tuple[int, int], int | None],
    examples: int,
) -> None:
    """Composite keys; example keys are the smallest per kind, as DuckDB's ORDER BY."""
    fg = FeatureGroup(
        "pairs",
        Entity("pair", join_keys=["k", "tag"]),
        features=[Field("v", "int64")],
        event_time="et",
    )

    def table(rows: dict[tuple[int, int], int | None]) -> pa.Table:
        return pa.Table.from_pylist(
            [{"k": k, "tag": t, "et": BASE, "v": v} for (k, t), v in rows.items()],
            schema=fg.arrow_schema,
        )

    root = tmp_path_factory.mktemp("diff")
    snaps = write_group(engine, root, fg, [table(old), table(new)], mode="overwrite")
    a = snaps[1] if old else snaps[0]
    b = snaps[-1] if new else snaps[0]
    got = engine.diff(a.pair, b.pair, fg.unique_key, examples=examples)
    want = DUCK.diff(a.pair, b.pair, fg.unique_key, examples=examples)
    for key in ("added", "removed", "changed", "unchanged", "changed_by_column", "examples"):
        assert got[key] == want[key], key
