"""Properties of the ``flh1`` content hash documented in ``featureledger.hashing``."""

from __future__ import annotations

import math
import struct
from itertools import pairwise
from typing import Any
from unittest.mock import patch

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger import ContentHash, content_hash, hashing
from featureledger.hashing import ALGORITHM

TIMESTAMP = pa.timestamp("us", tz="UTC")
F32 = st.floats(width=32)  # includes -0.0, inf and NaN
F64 = pa.float64()

#: name -> (type, strategy for one non-null cell)
COLUMNS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "i": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "f": (pa.float64(), st.floats()),
    "s": (pa.string(), st.text(max_size=4)),
    "b": (pa.bool_(), st.booleans()),
    "t": (TIMESTAMP, st.integers(-(10**15), 10**15)),
    "d": (pa.date32(), st.integers(-30_000, 30_000)),
    "raw": (pa.binary(), st.binary(max_size=4)),
    "vec": (pa.list_(pa.float32()), st.lists(st.none() | F32, max_size=3)),
}
NAMES = list(COLUMNS)
cell = {name: st.none() | strat for name, (_, strat) in COLUMNS.items()}
rows_strategy = st.lists(st.fixed_dictionaries(cell), max_size=12)

HASH_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def make_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({n: pa.array([r[n] for r in rows], COLUMNS[n][0]) for n in NAMES})


def canon(value: Any) -> Any:
    """A cell as the hash sees it: -0.0 is 0.0 and every NaN is one NaN."""
    if value is None:
        return ("null",)
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else ("float", value + 0.0)
    if isinstance(value, list):
        return ("list", tuple(canon(v) for v in value))
    return (type(value).__name__, value)


# -- layout independence -----------------------------------------------------------------------
@HASH_SETTINGS
@given(rows_strategy, st.data())
def test_hash_ignores_row_order_and_batching(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    table = make_table(rows)
    h = content_hash(table)
    assert h.rows == len(rows)
    n = len(rows)
    order = data.draw(st.permutations(range(n)))
    assert content_hash(table.take(pa.array(order, pa.int64()))) == h
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0, *cuts, n]
    pieces = [table.slice(a, b - a) for a, b in pairwise(bounds)]
    chunked = pa.concat_tables(pieces)  # several chunks per column, some of them empty
    assert content_hash(chunked) == h
    assert content_hash(chunked.combine_chunks()) == h
    batches = [b for p in pieces for b in p.to_batches()]
    assert content_hash(iter(batches)) == h  # any iterable of batches, streamed
    assert content_hash(pa.Table.from_batches(batches, table.schema)) == h
    size = data.draw(st.integers(1, 5))
    assert content_hash(table.to_batches(max_chunksize=size)) == h
    if n:
        assert content_hash(table.to_batches()[0]) == h  # a single RecordBatch


@HASH_SETTINGS
@given(rows_strategy, st.integers(1, 4), st.integers(1, 3))
def test_hash_is_the_same_in_slices_and_on_threads(
    rows: list[dict[str, Any]], slice_rows: int, threads: int
) -> None:
    # content_hash cuts its input into slices and hashes them on threads (a pool only when
    # there are two slices or more); neither may show in the value
    table = make_table(rows)
    whole = content_hash(table)
    with (
        patch.object(hashing, "_SLICE_ROWS", slice_rows),
        patch.object(hashing, "_HASH_THREADS", threads),
    ):
        assert content_hash(table) == whole
        assert content_hash(iter(table.to_batches(max_chunksize=3))) == whole
        assert content_hash(table.combine_chunks().to_batches()) == whole
        assert sum(map(content_hash, table.to_batches(max_chunksize=1)), ContentHash()) == whole


#: most cells null: the shape of a point-in-time join's features when keys have few rows
sparse_cell = {
    name: st.none() | st.none() | st.none() | strat for name, (_, strat) in COLUMNS.items()
}


@HASH_SETTINGS
@given(st.lists(st.fixed_dictionaries(sparse_cell), max_size=12), st.integers(1, 5))
def test_mostly_null_columns_hash_as_when_every_cell_is_mixed(
    rows: list[dict[str, Any]], slice_rows: int
) -> None:
    # columns above _SPARSE_NULLS hash only their values and scatter them; the reference
    # mixes every cell and zeroes the nulls (the threshold set above any share)
    table = make_table(rows)
    with patch.object(hashing, "_SLICE_ROWS", slice_rows):
        sparse = content_hash(table)
        with patch.object(hashing, "_SPARSE_NULLS", 2.0):
            assert content_hash(table) == sparse
        with patch.object(hashing, "_SPARSE_NULLS", 0.0):  # every column with a null
            assert content_hash(table) == sparse


@HASH_SETTINGS
@given(rows_strategy, st.permutations(NAMES))
def test_hash_ignores_column_order(rows: list[dict[str, Any]], names: list[str]) -> None:
    table = make_table(rows)
    assert content_hash(table.select(names)) == content_hash(table)


