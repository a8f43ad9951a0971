"""Key and row encodings shared by the online stores, vectorized over Arrow batches.

Both encodings are documented in docs/serving.md ("Encoding"); in short:

**Key bytes** (one per entity; equal keys give equal bytes, and for integer, date and
timestamp keys byte order is value order, so a key-sorted source inserts in B-tree order).
Key columns are concatenated in declared order: bool as one byte; integers, dates and
timestamps big-endian, signed ones with the sign bit flipped; a string or binary as its
bytes, preceded by its length as a big-endian u32 unless it is the last key column.

**Row blob** ``flr1``: ``schema id (u32 LE) | validity bitmap (one bit per feature, LSB
first) | fixed section | variable section``. The fixed section holds every fixed-width
feature in schema order, little-endian (bool as one byte 0/1, date32 as i32 days, timestamp
as i64 microseconds; zeros under a null). The variable section holds, in schema order, a
cell per string/binary feature (``u32 LE length | bytes``) and per list feature
(``u32 LE count | one validity byte per element | u32 LE length per element if the element
type is string/binary | element bytes``). A null cell is an empty one. Floats are stored as
their IEEE-754 bits, so NaN payloads and -0.0 come back as written.

The schema id is 32 bits of BLAKE2b over the feature names and types, so a store can hold
rows written under several schemas of one table (a column added by a minor version) and
decode each with its own layout; a feature missing from a row's schema reads as NULL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP, is_widening, parse_type
from featureledger.errors import (
    DataError,
    DefinitionError,
    NotFoundError,
    SchemaMismatchError,
    TimestampError,
)
from featureledger.online.base import EVENT_TIME_COLUMN, SOURCE_VERSION_COLUMN

#: the stored event time of rows written without one (static data): sorts before any time
NO_TIME = -(2**63)
#: rows per encoded chunk: bounds memory and the size of one store statement
CHUNK_ROWS = 65_536

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_U8 = np.uint8
_EMPTY = np.empty(0, dtype=_U8)

# fixed-width types: (numpy dtype of the stored little-endian value, Arrow type to view as)
_FIXED: dict[pa.DataType, tuple[str, pa.DataType]] = {
    pa.bool_(): ("u1", pa.uint8()),
    pa.int8(): ("i1", pa.int8()),
    pa.int16(): ("<i2", pa.int16()),
    pa.int32(): ("<i4", pa.int32()),
    pa.int64(): ("<i8", pa.int64()),
    pa.uint8(): ("u1", pa.uint8()),
    pa.uint16(): ("<u2", pa.uint16()),
    pa.uint32(): ("<u4", pa.uint32()),
    pa.uint64(): ("<u8", pa.uint64()),
    pa.float32(): ("<f4", pa.float32()),
    pa.float64(): ("<f8", pa.float64()),
    pa.date32(): ("<i4", pa.int32()),
    TIMESTAMP: ("<i8", pa.int64()),
}
_SIGNED_KEYS = {pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.date32(), TIMESTAMP}


def _is_var(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_binary(dtype)


# -- byte runs ------------------------------------------------------------------------------------
class Bytes:
    """``n`` byte strings as one buffer: string i is ``data[offsets[i]:offsets[i + 1]]``.

    ``width`` is set when every string has that length (then ``offsets`` is implied).
    """

    __slots__ = ("_offsets", "data", "n", "width")

    def __init__(
        self,
        offsets: np.ndarray | None,
        data: np.ndarray,
        width: int | None = None,
        n: int | None = None,
    ) -> None:
        self._offsets = offsets
        self.data = data
        self.width = width
        self.n = len(offsets) - 1 if offsets is not None else int(n or 0)

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._offsets = np.arange(self.n + 1, dtype=np.int64) * (self.width or 0)
        return self._offsets

    @classmethod
    def fixed(cls, matrix: np.ndarray) -> Bytes:
        n, w = matrix.shape
        return cls(None, matrix.reshape(-1), w, n)

    @classmethod
    def from_list(cls, items: Sequence[bytes]) -> Bytes:
        if len(items) == 1:
            (item,) = items
            return cls(np.array([0, len(item)], dtype=np.int64), np.frombuffer(item, dtype=_U8))
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(items), dtype=_U8)
        return cls(offsets, data)

    def __len__(self) -> int:
        return self.n

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def contiguous(self) -> np.ndarray:
        """The bytes of all strings, back to back."""
        if self._offsets is None:
            return self.data[: self.n * (self.width or 0)]
        return self.data[self._offsets[0] : self._offsets[-1]]

    def take(self, indices: np.ndarray) -> Bytes:
        if self.width is not None:
            w = self.width
            body = self.contiguous().reshape(len(self), w)
            return (
                Bytes.fixed(body[indices]) if w else Bytes.fixed(np.empty((len(indices), 0), _U8))
            )
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Bytes(offsets, self.data[ranges(starts, lengths)])

    def to_arrow(self) -> pa.Array:
        body = self.contiguous()
        offsets = (self.offsets - self.offsets[0]).astype(np.int64)
        return pa.Array.from_buffers(
            pa.large_binary(), len(self), [None, pa.py_buffer(offsets), pa.py_buffer(body)]
        )

    def to_pylist(self) -> list[bytes]:
        return self.to_arrow().to_pylist()


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices of ``[starts[i], starts[i] + lengths[i])`` for every i, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)


def gather(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each start, as an (n, width) matrix."""
    return data[starts[:, None] + np.arange(width, dtype=np.int64)]


