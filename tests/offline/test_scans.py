"""Every other operation of the engine port, through each engine: the writer's helpers,
diffs, pipeline windows and transforms, materialization reads, statistics, contract
scans, skew pairs; and how engines are picked from config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from featureledger.config import RepoConfig
from featureledger.contracts import evaluate
from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    Contract,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    Unique,
)
from featureledger.errors import ConfigError
from featureledger.monitoring import compute_stats, skew
from featureledger.offline import (
    ENGINES,
    OfflineEngine,
    StatsColumn,
    create_engine,
    engine_factory,
)
from featureledger.store import FeatureStore

from .conftest import write_group

BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])


def stats_group(created: bool = False) -> FeatureGroup:
    return FeatureGroup(
        "stats",
        USER,
        features=[Field("amount", "float64"), Field("tier", "string")],
        event_time="et",
        created_time="ct" if created else None,
    )


def rows(fg: FeatureGroup, data: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(data, schema=fg.arrow_schema)


# -- writes -------------------------------------------------------------------------------------
def test_dedupe_sorted_keeps_the_greatest_created_time_then_the_later_row(
    engine: OfflineEngine,
) -> None:
    fg = stats_group(created=True)
    batch = rows(
        fg,
        [
            {"user_id": 2, "et": BASE, "ct": BASE, "amount": 1.0, "tier": "a"},
            {"user_id": 1, "et": BASE, "ct": BASE + SECOND, "amount": 2.0, "tier": "a"},
            {"user_id": 2, "et": BASE, "ct": BASE + SECOND, "amount": 3.0, "tier": "b"},
            {"user_id": 1, "et": BASE, "ct": BASE, "amount": 4.0, "tier": "b"},
            {"user_id": 1, "et": BASE + SECOND, "ct": BASE, "amount": 5.0, "tier": "c"},
            {"user_id": 1, "et": BASE + SECOND, "ct": BASE, "amount": 6.0, "tier": "d"},
        ],
    )
    out, dropped = engine.dedupe_sorted(batch, fg.unique_key, fg.created_time)
    assert dropped == 3
    assert out.schema == batch.schema
    assert out.column("amount").num_chunks == 1
    assert [(r["user_id"], r["et"], r["amount"]) for r in out.to_pylist()] == [
        (1, BASE, 2.0),
        (1, BASE + SECOND, 6.0),  # equal created times: the later row
        (2, BASE, 3.0),
    ]


def test_matching_rows_finds_stored_rows_by_unique_key(
    engine: OfflineEngine, tmp_path: Path
) -> None:
    fg = stats_group()
    stored = [
        {"user_id": k, "et": BASE + k * SECOND, "amount": float(k), "tier": "s"} for k in range(5)
    ]
    snap = write_group(engine, tmp_path, fg, [rows(fg, stored)])[-1]
    batch = rows(
        fg,
        [
            {"user_id": 9, "et": BASE, "amount": 0.0, "tier": "n"},
            {"user_id": 3, "et": BASE + 3 * SECOND, "amount": 0.0, "tier": "n"},
            {"user_id": 1, "et": BASE + SECOND, "amount": 0.0, "tier": "n"},
            {"user_id": 2, "et": BASE, "amount": 0.0, "tier": "n"},  # key, other time
        ],
    )
    found, positions = engine.matching_rows(snap.files, snap.schema, batch, fg.unique_key, None)
    assert positions.to_pylist() == [1, 2]
    assert found.schema == fg.arrow_schema
    assert found.column("amount").to_pylist() == [3.0, 1.0]
    window = ("et", BASE + 2 * SECOND, BASE + 4 * SECOND)
    found, positions = engine.matching_rows(snap.files, snap.schema, batch, fg.unique_key, window)
    assert positions.to_pylist() == [1]


# -- diff ---------------------------------------------------------------------------------------
def test_diff_counts_rows_and_columns(engine: OfflineEngine, tmp_path: Path) -> None:
    fg = stats_group()
    old = [
        {"user_id": k, "et": BASE, "amount": float(k), "tier": "a"} for k in range(6)
    ]  # keys 0..5
    new = [dict(r) for r in old if r["user_id"] != 0]  # 0 removed
    new[0]["amount"] = 100.0  # key 1: amount changed
    new[1]["tier"] = None  # key 2: tier changed to NULL
    new.append({"user_id": 7, "et": BASE, "amount": None, "tier": "z"})  # added
    snaps = write_group(engine, tmp_path, fg, [rows(fg, old), rows(fg, new)], mode="overwrite")
    out = engine.diff(snaps[1].pair, snaps[2].pair, fg.unique_key, examples=5)
    assert (out["added"], out["removed"], out["changed"], out["unchanged"]) == (1, 1, 2, 3)
    assert out["changed_by_column"] == {"amount": 1, "tier": 1}
    examples: Any = out["examples"]
    assert [e["user_id"] for e in examples["added"]] == [7]
    assert [e["user_id"] for e in examples["removed"]] == [0]
    assert [e["user_id"] for e in examples["changed"]] == [1, 2]
    stats: Any = out["stats"]
    amount = stats["new"]["amount"]
    assert (amount["count"], amount["nulls"], amount["min"], amount["max"]) == (6, 1, 2.0, 100.0)
    assert amount["mean"] == pytest.approx((100 + 2 + 3 + 4 + 5) / 5)
    assert stats["old"]["tier"]["distinct"] == 1
    assert stats["new"]["tier"]["nulls"] == 1


# -- pipelines ----------------------------------------------------------------------------------
def test_window_is_half_open_over_snapshots_and_files(
    engine: OfflineEngine, tmp_path: Path
) -> None:
    fg = stats_group()
    data = [
        {"user_id": k, "et": BASE + k * SECOND, "amount": float(k), "tier": "t"} for k in range(6)
    ]
    snap = write_group(engine, tmp_path, fg, [rows(fg, data)])[-1]
    start, end = BASE + SECOND, BASE + 4 * SECOND
    got = engine.window(snap.files, snap.schema, "et", start, end)
    assert sorted(got.column("user_id").to_pylist()) == [1, 2, 3]
    table = rows(fg, data)
    pq.write_table(table, tmp_path / "source.parquet")
    got = engine.window(str(tmp_path / "source.parquet"), None, "et", start, end)
    assert sorted(got.column("user_id").to_pylist()) == [1, 2, 3]
    folder = tmp_path / "folder"
    folder.mkdir()
    pq.write_table(table.slice(0, 3), folder / "a.parquet")
    pq.write_table(table.slice(3), folder / "b.parquet")
    got = engine.window(str(folder), None, "et", start, end)
    assert sorted(got.column("user_id").to_pylist()) == [1, 2, 3]
    pacsv.write_csv(table, tmp_path / "source.csv")
    got = engine.window(str(tmp_path / "source.csv"), None, "et", start, end)
    assert sorted(got.column("user_id").to_pylist()) == [1, 2, 3]


def test_transform_runs_a_pipeline_query_with_its_parameters(engine: OfflineEngine) -> None:
    source = pa.table(
        {
            "user_id": [1, 1, 2],
            "amount": [1.0, 2.0, 5.0],
            "ts": pa.array([BASE, BASE + SECOND, BASE], TS),
        }
    )
    out = engine.transform(
        "SELECT user_id, sum(amount) AS total, max(ts) AS ts FROM source "
        "WHERE ts >= $start GROUP BY user_id ORDER BY user_id",
        source,
        {"start": BASE, "end": BASE + SECOND},  # `end` is not used: not bound
    )
    assert out.column("user_id").to_pylist() == [1, 2]
    assert out.column("total").to_pylist() == [3.0, 5.0]


# -- materialization ----------------------------------------------------------------------------
def newest_per_key(streamed: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What a latest-wins online store holds after writing ``streamed`` in order."""
    held: dict[int, dict[str, Any]] = {}
    for r in streamed:
        old = held.get(r["user_id"])
        if old is None or r["et"] >= old["et"]:
            held[r["user_id"]] = r
    return held


