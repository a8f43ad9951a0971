"""Table layouts and the write path: batching, planning and encoding chunks of a write."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP, is_widening
from featureledger.errors import DataError, SchemaMismatchError, TimestampError
from featureledger.online.codec.buffers import Bytes
from featureledger.online.codec.keys import _key_specs, _KeySpec, encode_keys, key_schema
from featureledger.online.codec.rows import RowSchema

#: the stored event time of rows written without one (static data): sorts before any time
NO_TIME = -(2**63)
#: rows per encoded chunk: bounds memory and the size of one store statement
CHUNK_ROWS = 65_536


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
