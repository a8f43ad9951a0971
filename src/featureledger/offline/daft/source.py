"""A Daft data source over a snapshot's Parquet files, read with pyarrow on the workers:
for files Daft's own reader refuses (see `_frames.scan`) and for object storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from daft import Schema
from daft.io.pushdowns import Pushdowns
from daft.io.source import DataSource, DataSourceTask
from daft.recordbatch import RecordBatch


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: missing columns NULL, stored types cast (widened)."""
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _s3(options: dict[str, str]) -> Any:
    import pyarrow.fs as pafs

    endpoint = options.get("AWS_ENDPOINT_URL")
    split = urlsplit(endpoint) if endpoint else None
    return pafs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        session_token=options.get("AWS_SESSION_TOKEN"),
        region=options.get("AWS_REGION"),
        endpoint_override=(split.netloc or split.path) if split else None,
        scheme=(split.scheme or "https") if split else "https",
    )


class FileTask(DataSourceTask):
    """Reads one Parquet file of a snapshot with pyarrow, on whichever worker runs it."""

    def __init__(self, path: str, schema: pa.Schema, s3: dict[str, str] | None) -> None:
        self.path, self.arrow_schema, self.s3 = path, schema, s3

    @property
    def schema(self) -> Schema:
        return Schema.from_pyarrow_schema(self.arrow_schema)

    async def read(self) -> AsyncIterator[RecordBatch]:
        if self.s3 is not None:
            fs, path = _s3(self.s3), urlsplit(self.path).netloc + urlsplit(self.path).path
        else:
            fs, path = None, self.path
        stored = pq.ParquetFile(path, filesystem=fs)
        present = set(stored.schema_arrow.names)
        # at least one column, so batches still carry their row counts
        wanted = [c for c in self.arrow_schema.names if c in present] or stored.schema_arrow.names[
            :1
        ]
        for batch in stored.iter_batches(batch_size=1 << 17, columns=wanted):
            yield RecordBatch.from_arrow_table(
                _conform(pa.Table.from_batches([batch]), self.arrow_schema)
            )


class SnapshotSource(DataSource):
    """A Daft data source over a snapshot's Parquet files: one task per file, each read
    with pyarrow on the worker that runs it (column selection pushed into the read)."""

    def __init__(self, files: list[str], schema: pa.Schema, s3: dict[str, str] | None) -> None:
        self.files, self.arrow_schema, self.s3 = files, schema, s3

    @property
    def name(self) -> str:
        return "featureledger-snapshot"

    @property
    def schema(self) -> Schema:
        return Schema.from_pyarrow_schema(self.arrow_schema)

    async def get_tasks(self, pushdowns: Pushdowns) -> AsyncIterator[DataSourceTask]:
        columns = pushdowns.columns
        schema = self.arrow_schema
        if columns:
            # in the source's column order: Daft binds the plan's columns by position
            wanted = set(columns)
            schema = pa.schema([f for f in schema if f.name in wanted])
        for path in self.files:
            yield FileTask(path, schema, self.s3)