@pytest.mark.parametrize("per_key", [1, 3])
def test_latest_rows_leave_the_newest_row_per_key(
    engine: OfflineEngine, tmp_path: Path, per_key: int
) -> None:
    fg = stats_group()
    data = [
        {"user_id": k, "et": BASE + (j * 10 + k) * SECOND, "amount": float(j), "tier": "t"}
        for j in range(per_key)
        for k in range(20)
    ]
    snaps = write_group(engine, tmp_path, fg, [rows(fg, data[i::2]) for i in range(2)])
    snap = snaps[-1]
    reader = engine.latest_rows(
        snap.files, snap.schema, ["user_id"], "et", ["user_id", "et", "amount"], 7
    )
    held = newest_per_key(reader.read_all().to_pylist())
    assert sorted(held) == list(range(20))
    assert all(r["amount"] == per_key - 1 for r in held.values())
    # a window keeps only rows whose event time lies in it (both ends inclusive)
    end = BASE + 5 * SECOND
    reader = engine.latest_rows(
        snap.files, snap.schema, ["user_id"], "et", ["user_id", "et", "amount"], start=BASE, end=end
    )
    held = newest_per_key(reader.read_all().to_pylist())
    assert sorted(held) == list(range(6))
    assert all(r["et"] <= end for r in held.values())


