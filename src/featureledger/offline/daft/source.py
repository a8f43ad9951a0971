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


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: missing columns NULL, stored types cast (widened)."""
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def s3_filesystem(options: dict[str, str]) -> Any:
    """pyarrow's S3 filesystem for storage ``options`` (credentials absent: the
    environment's, i.e. a Ray worker's own)."""
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

    def __init__(
        self,
        path: str,
        schema: pa.Schema,
        s3: dict[str, str] | None,
        path_column: str | None = None,
    ) -> None:
        self.path, self.arrow_schema, self.s3 = path, schema, s3
        self.path_column = path_column

    @property
    def schema(self) -> Schema:
        return Schema.from_pyarrow_schema(_with_path(self.arrow_schema, self.path_column))

    async def read(self) -> AsyncIterator[RecordBatch]:
        if self.s3 is not None:
            fs, path = s3_filesystem(self.s3), urlsplit(self.path).netloc + urlsplit(self.path).path
        else:
            fs, path = None, self.path
        stored = pq.ParquetFile(path, filesystem=fs)
        present = set(stored.schema_arrow.names)
        # at least one column, so batches still carry their row counts
        wanted = [c for c in self.arrow_schema.names if c in present] or stored.schema_arrow.names[
            :1
        ]
        for batch in stored.iter_batches(batch_size=1 << 17, columns=wanted):
            table = conform(pa.Table.from_batches([batch]), self.arrow_schema)
            if self.path_column is not None:
                table = table.append_column(
                    self.path_column, pa.array([self.path] * table.num_rows, pa.string())
                )
            yield RecordBatch.from_arrow_table(table)


class SnapshotSource(DataSource):
    """A Daft data source over a snapshot's Parquet files: one task per file, each read
    with pyarrow on the worker that runs it (column selection pushed into the read); with
    ``path_column``, each row also carries the URI of its file in that column."""

    def __init__(
        self,
        files: list[str],
        schema: pa.Schema,
        s3: dict[str, str] | None,
        path_column: str | None = None,
    ) -> None:
        self.files, self.arrow_schema, self.s3 = files, schema, s3
        self.path_column = path_column

    @property
    def name(self) -> str:
        return "featureledger-snapshot"

    @property
    def schema(self) -> Schema:
        return Schema.from_pyarrow_schema(_with_path(self.arrow_schema, self.path_column))

    async def get_tasks(self, pushdowns: Pushdowns) -> AsyncIterator[DataSourceTask]:
        columns = pushdowns.columns
        schema = self.arrow_schema
        path_column = self.path_column
        if columns:
            # in the source's column order: Daft binds the plan's columns by position
            wanted = set(columns)
            schema = pa.schema([f for f in schema if f.name in wanted])
            if path_column not in wanted:
                path_column = None
        for path in self.files:
            yield FileTask(path, schema, self.s3, path_column)


def _with_path(schema: pa.Schema, path_column: str | None) -> pa.Schema:
    return schema if path_column is None else schema.append(pa.field(path_column, pa.string()))
