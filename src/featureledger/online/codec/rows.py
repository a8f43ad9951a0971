"""Row blobs (``flr1``): `RowSchema` encoding and decoding, cells and small-read templates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP
from featureledger.errors import DataError, SchemaMismatchError
from featureledger.online.base import EVENT_TIME_COLUMN
from featureledger.online.codec.buffers import (
    _FIXED,
    _U8,
    Bytes,
    _bitmap,
    _fixed_values,
    _is_var,
    _normalized,
    _u32,
    _valid,
    _var_body,
    concat_rows,
    gather,
    ranges,
)


# -- rows ------------------------------------------------------------------------------------------
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


#: largest read served through a `_BatchTemplate`, and how many templates a schema keeps
_TEMPLATE_ROWS = 256
_TEMPLATES = 64