def test_latest_rows_of_a_static_group_are_every_row(engine: OfflineEngine, tmp_path: Path) -> None:
    fg = FeatureGroup("profile", USER, features=[Field("age", "int64")], event_time=None)
    data = pa.table({"user_id": [3, 1, 2], "age": [30, 10, 20]}, schema=fg.arrow_schema)
    snap = write_group(engine, tmp_path, fg, [data])[-1]
    got = engine.latest_rows(snap.files, snap.schema, ["user_id"], None, ["user_id", "age"])
    assert sorted(got.read_all().to_pylist(), key=lambda r: r["user_id"]) == [
        {"user_id": 1, "age": 10},
        {"user_id": 2, "age": 20},
        {"user_id": 3, "age": 30},
    ]


# -- statistics ---------------------------------------------------------------------------------
def test_column_stats_measure_each_kind(engine: OfflineEngine, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=500)
    x[:3] = [np.nan, np.inf, -np.inf]
    tiers = np.array(["b", "a", "c", "a", "b", "a"] * 50 + ["d"] * 200, dtype=object)
    table = pa.table(
        {
            "x": pa.array(np.where(np.arange(500) % 50 == 4, None, x), pa.float64()),
            "tier": pa.array(tiers),
            "flag": pa.array([True, False] * 250),
            "ts": pa.array([BASE + k * SECOND for k in range(500)], TS),
            "tags": pa.array([[1]] * 500, pa.list_(pa.int64())),
        }
    )
    probs = (0.0, 0.25, 0.5, 0.75, 1.0)
    asked = [
        StatsColumn("x", "numeric", probs=probs, edges=(-1.0, 0.0, 1.0)),
        StatsColumn("tier", "categorical", categories=("zz",)),
        StatsColumn("flag", "categorical"),
        StatsColumn("ts", "temporal"),
        StatsColumn("tags", "other"),
    ]
    pq.write_table(table, tmp_path / "t.parquet")
    for data in (table, pads.dataset(str(tmp_path / "t.parquet"))):
        got = engine.column_stats(data, asked, top_k=2)
        assert got.rows == 500
        sx = got.columns["x"]
        finite = table.column("x").drop_null().to_numpy()
        finite = finite[np.isfinite(finite)]
        assert sx.nonnull == 490 and sx.finite == finite.size == 487
        assert sx.min == finite.min() and sx.max == finite.max()
        assert sx.mean == pytest.approx(finite.mean())
        assert sx.std == pytest.approx(finite.std(ddof=1))
        assert sx.quantiles == pytest.approx(np.quantile(finite, probs))
        expected = [  # below, [-1, 0), [0, 1] (the last bin is closed), above
            (finite < -1).sum(),
            ((finite >= -1) & (finite < 0)).sum(),
            ((finite >= 0) & (finite <= 1)).sum(),
            (finite > 1).sum(),
        ]
        assert [sx.bins.get(k, 0) for k in range(4)] == [int(n) for n in expected]
        assert sx.distinct == pytest.approx(487, rel=0.05)
        st = got.columns["tier"]
        assert st.top == (("d", 200), ("a", 150))  # the top 2; "zz" is absent
        assert st.nonnull == 500 and st.distinct == 4
        assert got.columns["flag"].top == (("false", 250), ("true", 250))
        ts = got.columns["ts"]
        assert (ts.min, ts.max) == (BASE, BASE + 499 * SECOND)
        assert got.columns["tags"].nonnull == 500 and got.columns["tags"].distinct is None