def _u32(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return gather(data, starts, 4).view("<u4").reshape(-1).astype(np.int64)


def concat_rows(pieces: Sequence[Bytes], n: int) -> Bytes:
    """Row-wise concatenation: string i of the result is the pieces' strings i, in order."""
    if len(pieces) == 1 and (pieces[0]._offsets is None or pieces[0]._offsets[0] == 0):
        return pieces[0]
    widths = [p.width for p in pieces]
    if all(w is not None for w in widths):
        total = sum(w for w in widths if w is not None)
        out = np.empty((n, total), dtype=_U8)
        at = 0
        for p in pieces:
            w = p.width or 0
            out[:, at : at + w] = p.contiguous().reshape(n, w)
            at += w
        return Bytes.fixed(out)
    lengths = np.zeros(n, dtype=np.int64)
    for p in pieces:
        lengths += p.width if p.width is not None else p.lengths
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = np.empty(int(offsets[-1]), dtype=_U8)
    pos = offsets[:-1].copy()
    for p in pieces:
        if p.width is not None:
            if p.width:
                joined[pos[:, None] + np.arange(p.width)] = p.contiguous().reshape(n, p.width)
            pos += p.width
        else:
            plen = p.lengths
            joined[ranges(pos, plen)] = p.contiguous()
            pos += plen
    return Bytes(offsets, joined)


# -- arrow <-> numpy -------------------------------------------------------------------------------
def _fill(arr: pa.Array, value: object) -> pa.Array:
    return pc.fill_null(arr, value) if arr.null_count else arr


def _fixed_values(arr: pa.Array) -> np.ndarray:
    """Values of a fixed-width array as numpy (little-endian), zero under nulls."""
    dtype, storage = _FIXED[arr.type]
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.uint8())
    elif storage != arr.type:
        arr = arr.view(storage)
    arr = _fill(arr, 0)
    return arr.to_numpy(zero_copy_only=True).astype(dtype, copy=False)


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def _var_body(arr: pa.Array) -> Bytes:
    """A string/binary array (nulls as empty) as its offsets and data, without copying."""
    arr = _fill(arr, b"" if pa.types.is_binary(arr.type) else "")
    if pa.types.is_string(arr.type):
        arr = arr.view(pa.binary())
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype="<i4", count=len(arr) + 1, offset=arr.offset * 4)
    data = _EMPTY if buffers[2] is None else np.frombuffer(buffers[2], dtype=_U8)
    return Bytes(offsets.astype(np.int64), data)


def _bitmap(mask: np.ndarray) -> pa.Buffer | None:
    if mask.all():
        return None
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


# -- keys ------------------------------------------------------------------------------------------
def key_schema(schema: pa.Schema, key_columns: Sequence[str]) -> pa.Schema:
    """The normalized schema of the key columns, refusing types that cannot be keys."""
    fields = []
    for name in key_columns:
        if name not in schema.names:
            raise SchemaMismatchError(
                "online write", [f"key column {name!r} is missing (columns: {schema.names})"]
            )
        dtype = _normalized(schema.field(name).type, f"key column {name!r}")
        if not (dtype in _FIXED and not pa.types.is_floating(dtype)) and not _is_var(dtype):
            raise SchemaMismatchError(
                "online write",
                [
                    f"key column {name!r} has type {dtype}; online keys must be integers, "
                    "strings, binary, bool, dates or timestamps"
                ],
            )
        fields.append(pa.field(name, dtype))
    if not fields:
        raise SchemaMismatchError("online write", ["no key columns given"])
    return pa.schema(fields)


@dataclass(frozen=True)
class _KeySpec:
    var: bool
    last: bool
    storage: pa.DataType | None = None  # reinterpret (dates, times) or cast (bool) to this
    width: int = 0
    signed: bool = False
    cast: bool = False
    flip: int = 0  # the sign bit, xored into signed values so byte order is value order
    last_index: int = 0


def _key_specs(schema: pa.Schema) -> tuple[_KeySpec, ...]:
    specs = []
    for i, f in enumerate(schema):
        last = i == len(schema) - 1
        if _is_var(f.type):
            specs.append(_KeySpec(True, last))
            continue
        dtype, storage = _FIXED[f.type]
        specs.append(
            _KeySpec(
                False,
                last,
                None if storage.equals(f.type) else storage,
                np.dtype(dtype).itemsize,
                f.type in _SIGNED_KEYS,
                pa.types.is_boolean(f.type),
                1 << (np.dtype(dtype).itemsize * 8 - 1),
            )
        )
    return tuple(specs)


def encode_key(columns: Sequence[pa.Array], specs: Sequence[_KeySpec]) -> bytes | None:
    """The key bytes of a one-row request (None if a key column is NULL): `encode_keys`
    for one row, in plain Python, which is several times faster at that size."""
    parts = []
    for arr, spec in zip(columns, specs, strict=True):
        if arr.null_count:
            return None
        if spec.var:
            value = arr[0].as_py()
            raw = value.encode() if isinstance(value, str) else bytes(value)
            if not spec.last:
                parts.append(len(raw).to_bytes(4, "big"))
            parts.append(raw)
            continue
        if spec.storage is not None and not spec.cast:
            arr = arr.view(spec.storage)
        number = int(arr[0].as_py())
        if spec.signed:
            number ^= spec.flip
        parts.append((number % (1 << (8 * spec.width))).to_bytes(spec.width, "big"))
    return b"".join(parts)


