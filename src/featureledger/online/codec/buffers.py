"""Byte runs (`Bytes`), the stored fixed-width types and the Arrow <-> numpy helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP, parse_type
from featureledger.errors import DefinitionError, SchemaMismatchError

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


def _normalized(dtype: pa.DataType, where: str) -> pa.DataType:
    try:
        return parse_type(dtype)
    except DefinitionError as exc:
        raise SchemaMismatchError("online write", [f"{where}: {exc}"]) from exc
