"""Property tests of the online stores, on both backends: exact round trips and latest-wins."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.online import EVENT_TIME_COLUMN, SOURCE_VERSION_COLUMN, OnlineStore
from featureledger.online.codec import (
    TableLayout,
    encode_key,
    encode_keys,
    key_columns_for_read,
    key_schema,
)

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2025, 3, 1, tzinfo=UTC)
_tables = itertools.count()

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("FL_HYP_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# scalar types: (Arrow type, storage type the values are drawn as, value strategy)
_INT = {
    pa.int8(): 8,
    pa.int16(): 16,
    pa.int32(): 32,
    pa.int64(): 64,
}
_UINT = {pa.uint8(): 8, pa.uint16(): 16, pa.uint32(): 32, pa.uint64(): 64}
SCALARS: dict[pa.DataType, tuple[pa.DataType, st.SearchStrategy[object]]] = {
    pa.bool_(): (pa.bool_(), st.booleans()),
    **{t: (t, st.integers(-(2 ** (b - 1)), 2 ** (b - 1) - 1)) for t, b in _INT.items()},
    **{t: (t, st.integers(0, 2**b - 1)) for t, b in _UINT.items()},
    # floats are drawn as bit patterns, so every NaN payload, -0.0 and subnormal occurs
    pa.float32(): (pa.uint32(), st.integers(0, 2**32 - 1)),
    pa.float64(): (pa.uint64(), st.integers(0, 2**64 - 1)),
    pa.string(): (pa.string(), st.text(max_size=6)),
    pa.binary(): (pa.binary(), st.binary(max_size=6)),
    pa.date32(): (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    TS: (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
}
FEATURE_TYPES = [*SCALARS, *(pa.list_(t) for t in SCALARS)]
KEY_TYPES = [pa.int8(), pa.int64(), pa.uint64(), pa.string(), pa.binary(), pa.date32(), TS]


def _array(dtype: pa.DataType, values: list[object]) -> pa.Array:
    """Values drawn in the storage type, viewed as ``dtype`` (bit-exact for floats)."""
    if pa.types.is_list(dtype):
        storage = pa.list_(SCALARS[dtype.value_type][0])
        return pa.array(values, storage).view(dtype)
    return pa.array(values, SCALARS[dtype][0]).view(dtype)


def _canonical(arr: pa.Array | pa.ChunkedArray) -> list[object]:
    """Comparable values: floats, dates and times as their integer bits."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    dtype = arr.type
    scalar = dtype.value_type if pa.types.is_list(dtype) else dtype
    storage = SCALARS[scalar][0]
    return arr.view(pa.list_(storage) if pa.types.is_list(dtype) else storage).to_pylist()


def _values(dtype: pa.DataType) -> st.SearchStrategy[object]:
    if pa.types.is_list(dtype):
        item = st.none() | SCALARS[dtype.value_type][1]
        return st.none() | st.lists(item, max_size=4)
    return st.none() | SCALARS[dtype][1]


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, list[str]]:
    key_types = draw(st.lists(st.sampled_from(KEY_TYPES), min_size=1, max_size=2))
    feature_types = draw(st.lists(st.sampled_from(FEATURE_TYPES), min_size=1, max_size=5))
    key_rows = draw(
        st.lists(
            st.tuples(*(SCALARS[t][1] for t in key_types)), min_size=1, max_size=20, unique=True
        )
    )
    n = len(key_rows)
    columns: dict[str, pa.Array] = {}
    for i, t in enumerate(key_types):
        columns[f"k{i}"] = _array(t, [r[i] for r in key_rows])
    times = draw(st.lists(st.integers(-(2**63) + 1, 2**63 - 1), min_size=n, max_size=n))
    columns["ts"] = pa.array(times, pa.int64()).view(TS)
    for i, t in enumerate(feature_types):
        columns[f"f{i}"] = _array(t, draw(st.lists(_values(t), min_size=n, max_size=n)))
    return pa.table(columns), [f"k{i}" for i in range(len(key_types))]


@SETTINGS
@given(drawn=tables(), data=st.data())
def test_any_rows_round_trip_exactly(
    online: OnlineStore, drawn: tuple[pa.Table, list[str]], data: st.DataObject
) -> None:
    table, key_columns = drawn
    table_key = f"h{next(_tables)}"
    written = online.write(
        table_key, table, key_columns, event_time_column="ts", source_version="v#1"
    )
    assert written == table.num_rows
    order = data.draw(st.permutations(range(table.num_rows)))
    request = table.select(key_columns).take(order)
    features = [c for c in table.column_names if c.startswith("f")]
    out = online.read(table_key, request, features, now=T0, ttl=None)
    want = table.take(order)
    for name in features:
        assert out.schema.field(name).type == table.schema.field(name).type
        assert _canonical(out.column(name)) == _canonical(want.column(name)), name
    assert out.column(EVENT_TIME_COLUMN).equals(want.column("ts"))


@SETTINGS
@given(drawn=tables())
def test_the_one_row_key_encoder_agrees_with_the_vectorized_one(
    drawn: tuple[pa.Table, list[str]],
) -> None:
    table, key_columns = drawn
    layout = TableLayout(key_schema(table.schema, key_columns))
    columns = key_columns_for_read(table.select(key_columns), layout.keys)
    many, valid = encode_keys(columns, layout.key_specs)
    assert valid is None
    for i, want in enumerate(many.to_pylist()):
        assert encode_key([c.slice(i, 1) for c in columns], layout.key_specs) == want