def encode_keys(
    columns: Sequence[pa.Array], specs: Sequence[_KeySpec]
) -> tuple[Bytes, np.ndarray | None]:
    """Key bytes of each row, and which rows have no NULL key column (None: all of them).

    ``specs`` come from `TableLayout.key_specs`. The bytes of a row with a NULL key column
    are meaningless.
    """
    n = len(columns[0]) if columns else 0
    valid = None
    pieces = []
    for arr, spec in zip(columns, specs, strict=True):
        if arr.null_count:
            valid = _valid(arr) if valid is None else valid & _valid(arr)
        if spec.var:
            body = _var_body(arr)
            if not spec.last:
                pieces.append(Bytes.fixed(body.lengths.astype(">u4").view(_U8).reshape(n, 4)))
            pieces.append(body)
            continue
        if spec.storage is not None:
            arr = pc.cast(arr, spec.storage) if spec.cast else arr.view(spec.storage)
        if arr.null_count:
            arr = pc.fill_null(arr, 0)
        unsigned = arr.to_numpy(zero_copy_only=True).view(f"u{spec.width}")
        if spec.signed:
            unsigned = unsigned ^ unsigned.dtype.type(spec.flip)
        be = unsigned.astype(f">u{spec.width}")
        pieces.append(Bytes.fixed(be.view(_U8).reshape(n, spec.width)))
    return concat_rows(pieces, n), valid


def key_columns_for_read(keys: pa.Table | pa.RecordBatch, schema: pa.Schema) -> list[pa.Array]:
    """The request's key columns cast to the stored key types (safe casts only)."""
    out = []
    for f in schema:
        try:
            col = keys.column(f.name)
        except KeyError:
            missing = [n for n in schema.names if n not in keys.column_names]
            raise SchemaMismatchError(
                "online read",
                [f"key column(s) {missing} missing from the request (it has {keys.column_names})"],
            ) from None
        if isinstance(col, pa.ChunkedArray):
            col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(
                    "online read",
                    [f"key column {f.name!r} is {col.type}, stored keys are {f.type}: {exc}"],
                ) from exc
        out.append(col)
    return out


# -- rows ------------------------------------------------------------------------------------------
def _normalized(dtype: pa.DataType, where: str) -> pa.DataType:
    try:
        return parse_type(dtype)
    except DefinitionError as exc:
        raise SchemaMismatchError("online write", [f"{where}: {exc}"]) from exc


def schema_fingerprint(schema: pa.Schema) -> int:
    text = "flr1\x1e" + "\x1e".join(f"{f.name}\x1f{f.type}" for f in schema)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


def schema_to_bytes(schema: pa.Schema) -> bytes:
    return bytes(schema.remove_metadata().serialize().to_pybytes())


def schema_from_bytes(data: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(data))


@dataclass(frozen=True)
class _Col:
    index: int
    name: str
    type: pa.DataType
    offset: int = 0  # fixed features: byte offset of the value in the blob
    width: int = 0