# -- incremental arithmetic --------------------------------------------------------------------
@HASH_SETTINGS
@given(rows_strategy, rows_strategy, st.data())
def test_hash_adds_and_subtracts(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], data: st.DataObject
) -> None:
    a, b = make_table(rows_a), make_table(rows_b)
    union = pa.concat_tables([a, b])
    assert content_hash(union) == content_hash(a) + content_hash(b)
    assert content_hash(union) - content_hash(b) == content_hash(a)
    # a commit removing the rows picked by mask: parent - removed == what remains
    mask = pa.array(
        data.draw(st.lists(st.booleans(), min_size=len(rows_a), max_size=len(rows_a))), pa.bool_()
    )
    removed, kept = a.filter(mask), a.filter(pc.invert(mask))
    assert content_hash(a) - content_hash(removed) == content_hash(kept)
    assert content_hash(kept) + content_hash(removed) == content_hash(a)
    assert content_hash(a) - content_hash(a) == ContentHash()


def test_empty_table_hashes_to_zero() -> None:
    assert content_hash(make_table([])) == ContentHash()
    assert content_hash([]) == ContentHash()


# -- sensitivity to values ---------------------------------------------------------------------
@HASH_SETTINGS
@given(st.lists(st.fixed_dictionaries(cell), min_size=1, max_size=8), st.data())
def test_changing_one_cell_changes_the_hash_unless_canonically_equal(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    table = make_table(rows)
    i = data.draw(st.integers(0, len(rows) - 1), label="row")
    name = data.draw(st.sampled_from(NAMES), label="column")
    new = data.draw(cell[name], label="new value")
    changed = [dict(r) for r in rows]
    changed[i][name] = new
    same = canon(rows[i][name]) == canon(new)
    assert (content_hash(make_table(changed)) == content_hash(table)) == same


NON_NULL_EXAMPLES = {
    "i": [0, 1, -1],
    "f": [0.0, -0.0, math.nan, math.inf],
    "s": ["", "0"],
    "b": [False, True],
    "t": [0, 1],
    "d": [0],
    "raw": [b"", b"\x00"],
    "vec": [[], [None], [0.0]],
}


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, vs in NON_NULL_EXAMPLES.items() for v in vs]
)
def test_value_and_null_hash_differently(name: str, value: Any) -> None:
    # zero-like values must not collide with null, which contributes nothing
    base = {n: None for n in NAMES}
    with_value = make_table([{**base, name: value}])
    with_null = make_table([base])
    assert content_hash(with_value) != content_hash(with_null)


def _nan(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def test_negative_zero_and_nan_are_canonical() -> None:
    def h(values: list[float | None], dtype: pa.DataType = F64) -> ContentHash:
        return content_hash(pa.table({"x": pa.array(values, dtype)}))

    assert h([-0.0]) == h([0.0])
    assert h([-0.0], pa.float32()) == h([0.0])
    nans = [math.nan, -math.nan, _nan(0x7FF0000000000001), _nan(0xFFF8000000000123)]
    assert all(math.isnan(v) for v in nans)
    assert len({h([v]) for v in nans}) == 1
    assert h([math.nan], pa.float32()) == h([math.nan])
    assert h([math.nan]) not in (h([None]), h([math.inf]), h([0.0]))
    assert h([math.inf]) != h([-math.inf])
    vec = pa.list_(pa.float32())
    assert content_hash(pa.table({"v": pa.array([[-0.0, math.nan]], vec)})) == content_hash(
        pa.table({"v": pa.array([[0.0, -math.nan]], vec)})
    )


def test_list_cells() -> None:
    def h(*values: list[float | None] | None) -> ContentHash:
        return content_hash(pa.table({"v": pa.array(list(values), pa.list_(pa.float32()))}))

    distinct = [
        h(None),
        h([]),
        h([None]),
        h([None, None]),
        h([0.0]),
        h([1.0, 2.0]),
        h([2.0, 1.0]),
        h([1.0]),
        h([1.0, None]),
        h([None, 1.0]),
    ]
    assert len(set(distinct)) == len(distinct)  # empty != null; order and nulls count
    assert h([], None) == h(None, [])
    # slices keep offsets into the parent's values, and large lists hash like lists
    arr = pa.array([[1.0], [], None, [2.0, 3.0]], pa.list_(pa.float32()))
    assert content_hash(pa.table({"v": arr.slice(1)})) == h([], None, [2.0, 3.0])
    large = arr.cast(pa.large_list(pa.float32()))
    assert content_hash(pa.table({"v": large})) == content_hash(pa.table({"v": arr}))


def test_list_with_non_empty_null_slot() -> None:
    # a null list may still own values in the child array; they must not count
    values = pa.array([9.0, 9.0, 1.0], pa.float32())
    odd = pa.ListArray.from_arrays(
        pa.array([0, 2, 3], pa.int32()), values, mask=pa.array([True, False])
    )
    plain = pa.array([None, [1.0]], pa.list_(pa.float32()))
    assert content_hash(pa.table({"v": odd})) == content_hash(pa.table({"v": plain}))


# -- types that hold the same logical values ---------------------------------------------------
@HASH_SETTINGS
@given(rows_strategy)
def test_physical_variants_hash_alike(rows: list[dict[str, Any]]) -> None:
    table = make_table(rows)
    h = content_hash(table)

    def with_type(name: str, dtype: pa.DataType) -> pa.Table:
        idx = table.schema.get_field_index(name)
        return table.set_column(idx, name, table.column(name).cast(dtype))

    assert content_hash(with_type("s", pa.large_string())) == h
    assert content_hash(with_type("s", pa.string_view())) == h
    assert content_hash(with_type("s", pa.dictionary(pa.int32(), pa.string()))) == h
    assert content_hash(with_type("raw", pa.large_binary())) == h
    assert content_hash(with_type("raw", pa.binary_view())) == h
    assert content_hash(with_type("vec", pa.large_list(pa.float32()))) == h
    assert content_hash(with_type("vec", pa.list_(pa.float64()))) == h  # float32 -> float64


@HASH_SETTINGS
@given(st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=10))
def test_widening_integers_and_floats_keeps_the_hash(values: list[int | None]) -> None:
    narrow = pa.table({"x": pa.array(values, pa.int32())})
    assert content_hash(narrow) == content_hash(narrow.cast(pa.schema([("x", pa.int64())])))
    floats = pa.table({"y": pa.array([None if v is None else v / 8 for v in values], pa.float32())})
    assert content_hash(floats) == content_hash(floats.cast(pa.schema([("y", pa.float64())])))