def test_column_stats_count_asked_categories_beyond_the_top(engine: OfflineEngine) -> None:
    table = pa.table({"s": ["a"] * 5 + ["b"] * 3 + ["c"]})
    got = engine.column_stats(
        table, [StatsColumn("s", "categorical", categories=("c", "zz"))], top_k=1
    )
    assert got.columns["s"].top == (("a", 5), ("c", 1))


def test_compute_stats_through_the_engine(engine: OfflineEngine) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0, None], "s": ["a", "a", "b", None]})
    got = compute_stats(table, engine=engine, bins=2)
    assert got["x"].count == 4 and got["x"].nulls == 1
    assert got["x"].quantiles["p50"] == 2.0
    assert got["x"].histogram is not None and got["x"].histogram.edges == (1.0, 2.0, 3.0)
    assert got["s"].frequencies == {"a": 2, "b": 1}


# -- contract scans -----------------------------------------------------------------------------
def test_contract_scan_measures_every_rule(engine: OfflineEngine) -> None:
    et = [BASE, BASE, BASE + SECOND, BASE + 2 * SECOND, BASE]
    table = pa.table(
        {
            "id": pa.array([1, 2, 2, 3, None], pa.int64()),
            "x": pa.array([0.5, None, 2.0, float("nan"), -1.0]),
            "s": pa.array(["ab", "cd", None, "zz", "ab"]),
            "et": pa.array(et, TS),
            "ct": pa.array([t + d * SECOND for t, d in zip(et, [0, 5, 1, 30, 0], strict=True)], TS),
        }
    )
    rules = [
        NotNull("x"),
        MaxNullFraction("s", 0.5),
        Range("x", min=0.0, max=1.0),
        AllowedValues("s", ["ab", "cd"]),
        Regex("s", "[a-c][a-d]"),
        Unique(["id"]),
        Cardinality("s", max=2),
        Check("x < 1"),
        Freshness("et", timedelta(days=1)),
        IngestionDelay("et", "ct", timedelta(seconds=2)),
    ]
    got = engine.contract_scan(table, rules)
    assert got.rows == 5
    by = dict(zip([r.kind for r in rules], got.rules, strict=True))

    def failing(kind: str) -> list[int]:
        found = by[kind].failing_rows
        return [] if found is None else found.tolist()

    assert (by["not_null"].failed, failing("not_null")) == (1, [1])
    assert by["max_null_fraction"].observed["nulls"] == 1
    assert by["max_null_fraction"].failed is None
    # 2.0 and -1.0 are outside, and NaN is outside every range
    assert (by["range"].failed, failing("range")) == (3, [2, 3, 4])
    assert (by["allowed_values"].failed, failing("allowed_values")) == (1, [3])
    assert by["allowed_values"].observed["unexpected_distinct"] == 1
    assert (by["regex"].failed, failing("regex")) == (1, [3])
    assert (by["unique"].failed, failing("unique")) == (2, [1, 2])
    assert by["unique"].observed["duplicate_keys"] == 1
    assert by["cardinality"].observed["distinct"] == 3
    # NULL passes a check (row 1); NaN < 1 is false (row 3)
    assert (by["check"].failed, failing("check")) == (2, [2, 3])
    assert by["freshness"].observed["newest"] == BASE + 2 * SECOND
    assert (by["ingestion_delay"].failed, failing("ingestion_delay")) == (2, [1, 3])
    assert by["ingestion_delay"].observed["max_delay_us"] == 30_000_000
    assert all(r.error is None for r in got.rules)


def test_contract_scan_reports_a_check_that_does_not_run(engine: OfflineEngine) -> None:
    table = pa.table({"x": [1.0, 2.0]})
    got = engine.contract_scan(table, [Check("no_such_column > 1"), NotNull("x")])
    assert got.rules[0].error
    assert got.rules[1].error is None and got.rules[1].failed == 0