class RowSchema:
    """The ``flr1`` layout of one feature schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.id = schema_fingerprint(schema)
        self.bitmap_bytes = (len(schema) + 7) // 8
        at = 4 + self.bitmap_bytes
        self.fixed: list[_Col] = []
        self.var: list[_Col] = []
        for i, f in enumerate(schema):
            if f.type in _FIXED:
                width = np.dtype(_FIXED[f.type][0]).itemsize
                self.fixed.append(_Col(i, f.name, f.type, at, width))
                at += width
            else:
                self.var.append(_Col(i, f.name, f.type))
        self.fixed_end = at
        self.columns = {c.name: c for c in (*self.fixed, *self.var)}
        self._header = np.frombuffer(self.id.to_bytes(4, "little"), dtype=_U8)
        bits = np.ones(self.bitmap_bytes * 8, dtype=bool)
        bits[len(schema) :] = False
        self._all_valid = np.packbits(bits, bitorder="little")
        self._all_valid_bytes = self._all_valid.tobytes()
        self._plans: dict[
            tuple[str, ...], tuple[list[tuple[int, list[_Col], np.ndarray]], frozenset[str]]
        ] = {}
        self._templates: dict[tuple[tuple[str, ...], int], _BatchTemplate | None] = {}

    @classmethod
    def of(cls, schema: pa.Schema, exclude: Iterable[str]) -> RowSchema:
        skip = set(exclude)
        fields = [
            pa.field(f.name, _normalized(f.type, f"feature {f.name!r}"))
            for f in schema
            if f.name not in skip
        ]
        if not fields:
            raise SchemaMismatchError("online write", ["no feature columns besides the keys"])
        return cls(pa.schema(fields))

    def encode(self, batch: pa.RecordBatch) -> Bytes:
        """Row blobs of ``batch`` (whose columns include this schema's, already cast)."""
        n = batch.num_rows
        cols = [batch.column(f.name) for f in self.schema]
        fixed = np.empty((n, self.fixed_end), dtype=_U8)
        fixed[:, :4] = self._header
        if any(arr.null_count for arr in cols):
            valid = np.empty((n, len(cols)), dtype=bool)
            for i, arr in enumerate(cols):
                valid[:, i] = _valid(arr)
            fixed[:, 4 : 4 + self.bitmap_bytes] = np.packbits(valid, axis=1, bitorder="little")
        else:
            fixed[:, 4 : 4 + self.bitmap_bytes] = self._all_valid
        for c in self.fixed:
            values = _fixed_values(cols[c.index])
            fixed[:, c.offset : c.offset + c.width] = values.view(_U8).reshape(n, c.width)
        if not self.var:
            return Bytes.fixed(fixed)
        pieces = [Bytes.fixed(fixed)]
        for c in self.var:
            pieces.extend(_cell_pieces(cols[c.index], n))
        return concat_rows(pieces, n)

    # -- decoding ----------------------------------------------------------------------------------
    def decode(
        self, data: np.ndarray, starts: np.ndarray, names: Sequence[str]
    ) -> dict[str, pa.Array]:
        """Arrays of the features ``names`` held by this schema, one value per blob start."""
        n = len(starts)
        if (
            not self.var
            and len(data) == n * self.fixed_end
            and (n == 0 or (starts[0] == 0 and n == 1) or (np.diff(starts) == self.fixed_end).all())
        ):
            # every blob of an all-fixed schema has the same length: no gather needed
            section = data.reshape(n, self.fixed_end)
        else:
            section = gather(data, starts, self.fixed_end)
        bitmap = section[:, 4 : 4 + self.bitmap_bytes]
        valid = None
        if not (bitmap == self._all_valid).all():
            valid = np.unpackbits(bitmap, axis=1, count=len(self.schema), bitorder="little")
            valid = valid.astype(bool)
        out: dict[str, pa.Array] = {}
        fixed_groups, var_wanted = self._plan(tuple(names))
        for width, cols, index in fixed_groups:
            # one gather per value width; column j is then a contiguous slice of the block
            block = np.ascontiguousarray(section[:, index].transpose(1, 0, 2))
            buf = pa.py_buffer(block)
            for j, c in enumerate(cols):
                mask = None if valid is None else valid[:, c.index]
                if pa.types.is_boolean(c.type):
                    body = pa.py_buffer(np.packbits(block[j].reshape(-1), bitorder="little"))
                else:
                    body = buf.slice(j * n * width, n * width)
                out[c.name] = pa.Array.from_buffers(
                    c.type, n, [None if mask is None else _bitmap(mask), body]
                )
        if var_wanted:
            pos = starts + self.fixed_end
            all_valid = np.ones(n, dtype=bool)
            for c in self.var:
                mask = all_valid if valid is None else valid[:, c.index]
                arr, pos = _decode_cell(c.type, data, pos, mask)
                if c.name in var_wanted:
                    out[c.name] = arr
                    if len(out) == len(names):
                        break
        return out

    def small_batch(
        self, data: np.ndarray, n: int, names: tuple[str, ...], times: np.ndarray
    ) -> pa.RecordBatch | None:
        """The features and event times of ``n`` back-to-back blobs in one call, if possible.

        Possible for all-fixed schemas, requested features that are neither bool nor var,
        every value valid and up to `_TEMPLATE_ROWS` rows; None otherwise.
        """
        if self.var or n > _TEMPLATE_ROWS or len(data) != n * self.fixed_end:
            return None
        key = (names, n)
        if key in self._templates:
            template = self._templates[key]
        else:
            cols = [self.columns[name] for name in names]
            template = None
            if all(c in self.fixed and not pa.types.is_boolean(c.type) for c in cols):
                built = _BatchTemplate(cols, self.fixed_end, n)
                template = built if built.ok else None
            if len(self._templates) < _TEMPLATES:
                self._templates[key] = template
        if template is None:
            return None
        if n == 1:
            if data[4 : 4 + self.bitmap_bytes].tobytes() != self._all_valid_bytes:
                return None
        else:
            section = data.reshape(n, self.fixed_end)
            if not (section[:, 4 : 4 + self.bitmap_bytes] == self._all_valid).all():
                return None
        return template.fill(data, times)

    def _plan(
        self, names: tuple[str, ...]
    ) -> tuple[list[tuple[int, list[_Col], np.ndarray]], frozenset[str]]:
        plan = self._plans.get(names)
        if plan is None:
            wanted = set(names)
            by_width: dict[int, list[_Col]] = {}
            for c in self.fixed:
                if c.name in wanted:
                    by_width.setdefault(c.width, []).append(c)
            groups = [
                (w, cols, np.array([c.offset for c in cols])[:, None] + np.arange(w))
                for w, cols in by_width.items()
            ]
            plan = (groups, frozenset(c.name for c in self.var if c.name in wanted))
            if len(self._plans) < 256:
                self._plans[names] = plan
        return plan


def _cell_pieces(arr: pa.Array, n: int) -> list[Bytes]:
    if _is_var(arr.type):
        body = _var_body(arr)
        prefix = Bytes.fixed(body.lengths.astype("<u4").view(_U8).reshape(n, 4))
        return [prefix, body]
    # list<T>; elements of null lists are not stored
    counts = pc.list_value_length(arr).fill_null(0).to_numpy().astype(np.int64)
    child = arr.flatten()
    list_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=list_offsets[1:])
    pieces = [
        Bytes.fixed(counts.astype("<u4").view(_U8).reshape(n, 4)),
        Bytes(list_offsets, _valid(child).astype(_U8)),
    ]
    if _is_var(child.type):
        body = _var_body(child)
        lengths = body.lengths.astype("<u4").view(_U8)
        pieces.append(Bytes(list_offsets * 4, lengths))
        pieces.append(Bytes(body.offsets[list_offsets], body.data))
    else:
        values = _fixed_values(child)
        width = values.dtype.itemsize
        pieces.append(Bytes(list_offsets * width, values.view(_U8)))
    return pieces


