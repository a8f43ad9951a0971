"""The read path: request times, feature checks and assembling a read result (TTL, versions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from featureledger.definitions.types import TIMESTAMP
from featureledger.errors import DataError, NotFoundError, TimestampError
from featureledger.online.base import EVENT_TIME_COLUMN, SOURCE_VERSION_COLUMN
from featureledger.online.codec.buffers import Bytes, _bitmap, _u32
from featureledger.online.codec.rows import _TEMPLATE_ROWS, RowSchema
from featureledger.online.codec.tables import NO_TIME, TableLayout

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

_VERSION_ARRAYS: dict[tuple[str, int], pa.Array] = {}


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
