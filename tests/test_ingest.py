"""Ingestion: one successful ingest is one Delta commit is one recorded data version."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from featureledger import Entity, FeatureGroup, FeatureStore, Field, content_hash
from featureledger.errors import DataError, KeyConflictError, NotFoundError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def store(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    """conftest's empty store, with a known user name recorded on each version."""
    monkeypatch.setenv("FEATURELEDGER_USER", "ingest-tester")
    return store


USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "user_stats",
    USER,
    features=[Field("clicks", "int64"), Field("spend", "float64")],
    created_time="created",
)
PLAIN = FeatureGroup("user_plain", USER, features=[Field("score", "float64")])
STATIC = FeatureGroup(
    "user_profile",
    USER,
    features=[Field("country", "string"), Field("age", "int32")],
    event_time=None,
)


def stats_rows(rows: list[tuple[int, float, float, int, float]]) -> pa.Table:
    """(user_id, event hour, created hour, clicks, spend) tuples as a batch for STATS."""
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([at(r[1]) for r in rows], TS),
            "created": pa.array([at(r[2]) for r in rows], TS),
            "clicks": pa.array([r[3] for r in rows], pa.int64()),
            "spend": pa.array([r[4] for r in rows], pa.float64()),
        }
    )


def delta_path(store: FeatureStore, group: str, major: int = 1) -> Path:
    return store._svc.tables.table(group, major).path


def delta_version(store: FeatureStore, group: str, major: int = 1) -> int:
    return DeltaTable(str(delta_path(store, group, major))).version()


def as_set(table: pa.Table, *columns: str) -> set[tuple]:
    cols = columns or tuple(table.column_names)
    return set(zip(*(table.column(c).to_pylist() for c in cols), strict=True))


def assert_unique(store: FeatureStore, group: str) -> None:
    fg = store.get_feature_group(group)
    table = store.read(group)
    counts = Counter(zip(*(table.column(c).to_pylist() for c in fg.unique_key), strict=True))
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]


def assert_hash_exact(store: FeatureStore, group: str) -> None:
    """Every recorded version's incremental hash equals a recount of its rows."""
    for v in store.versions(group):
        assert v.content == content_hash(store.read(group, version=v.version)), v.version
        assert v.rows == store.read(group, version=v.version).num_rows


@pytest.fixture
def stats(store: FeatureStore) -> FeatureStore:
    store.apply([USER, STATS, PLAIN, STATIC])
    return store


# -- one ingest, one commit, one version ---------------------------------------------------------


def test_each_ingest_is_one_commit_and_one_recorded_version(stats: FeatureStore) -> None:
    created = stats.versions("user_stats")
    assert [v.version for v in created] == [0]
    assert created[0].operation == "create" and created[0].rows == 0

    first = stats.ingest("user_stats", stats_rows([(1, 0, 0, 5, 1.0), (2, 0, 0, 7, 2.0)]))
    assert first.version == 1 == delta_version(stats, "user_stats")
    assert (first.operation, first.rows, first.rows_added, first.rows_removed) == (
        "upsert",
        2,
        2,
        0,
    )
    assert first.user == "ingest-tester"
    assert first.content == content_hash(stats.read("user_stats"))
    assert str(first.identity) == "feature_group/user_stats@v1#1"

    run = stats.registry.run(first.run_id)
    assert run is not None and run.kind == "ingest" and run.status == "succeeded"
    assert run.outputs == [str(first.identity)]
    assert run.user == "ingest-tester" and run.code_hash and run.env_hash

    # one row replaced (same key and time, newer created), one new: one more commit
    second = stats.ingest("user_stats", stats_rows([(1, 0, 1, 6, 1.5), (3, 0, 0, 1, 0.1)]))
    assert second.version == 2 == delta_version(stats, "user_stats")
    assert (second.rows, second.rows_added, second.rows_removed) == (3, 2, 1)
    assert second.run_id != first.run_id
    history = DeltaTable(str(delta_path(stats, "user_stats"))).history()
    assert len(history) == 3  # create + two ingests, nothing else
    assert [v.version for v in stats.versions("user_stats")] == [0, 1, 2]
    assert_hash_exact(stats, "user_stats")


