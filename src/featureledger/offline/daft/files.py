"""A commit's data files written by Daft's workers (`FileWriter`): each worker writes its
share of the rows as Parquet files into the table's folder and sends back only their
metadata (path, size, rows, Delta statistics, SHA-256, ``flh1`` hash); the driver makes
the one Delta commit (`versioning.writer`).

Each file is sorted by the group's unique key (keys, then event time), as the project's
writer stores batches: the DuckDB engine's ``merge`` plan reads every file as a sorted run.
Statistics follow delta-rs' own (timestamps truncated to milliseconds, NaN left out), so
file pruning (`versioning.writer.candidate_files`) reads them as it reads delta-rs'.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from daft.io.sink import DataSink, WriteResult

from featureledger.offline.base import WrittenFile

if TYPE_CHECKING:
    import daft
    from daft.recordbatch import MicroPartition
    from daft.schema import Schema

#: rows per written file at most (a worker holds one file's rows and bytes at a time)
FILE_ROWS = 1 << 20

_FILE = "__fl_file"


def file_stats(table: pa.Table) -> str:
    """Delta's statistics JSON for a file holding ``table``, as delta-rs writes them."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field in table.schema:
        t = field.type
        if pa.types.is_nested(t):
            continue  # delta-rs keeps nested statistics per leaf; none is better than wrong
        column = table.column(field.name)
        nulls[field.name] = column.null_count
        if pa.types.is_floating(t):
            column = pc.filter(column, pc.invert(pc.is_nan(column)))
        elif not (
            pa.types.is_integer(t)
            or pa.types.is_boolean(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_date32(t)
            or pa.types.is_timestamp(t)
        ):
            continue
        bounds = pc.min_max(column).as_py()
        lo, hi = bounds["min"], bounds["max"]
        if lo is None or hi is None:
            continue
        if isinstance(lo, float) and (math.isinf(lo) or math.isinf(hi)):
            continue  # JSON has no infinity; a missing bound only keeps the file
        mins[field.name], maxs[field.name] = _stat(lo, t), _stat(hi, t)
    stats = {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs}
    return json.dumps({**stats, "nullCount": nulls})


def _stat(value: Any, t: pa.DataType) -> Any:
    if isinstance(value, datetime):
        # truncated to milliseconds, as delta-rs writes them (readers widen by 1 ms)
        if t.tz is not None:
            text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
            return text[:-3] + "Z"
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _s3_path(uri: str) -> str:
    parts = urlsplit(uri)
    return parts.netloc + parts.path


class FileSink(DataSink[WrittenFile]):
    """Daft's sink for one commit's files: `write` runs on the workers, `finalize` on the
    driver, where `written` then lists every file."""

    def __init__(
        self,
        table_uri: str,
        schema: pa.Schema,
        sort_by: Sequence[str],
        s3: dict[str, str] | None,
        file_rows: int = FILE_ROWS,
    ) -> None:
        self.table_uri = table_uri.rstrip("/")
        self.arrow_schema = schema
        self.sort_by = list(sort_by)
        self.s3 = s3
        self.file_rows = file_rows
        self.written: list[WrittenFile] = []

    def name(self) -> str:
        return "featureledger-delta-files"

    def schema(self) -> Schema:
        from daft.schema import Schema

        return Schema.from_pyarrow_schema(pa.schema([pa.field("files", pa.int64())]))

    def write(
        self, micropartitions: Iterator[MicroPartition]
    ) -> Iterator[WriteResult[WrittenFile]]:
        pending: list[pa.Table] = []
        held = 0
        for part in micropartitions:
            table = part.to_arrow()
            if table.num_rows == 0:
                continue
            pending.append(table.select(self.arrow_schema.names).cast(self.arrow_schema))
            held += table.num_rows
            if held >= self.file_rows:
                yield self._put(pa.concat_tables(pending))
                pending, held = [], 0
        if pending:
            yield self._put(pa.concat_tables(pending))

    def _put(self, table: pa.Table) -> WriteResult[WrittenFile]:
        from featureledger.hashing import content_hash

        table = table.sort_by([(k, "ascending") for k in self.sort_by]).combine_chunks()
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="snappy")
        data = buffer.getvalue()
        name = f"part-{uuid.uuid4().hex}-c000.snappy.parquet"
        uri = f"{self.table_uri}/{name}"
        if self.s3 is not None:
            from featureledger.offline.daft.source import s3_filesystem

            with s3_filesystem(self.s3).open_output_stream(_s3_path(uri)) as out:
                out.write(data)
        else:
            with open(uri, "wb") as fh:
                fh.write(data)
        done = WrittenFile(
            name,
            data.size,
            table.num_rows,
            file_stats(table),
            hashlib.sha256(memoryview(data)).hexdigest(),
            content_hash(table),
        )
        return WriteResult(result=done, bytes_written=data.size, rows_written=table.num_rows)

    def finalize(self, write_results: list[WriteResult[WrittenFile]]) -> MicroPartition:
        from daft.recordbatch import MicroPartition

        self.written = [r.result for r in write_results]
        return MicroPartition.from_pydict({"files": [len(self.written)]})


def write(frame: daft.DataFrame, sink: FileSink) -> list[WrittenFile]:
    """Run ``frame`` into ``sink`` on the workers; the files' metadata, by path."""
    frame.write_sink(sink)
    return sorted(sink.written, key=lambda f: f.path)


def probe(keys: pa.Table, schema: pa.Schema) -> tuple[daft.DataFrame, list[Any]]:
    """``keys`` (cast to ``schema``'s types) as a frame with renamed columns to join on."""
    import daft

    typed = keys.cast(pa.schema([schema.field(c) for c in keys.column_names]))
    names: list[Any] = [f"__fl_b{j}" for j in range(keys.num_columns)]
    return daft.from_arrow(typed.rename_columns(names)), names


def holding(
    files: Sequence[str], schema: pa.Schema, keys: pa.Table, s3: dict[str, str] | None
) -> list[str]:
    """Those of ``files`` holding a row with key values among ``keys``' rows."""
    from daft import col

    from featureledger.offline.daft.source import SnapshotSource

    if not files or keys.num_rows == 0:
        return []
    names: list[Any] = list(keys.column_names)
    stored = SnapshotSource(list(files), schema, s3, path_column=_FILE).read()
    right, right_on = probe(keys, schema)
    found = stored.select(*[col(c) for c in names], col(_FILE)).join(
        right, left_on=names, right_on=right_on, how="semi"
    )
    paths = set(found.select(col(_FILE)).distinct().to_pydict()[_FILE])
    return [f for f in files if f in paths]
