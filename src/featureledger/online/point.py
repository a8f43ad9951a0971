"""One entity's row in plain Python: the serving hot path without Arrow.

`OnlineStore.read` answers any batch with Arrow arrays, which costs about 1 microsecond per
column to build and again to turn back into Python values. A request for one entity is the
common serving case, so the stores also offer ``read_one``: the key is encoded straight from
Python values and the ``flr1`` blob decoded with one ``struct`` call into the Python values
Arrow's ``to_pylist`` would give. Anything less common (list features, date or timestamp
keys, a row written under another schema, a value of an unexpected Python type) returns
None and the caller takes the Arrow path, which checks and explains. tests/online compare
both paths value for value.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from featureledger.definitions.types import TIMESTAMP
from featureledger.online.codec import NO_TIME, RowSchema, TableLayout, micros

# the tzinfo Arrow's to_pylist puts on UTC timestamps, so both paths give equal objects;
# asked on first use (`_converter`): asking Arrow imports pandas, which CLI start-up avoids
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_FOUND = False
_EPOCH_DAY = date(1970, 1, 1)
_US = timedelta(microseconds=1)

_INT_KEYS: dict[pa.DataType, tuple[int, bool]] = {
    pa.int8(): (1, True),
    pa.int16(): (2, True),
    pa.int32(): (4, True),
    pa.int64(): (8, True),
    pa.uint8(): (1, False),
    pa.uint16(): (2, False),
    pa.uint32(): (4, False),
    pa.uint64(): (8, False),
}
# struct codes of the fixed-width stored values (little-endian, as `RowSchema.encode` writes)
_CODES: dict[pa.DataType, str] = {
    pa.bool_(): "B",
    pa.int8(): "b",
    pa.int16(): "h",
    pa.int32(): "i",
    pa.int64(): "q",
    pa.uint8(): "B",
    pa.uint16(): "H",
    pa.uint32(): "I",
    pa.uint64(): "Q",
    pa.float32(): "f",
    pa.float64(): "d",
    pa.date32(): "i",
    TIMESTAMP: "q",
}


def _to_bool(v: int) -> bool:
    return v != 0


def _to_date(v: int) -> date:
    return _EPOCH_DAY + timedelta(days=v)


def _to_time(v: int) -> datetime:
    return _EPOCH + timedelta(microseconds=v)


def _converter(dtype: pa.DataType) -> Any:
    if pa.types.is_boolean(dtype):
        return _to_bool
    if pa.types.is_date32(dtype):
        return _to_date
    if dtype == TIMESTAMP:
        global _EPOCH, _EPOCH_FOUND
        if not _EPOCH_FOUND:
            _EPOCH = _EPOCH.replace(tzinfo=pa.array([0], TIMESTAMP).to_pylist()[0].tzinfo or UTC)
            _EPOCH_FOUND = True
        return _to_time
    return None


def encode_key_values(layout: TableLayout, values: Sequence[object]) -> bytes | None:
    """Key bytes from one row's Python key values, as `codec.encode_key` gives them.

    None when a value is not a plain ``int`` in range of an integer key or a ``str``/``bytes``
    of a string/binary key (the Arrow path then casts or refuses it with a clear error).
    """
    if len(values) != len(layout.key_specs):
        return None
    parts = []
    for value, f, spec in zip(values, layout.keys, layout.key_specs, strict=True):
        kind = type(value)
        if spec.var:
            if kind is str and pa.types.is_string(f.type):
                raw = value.encode()  # type: ignore[attr-defined]
            elif kind is bytes and pa.types.is_binary(f.type):
                raw = value
            else:
                return None
            if not spec.last:
                parts.append(len(raw).to_bytes(4, "big"))
            parts.append(raw)
            continue
        sized = _INT_KEYS.get(f.type)
        if kind is not int or sized is None:
            return None
        width, signed = sized
        bits = 8 * width
        number: int = value  # type: ignore[assignment]
        if signed:
            if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
                return None
            number ^= spec.flip
        elif not 0 <= number < 1 << bits:
            return None
        parts.append((number % (1 << bits)).to_bytes(width, "big"))
    return b"".join(parts)


def point_key(
    layout: TableLayout | None, key: Sequence[object], feature_names: Sequence[str]
) -> bytes | None:
    """The key bytes of a ``read_one`` request, or None when `read` must answer it: the
    table's layout is not loaded yet or lacks a feature, or a key value is unusual."""
    if layout is None or not layout.types.keys() >= set(feature_names):
        return None
    return encode_key_values(layout, key)