def test_recorded_file_checksums_match_the_files_on_disk(stats: FeatureStore) -> None:
    stats.ingest("user_stats", stats_rows([(i, 0, 0, i, float(i)) for i in range(50)]))
    v = stats.ingest("user_stats", stats_rows([(i, 0, 1, -i, 0.0) for i in range(0, 50, 5)]))
    root = delta_path(stats, "user_stats")
    live = {Path(u).name for u in DeltaTable(str(root)).file_uris()}
    for version in stats.versions("user_stats")[1:]:
        assert version.files, version.version
        for rel, meta in version.files.items():
            data = (root / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
            assert len(data) == meta["size"]
    # the latest version's recorded files are live files of the table
    assert {Path(p).name for p in v.files} <= live


# -- modes --------------------------------------------------------------------------------------


def test_upsert_greatest_created_time_wins_within_a_batch(stats: FeatureStore) -> None:
    batch = stats_rows(
        [
            (1, 0, 2, 20, 2.0),
            (1, 0, 5, 50, 5.0),  # greatest created_time for (1, t0)
            (1, 0, 3, 30, 3.0),
            (2, 0, 1, 1, 0.0),
            (2, 0, 1, 2, 0.0),  # tie on created_time: the later row wins
        ]
    )
    v = stats.ingest("user_stats", batch)
    assert v.rows == 2
    rows = {r["user_id"]: r["clicks"] for r in stats.read("user_stats").to_pylist()}
    assert rows == {1: 50, 2: 2}
    assert "in-batch duplicate" in v.note
    assert_unique(stats, "user_stats")
    assert_hash_exact(stats, "user_stats")


def test_upsert_greatest_created_time_wins_across_batches(stats: FeatureStore) -> None:
    stats.ingest("user_stats", stats_rows([(1, 0, 5, 50, 5.0), (2, 0, 5, 50, 5.0)]))
    # older created_time for 1: skipped; tie for 2: the later write wins; 3 is new
    v = stats.ingest(
        "user_stats", stats_rows([(1, 0, 4, 40, 4.0), (2, 0, 5, 99, 9.0), (3, 0, 0, 1, 1.0)])
    )
    got = {r["user_id"]: r["clicks"] for r in stats.read("user_stats").to_pylist()}
    assert got == {1: 50, 2: 99, 3: 1}
    assert (v.rows_added, v.rows_removed) == (2, 1)
    assert "older than stored" in v.note
    assert_unique(stats, "user_stats")
    assert_hash_exact(stats, "user_stats")


def test_upsert_of_only_older_rows_creates_no_version(stats: FeatureStore) -> None:
    first = stats.ingest("user_stats", stats_rows([(1, 0, 5, 50, 5.0)]))
    again = stats.ingest("user_stats", stats_rows([(1, 0, 1, 10, 1.0)]))
    assert again.version == first.version
    assert [v.version for v in stats.versions("user_stats")] == [0, 1]
    assert stats.read("user_stats").column("clicks").to_pylist() == [50]


def test_upsert_matches_exact_microseconds_across_files(stats: FeatureStore) -> None:
    """File pruning uses millisecond statistics; rows microseconds apart stay distinct."""
    us = timedelta(microseconds=1)
    times = [T0 + us, T0 + 999 * us, T0 + 1001 * us, T0 + 2000 * us]
    for i, t in enumerate(times):  # one file per commit
        stats.ingest(
            "user_stats",
            pa.table(
                {
                    "user_id": [1, 1000 + i],
                    "event_timestamp": pa.array([t, t], TS),
                    "created": pa.array([T0, T0], TS),
                    "clicks": [i, i],
                    "spend": [0.0, 0.0],
                }
            ),
        )
    v = stats.ingest(
        "user_stats",
        pa.table(
            {
                "user_id": [1],
                "event_timestamp": pa.array([T0 + 999 * us], TS),
                "created": pa.array([at(1)], TS),
                "clicks": [99],
                "spend": [1.0],
            }
        ),
    )
    assert (v.rows, v.rows_added, v.rows_removed) == (8, 1, 1)
    got = {
        (r["user_id"], r["event_timestamp"]): r["clicks"]
        for r in stats.read("user_stats").to_pylist()
        if r["user_id"] == 1
    }
    assert got == {(1, times[0]): 0, (1, times[1]): 99, (1, times[2]): 2, (1, times[3]): 3}
    assert_unique(stats, "user_stats")
    assert_hash_exact(stats, "user_stats")


def test_upsert_with_different_event_times_keeps_history(stats: FeatureStore) -> None:
    stats.ingest("user_stats", stats_rows([(1, 0, 0, 1, 1.0)]))
    stats.ingest("user_stats", stats_rows([(1, 1, 0, 2, 2.0), (1, 2, 0, 3, 3.0)]))
    table = stats.read("user_stats")
    assert table.num_rows == 3
    assert sorted(table.column("clicks").to_pylist()) == [1, 2, 3]
    assert_unique(stats, "user_stats")


def test_reingesting_identical_data_creates_no_version(stats: FeatureStore) -> None:
    batch = stats_rows([(i, i % 3, 0, i, i / 2) for i in range(20)])
    first = stats.ingest("user_stats", batch)
    again = stats.ingest("user_stats", batch)
    assert again == first
    assert [v.version for v in stats.versions("user_stats")] == [0, 1]
    assert delta_version(stats, "user_stats") == 1
    # reordered and re-chunked: still the same logical rows
    shuffled = pa.concat_tables([batch.slice(10), batch.slice(0, 10)])
    assert stats.ingest("user_stats", shuffled).version == 1
    # NaN, -0.0 and nulls compare as stored
    odd = pa.table(
        {
            "user_id": [100, 101],
            "event_timestamp": pa.array([T0, T0], TS),
            "created": pa.array([T0, T0], TS),
            "clicks": pa.array([None, 1], pa.int64()),
            "spend": [float("nan"), -0.0],
        }
    )
    v_odd = stats.ingest("user_stats", odd)
    assert v_odd.version == 2
    assert stats.ingest("user_stats", odd).version == 2
    # a group without created_time behaves alike
    plain = pa.table(
        {"user_id": [1, 2], "event_timestamp": pa.array([T0, T0], TS), "score": [0.5, 0.25]}
    )
    p1 = stats.ingest("user_plain", plain)
    assert stats.ingest("user_plain", plain).version == p1.version


def test_reingest_records_an_unchanged_run(stats: FeatureStore) -> None:
    from featureledger.registry.sql import runs_table

    batch = stats_rows([(1, 0, 0, 1, 1.0)])
    stats.ingest("user_stats", batch)
    stats.ingest("user_stats", batch)
    with stats.registry.engine.connect() as conn:
        statuses = [
            r.status for r in conn.execute(runs_table.select().order_by(runs_table.c.started_at))
        ]
    assert statuses == ["succeeded", "unchanged"]


def test_append_refuses_stored_keys_and_writes_nothing(stats: FeatureStore) -> None:
    first = stats.ingest(
        "user_stats", stats_rows([(1, 0, 0, 1, 1.0), (2, 0, 0, 2, 2.0)]), mode="append"
    )
    assert first.operation == "append"
    before = stats.read("user_stats")
    with pytest.raises(KeyConflictError) as info:
        # one new row and one already stored: the whole batch is refused
        stats.ingest(
            "user_stats", stats_rows([(3, 0, 0, 3, 3.0), (2, 0, 9, 9, 9.0)]), mode="append"
        )
    err = info.value
    assert err.count == 1
    assert err.examples == [{"user_id": 2, "event_timestamp": T0}]
    assert "nothing was written" in str(err) and "upsert" in str(err)
    assert [v.version for v in stats.versions("user_stats")] == [0, 1]
    assert delta_version(stats, "user_stats") == 1
    assert stats.read("user_stats").equals(before)
    # appending rows at new times works
    v = stats.ingest("user_stats", stats_rows([(2, 1, 0, 3, 3.0)]), mode="append")
    assert (v.version, v.rows, v.operation) == (2, 3, "append")
    assert_hash_exact(stats, "user_stats")


def test_overwrite_replaces_everything(stats: FeatureStore) -> None:
    stats.ingest("user_stats", stats_rows([(i, 0, 0, i, 0.0) for i in range(10)]))
    new = stats_rows([(100, 5, 0, 1, 1.0), (101, 5, 0, 2, 2.0)])
    v = stats.ingest("user_stats", new, mode="overwrite")
    assert (v.version, v.operation, v.rows, v.rows_added, v.rows_removed) == (
        2,
        "overwrite",
        2,
        2,
        10,
    )
    assert as_set(stats.read("user_stats")) == as_set(new)
    assert v.content == content_hash(new)
    # the old version is still there
    assert stats.read("user_stats", version=1).num_rows == 10
    # overwriting with the same content again is a no-op
    assert stats.ingest("user_stats", new, mode="overwrite").version == 2
    # and in-batch duplicates are resolved before overwriting
    dup = stats_rows([(7, 0, 0, 1, 1.0), (7, 0, 1, 2, 2.0)])
    v3 = stats.ingest("user_stats", dup, mode="overwrite")
    assert stats.read("user_stats").column("clicks").to_pylist() == [2]
    assert v3.rows == 1
    assert_hash_exact(stats, "user_stats")


def test_unknown_mode_is_refused(stats: FeatureStore) -> None:
    with pytest.raises(DataError, match="mode must be one of"):
        stats.ingest("user_stats", stats_rows([(1, 0, 0, 1, 1.0)]), mode="merge")  # type: ignore[arg-type]
    assert [v.version for v in stats.versions("user_stats")] == [0]


def test_group_without_created_time_later_write_wins(stats: FeatureStore) -> None:
    def plain(scores: dict[int, float], hour: float = 0) -> pa.Table:
        return pa.table(
            {
                "user_id": list(scores),
                "event_timestamp": pa.array([at(hour)] * len(scores), TS),
                "score": list(scores.values()),
            }
        )

    stats.ingest("user_plain", plain({1: 1.0, 2: 2.0}))
    v = stats.ingest("user_plain", plain({2: 20.0, 3: 30.0}))
    assert (v.rows, v.rows_added, v.rows_removed) == (3, 2, 1)
    got = {r["user_id"]: r["score"] for r in stats.read("user_plain").to_pylist()}
    assert got == {1: 1.0, 2: 20.0, 3: 30.0}
    # within a batch the later row wins too
    batch = pa.table(
        {"user_id": [5, 5, 5], "event_timestamp": pa.array([T0] * 3, TS), "score": [1.0, 2.0, 3.0]}
    )
    stats.ingest("user_plain", batch)
    got = {r["user_id"]: r["score"] for r in stats.read("user_plain").to_pylist()}
    assert got[5] == 3.0
    assert_unique(stats, "user_plain")
    assert_hash_exact(stats, "user_plain")


def test_created_time_is_stamped_when_not_supplied(stats: FeatureStore) -> None:
    batch = stats_rows([(1, 0, 0, 1, 1.0)]).drop_columns(["created"])
    before = datetime.now(UTC)
    v = stats.ingest("user_stats", batch)
    stamped = stats.read("user_stats").column("created")[0].as_py()
    assert before - timedelta(seconds=1) <= stamped <= v.created_at + timedelta(seconds=1)
    # a later ingest without created_time is newer, so it replaces the row
    stats.ingest("user_stats", stats_rows([(1, 0, 0, 2, 2.0)]).drop_columns(["created"]))
    assert stats.read("user_stats").column("clicks").to_pylist() == [2]


def test_static_group_upserts_by_key(stats: FeatureStore) -> None:
    first = pa.table(
        {"user_id": [1, 2], "country": ["DE", "FR"], "age": pa.array([30, 40], pa.int32())}
    )
    stats.ingest("user_profile", first)
    v = stats.ingest(
        "user_profile",
        pa.table(
            {"user_id": [2, 3], "country": ["ES", "IT"], "age": pa.array([41, 50], pa.int32())}
        ),
    )
    assert (v.rows, v.rows_added, v.rows_removed) == (3, 2, 1)
    got = {r["user_id"]: (r["country"], r["age"]) for r in stats.read("user_profile").to_pylist()}
    assert got == {1: ("DE", 30), 2: ("ES", 41), 3: ("IT", 50)}
    assert stats.read("user_profile").column_names == ["user_id", "country", "age"]
    with pytest.raises(KeyConflictError):
        stats.ingest("user_profile", first, mode="append")
    assert_unique(stats, "user_profile")
    assert_hash_exact(stats, "user_profile")


def test_composite_keys(store: FeatureStore) -> None:
    pair = Entity("pair", join_keys=[Field("src", "string"), Field("dst", "int32")])
    merchant = Entity("merchant", join_keys=[Field("merchant_id", "string")])
    fg = FeatureGroup("pair_stats", [pair, merchant], features=["amount"])
    store.apply([fg])
    assert store.get_feature_group("pair_stats").primary_key == ("src", "dst", "merchant_id")

    def batch(rows: list[tuple[str, int, str, float]]) -> pa.Table:
        return pa.table(
            {
                "src": [r[0] for r in rows],
                "dst": pa.array([r[1] for r in rows], pa.int32()),
                "merchant_id": [r[2] for r in rows],
                "event_timestamp": pa.array([T0] * len(rows), TS),
                "amount": [r[3] for r in rows],
            }
        )

    store.ingest("pair_stats", batch([("a", 1, "m", 1.0), ("a", 2, "m", 2.0), ("b", 1, "m", 3.0)]))
    # only the full key (a, 1, m) matches; (a, 1, n) is a different row
    v = store.ingest("pair_stats", batch([("a", 1, "m", 10.0), ("a", 1, "n", 4.0)]))
    assert (v.rows, v.rows_added, v.rows_removed) == (4, 2, 1)
    got = {
        (r["src"], r["dst"], r["merchant_id"]): r["amount"]
        for r in store.read("pair_stats").to_pylist()
    }
    assert got == {("a", 1, "m"): 10.0, ("a", 2, "m"): 2.0, ("b", 1, "m"): 3.0, ("a", 1, "n"): 4.0}
    assert_unique(store, "pair_stats")
    assert_hash_exact(store, "pair_stats")


def test_incremental_hash_is_exact_over_many_commits(stats: FeatureStore) -> None:
    stats.ingest("user_stats", stats_rows([(i, i % 4, 0, i, i * 0.5) for i in range(300)]))
    for step in range(1, 5):
        # replace a slice (newer created), skip a slice (older created), add new rows
        rows = [(i, i % 4, step, i * step, -1.0) for i in range(step * 20, step * 20 + 40)]
        rows += [(i, i % 4, -1, 0, 0.0) for i in range(0, 10)]
        rows += [(1000 + step * 10 + j, 7, step, j, 9.0) for j in range(10)]
        stats.ingest("user_stats", stats_rows(rows))
    stats.ingest("user_stats", stats_rows([(5000, 9, 0, 1, 1.0)]), mode="append")
    last = stats.ingest("user_stats", stats_rows([(1, 1, 9, 0, 0.0)]))
    table = stats.read("user_stats")
    assert last.content == content_hash(table)
    assert last.rows == table.num_rows == 300 + 40 + 1
    assert_unique(stats, "user_stats")
    assert_hash_exact(stats, "user_stats")


def test_storage_is_unique_and_sorted_per_commit(stats: FeatureStore) -> None:
    stats.ingest(
        "user_stats",
        stats_rows([(3, 0, 0, 1, 1.0), (1, 1, 0, 1, 1.0), (1, 0, 0, 1, 1.0), (2, 0, 0, 1, 1.0)]),
    )
    root = delta_path(stats, "user_stats")
    (file,) = DeltaTable(str(root)).file_uris()
    stored = pq.read_table(file)
    keys = list(
        zip(
            stored.column("user_id").to_pylist(),
            stored.column("event_timestamp").to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)


# -- time travel --------------------------------------------------------------------------------


def test_time_travel_by_version_and_as_of(stats: FeatureStore) -> None:
    v1 = stats.ingest("user_stats", stats_rows([(1, 0, 0, 1, 1.0)]))
    v2 = stats.ingest("user_stats", stats_rows([(1, 0, 1, 2, 2.0), (2, 0, 0, 5, 5.0)]))
    assert stats.read("user_stats", version=1).column("clicks").to_pylist() == [1]
    assert stats.read("user_stats", version=0).num_rows == 0
    assert sorted(stats.read("user_stats").column("clicks").to_pylist()) == [2, 5]
    assert content_hash(stats.read("user_stats", version=1)) == v1.content

    assert stats.read("user_stats", as_of=v1.created_at).column("clicks").to_pylist() == [1]
    assert stats.read("user_stats", as_of=v2.created_at).num_rows == 2
    assert stats.read("user_stats", as_of=datetime.now(UTC) + timedelta(days=1)).num_rows == 2
    with pytest.raises(NotFoundError, match="no data version"):
        stats.read("user_stats", as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(NotFoundError, match="#9 does not exist"):
        stats.read("user_stats", version=9)
    with pytest.raises(DataError, match="time-zone aware"):
        stats.read("user_stats", as_of=datetime(2030, 1, 1))
    with pytest.raises(DataError, match="either version= or as_of="):
        stats.read("user_stats", version=1, as_of=v1.created_at)
    # column selection
    assert stats.read("user_stats", version=2, columns=["user_id"]).column_names == ["user_id"]


# -- input formats ------------------------------------------------------------------------------

FORMAT_ROWS = [(1, 0, 0, 3, 1.5), (2, 1, 0, 4, 2.5)]


def _pandas(tmp_path: Path):
    return stats_rows(FORMAT_ROWS).to_pandas()


def _polars(tmp_path: Path):
    import polars as pl

    return pl.from_arrow(stats_rows(FORMAT_ROWS))


def _polars_lazy(tmp_path: Path):
    return _polars(tmp_path).lazy()


def _arrow(tmp_path: Path):
    return stats_rows(FORMAT_ROWS)


def _record_batch(tmp_path: Path):
    return stats_rows(FORMAT_ROWS).to_batches()[0]


def _reader(tmp_path: Path):
    table = stats_rows(FORMAT_ROWS)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))


def _parquet(tmp_path: Path):
    path = tmp_path / "batch.parquet"
    pq.write_table(stats_rows(FORMAT_ROWS), path)
    return path


def _parquet_str(tmp_path: Path):
    return str(_parquet(tmp_path))


def _csv(tmp_path: Path):
    path = tmp_path / "batch.csv"
    lines = ["user_id,event_timestamp,created,clicks,spend"]
    for uid, eh, ch, clicks, spend in FORMAT_ROWS:
        lines.append(f"{uid},{at(eh).isoformat()},{at(ch).isoformat()},{clicks},{spend}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _dicts(tmp_path: Path):
    return stats_rows(FORMAT_ROWS).to_pylist()


def _columns(tmp_path: Path):
    return stats_rows(FORMAT_ROWS).to_pydict()


@pytest.mark.parametrize(
    "make",
    [
        _pandas,
        _polars,
        _polars_lazy,
        _arrow,
        _record_batch,
        _reader,
        _parquet,
        _parquet_str,
        _csv,
        _dicts,
        _columns,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_input_formats(stats: FeatureStore, tmp_path: Path, make) -> None:
    v = stats.ingest("user_stats", make(tmp_path))
    expected = stats_rows(FORMAT_ROWS)
    assert v.version == 1 and v.rows == 2
    assert v.content == content_hash(expected)
    assert stats.read("user_stats").equals(expected.cast(stats.read("user_stats").schema))


def test_csv_with_narrower_declared_types(store: FeatureStore, tmp_path: Path) -> None:
    fg = FeatureGroup(
        "narrow", USER, features=[Field("n", "int32"), Field("x", "float32"), Field("s", "string")]
    )
    store.apply([fg])
    path = tmp_path / "narrow.csv"
    path.write_text(
        "user_id,event_timestamp,n,x,s\n"
        "1,2024-01-01T00:00:00Z,7,0.5,007\n2,2024-01-01T00:00:00Z,8,1.25,x\n"
    )
    store.ingest("narrow", path)
    table = store.read("narrow")
    assert table.schema.field("n").type == pa.int32()
    assert table.column("s").to_pylist() == ["007", "x"]  # not inferred as an integer
    assert pc.sum(table.column("x")).as_py() == 1.75


def test_unreadable_inputs_are_refused(stats: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        stats.ingest("user_stats", tmp_path / "missing.parquet")
    other = tmp_path / "data.json"
    other.write_text("{}")
    with pytest.raises(DataError, match="neither Parquet"):
        stats.ingest("user_stats", other)
    with pytest.raises(DataError, match="cannot read data of type int"):
        stats.ingest("user_stats", 42)
    assert [v.version for v in stats.versions("user_stats")] == [0]


def test_ingest_by_group_object_and_unknown_group(stats: FeatureStore) -> None:
    v = stats.ingest(STATS, stats_rows([(1, 0, 0, 1, 1.0)]))
    assert v.group == "user_stats"
    with pytest.raises(NotFoundError, match="not registered"):
        stats.ingest("nope", stats_rows([(1, 0, 0, 1, 1.0)]))


def test_show_reports_a_data_version(stats: FeatureStore) -> None:
    v = stats.ingest("user_stats", stats_rows([(1, 0, 0, 1, 1.0)]))
    shown = stats.show("feature_group/user_stats@v1#1")
    assert shown["identity"] == str(v.identity)
    assert shown["content_hash"] == str(v.content)
    assert shown["rows"] == 1 and shown["run"] == v.run_id
    latest = stats.show("feature_group/user_stats")["latest_data_version"]
    assert latest["identity"] == "feature_group/user_stats@v1#1"


def test_categorical_and_large_string_columns(store: FeatureStore) -> None:
    import polars as pl

    key = Entity("city", join_keys=[Field("city_id", "string")])
    fg = FeatureGroup(
        "cities",
        key,
        features=[Field("country", "string"), Field("tags", "list<string>")],
        event_time=None,
    )
    store.apply([fg])
    frame = pl.DataFrame({"city_id": ["b", "p"], "country": ["DE", "FR"], "tags": [["x"], []]})
    first = store.ingest("cities", frame)
    # the same values as polars and pandas categoricals and pandas Arrow strings: nothing new
    same = [
        frame.with_columns(pl.col("country").cast(pl.Categorical)),
        frame.to_pandas().astype({"country": "category"}),
        frame.to_pandas().astype({"country": "string[pyarrow]", "city_id": "string[pyarrow]"}),
    ]
    for data in same:
        assert store.ingest("cities", data).version == first.version
    changed = frame.to_pandas().astype({"country": "category"})
    changed.loc[0, "country"] = "FR"
    v = store.ingest("cities", changed)
    assert v.version == first.version + 1
    assert store.read("cities").column("country").to_pylist() == ["FR", "FR"]
    assert store.read("cities").schema.field("country").type == pa.string()