@pytest.mark.parametrize(
    "dtype",
    [
        pa.float64(),
        pa.int64(),
        pa.string(),
        pa.large_string(),
        pa.bool_(),
        TIMESTAMP,
        pa.date32(),
        pa.binary(),
        pa.list_(pa.float32()),
        pa.null(),
    ],
    ids=str,
)
def test_adding_an_all_null_column_keeps_the_hash(dtype: pa.DataType) -> None:
    # the documented basis of additive schema changes keeping a version's content hash
    table = make_table(
        [
            {"i": 1, "f": 0.5, "s": "a", "b": True, "t": 3, "d": 4, "raw": b"x", "vec": [1.0]},
            {n: None for n in NAMES},
        ]
    )
    wider = table.append_column("added", pa.nulls(table.num_rows, dtype))
    assert content_hash(wider) == content_hash(table)
    assert content_hash(wider.slice(1)) == content_hash(table.slice(1))


def test_column_names_are_part_of_the_hash() -> None:
    t = pa.table({"a": [1], "b": [2]})
    assert content_hash(t) != content_hash(pa.table({"a": [2], "b": [1]}))  # values swapped
    assert content_hash(t) != content_hash(pa.table({"a": [1], "c": [2]}))  # column renamed
    assert content_hash(pa.table({"a": [1, 2]})) != content_hash(pa.table({"a": [1, 1]}))


def test_duplicate_rows_count() -> None:
    one = pa.table({"a": [1]})
    assert content_hash(pa.table({"a": [1, 1]})) == content_hash(one) + content_hash(one)
    assert content_hash(pa.table({"a": [1, 1]})) != content_hash(one)


# -- stored format -----------------------------------------------------------------------------
def test_content_hash_serialization_round_trips() -> None:
    h = content_hash(make_table([{n: None for n in NAMES} | {"i": 7}]))
    assert ContentHash.from_dict(h.to_dict()) == h
    assert all(isinstance(v, str) for k, v in h.to_dict().items() if k != "rows")
    text = str(h)
    assert text.startswith(f"{ALGORITHM}:") and len(text.split(":")[1]) == 32


def golden_table() -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "event_timestamp": pa.array(
                [1_700_000_000_000_000, 1_700_000_000_000_001, 0], TIMESTAMP
            ),
            "amount": pa.array([12.5, -0.0, None], pa.float64()),
            "ratio": pa.array([0.25, math.nan, 1.0], pa.float32()),
            "count": pa.array([None, 0, -7], pa.int32()),
            "flag": pa.array([True, False, None], pa.bool_()),
            "city": pa.array(["Oslo", "", None], pa.string()),
            "day": pa.array([19_000, None, 0], pa.date32()),
            "blob": pa.array([b"\x00\xff", None, b""], pa.binary()),
            "embedding": pa.array([[1.0, None], [], None], pa.list_(pa.float32())),
        }
    )


def test_golden_digest() -> None:
    # Guards the stability of the stored-hash format: every data version, training dataset and
    # run records these digests. If this value changes, every recorded hash breaks; change the
    # algorithm only under a new ALGORITHM name, never in place.
    h = content_hash(golden_table())
    assert h.to_dict() == {
        "rows": 3,
        "lane_a": "17818995277139051507",
        "lane_b": "16881405253506472052",
    }
    assert str(h) == "flh1:615818980495552403227211312eb3a1"
