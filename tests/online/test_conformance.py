"""The shared online store suite: each test runs against SQLite and a real Redis server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from featureledger.errors import (
    DataError,
    InvalidNameError,
    NotFoundError,
    SchemaMismatchError,
    TimestampError,
)
from featureledger.online import (
    EVENT_TIME_COLUMN,
    SOURCE_VERSION_COLUMN,
    OnlineStore,
    check_table_key,
)
from featureledger.online.codec import CHUNK_ROWS

from .conftest import round_trips

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
SECOND = timedelta(seconds=1)


def rows(ids, values, times, **extra) -> pa.Table:  # type: ignore[no-untyped-def]
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "ts": pa.array(times, TS),
            "score": pa.array(values, pa.float64()),
            **extra,
        }
    )


def keys(*ids: int | None) -> pa.Table:
    return pa.table({"user_id": pa.array(ids, pa.int64())})


def write(store: OnlineStore, table: pa.Table, version: str = "fg/u@v1#1", key: str = "u") -> int:
    return store.write(key, table, ["user_id"], event_time_column="ts", source_version=version)


def read(store: OnlineStore, k: pa.Table, names=("score",), *, now=T0, ttl=None, key="u"):  # type: ignore[no-untyped-def]
    return store.read(key, k, list(names), now=now, ttl=ttl)


def scores(result: pa.Table) -> list[float | None]:
    return result.column("score").to_pylist()


# -- round trips ---------------------------------------------------------------------------------
def test_write_then_read_returns_values_time_and_version(online: OnlineStore) -> None:
    assert write(online, rows([1, 2], [0.5, 1.5], [T0, T0 - SECOND])) == 2
    out = read(online, keys(2, 1), ["score"])
    assert out.column_names == ["score", EVENT_TIME_COLUMN, SOURCE_VERSION_COLUMN]
    assert out.schema.field(EVENT_TIME_COLUMN).type == TS
    assert out.to_pylist() == [
        {"score": 1.5, EVENT_TIME_COLUMN: T0 - SECOND, SOURCE_VERSION_COLUMN: "fg/u@v1#1"},
        {"score": 0.5, EVENT_TIME_COLUMN: T0, SOURCE_VERSION_COLUMN: "fg/u@v1#1"},
    ]


def test_every_feature_type_round_trips(online: OnlineStore) -> None:
    table = pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([T0] * 3, TS),
            "b": pa.array([True, False, None]),
            "i8": pa.array([-128, 127, None], pa.int8()),
            "u64": pa.array([2**64 - 1, 0, None], pa.uint64()),
            "i64": pa.array([-(2**63), 2**63 - 1, None], pa.int64()),
            "f32": pa.array([float("nan"), -0.0, None], pa.float32()),
            "f64": pa.array([float("-inf"), 5e-324, None], pa.float64()),
            "s": pa.array(["", "héllo\x00", None]),
            "bin": pa.array([b"", b"\x00\xff", None]),
            "d": pa.array([datetime(1900, 1, 1).date(), datetime(2999, 12, 31).date(), None]),
            "t": pa.array([datetime(1, 1, 1, tzinfo=UTC), T0, None], TS),
            "lf": pa.array([[1.5, None, float("nan")], [], None], pa.list_(pa.float32())),
            "ls": pa.array([["a", None, ""], [], None], pa.list_(pa.string())),
        }
    )
    write(online, table)
    names = [n for n in table.column_names if n not in ("user_id", "ts")]
    out = read(online, keys(1, 2, 3), names)
    for name in names:
        got, want = out.column(name), table.column(name)
        assert got.type == want.type, name
        if name == "f32":
            bits = got.combine_chunks().view(pa.int32()).to_pylist()
            assert bits == want.combine_chunks().view(pa.int32()).to_pylist()
        elif name == "lf":
            assert got.to_pylist()[1:] == [[], None]
            first = got.to_pylist()[0]
            assert first[:2] == [1.5, None] and np.isnan(first[2])
        else:
            assert got.to_pylist() == want.to_pylist(), name


def test_features_come_back_in_the_requested_order_and_subset(online: OnlineStore) -> None:
    write(online, rows([1], [0.5], [T0], a=pa.array(["x"]), b=pa.array([7], pa.int32())))
    out = read(online, keys(1), ["b", "score"])
    assert out.column_names[:2] == ["b", "score"]
    assert out.to_pylist()[0]["b"] == 7


# -- latest wins ---------------------------------------------------------------------------------
def test_an_older_event_time_never_replaces_a_newer_value(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]), "v#1")
    assert write(online, rows([1], [2.0], [T0 - SECOND]), "v#2") == 0
    out = read(online, keys(1)).to_pylist()[0]
    assert out["score"] == 1.0 and out[SOURCE_VERSION_COLUMN] == "v#1"


def test_a_newer_event_time_replaces_and_a_tie_goes_to_the_new_write(online: OnlineStore) -> None:
    write(online, rows([1, 2], [1.0, 1.0], [T0, T0]), "v#1")
    assert write(online, rows([1, 2], [2.0, 3.0], [T0 + SECOND, T0]), "v#2") == 2
    out = read(online, keys(1, 2))
    assert scores(out) == [2.0, 3.0]
    assert out.column(SOURCE_VERSION_COLUMN).to_pylist() == ["v#2", "v#2"]
    assert out.column(EVENT_TIME_COLUMN).to_pylist() == [T0 + SECOND, T0]


def test_within_one_write_the_latest_row_wins_and_on_ties_the_later_row(
    online: OnlineStore,
) -> None:
    table = rows([1, 1, 1, 2, 2], [1.0, 3.0, 2.0, 5.0, 6.0], [T0, T0 + SECOND, T0, T0, T0])
    assert write(online, table) == 2
    assert scores(read(online, keys(1, 2))) == [3.0, 6.0]


def test_static_rows_without_event_time_always_replace_and_never_expire(
    online: OnlineStore,
) -> None:
    table = pa.table({"user_id": pa.array([1], pa.int64()), "score": [1.0]})
    online.write("u", table, ["user_id"], event_time_column=None, source_version="s#1")
    table = pa.table({"user_id": pa.array([1], pa.int64()), "score": [2.0]})
    online.write("u", table, ["user_id"], event_time_column=None, source_version="s#2")
    out = read(online, keys(1), now=T0 + timedelta(days=10_000), ttl=SECOND).to_pylist()[0]
    assert out == {"score": 2.0, EVENT_TIME_COLUMN: None, SOURCE_VERSION_COLUMN: "s#2"}


# -- TTL -----------------------------------------------------------------------------------------
def test_ttl_boundary_is_closed_like_the_offline_join(online: OnlineStore) -> None:
    ttl = timedelta(hours=1)
    write(online, rows([1, 2], [1.0, 2.0], [T0 - ttl, T0 - ttl - timedelta(microseconds=1)]))
    out = read(online, keys(1, 2), now=T0, ttl=ttl)
    assert scores(out) == [1.0, None]
    # an expired row is not served at all: no event time, no version
    assert out.column(EVENT_TIME_COLUMN).to_pylist() == [T0 - ttl, None]
    assert out.column(SOURCE_VERSION_COLUMN).to_pylist() == ["fg/u@v1#1", None]
    assert scores(read(online, keys(1, 2), now=T0, ttl=None)) == [1.0, 2.0]


def test_values_from_the_future_of_now_are_served(online: OnlineStore) -> None:
    # online reads serve the latest value; `now` only bounds how old it may be
    write(online, rows([1], [1.0], [T0 + timedelta(days=1)]))
    assert scores(read(online, keys(1), now=T0, ttl=SECOND)) == [1.0]


def test_naive_now_is_refused(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]))
    with pytest.raises(TimestampError, match="time-zone aware"):
        read(online, keys(1), now=datetime(2025, 1, 1), ttl=SECOND)


# -- keys ----------------------------------------------------------------------------------------
def test_unknown_and_null_keys_read_as_null(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]))
    out = read(online, keys(7, None, 1))
    assert scores(out) == [None, None, 1.0]
    assert out.column(SOURCE_VERSION_COLUMN).null_count == 2
    assert read(online, keys(7)).to_pylist() == [
        {"score": None, EVENT_TIME_COLUMN: None, SOURCE_VERSION_COLUMN: None}
    ]
    assert read(online, keys(None)).num_rows == 1


def test_request_order_and_duplicates_are_kept(online: OnlineStore) -> None:
    write(online, rows(list(range(10)), [float(i) for i in range(10)], [T0] * 10))
    request = [9, 3, 3, 42, 0, 9]
    assert scores(read(online, keys(*request))) == [9.0, 3.0, 3.0, None, 0.0, 9.0]


def test_an_empty_request_gives_an_empty_result(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]))
    out = read(online, pa.table({"user_id": pa.array([], pa.int64())}))
    assert out.num_rows == 0 and out.column_names[0] == "score"


def test_request_keys_are_cast_to_the_stored_key_type(online: OnlineStore) -> None:
    write(online, rows([1, 2], [1.0, 2.0], [T0, T0]))
    assert scores(read(online, pa.table({"user_id": pa.array([2, 1], pa.int32())}))) == [2.0, 1.0]
    with pytest.raises(SchemaMismatchError, match="user_id"):
        read(online, pa.table({"user_id": ["a"]}))
    with pytest.raises(SchemaMismatchError, match="missing"):
        read(online, pa.table({"other": [1]}))


@pytest.mark.parametrize("order", [("card", "merchant"), ("merchant", "card")])
def test_composite_keys_of_int_and_string(online: OnlineStore, order: tuple[str, str]) -> None:
    table = pa.table(
        {
            "card": pa.array([1, 1, 2, -5], pa.int64()),
            "merchant": ["ab", "a", "ab", ""],
            "ts": pa.array([T0] * 4, TS),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    online.write("cm", table, list(order), event_time_column="ts", source_version="v#1")
    request = pa.table({"merchant": ["a", "ab", "ab", "b", ""], "card": [1, 2, 1, 1, -5]})
    out = online.read("cm", request, ["amount"], now=T0, ttl=None)
    assert out.column("amount").to_pylist() == [2.0, 3.0, 1.0, None, 4.0]


def test_string_keys_of_different_split_do_not_collide(online: OnlineStore) -> None:
    table = pa.table(
        {"a": ["ab", "a"], "b": ["c", "bc"], "ts": pa.array([T0, T0], TS), "x": [1, 2]}
    )
    assert online.write("s", table, ["a", "b"], event_time_column="ts", source_version="v") == 2
    out = online.read("s", pa.table({"a": ["a", "ab"], "b": ["bc", "c"]}), ["x"], now=T0, ttl=None)
    assert out.column("x").to_pylist() == [2, 1]


def test_an_empty_string_is_a_key_like_any_other(online: OnlineStore) -> None:
    table = pa.table({"name": [""], "ts": pa.array([T0], TS), "x": [1.0]})
    online.write("e", table, ["name"], event_time_column="ts", source_version="v")
    for request in ([""], ["", "a", ""]):
        out = online.read("e", pa.table({"name": request}), ["x"], now=T0, ttl=None)
        assert out.column("x").to_pylist() == [1.0 if r == "" else None for r in request]


def test_keys_of_other_types(online: OnlineStore) -> None:
    table = pa.table(
        {
            "k1": pa.array([True, False]),
            "k2": pa.array([T0, T0 - SECOND], TS),
            "k3": pa.array([b"\x00", b"\x00\x00"]),
            "ts": pa.array([T0, T0], TS),
            "x": [1.0, 2.0],
        }
    )
    online.write("o", table, ["k1", "k2", "k3"], event_time_column="ts", source_version="v")
    request = table.select(["k1", "k2", "k3"]).take([1, 0])
    assert online.read("o", request, ["x"], now=T0, ttl=None).column("x").to_pylist() == [2.0, 1.0]


def test_float_keys_are_refused(online: OnlineStore) -> None:
    table = pa.table({"k": [1.5], "ts": pa.array([T0], TS), "x": [1.0]})
    with pytest.raises(SchemaMismatchError, match="online keys must be"):
        online.write("f", table, ["k"], event_time_column="ts", source_version="v")


# -- batches -------------------------------------------------------------------------------------
def test_large_batch_in_one_call_and_one_round_trip(online: OnlineStore) -> None:
    n = 100_000
    ids = np.random.default_rng(7).permutation(n)
    table = rows(
        ids, ids.astype(np.float64) / 2, [T0] * n, name=pa.array([f"user-{i}" for i in ids])
    )
    assert write(online, table) == n
    request = keys(*range(n - 1, -1, -1))
    with round_trips(online) as trips:
        out = read(online, request, ["score", "name"])
    assert trips[0] == 1
    want = np.arange(n - 1, -1, -1)
    assert np.array_equal(out.column("score").to_numpy(), want / 2)
    assert out.column("name").to_pylist()[:2] == [f"user-{n - 1}", f"user-{n - 2}"]


def test_a_batch_read_is_one_round_trip(online: OnlineStore) -> None:
    write(online, rows(list(range(100)), [1.0] * 100, [T0] * 100))
    read(online, keys(1))  # warm the metadata cache
    for request in (keys(5), keys(*range(50, 150)), keys(1, None, 2)):
        with round_trips(online) as trips:
            read(online, request)
        assert trips[0] == 1


def test_streamed_batches_are_written_in_order(online: OnlineStore) -> None:
    n = CHUNK_ROWS + 10
    first = rows(np.arange(n), np.zeros(n), [T0] * n)
    second = rows(np.arange(n), np.ones(n), [T0] * n)
    stream = pa.RecordBatchReader.from_batches(
        first.schema, [*first.to_batches(), *second.to_batches()]
    )
    assert write(online, stream) == 2 * n  # the tie goes to the later batch
    assert scores(read(online, keys(0, n - 1))) == [1.0, 1.0]
    assert write(online, iter(first.to_batches(max_chunksize=1000))) == n
    assert scores(read(online, keys(0, n - 1))) == [0.0, 0.0]


def test_an_empty_write_creates_the_table(online: OnlineStore) -> None:
    assert write(online, rows([], [], [])) == 0
    assert online.tables() == ["u"]
    assert scores(read(online, keys(1))) == [None]


# -- versions, tables, schemas -------------------------------------------------------------------
def test_the_source_version_is_tracked_per_row(online: OnlineStore) -> None:
    write(online, rows([1, 2, 3], [1.0, 1.0, 1.0], [T0] * 3), "fg/u@v1#1")
    write(online, rows([2], [2.0], [T0 + SECOND]), "fg/u@v1#2")
    write(online, rows([3], [3.0], [T0 - SECOND]), "fg/u@v1#3")  # stale: ignored
    out = read(online, keys(1, 2, 3))
    assert out.column(SOURCE_VERSION_COLUMN).to_pylist() == ["fg/u@v1#1", "fg/u@v1#2", "fg/u@v1#1"]


def test_table_keys_are_isolated(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]), key="a")
    write(online, rows([1], [2.0], [T0]), key="b")
    assert scores(read(online, keys(1), key="a")) == [1.0]
    assert scores(read(online, keys(1), key="b")) == [2.0]
    online.delete_table("a")
    assert online.tables() == ["b"]
    assert scores(read(online, keys(1), key="b")) == [2.0]


def test_delete_table_removes_rows_and_schema(online: OnlineStore) -> None:
    write(online, rows([1, 2], [1.0, 2.0], [T0, T0]))
    online.delete_table("u")
    online.delete_table("u")  # deleting a missing table is no error
    assert online.tables() == []
    with pytest.raises(NotFoundError, match="materialize"):
        read(online, keys(1))
    # a new table under the same key starts empty, with a new schema
    table = pa.table({"user_id": pa.array([2]), "ts": pa.array([T0], TS), "other": ["x"]})
    online.write("u", table, ["user_id"], event_time_column="ts", source_version="v#9")
    assert read(online, keys(1, 2), ["other"]).column("other").to_pylist() == [None, "x"]
    with pytest.raises(NotFoundError, match="score"):
        read(online, keys(1))


def test_a_deletion_by_another_handle_is_noticed(make_store: Callable[[], OnlineStore]) -> None:
    a, b = make_store(), make_store()
    write(a, rows([1], [1.0], [T0]))
    assert scores(read(b, keys(1))) == [1.0]
    a.delete_table("u")
    with pytest.raises(NotFoundError):
        scores(read(b, keys(1)))


def test_added_and_widened_features_read_across_schemas(
    make_store: Callable[[], OnlineStore],
) -> None:
    writer, reader = make_store(), make_store()
    old = pa.table(
        {
            "user_id": pa.array([1, 2]),
            "ts": pa.array([T0, T0], TS),
            "n": pa.array([1, 2], pa.int32()),
        }
    )
    writer.write("u", old, ["user_id"], event_time_column="ts", source_version="v#1")
    assert reader.read("u", keys(1), ["n"], now=T0, ttl=None).column("n").type == pa.int32()
    new = pa.table(
        {
            "user_id": pa.array([2]),
            "ts": pa.array([T0 + SECOND], TS),
            "n": pa.array([2**40], pa.int64()),
            "added": ["new"],
        }
    )
    writer.write("u", new, ["user_id"], event_time_column="ts", source_version="v#2")
    out = reader.read("u", keys(1, 2, 3), ["n", "added"], now=T0, ttl=None)
    assert out.schema.field("n").type == pa.int64()
    assert out.to_pydict()["n"] == [1, 2**40, None]
    assert out.to_pydict()["added"] == [None, "new", None]


def test_key_columns_cannot_change(online: OnlineStore) -> None:
    write(online, rows([1], [1.0], [T0]))
    table = pa.table({"user_id": [1], "x": [2], "ts": pa.array([T0], TS), "score": [1.0]})
    with pytest.raises(SchemaMismatchError, match="key columns"):
        online.write("u", table, ["user_id", "x"], event_time_column="ts", source_version="v")


# -- refusals ------------------------------------------------------------------------------------
def test_bad_writes_are_refused_with_what_to_fix(online: OnlineStore) -> None:
    with pytest.raises(InvalidNameError):
        write(online, rows([1], [1.0], [T0]), key="bad name")
    with pytest.raises(DataError, match="NULL key"):
        write(online, rows([1, None], [1.0, 2.0], [T0, T0]))
    with pytest.raises(TimestampError, match="NULL"):
        write(online, rows([1, 2], [1.0, 2.0], [T0, None]))
    naive = pa.table({"user_id": [1], "ts": pa.array([datetime(2025, 1, 1)]), "score": [1.0]})
    with pytest.raises(TimestampError, match="time-zone aware"):
        write(online, naive)
    with pytest.raises(SchemaMismatchError, match="missing"):
        online.write(
            "u", rows([1], [1.0], [T0]), ["nope"], event_time_column="ts", source_version="v"
        )
    with pytest.raises(SchemaMismatchError, match="event time column"):
        online.write(
            "u", rows([1], [1.0], [T0]), ["user_id"], event_time_column="when", source_version="v"
        )
    odd = pa.table({"user_id": [1], "ts": pa.array([T0], TS), "m": pa.array([{"a": 1}])})
    with pytest.raises(SchemaMismatchError, match="not supported"):
        write(online, odd)


def test_reads_of_unknown_tables_or_features_say_what_exists(online: OnlineStore) -> None:
    with pytest.raises(NotFoundError, match="materialize it first"):
        read(online, keys(1), key="never")
    write(online, rows([1], [1.0], [T0]))
    with pytest.raises(NotFoundError, match=r"no feature\(s\) \['nope'\]"):
        read(online, keys(1), ["nope"])


def test_table_key_rules() -> None:
    for good in ("user_stats", "feature_group/user_stats@v2", "a.b-c"):
        assert check_table_key(good) == good
    for bad in ("", "1abc", "a:b", "a*b", "a b", "x" * 201, None):
        with pytest.raises(InvalidNameError):
            check_table_key(bad)


def test_concurrent_reads_beside_a_writer(make_store: Callable[[], OnlineStore]) -> None:
    store = make_store()
    write(store, rows(list(range(1000)), [0.0] * 1000, [T0] * 1000))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                got = scores(read(store, keys(*range(0, 1000, 7))))
                assert all(v is not None and v >= 0 for v in got)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 6):
        write(store, rows(list(range(1000)), [float(i)] * 1000, [T0 + i * SECOND] * 1000))
    for t in threads:
        t.join()
    assert errors == []
    assert scores(read(store, keys(999))) == [5.0]
