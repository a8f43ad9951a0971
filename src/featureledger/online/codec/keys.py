"""Key bytes: the key schema, per-column key specs and the one-row and vectorized encoders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP
from featureledger.errors import SchemaMismatchError
from featureledger.online.codec.buffers import (
    _FIXED,
    _U8,
    Bytes,
    _is_var,
    _normalized,
    _valid,
    _var_body,
    concat_rows,
)

_SIGNED_KEYS = {pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.date32(), TIMESTAMP}


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