class _RowReader:
    """Decodes the requested features of blobs of one `RowSchema` into Python values."""

    __slots__ = ("fixed", "header", "plan", "types", "var")

    def __init__(self, rs: RowSchema, names: tuple[str, ...], types: dict[str, pa.DataType]):
        self.header = 4 + rs.bitmap_bytes
        self.fixed = struct.Struct("<" + "".join(_CODES[c.type] for c in rs.fixed))
        slot = {c.name: i for i, c in enumerate(rs.fixed)}
        self.var = [pa.types.is_string(c.type) for c in rs.var]
        var_slot = {c.name: i for i, c in enumerate(rs.var)}
        plan = []
        for name in names:
            c = rs.columns[name]
            if name in slot:
                plan.append((False, slot[name], c.index, _converter(c.type)))
            else:
                plan.append((True, var_slot[name], c.index, None))
        self.plan = plan
        self.types = tuple(types[n] for n in names)

    def decode(self, blob: bytes) -> tuple[Any, ...]:
        fixed = self.fixed.unpack_from(blob, self.header)
        cells: list[Any] = []
        if self.var:
            at = self.header + self.fixed.size
            for is_text in self.var:
                size = int.from_bytes(blob[at : at + 4], "little")
                raw = blob[at + 4 : at + 4 + size]
                cells.append(raw.decode() if is_text else bytes(raw))
                at += 4 + size
        out: list[Any] = []
        for is_var, slot, index, convert in self.plan:
            if not blob[4 + (index >> 3)] & (1 << (index & 7)):
                out.append(None)
            elif is_var:
                out.append(cells[slot])
            else:
                value = fixed[slot]
                out.append(value if convert is None else convert(value))
        return tuple(out)


def _reader(layout: TableLayout, rs: RowSchema, names: tuple[str, ...]) -> _RowReader | None:
    cache: dict[tuple[int, tuple[str, ...]], _RowReader | None] = layout.__dict__.setdefault(
        "_point_readers", {}
    )
    key = (rs.id, names)
    if key in cache:
        return cache[key]
    reader = None
    # not for list cells, nor for a feature served in a type wider than this row's
    plain = all(pa.types.is_string(c.type) or pa.types.is_binary(c.type) for c in rs.var)
    if plain and all(n in rs.columns and rs.columns[n].type == layout.types[n] for n in names):
        reader = _RowReader(rs, names, layout.types)
    if len(cache) < 256:
        cache[key] = reader
    return reader


def decode_one(
    layout: TableLayout,
    time: int | None,
    blob: bytes | None,
    names: tuple[str, ...],
    *,
    now: datetime,
    ttl: timedelta | None,
) -> tuple[tuple[Any, ...], tuple[pa.DataType, ...]] | None:
    """The values (and served types) of ``names`` in one stored row, TTL applied as
    `codec.assemble` applies it; None when the Arrow path must decide."""
    if blob is None or time is None:
        return (None,) * len(names), tuple(layout.types[n] for n in names)
    if ttl is not None and time != NO_TIME and time < micros(now, "now") - ttl // _US:
        return (None,) * len(names), tuple(layout.types[n] for n in names)
    rs = layout.schemas.get(int.from_bytes(blob[:4], "little"))
    if rs is None:
        return None
    reader = _reader(layout, rs, names)
    if reader is None:
        return None
    try:
        return reader.decode(blob), reader.types
    except OverflowError:  # a date or time beyond Python's: Arrow holds it, Python cannot
        return None