@SETTINGS
@given(
    writes=st.lists(
        st.lists(
            st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(-100, 100)),
            min_size=0,
            max_size=8,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_latest_event_time_wins_then_the_latest_write(
    online: OnlineStore, writes: list[list[tuple[int, int, int]]]
) -> None:
    """The store equals replaying every row in order with ``replace if t >= stored t``."""
    table_key = f"l{next(_tables)}"
    model: dict[int, tuple[int, int, str]] = {}
    for call, batch in enumerate(writes):
        version = f"v#{call}"
        for key, t, value in batch:
            if key not in model or t >= model[key][0]:
                model[key] = (t, value, version)
        table = pa.table(
            {
                "id": pa.array([b[0] for b in batch], pa.int64()),
                "ts": pa.array([T0 + timedelta(seconds=b[1]) for b in batch], TS),
                "x": pa.array([b[2] for b in batch], pa.int64()),
            }
        )
        online.write(table_key, table, ["id"], event_time_column="ts", source_version=version)
    ids = list(range(6))
    if not online.tables().count(table_key):
        return  # only empty writes: nothing to read
    out = online.read(table_key, pa.table({"id": ids}), ["x"], now=T0, ttl=None).to_pylist()
    for key, row in zip(ids, out, strict=True):
        if key in model:
            t, value, version = model[key]
            assert row == {
                "x": value,
                EVENT_TIME_COLUMN: T0 + timedelta(seconds=t),
                SOURCE_VERSION_COLUMN: version,
            }
        else:
            assert row["x"] is None and row[SOURCE_VERSION_COLUMN] is None


@SETTINGS
@given(
    ages=st.lists(st.integers(-5, 20), min_size=1, max_size=10),
    ttl=st.none() | st.integers(0, 15),
)
def test_a_value_is_served_exactly_when_now_minus_ttl_is_not_after_its_time(
    online: OnlineStore, ages: list[int], ttl: int | None
) -> None:
    table_key = f"t{next(_tables)}"
    unit = timedelta(microseconds=1)
    table = pa.table(
        {
            "id": pa.array(range(len(ages)), pa.int64()),
            "ts": pa.array([T0 - a * unit for a in ages], TS),
            "x": pa.array(range(len(ages)), pa.int64()),
        }
    )
    online.write(table_key, table, ["id"], event_time_column="ts", source_version="v")
    out = online.read(
        table_key,
        table.select(["id"]),
        ["x"],
        now=T0,
        ttl=None if ttl is None else ttl * unit,
    )
    # the offline rule: served iff now - ttl <= event time (the future is served online)
    want = [i if ttl is None or a <= ttl else None for i, a in enumerate(ages)]
    assert out.column("x").to_pylist() == want


def _same(a: object, b: object) -> bool:
    # repr tells NaN from NaN-free values and -0.0 from 0.0, which == does not
    return repr(a) == repr(b) if isinstance(a, float) or isinstance(b, float) else a == b


@SETTINGS
@given(drawn=tables(), data=st.data())
def test_the_one_entity_python_path_equals_the_arrow_path(
    online: OnlineStore, drawn: tuple[pa.Table, list[str]], data: st.DataObject
) -> None:
    """`read_one` gives what `read(...).to_pylist()` gives for the same key, or declines."""
    table, key_columns = drawn
    table_key = f"p{next(_tables)}"
    online.write(table_key, table, key_columns, event_time_column="ts", source_version="v")
    features = tuple(c for c in table.column_names if c.startswith("f"))
    now = T0 + timedelta(microseconds=data.draw(st.integers(-(2**40), 2**40)))
    ttl = None  # mostly none: the random event times are mostly far older than any TTL
    if data.draw(st.integers(0, 3)) == 0:
        ttl = timedelta(microseconds=data.draw(st.integers(0, 2**41)))
    keys = table.select(key_columns)
    online.read(table_key, keys.slice(0, 1), list(features), now=now, ttl=ttl)  # load layout
    plain_keys = all(
        pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_binary(t)
        for t in keys.schema.types
    )
    lists = any(pa.types.is_list(t) for t in table.schema.types)
    for i in range(keys.num_rows):
        try:
            values = list(keys.slice(i, 1).to_pylist()[0].values())
        except (OverflowError, ValueError):  # a date or time key outside Python's range
            continue
        got = online.read_one(table_key, values, features, now=now, ttl=ttl)  # type: ignore[attr-defined]
        served = online.read(table_key, keys.slice(i, 1), list(features), now=now, ttl=ttl)
        try:
            want = served.select(list(features)).to_pylist()[0]
        except (OverflowError, ValueError):  # a date or time outside Python's range
            assert got is None, "the Python path must leave values Python cannot hold to Arrow"
            continue
        if got is None:
            assert not plain_keys or lists, "declined a request it can answer"
            continue
        assert list(got[1]) == [served.schema.field(f).type for f in features]
        assert all(_same(v, want[f]) for f, v in zip(features, got[0], strict=True)), (
            got[0],
            want,
        )
    if keys.schema.types == [pa.string()] and "no such key" not in keys.column(0).to_pylist():
        missing = online.read_one(table_key, ["no such key"], features, now=now, ttl=ttl)  # type: ignore[attr-defined]
        assert missing is not None and missing[0] == (None,) * len(features)