def _fixed_array(dtype: pa.DataType, raw: np.ndarray, valid: np.ndarray, n: int) -> pa.Array:
    if pa.types.is_boolean(dtype):
        body = pa.py_buffer(np.packbits(raw.astype(bool), bitorder="little"))
    else:
        body = pa.py_buffer(raw)
    return pa.Array.from_buffers(dtype, n, [_bitmap(valid), body])


def _var_array(
    dtype: pa.DataType, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray
) -> pa.Array:
    n = len(starts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise DataError(f"online read: over 2 GiB of {dtype} values in one result; read fewer keys")
    body = data[ranges(starts, lengths)]
    return pa.Array.from_buffers(
        dtype,
        n,
        [_bitmap(valid), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(body)],
    )


def _decode_cell(
    dtype: pa.DataType, data: np.ndarray, pos: np.ndarray, valid: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """One variable cell per position; returns the array and the positions after the cells."""
    n = len(pos)
    if _is_var(dtype):
        lengths = _u32(data, pos)
        return _var_array(dtype, data, pos + 4, lengths, valid), pos + 4 + lengths
    item = dtype.value_type
    counts = _u32(data, pos)
    at = pos + 4
    child_valid = data[ranges(at, counts)].astype(bool)
    at = at + counts
    total = int(counts.sum())
    if _is_var(item):
        child_lengths = data[ranges(at, counts * 4)].view("<u4").astype(np.int64)
        at = at + counts * 4
        cum = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(child_lengths, out=cum[1:])
        bounds = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        per_list = cum[bounds[1:]] - cum[bounds[:-1]]
        child_starts = np.repeat(at, counts) + _offsets_within(child_lengths, counts)
        child = _var_array(item, data, child_starts, child_lengths, child_valid)
        end = at + per_list
    else:
        width = np.dtype(_FIXED[item][0]).itemsize
        raw = data[ranges(at, counts * width)]
        child = _fixed_array(item, raw, child_valid, total)
        end = at + counts * width
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    arr = pa.Array.from_buffers(
        dtype,
        n,
        [_bitmap(valid), pa.py_buffer(offsets.astype(np.int32))],
        children=[child],
    )
    return arr, end


def _offsets_within(lengths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For elements grouped in runs of ``counts``, each element's byte offset within its run."""
    if len(lengths) == 0:
        return np.empty(0, dtype=np.int64)
    cum = np.cumsum(lengths) - lengths
    run_start = np.repeat(np.cumsum(counts) - counts, counts)
    return cum - cum[run_start]


# -- small reads -----------------------------------------------------------------------------------
class _BatchTemplate:
    """A serialized Arrow record batch of ``n`` all-valid fixed-width rows, refilled per read.

    Building a batch column by column costs about a microsecond of Python per column; for the
    small, fully served reads of online serving, copying the values into a prepared IPC
    message and reading it back builds every column in one C++ call. The body layout is
    computed (buffers in column order, each padded to 8 bytes) and checked once against a
    round trip of random values; if the check fails the template is not used.
    """

    def __init__(self, cols: Sequence[_Col], row_width: int, n: int) -> None:
        self.n = n
        self.schema = pa.schema(
            [pa.field(c.name, c.type) for c in cols] + [pa.field(EVENT_TIME_COLUMN, TIMESTAMP)]
        )
        widths = [c.width for c in cols] + [8]
        padded = [(w * n + 7) // 8 * 8 for w in widths]
        rng = np.random.default_rng(n)
        sample = [rng.integers(0, 256, w * n, dtype=_U8) for w in widths]
        batch = pa.RecordBatch.from_arrays(
            [
                pa.Array.from_buffers(f.type, n, [None, pa.py_buffer(v)])
                for f, v in zip(self.schema, sample, strict=True)
            ],
            schema=self.schema,
        )
        self.message = bytes(batch.serialize().to_pybytes())
        at = len(self.message) - sum(padded)
        dst, src = [], []
        rows = np.arange(n, dtype=np.int64)[:, None] * row_width
        for c, start in zip(cols, np.cumsum([at, *padded[:-1]]), strict=False):
            dst.append(start + np.arange(n * c.width))
            src.append((rows + c.offset + np.arange(c.width)).reshape(-1))
        self.dst = np.concatenate(dst) if dst else np.empty(0, dtype=np.int64)
        self.src = np.concatenate(src) if src else np.empty(0, dtype=np.int64)
        self.time_at = int(at + sum(padded[:-1]))
        # without padding between columns the values land in one run: a plain slice copy
        self.run: tuple[int, int] | None = None
        if len(self.dst) and np.array_equal(self.dst, np.arange(at, at + len(self.dst))):
            self.run = (int(at), int(at + len(self.dst)))
        self.ok = self._check(sample, row_width)

    def _check(self, sample: list[np.ndarray], row_width: int) -> bool:
        section = np.zeros(self.n * row_width, dtype=_U8)
        section[self.src] = np.concatenate(sample[:-1]) if len(sample) > 1 else section[:0]
        try:
            batch = self.fill(section, sample[-1].view(np.int64))
        except (pa.ArrowException, ValueError):
            return False
        return all(
            np.array_equal(np.frombuffer(col.buffers()[1], _U8)[: len(v)], v)
            for col, v in zip(batch.columns, sample, strict=True)
        )

    def fill(self, section: np.ndarray, times: np.ndarray) -> pa.RecordBatch:
        buffer = bytearray(self.message)
        body = np.frombuffer(buffer, dtype=_U8)
        if self.run is not None:
            body[self.run[0] : self.run[1]] = section[self.src]
        else:
            body[self.dst] = section[self.src]
        body[self.time_at : self.time_at + 8 * self.n] = times.view(_U8)
        return pa.ipc.read_record_batch(pa.py_buffer(buffer), self.schema)


_VERSION_ARRAYS: dict[tuple[str, int], pa.Array] = {}

#: largest read served through a `_BatchTemplate`, and how many templates a schema keeps
_TEMPLATE_ROWS = 256
_TEMPLATES = 64


# -- tables ----------------------------------------------------------------------------------------
@dataclass
class TableLayout:
    """What a store knows about one table: key schema and every feature schema seen."""

    keys: pa.Schema
    schemas: dict[int, RowSchema] = field(default_factory=dict)
    types: dict[str, pa.DataType] = field(default_factory=dict)
    key_specs: tuple[_KeySpec, ...] = ()

    def __post_init__(self) -> None:
        self.key_specs = _key_specs(self.keys)

    def add(self, schema: pa.Schema) -> RowSchema:
        rs = RowSchema(schema)
        self.schemas[rs.id] = rs
        self._recompute()
        return rs

    def _recompute(self) -> None:
        # a feature read from rows of several schemas is served in the widest of its types
        types: dict[str, pa.DataType] = {}
        for rs in self.schemas.values():
            for f in rs.schema:
                old = types.get(f.name)
                if old is None or (is_widening(old, f.type) and not is_widening(f.type, old)):
                    types[f.name] = f.type
        self.types = types

    def check_keys(self, schema: pa.Schema, table_key: str) -> None:
        if schema.names != self.keys.names:
            raise SchemaMismatchError(
                f"online table {table_key!r}",
                [f"key columns {schema.names} differ from the stored ones {self.keys.names}"],
            )


@dataclass
class Chunk:
    """One encoded chunk of a write: unique keys in byte order with their times and rows."""

    keys: Bytes
    times: np.ndarray
    rows: Bytes

    def __len__(self) -> int:
        return len(self.times)


def batches(rows: object) -> Iterable[pa.RecordBatch]:
    """Record batches of at most `CHUNK_ROWS` rows from any accepted ``rows`` value."""
    if isinstance(rows, pa.Table):
        source: Iterable[pa.RecordBatch] = rows.to_batches(max_chunksize=CHUNK_ROWS)
    elif isinstance(rows, pa.RecordBatch):
        source = [rows]
    elif isinstance(rows, pa.RecordBatchReader | Iterable):
        source = rows
    else:
        raise DataError(
            f"online write: rows must be a pyarrow Table, RecordBatch(Reader) or an iterable "
            f"of RecordBatches, got {type(rows).__name__}"
        )
    for batch in source:
        if not isinstance(batch, pa.RecordBatch):
            raise DataError(
                f"online write: expected pyarrow RecordBatches, got {type(batch).__name__}"
            )
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            yield batch.slice(start, CHUNK_ROWS)


#: what a backend does when a write brings a new input schema: register the table and
#: feature schema, and return the stored key schema and the source version's id
Prepare = Callable[[pa.Schema, "RowSchema"], tuple[pa.Schema, int]]


def encoded_chunks(
    rows: object,
    key_columns: Sequence[str],
    event_time_column: str | None,
    prepare: Prepare,
) -> Iterator[tuple[Chunk, int]]:
    """Encoded chunks of ``rows`` with their source version id, in input order.

    From the second chunk on, the next chunk is encoded in a worker thread while the caller
    stores the current one (SQLite and the Redis socket release the GIL), so encoding costs
    little wall time; at most two encoded chunks exist at once. ``prepare`` runs in the
    caller's thread, for the first batch and whenever the input schema changes; an input
    with a schema but no rows is prepared too (that creates the table).
    """
    declared = getattr(rows, "schema", None)

    def planned() -> Iterator[tuple[pa.RecordBatch, pa.Schema, RowSchema, int]]:
        schema: pa.Schema | None = None
        plan: tuple[pa.Schema, RowSchema, int] | None = None
        for batch in batches(rows):
            if plan is None or not batch.schema.equals(schema):
                schema = batch.schema
                keys, row_schema = plan_write(schema, key_columns, event_time_column)
                stored_keys, version = prepare(keys, row_schema)
                plan = (stored_keys, row_schema, version)
            if batch.num_rows:
                yield batch, *plan
        if plan is None and declared is not None:
            prepare(*plan_write(declared, key_columns, event_time_column))

    pool: ThreadPoolExecutor | None = None
    pending: tuple[Future[Chunk], int] | None = None
    try:
        for batch, keys, row_schema, version in planned():
            if pending is None and pool is None:
                # the first chunk: no thread for writes that fit in one chunk
                first = encode_chunk(batch, keys, row_schema, event_time_column)
                pool = ThreadPoolExecutor(1, thread_name_prefix="featureledger-encode")
                done: Future[Chunk] = Future()
                done.set_result(first)
                pending = (done, version)
                continue
            assert pool is not None
            future = pool.submit(encode_chunk, batch, keys, row_schema, event_time_column)
            if pending is not None:
                yield pending[0].result(), pending[1]
            pending = (future, version)
        if pending is not None:
            yield pending[0].result(), pending[1]
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def plan_write(
    schema: pa.Schema, key_columns: Sequence[str], event_time_column: str | None
) -> tuple[pa.Schema, RowSchema]:
    """The key schema and the feature row schema of a write's input schema."""
    if event_time_column is not None and event_time_column not in schema.names:
        raise SchemaMismatchError(
            "online write",
            [f"event time column {event_time_column!r} is missing (columns: {schema.names})"],
        )
    keys = key_schema(schema, key_columns)
    exclude = [*key_columns, *([event_time_column] if event_time_column else [])]
    return keys, RowSchema.of(schema, exclude)


def encode_chunk(
    batch: pa.RecordBatch,
    keys: pa.Schema,
    rows: RowSchema,
    event_time_column: str | None,
) -> Chunk:
    """Cast, validate and encode one batch; keep the latest row per key (later row on ties)."""
    cast = {}
    for f in (*keys, *rows.schema):
        arr = batch.column(f.name)
        if arr.type != f.type:
            try:
                arr = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(
                    "online write", [f"column {f.name!r} is {arr.type}, expected {f.type}: {exc}"]
                ) from exc
        cast[f.name] = arr
    n = batch.num_rows
    key_bytes, key_valid = encode_keys([cast[f.name] for f in keys], _key_specs(keys))
    if key_valid is not None:
        raise DataError(
            f"online write: {int((~key_valid).sum())} row(s) have a NULL key column; "
            "every row needs its full key"
        )
    times = _event_times(batch, event_time_column, n)
    order = _latest_per_key(key_bytes, times)
    table = pa.RecordBatch.from_arrays([cast[f.name] for f in rows.schema], schema=rows.schema)
    if order is not None:
        key_bytes = key_bytes.take(order)
        times = times[order]
        table = table.take(pa.array(order))
    return Chunk(key_bytes, times, rows.encode(table))


def _event_times(batch: pa.RecordBatch, column: str | None, n: int) -> np.ndarray:
    if column is None:
        return np.full(n, NO_TIME, dtype=np.int64)
    arr = batch.column(column)
    if not pa.types.is_timestamp(arr.type) or arr.type.tz is None:
        raise TimestampError(
            f"online write: event time column {column!r} must be a time-zone aware timestamp, "
            f"got {arr.type}; convert it to UTC first"
        )
    if arr.null_count:
        raise TimestampError(
            f"online write: event time column {column!r} has {arr.null_count} NULL value(s); "
            "every row needs an event time"
        )
    try:
        arr = arr.cast(TIMESTAMP)
    except pa.ArrowInvalid as exc:
        raise TimestampError(
            f"online write: event time column {column!r} does not fit microseconds: {exc}"
        ) from exc
    times = arr.view(pa.int64()).to_numpy(zero_copy_only=True)
    if (times == NO_TIME).any():
        raise TimestampError(
            f"online write: event time column {column!r} holds the smallest timestamp "
            "(-2**63 microseconds), which the online store reserves for rows without a time"
        )
    return times


def _latest_per_key(keys: Bytes, times: np.ndarray) -> np.ndarray | None:
    """Row positions that keep one row per key in key-byte order, or None if already so."""
    n = len(times)
    if n < 2:
        return None
    arr = keys.to_arrow()
    if pc.all(pc.less(arr.slice(0, n - 1), arr.slice(1))).as_py():
        return None
    positions = np.arange(n, dtype=np.int64)
    table = pa.table({"k": arr, "t": times, "p": positions})
    order = pc.sort_indices(
        table, sort_keys=[("k", "ascending"), ("t", "ascending"), ("p", "ascending")]
    ).to_numpy()
    sorted_keys = arr.take(order)
    last = np.ones(n, dtype=bool)
    last[:-1] = pc.not_equal(sorted_keys.slice(0, n - 1), sorted_keys.slice(1)).to_numpy(
        zero_copy_only=False
    )
    return order[last]


# -- reads -----------------------------------------------------------------------------------------
def micros(value: datetime, what: str) -> int:
    if value.tzinfo is None:
        raise TimestampError(f"online read: {what} must be time-zone aware, got {value!r}")
    return (value - _EPOCH) // _US


def check_features(layout: TableLayout, names: Sequence[str], table_key: str) -> None:
    unknown = [n for n in names if n not in layout.types]
    if unknown:
        raise NotFoundError(
            f"online table {table_key!r} has no feature(s) {unknown}; it has "
            f"{sorted(layout.types)}. Materialize the features first or fix the names."
        )


def assemble(
    layout: TableLayout,
    n: int,
    positions: np.ndarray,
    times: np.ndarray,
    versions: np.ndarray,
    blobs: Bytes,
    feature_names: Sequence[str],
    *,
    now: datetime,
    ttl: timedelta | None,
    version_names: Callable[[Sequence[int]], Sequence[str]],
    reload: Callable[[], TableLayout],
) -> pa.Table:
    """The read result of ``n`` requested keys from the rows found for some of them.

    ``positions`` (ascending) are the request rows that found a stored row, with its event
    time, version id and blob. Rows older than ``now - ttl`` are dropped here, so TTL is
    decided in one place for every backend.
    """
    now_us = micros(now, "now")
    oldest = int(times.min()) if len(times) else 0
    if ttl is not None and len(times) and oldest < now_us - ttl // _US:
        keep = (times >= now_us - ttl // _US) | (times == NO_TIME)
        positions, times, versions = positions[keep], times[keep], versions[keep]
        blobs = blobs.take(np.flatnonzero(keep))
        oldest = int(times.min()) if len(times) else 0
    m = len(positions)
    if 0 < m == n and len(layout.schemas) == 1 and oldest != NO_TIME:
        # the common serving case: every key found, one schema, so maybe one-call decoding
        (rs,) = layout.schemas.values()
        names = tuple(feature_names)
        if rs.columns.keys() >= set(names):
            batch = rs.small_batch(blobs.contiguous(), n, names, times)
            if batch is not None:
                table = pa.Table.from_batches([batch])
                return table.append_column(
                    SOURCE_VERSION_COLUMN, _versions(versions, positions, n, version_names)
                )
    if m == 0:
        columns = [pa.nulls(n, layout.types[name]) for name in feature_names]
    else:
        starts = blobs.offsets[:-1]
        ids = _u32(blobs.data, starts) if m > 1 else blobs.data[starts[0] : starts[0] + 4]
        first = int(ids[0]) if m > 1 else int.from_bytes(ids.tobytes(), "little")
        if first in layout.schemas and (m == 1 or (ids == first).all()):
            groups: list[tuple[RowSchema, np.ndarray | None]] = [(layout.schemas[first], None)]
        else:
            unique = np.unique(ids)
            if any(int(u) not in layout.schemas for u in unique):
                layout = reload()
            groups = []
            for u in unique:
                found = layout.schemas.get(int(u))
                if found is None:
                    raise DataError(
                        f"online read: stored rows use schema {int(u):08x}, which is not "
                        "registered; the table was changed while being read, try again"
                    )
                groups.append((found, np.flatnonzero(ids == u)))
        columns = _scatter(layout, groups, blobs, starts, positions, n, feature_names)
    if m == n:
        # every key served: times and versions are already in request order
        event_times = times.astype(np.int64, copy=True)
        has_time = None if m == 0 or times.min() != NO_TIME else times != NO_TIME
    else:
        event_times = np.zeros(n, dtype=np.int64)
        event_times[positions] = times
        served = np.zeros(n, dtype=bool)
        served[positions] = True
        has_time = served & (event_times != NO_TIME)
    if has_time is not None:
        event_times[~has_time] = 0
    columns.append(
        pa.Array.from_buffers(
            TIMESTAMP,
            n,
            [None if has_time is None else _bitmap(has_time), pa.py_buffer(event_times)],
        )
    )
    columns.append(_versions(versions, positions, n, version_names))
    return pa.Table.from_arrays(
        columns, names=[*feature_names, EVENT_TIME_COLUMN, SOURCE_VERSION_COLUMN]
    )


def _scatter(
    layout: TableLayout,
    groups: list[tuple[RowSchema, np.ndarray | None]],
    blobs: Bytes,
    starts: np.ndarray,
    positions: np.ndarray,
    n: int,
    names: Sequence[str],
) -> list[pa.Array]:
    decoded: list[dict[str, pa.Array]] = []
    sizes = []
    for rs, rows in groups:
        s = starts if rows is None else starts[rows]
        decoded.append(rs.decode(blobs.data, s, names))
        sizes.append(len(s))
    m = len(positions)
    direct = len(groups) == 1 and m == n
    if not direct:
        order = np.arange(m) if groups[0][1] is None else np.concatenate([g[1] for g in groups])
        inverse = np.full(n, -1, dtype=np.int64)
        inverse[positions[order]] = np.arange(m)
        take = pa.array(inverse, mask=inverse < 0)
    out = []
    for name in names:
        dtype = layout.types[name]
        parts = []
        for found, size in zip(decoded, sizes, strict=True):
            arr = found.get(name)
            if arr is None:
                arr = pa.nulls(size, dtype)
            elif not arr.type.equals(dtype):
                arr = arr.cast(dtype)
            parts.append(arr)
        arr = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
        out.append(arr if direct else arr.take(take))
    return out


def _versions(
    ids: np.ndarray,
    positions: np.ndarray,
    n: int,
    version_names: Callable[[Sequence[int]], Sequence[str]],
) -> pa.Array:
    if len(ids) == 0:
        return pa.nulls(n, pa.string())
    first = int(ids[0])
    if len(ids) == n and (n == 1 or (ids == first).all()):
        # one version for every row: served from a small cache of immutable arrays
        name = version_names([first])[0]
        arr = _VERSION_ARRAYS.get((name, n))
        if arr is None:
            arr = pa.repeat(pa.scalar(name, pa.string()), n)
            if n <= _TEMPLATE_ROWS and len(_VERSION_ARRAYS) < 4096:
                _VERSION_ARRAYS[(name, n)] = arr
        return arr
    unique, inverse = np.unique(ids, return_inverse=True)
    names = pa.array(version_names([int(u) for u in unique]), pa.string())
    index = np.full(n, -1, dtype=np.int64)
    index[positions] = inverse
    return names.take(pa.array(index, mask=index < 0))
