"""`DaftEngine`: the `OfflineEngine` port on Daft, on its native runner or on Ray.

What runs where: every operation over stored snapshots (point-in-time joins, the writer's
collision lookup, pipeline windows, materialization reads, diffs) is a Daft query, so on
Ray it is planned on the driver and executed by the cluster's workers, each reading its
share of the Parquet files itself. Operations whose input is already an Arrow table in the
caller's memory (a pipeline's SQL transform, statistics and contract scans, skew pairs) run
on the driver through the embedded modules the DuckDB engine uses (`offline/duckdb/`):
their SQL (a `SQLTransform`, a contract `Check`) is written by users in DuckDB's dialect,
and one dialect for every engine keeps a pipeline's meaning independent of where it runs.
Commits stay with the project's Delta writer (`versioning/writer.py`), so versions, commit
metadata and content hashes are the same whichever engine computed the rows; the data files
of an ingest are written by the workers (`FileWriter`, `files.py`) and the driver commits
their metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureledger.definitions.contract import Rule
from featureledger.offline.base import (
    ROW_COLUMN,
    ContractScan,
    PitSource,
    StatsColumn,
    StatsScan,
    WrittenFile,
)
from featureledger.offline.daft import contracts as _contracts
from featureledger.offline.daft import diff as _diff
from featureledger.offline.daft import files as _files
from featureledger.offline.daft import pit
from featureledger.offline.daft import sql as _sql
from featureledger.offline.daft import stats as _stats
from featureledger.offline.daft._frames import (
    dataset_files,
    io_config,
    positions,
    remote,
    scan,
    shipped_options,
    to_arrow,
)
from featureledger.offline.daft.runner import use_runner

if TYPE_CHECKING:
    import daft
    import pyarrow.dataset as pads

    from featureledger.config import RepoConfig
    from featureledger.hashing import ContentHash
    from featureledger.storage import Storage

_POS = "__fl_pos"


class DaftEngine:
    """The `OfflineEngine` port in Daft; ``ray_address`` None runs Daft's native runner,
    "local" a local Ray cluster, anything else names an existing Ray cluster."""

    name = "daft"

    def __init__(self, *, ray_address: str | None = None, storage: Storage | None = None) -> None:
        self.storage = storage
        self.ray_address = ray_address
        #: "native" or "ray": Daft's runner is process-wide and set once (`runner.py`)
        self.runner = use_runner(ray_address)
        # on Ray, workers read object storage with their own credentials (docs/scale-out.md)
        self._ship_secrets = self.runner == "native"
        self._io = io_config(storage, self._ship_secrets)

    @classmethod
    def from_config(
        cls, config: RepoConfig, repo: Path, storage: Storage | None = None
    ) -> DaftEngine:
        """The engine ``config.offline`` describes (``ray_address``)."""
        return cls(ray_address=config.offline.ray_address, storage=storage)

    def close(self) -> None:
        """Nothing to release: Daft's runner (and a Ray cluster it joined) lives as long as
        the process, because Daft cannot set another one."""

    def scan(self, files: Sequence[str], schema: pa.Schema) -> daft.DataFrame:
        return scan(files, schema, self.storage, self._io, self._ship_secrets)

    def frame(self, data: pa.Table | pads.Dataset) -> daft.DataFrame:
        """``data`` as a Daft dataframe: a table is handed to the runner (on Ray, put in
        the object store); a dataset of Parquet files on local disk or S3 is scanned by the
        workers, any other dataset is read here."""
        import daft

        if isinstance(data, pa.Table):
            return daft.from_arrow(data)
        files = dataset_files(data)
        if files is not None:
            return self.scan(files, data.schema)
        return daft.from_arrow(data.to_table())

    # -- the writer's helpers ----------------------------------------------------------------------
    def dedupe_sorted(
        self, batch: pa.Table, unique_key: Sequence[str], created_time: str | None
    ) -> tuple[pa.Table, int]:
        """One row per ``unique_key`` (greatest created time, then the later row), sorted."""
        import daft
        from daft import col, lit
        from daft.functions import row_number

        keys: list[Any] = list(unique_key)
        frame = daft.from_arrow(batch.append_column(_POS, positions(batch.num_rows)))
        distinct = frame.select(*keys).distinct().count_rows()
        dupes = batch.num_rows - distinct
        if dupes:
            order = ([created_time] if created_time else []) + [_POS]
            window = daft.Window().partition_by(*keys).order_by(*order, desc=True)
            frame = frame.with_column("__fl_rn", row_number().over(window))
            frame = frame.where(col("__fl_rn") == lit(1))
        # sorted here, not by Daft: Daft's sort on Ray was seen collected out of order
        out = to_arrow(frame, batch.schema).sort_by([(k, "ascending") for k in keys])
        # one chunk: Delta's writer interleaves the chunks of a multi-chunk table
        return out.combine_chunks(), int(dupes)

    def matching_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        batch: pa.Table,
        unique_key: Sequence[str],
        time_range: tuple[str, object, object] | None,
    ) -> tuple[pa.Table, pa.Array]:
        """Stored rows sharing a unique key with ``batch``, and the batch position of each."""
        import daft
        from daft import col, lit

        keys: list[Any] = list(unique_key)
        stored = self.scan(files, schema)
        if time_range is not None:
            column, lo, hi = time_range
            stored = stored.where((col(column) >= lit(lo)) & (col(column) <= lit(hi)))
        probe = daft.from_arrow(
            batch.select(keys).append_column(_POS, positions(batch.num_rows))
        ).select(*[col(k).alias(f"__fl_b{j}") for j, k in enumerate(keys)], col(_POS))
        found = stored.join(
            probe, left_on=keys, right_on=[f"__fl_b{j}" for j in range(len(keys))], how="inner"
        )
        out = to_arrow(
            found.select(col(_POS), *[col(c) for c in schema.names]),
            pa.schema([pa.field(_POS, pa.int64()), *schema]),
        )
        out = out.sort_by(_POS)  # here: see `dedupe_sorted`
        return out.drop_columns([_POS]), out.column(_POS).combine_chunks()

    # -- commits written by the workers (`FileWriter`) ---------------------------------------------
    def _s3(self, uri: str) -> dict[str, str] | None:
        if not remote(uri):
            return None
        assert self.storage is not None, f"{uri}: the engine was built without a storage"
        return shipped_options(self.storage, self._ship_secrets)

    def write_files(
        self,
        table_uri: str,
        schema: pa.Schema,
        sort_by: Sequence[str],
        rows: pa.Table,
        carry: tuple[Sequence[str], pa.Table] | None = None,
    ) -> list[WrittenFile]:
        """``rows`` (plus the ``carry`` files' rows not replaced) written by the workers
        into ``table_uri``, each file sorted by ``sort_by`` (`files.FileSink`)."""
        import daft

        from featureledger.offline.daft.source import conform

        # in the table's schema: a column added since the batch was shaped is NULL
        frame = daft.from_arrow(conform(rows, schema))
        if carry is not None and carry[0]:
            stored, keys = carry
            right, right_on = _files.probe(keys, schema)
            kept = self.scan(stored, schema).join(
                right, left_on=list(keys.column_names), right_on=right_on, how="anti"
            )
            frame = kept.select(*schema.names).union_all(frame)
        sink = _files.FileSink(table_uri, schema, sort_by, self._s3(table_uri))
        return _files.write(frame, sink)

    def files_holding(self, files: Sequence[str], schema: pa.Schema, keys: pa.Table) -> list[str]:
        """The stored files holding a row with one of ``keys``, found on the workers."""
        return _files.holding(files, schema, keys, self._s3(files[0]) if files else None)

    def content_of(self, files: Sequence[str], schema: pa.Schema) -> ContentHash:
        """The ``flh1`` hash of the files' rows, per batch on the workers, summed."""
        from featureledger.hashing import ContentHash

        if not files:
            return ContentHash()
        return pit.hash_frame(self.scan(files, schema), schema)

    # -- pipelines ---------------------------------------------------------------------------------
    def window(
        self,
        source: Sequence[str] | str,
        schema: pa.Schema | None,
        timestamp_column: str,
        start: object,
        end: object,
    ) -> pa.Table:
        """Rows of a snapshot (file list) or a Parquet/CSV path with start <= time < end."""
        import daft
        from daft import col, lit

        if isinstance(source, str):
            if source.lower().endswith((".csv", ".tsv")):
                delimiter = "\t" if source.lower().endswith(".tsv") else ","
                frame = daft.read_csv(source, delimiter=delimiter, io_config=self._io)
            else:
                path = source.rstrip("/") + "/**/*.parquet" if Path(source).is_dir() else source
                frame = daft.read_parquet(path, io_config=self._io)
        else:
            assert schema is not None
            frame = self.scan(source, schema)
        ts = col(timestamp_column)
        return frame.where((ts >= lit(start)) & (ts < lit(end))).to_arrow()

    def transform(self, query: str, source: pa.Table, params: dict[str, object]) -> pa.Table:
        """The pipeline's SQL over ``source`` as a Daft SQL plan on the workers
        (`sql.transform`); a query Daft's SQL cannot run (DuckDB-only syntax or
        functions) runs on the driver in DuckDB, the dialect pipelines are written in."""
        return _sql.transform(query, source, params, fallback=_driver())

    def latest_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        keys: Sequence[str],
        event_time: str | None,
        columns: Sequence[str],
        batch_size: int = 1 << 16,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.RecordBatchReader:
        """The newest row per key (rows with ``start`` <= event time <= ``end``), sorted by
        key; static groups: every row. Computed on the workers as a grouped maximum joined
        back on (keys, event time), so only one row per key reaches the driver."""
        from daft import col, lit

        frame = self.scan(files, schema)
        key_list: list[Any] = list(keys)
        if event_time is not None:
            if start is not None:
                frame = frame.where(col(event_time) >= lit(start))
            if end is not None:
                frame = frame.where(col(event_time) <= lit(end))
            newest = frame.groupby(*key_list).agg(col(event_time).max().alias("__fl_et"))
            newest = newest.select(
                *[col(k).alias(f"__fl_k{j}") for j, k in enumerate(key_list)], col("__fl_et")
            )
            frame = frame.join(
                newest,
                left_on=[*key_list, event_time],
                right_on=[*[f"__fl_k{j}" for j in range(len(key_list))], "__fl_et"],
                how="semi",
            )
        out_schema = pa.schema([schema.field(c) for c in columns])
        table = to_arrow(frame.select(*columns), out_schema)
        table = table.sort_by([(k, "ascending") for k in key_list])  # here: see `dedupe_sorted`
        return pa.RecordBatchReader.from_batches(
            out_schema, table.to_batches(max_chunksize=batch_size)
        )

    # -- comparing, profiling and checking ---------------------------------------------------------
    def diff(
        self,
        old: tuple[Sequence[str], pa.Schema],
        new: tuple[Sequence[str], pa.Schema],
        unique_key: Sequence[str],
        examples: int = 5,
    ) -> dict[str, object]:
        """Two snapshots joined on ``unique_key`` on the workers (`diff.diff`)."""
        return _diff.diff(self.scan(*old), old[1], self.scan(*new), new[1], unique_key, examples)

    def column_stats(
        self, data: pa.Table | pads.Dataset, columns: Sequence[StatsColumn], *, top_k: int
    ) -> StatsScan:
        """A statistics scan as Daft aggregations on the workers (`stats.column_stats`); a
        dataset of Parquet files is read by the workers themselves."""
        return _stats.column_stats(self.frame(data), data.schema, columns, top_k)

    def contract_scan(self, table: pa.Table, rules: Sequence[Rule]) -> ContractScan:
        """Every rule measured as Daft aggregations on the workers (`contracts.scan`); a
        `Check` Daft cannot run is measured on the driver in DuckDB."""
        return _contracts.scan(table, rules, fallback=_driver())

    def skew_pairs(
        self,
        offline: pa.Table,
        online: pa.Table,
        join: Sequence[str],
        features: Sequence[str],
        **options: Any,
    ) -> pa.Table:
        """Served rows beside recomputed ones, on the driver (both are in memory)."""
        return _driver().skew_pairs(offline, online, join, features, **options)

    # -- point-in-time join ------------------------------------------------------------------------
    def pit_join(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        batch_size: int = 1 << 17,
        strategy: str = "auto",
    ) -> pa.RecordBatchReader:
        """Point-in-time join as one Daft query (`pit.joined`); ``strategy`` is ignored:
        Daft has one plan, its as-of join, with the TTL applied after it."""
        # ordered on the driver: at size l on Ray, Daft's sort came back with ~29% of
        # the rows out of order (partitions collected out of order), so the row column
        # comes back and the result is sorted here, whatever the runner
        frame = pit.joined(
            self.scan, entities, timestamp_column, sources, ordered=False, keep_row=True
        )
        schema = pit.output_schema(entities, sources)
        with_row = pa.schema([*schema, pa.field(ROW_COLUMN, pa.int64())])
        table = to_arrow(frame, with_row).sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN])
        return pa.RecordBatchReader.from_batches(schema, table.to_batches(max_chunksize=batch_size))

    def pit_join_to(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        directory: str,
    ) -> tuple[list[str], ContentHash]:
        """The point-in-time join written by the workers as Parquet files under
        ``directory`` (each row keeps `ROW_COLUMN`, its entity row, so order can be
        restored), never collected on the driver; and its ``flh1`` content hash over the
        result rows (without `ROW_COLUMN`), computed per file on the workers and summed."""
        return pit.write_joined(
            self.scan,
            entities,
            timestamp_column,
            sources,
            directory,
            self._io,
        )


def _driver() -> Any:
    """The embedded DuckDB engine for driver-side work on in-memory Arrow data."""
    from featureledger.offline.engines import default_engine

    return default_engine()