def test_evaluate_through_the_engine(engine: OfflineEngine) -> None:
    contract = Contract(
        "t", rules=[NotNull("x"), Range("x", min=0, max=10, severity="warn"), Unique()], key=["k"]
    )
    table = pa.table({"k": [1, 1, 2], "x": [None, 20.0, 5.0]})
    report = evaluate(contract, table, engine=engine)
    assert report.rows == 3
    assert [r.status for r in report.results] == ["failed", "failed", "failed"]
    assert report.invalid_rows.tolist() == [0, 1]  # not_null and unique are errors
    assert report.row_failures is not None
    assert report.row_failures.to_pylist() == [
        {"row": 0, "rules": ["not_null(x)", "unique(key)"]},
        {"row": 1, "rules": ["range(x)", "unique(key)"]},
    ]


# -- skew ---------------------------------------------------------------------------------------
def test_skew_pairs_keep_served_rows_in_order(engine: OfflineEngine) -> None:
    t = [BASE + k * SECOND for k in range(4)]
    online = pa.table(
        {
            "user_id": [3, 1, 2, 9],
            "rt": pa.array(t, TS),
            "v": [30.0, 10.0, 99.0, 1.0],
            "et": pa.array([t[0], t[1], t[1], t[3]], TS),
        }
    )
    offline = pa.table(
        {
            "user_id": [1, 2, 3],
            "rt": pa.array([t[1], t[2], t[0]], TS),
            "v": [10.0, 20.0, 30.0],
            "et": pa.array([t[1], t[2], t[0]], TS),
        }
    )
    history = pa.table(
        {"user_id": [2, 2], "event_time": pa.array([t[0], t[1]], TS), "v": [5.0, 99.0]}
    )
    got = engine.skew_pairs(
        offline,
        online,
        ["user_id", "rt"],
        ["v"],
        tolerance=1e-9,
        event_time="et",
        history=history,
        entity_keys=["user_id"],
    ).to_pylist()
    assert [r["user_id"] for r in got] == [3, 1, 2, 9]
    assert [r["__fl_present"] for r in got] == [True, True, True, None]
    assert [(r["on0"], r["off0"]) for r in got] == [
        (30.0, 30.0),
        (10.0, 10.0),
        (99.0, 20.0),
        (1.0, None),
    ]
    assert got[2]["__fl_on_et"] == t[1] and got[2]["__fl_off_et"] == t[2]
    # served 99.0 for user 2 was the value of an older history row: stale
    assert [r["__fl_hist0"] for r in got] == [False, False, True, False]


def test_skew_report_through_the_engine(engine: OfflineEngine) -> None:
    offline = pa.table({"user_id": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 4.0]})
    online = pa.table({"user_id": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 8.0]})
    report = skew(offline, online, ["user_id"], ["v"], engine=engine)
    assert report.joined_rows == 4
    assert report.features["v"].matches == 3
    with pytest.raises(ValueError, match="duplicate"):
        skew(pa.concat_tables([offline, offline]), online, ["user_id"], ["v"], engine=engine)


# -- picking engines ----------------------------------------------------------------------------
def test_every_engine_is_made_from_config_by_name(tmp_path: Path) -> None:
    for name in ENGINES:
        config = RepoConfig.from_dict({"offline": {"engine": name}})
        made = create_engine(config, tmp_path)
        assert made.name == name
        made.close()


def test_an_unknown_engine_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    # config.py sits below offline/ and cannot know the engines: the store refuses on open
    config = RepoConfig.from_dict({"offline": {"engine": "sparkk"}})
    with pytest.raises(ConfigError, match=r"offline\.engine 'sparkk'.*known: daft, duckdb"):
        create_engine(config, tmp_path)
    with pytest.raises(ConfigError, match="known: daft, duckdb"):
        engine_factory("sparkk")
    repo = FeatureStore.init(tmp_path / "repo").repo
    (repo / "featureledger.yaml").write_text("offline:\n  engine: sparkk\n")
    with pytest.raises(ConfigError, match="known: daft, duckdb"):
        FeatureStore(repo)


def test_a_factory_may_be_a_callable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[Path] = []

    def factory(config: RepoConfig, repo: Path, storage: Any) -> OfflineEngine:
        made.append(repo)
        return engine_factory("duckdb")(config, repo, storage)

    monkeypatch.setitem(ENGINES, "mine", factory)
    config = RepoConfig.from_dict({"offline": {"engine": "mine"}})
    assert create_engine(config, tmp_path).name == "duckdb"
    assert made == [tmp_path]
