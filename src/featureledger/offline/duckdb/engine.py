"""`DuckDBEngine`: the `OfflineEngine` port on an embedded DuckDB database.

Local snapshots are scanned by DuckDB's own ``read_parquet``. Snapshots in object storage
are handed to DuckDB as pyarrow datasets read through the storage's Arrow filesystem
(DuckDB's httpfs extension is not used: it is downloaded at run time), so filters and
column selection are still pushed into the scan.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from featureledger.definitions.contract import Rule
from featureledger.errors import StorageError
from featureledger.offline.base import (
    ROW_COLUMN,
    ContractScan,
    PitSource,
    StatsColumn,
    StatsScan,
)
from featureledger.offline.duckdb import contracts, merge, skew, stats
from featureledger.offline.duckdb._sql import count_keys as _count_keys
from featureledger.offline.duckdb._sql import lit as _lit
from featureledger.offline.duckdb._sql import positions as _positions
from featureledger.offline.duckdb._sql import q

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as pads

    from featureledger.config import RepoConfig
    from featureledger.storage import Storage

_POS = "__fl_pos"


def _remote(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return len(scheme) > 1 and scheme != "file"


class DuckDBEngine:
    """The `OfflineEngine` port in DuckDB: one in-memory database per engine reading the
    snapshots' Parquet files; contract and statistics scans run on sandboxed connections."""

    name = "duckdb"

    def __init__(
        self,
        *,
        temp_directory: str | Path | None = None,
        memory_limit: str | None = None,
        threads: int | None = None,
        storage: Storage | None = None,
    ) -> None:
        #: reaches snapshots whose files are object-store URIs (s3://...)
        self.storage = storage
        self._config: dict[str, str | bool | int | float | list[str]] = {}
        if memory_limit:
            self._config["memory_limit"] = memory_limit
        if threads:
            self._config["threads"] = str(threads)
        self._temp_directory = temp_directory
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._footers: dict[str, pa.Schema] = {}
        #: the plan each source of the last `pit_join` took ("merge" or "duckdb")
        self.last_plans: list[str] = []

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # connected on first use: commands that only read the registry (list, versions,
        # show) then never import DuckDB, which costs a tenth of a second
        import duckdb

        db = duckdb.connect(":memory:", config=self._config)
        if self._temp_directory:
            # spilling lets joins larger than memory finish instead of failing
            Path(self._temp_directory).mkdir(parents=True, exist_ok=True)
            db.execute(f"SET temp_directory = {_lit(str(self._temp_directory))}")
        db.execute("SET TimeZone = 'UTC'")
        # left open until interpreter shutdown, DuckDB's teardown sometimes aborts the
        # process ("terminate called without an active exception", exit code 134)
        weakref.finalize(self, db.close)
        return db

    @classmethod
    def from_config(
        cls, config: RepoConfig, repo: Path, storage: Storage | None = None
    ) -> DuckDBEngine:
        """The engine ``config.offline`` describes (memory limit, threads, spill folder),
        reading remote snapshots through ``storage``."""
        off = config.offline
        return cls(
            temp_directory=config.resolve(repo, off.temp_directory),
            memory_limit=off.memory_limit,
            threads=off.threads,
            storage=storage,
        )

    def close(self) -> None:
        """Drop the footer cache. The database itself is closed at interpreter exit (see
        ``__init__``): closing it earlier is what aborted processes."""
        self._footers.clear()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # one cursor per operation: DuckDB connections are not shared across threads
        with self._lock:
            if self._db is None:
                self._db = self._connect()
            return self._db.cursor()

    def scan(
        self, con: duckdb.DuckDBPyConnection, alias: str, files: Sequence[str], schema: pa.Schema
    ) -> str:
        """A FROM-able expression over ``files``; an empty snapshot scans an empty table.

        Files written before a column was added lack it, or hold it in a narrower type; the
        union by name with the empty table of the snapshot's schema reads such columns as
        NULL or widens them, as Delta does. That union costs: it halves the speed of the
        window and join operators above it (1M rows: 0.55 -> 1.13 s to keep the latest row
        per key), so it is added only when some file's footer differs from the snapshot.
        """
        if files and _remote(files[0]):
            return self._remote_scan(con, alias, files, schema)
        if files and all(self._holds(f, schema) for f in files):
            listed = ", ".join(_lit(f) for f in files)
            return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
        con.register(alias + "_empty", schema.empty_table())
        if not files:
            return q(alias + "_empty")
        listed = ", ".join(_lit(f) for f in files)
        return (
            f"(SELECT * FROM read_parquet([{listed}], union_by_name = true, "
            f"hive_partitioning = false) UNION ALL BY NAME SELECT * FROM {q(alias + '_empty')})"
        )

    def _remote_scan(
        self, con: duckdb.DuckDBPyConnection, alias: str, files: Sequence[str], schema: pa.Schema
    ) -> str:
        """A pyarrow dataset over object-store files, registered as a DuckDB view; the
        dataset's schema reads missing columns as NULL and widens narrower ones."""
        if self.storage is None or self.storage.local:
            raise StorageError(
                f"{files[0]} is in object storage but this engine was built without a "
                "storage to reach it; pass storage=open_storage(url, options)",
                uri=files[0],
            )
        import pyarrow.dataset as pads

        dataset = pads.dataset(
            [self.storage.arrow_path(f) for f in files],
            schema=schema,
            format="parquet",
            filesystem=self.storage.arrow_filesystem(),
        )
        con.register(alias + "_remote", dataset)
        return q(alias + "_remote")

    def _holds(self, path: str, schema: pa.Schema) -> bool:
        """Whether the Parquet file holds every column of ``schema`` in its type."""
        # data files are immutable (a path is never rewritten), so footers are cached
        found = self._footers.get(path)
        if found is None:
            try:
                found = pq.read_schema(path)
            except (OSError, pa.ArrowInvalid):
                return False  # let the union form read it, or fail with DuckDB's error
            if len(self._footers) > 100_000:
                self._footers.clear()
            self._footers[path] = found
        for f in schema:
            index = found.get_field_index(f.name)
            if index < 0 or not found.field(index).type.equals(f.type):
                return False
        return True

    # -- ingestion helpers ------------------------------------------------------------------------
    def dedupe_sorted(
        self, batch: pa.Table, unique_key: Sequence[str], created_time: str | None
    ) -> tuple[pa.Table, int]:
        """Keep one row per ``unique_key`` (greatest created_time, then the later row) and sort.

        Returns the table and how many rows were dropped as superseded duplicates.
        """
        con = self._cursor()
        positioned = batch.append_column(_POS, _positions(batch.num_rows))
        con.register("batch", positioned)
        keys = ", ".join(q(k) for k in unique_key)
        cols = ", ".join(q(c) for c in batch.column_names)
        dupes = con.sql(f"SELECT count(*) - count(DISTINCT ({keys})) FROM batch").fetchall()[0][0]
        if dupes:
            order = (f"{q(created_time)} DESC, " if created_time else "") + f"{_POS} DESC"
            sql = (
                f"SELECT {cols} FROM batch QUALIFY row_number() OVER "
                f"(PARTITION BY {keys} ORDER BY {order}) = 1 ORDER BY {keys}"
            )
        else:
            sql = f"SELECT {cols} FROM batch ORDER BY {keys}"
        out = con.sql(sql).to_arrow_table()
        con.close()
        # one chunk: Delta's writer interleaves the chunks of a multi-chunk table, which
        # would leave the written files out of key order
        return out.cast(batch.schema).combine_chunks(), int(dupes)

    def matching_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        batch: pa.Table,
        unique_key: Sequence[str],
        time_range: tuple[str, object, object] | None,
    ) -> tuple[pa.Table, pa.Array]:
        """Stored rows sharing a unique key with ``batch``, and the batch position of each."""
        con = self._cursor()
        positioned = batch.select(list(unique_key)).append_column(_POS, _positions(batch.num_rows))
        con.register("batch", positioned)
        con.register(
            "bounds",
            pa.table({"lo": [time_range[1]], "hi": [time_range[2]]})
            if time_range
            else pa.table({"x": [1]}),
        )
        on = " AND ".join(f"t.{q(k)} = b.{q(k)}" for k in unique_key)
        where = (
            f"WHERE t.{q(time_range[0])} BETWEEN (SELECT lo FROM bounds) AND "
            "(SELECT hi FROM bounds)"
            if time_range
            else ""
        )
        cols = ", ".join(f"t.{q(c)}" for c in schema.names)
        sql = (
            f"SELECT b.{_POS}, {cols} FROM (SELECT * FROM {self.scan(con, 'stored', files, schema)}"
            f" t {where}) t JOIN batch b ON {on} ORDER BY b.{_POS}"
        )
        found = con.sql(sql).to_arrow_table()
        con.close()
        positions = found.column(_POS).combine_chunks()
        return found.drop_columns([_POS]).cast(schema), positions

    # -- pipelines ---------------------------------------------------------------------------
    def window(
        self,
        source: Sequence[str] | str,
        schema: pa.Schema | None,
        timestamp_column: str,
        start: object,
        end: object,
    ) -> pa.Table:
        """Rows of a snapshot (file list) or a Parquet/CSV path with start <= time < end."""
        con = self._cursor()
        if isinstance(source, str):
            reader = (
                "read_csv_auto" if source.lower().endswith((".csv", ".tsv")) else "read_parquet"
            )
            path = source + "/**/*.parquet" if Path(source).is_dir() else source
            scan = f"{reader}({_lit(path)})"
        else:
            assert schema is not None
            scan = self.scan(con, "src", source, schema)
        col = q(timestamp_column)
        out = con.sql(
            f"SELECT * FROM {scan} WHERE {col} >= $start AND {col} < $end",
            params={"start": start, "end": end},
        ).to_arrow_table()
        con.close()
        return out

    #: at most this many stored rows per key (estimated), materialization streams every row
    #: and lets the online store's latest-wins rule keep the newest (`latest_rows`)
    STREAM_ALL_MAX_ROWS_PER_KEY = 1.1

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
        """The rows an online store needs to hold the newest row per key of a snapshot (or
        of some of its files), streamed in batches: what materialization writes.

        When the snapshot holds about one row per key (HyperLogLog estimate, at most
        `STREAM_ALL_MAX_ROWS_PER_KEY`) every row is streamed as it is stored, and the online
        store's latest-wins rule (a row replaces another only if not older; storage never
        holds two rows of one key and event time) keeps the newest: keeping the newest here
        would cost more than writing the few extra rows (1M rows: 0.53 s against 0.11 s).
        Otherwise the newest row per key is computed here, sorted by key. ``start`` and
        ``end`` (inclusive) keep only rows whose event time lies in that window.
        """
        con = self._cursor()
        scan = self.scan(con, "latest", files, schema)
        cols = ", ".join(q(c) for c in columns)
        key_list = ", ".join(q(k) for k in keys)
        where: list[str] = []
        params: list[object] = []
        if event_time is not None:
            for op, bound in ((">=", start), ("<=", end)):
                if bound is not None:
                    where.append(f"{q(event_time)} {op} ?")
                    params.append(bound)
        filtered = f"WHERE {' AND '.join(where)} " if where else ""
        if event_time is None:  # static groups hold one row per key already
            sql = f"SELECT {cols} FROM {scan} ORDER BY {key_list}"
        elif self._about_one_row_per_key(con, scan, keys, filtered, params):
            sql = f"SELECT {cols} FROM {scan} {filtered}"
        else:
            sql = (
                f"SELECT {cols} FROM {scan} {filtered}QUALIFY row_number() OVER "
                f"(PARTITION BY {key_list} ORDER BY {q(event_time)} DESC) = 1 ORDER BY {key_list}"
            )
        return con.sql(sql, params=params or None).to_arrow_reader(batch_size)

    def _about_one_row_per_key(
        self,
        con: duckdb.DuckDBPyConnection,
        scan: str,
        keys: Sequence[str],
        filtered: str,
        params: Sequence[object],
    ) -> bool:
        rows, distinct = _count_keys(con, scan, keys, filtered=filtered, params=params)
        return bool(rows) and rows <= self.STREAM_ALL_MAX_ROWS_PER_KEY * max(int(distinct), 1)

    def transform(self, query: str, source: pa.Table, params: dict[str, object]) -> pa.Table:
        """Run a SQL transformation over ``source`` (registered as the table ``source``)."""
        con = self._cursor()
        con.register("source", source)
        used = {k: v for k, v in params.items() if f"${k}" in query}
        out = con.sql(query, params=used or None).to_arrow_table()
        con.close()
        return out

    # -- profiling, checking, skew ------------------------------------------------------------
    def column_stats(
        self, data: pa.Table | pads.Dataset, columns: Sequence[StatsColumn], *, top_k: int
    ) -> StatsScan:
        """One statistics scan (`stats.scan`), on a sandboxed connection."""
        return stats.scan(data, columns, top_k)

    def contract_scan(self, table: pa.Table, rules: Sequence[Rule]) -> ContractScan:
        """Every rule's measurements in one query (`contracts.scan`), sandboxed."""
        return contracts.scan(table, rules)

    def skew_pairs(
        self,
        offline: pa.Table,
        online: pa.Table,
        join: Sequence[str],
        features: Sequence[str],
        *,
        tolerance: float,
        event_time: str | None = None,
        history: pa.Table | None = None,
        history_time: str = "event_time",
        request_time: str | None = None,
        entity_keys: Sequence[str] = (),
    ) -> pa.Table:
        """Served rows beside recomputed ones (`skew.pairs`), sandboxed."""
        return skew.pairs(
            offline,
            online,
            join,
            features,
            tolerance=tolerance,
            event_time=event_time,
            history=history,
            history_time=history_time,
            request_time=request_time,
            entity_keys=entity_keys,
        )

    # -- comparing versions ----------------------------------------------------------------------
    def diff(
        self,
        old: tuple[Sequence[str], pa.Schema],
        new: tuple[Sequence[str], pa.Schema],
        unique_key: Sequence[str],
        examples: int = 5,
    ) -> dict[str, object]:
        """Row-level comparison of two snapshots joined on ``unique_key``.

        Returns counts (added, removed, changed, unchanged), changed counts per common
        column, per-column statistics of each side and a few example keys of each kind.
        """
        con = self._cursor()
        a = self.scan(con, "old", old[0], old[1])
        b = self.scan(con, "new", new[0], new[1])
        common = [c for c in new[1].names if c in old[1].names and c not in unique_key]
        on = " AND ".join(f"a.{q(k)} = b.{q(k)}" for k in unique_key)
        first = q(unique_key[0])
        keys = ", ".join(f"coalesce(a.{q(k)}, b.{q(k)}) AS {q(k)}" for k in unique_key)
        flags = [f"(a.{q(c)} IS DISTINCT FROM b.{q(c)}) AS {q('__chg_' + c)}" for c in common]
        con.execute(
            f"CREATE TEMP TABLE joined AS SELECT {keys}, a.{first} IS NOT NULL AS in_a, "
            f"b.{first} IS NOT NULL AS in_b{''.join(', ' + f for f in flags)} "
            f"FROM {a} a FULL OUTER JOIN {b} b ON {on}"
        )
        any_change = " OR ".join(q("__chg_" + c) for c in common) or "false"
        per_col = "".join(
            f", count(*) FILTER (WHERE in_a AND in_b AND {q('__chg_' + c)})" for c in common
        )
        row = con.sql(
            "SELECT count(*) FILTER (WHERE in_b AND NOT in_a), "
            "count(*) FILTER (WHERE in_a AND NOT in_b), "
            f"count(*) FILTER (WHERE in_a AND in_b AND ({any_change})), "
            f"count(*) FILTER (WHERE in_a AND in_b AND NOT ({any_change})){per_col} FROM joined"
        ).fetchall()[0]
        key_list = ", ".join(q(k) for k in unique_key)
        samples = {}
        for kind, cond in (
            ("added", "in_b AND NOT in_a"),
            ("removed", "in_a AND NOT in_b"),
            ("changed", f"in_a AND in_b AND ({any_change})"),
        ):
            samples[kind] = (
                con.sql(
                    f"SELECT {key_list} FROM joined WHERE {cond} "
                    f"ORDER BY {key_list} LIMIT {examples}"
                )
                .to_arrow_table()
                .to_pylist()
            )
        stats = {"old": self._stats(con, a, old[1]), "new": self._stats(con, b, new[1])}
        con.close()
        return {
            "added": row[0],
            "removed": row[1],
            "changed": row[2],
            "unchanged": row[3],
            "changed_by_column": dict(zip(common, row[4:], strict=True)),
            "examples": samples,
            "stats": stats,
        }

    @staticmethod
    def _stats(
        con: duckdb.DuckDBPyConnection, scan: str, schema: pa.Schema
    ) -> dict[str, dict[str, object]]:
        parts = ["count(*)"]
        for f in schema:
            c = q(f.name)
            numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            orderable = numeric or pa.types.is_string(f.type) or pa.types.is_timestamp(f.type)
            parts += [
                f"count(*) - count({c})",
                f"approx_count_distinct({c})" if not pa.types.is_list(f.type) else "NULL",
                f"min({c})" if orderable else "NULL",
                f"max({c})" if orderable else "NULL",
                f"avg({c})::DOUBLE" if numeric else "NULL",
            ]
        # distinct aliases: duplicate names would collapse in the row dict
        select = ", ".join(f"{p} AS c{i}" for i, p in enumerate(parts))
        row = con.sql(f"SELECT {select} FROM {scan}").to_arrow_table().to_pylist()[0]
        values = list(row.values())
        total = values[0]
        out = {}
        for i, f in enumerate(schema):
            nulls, distinct, lo, hi, mean = values[1 + 5 * i : 6 + 5 * i]
            out[f.name] = {
                "count": total,
                "nulls": nulls,
                "distinct": distinct,
                "min": lo,
                "max": hi,
                "mean": mean,
            }
        return out

    # -- point-in-time join ---------------------------------------------------------------------
    #: the TTL-window join is chosen when an entity row meets at most this many stored rows
    RANGE_JOIN_MAX_MATCHES = 32

    def pit_join(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        batch_size: int = 1 << 17,
        strategy: str = "auto",
    ) -> pa.RecordBatchReader:
        """Point-in-time join of ``entities`` (which carries ``ROW_COLUMN``) with ``sources``.

        For each entity row and source, the stored row with the greatest event time at or
        before the entity time is taken (storage is unique per key and event time, so there
        is no tie left to break), and its features are NULL when that row is older than the
        source's TTL or no row exists. Rows come back in entity order.

        Two plans give the same rows. ``asof``: an ASOF join, which sorts the whole group.
        ``range``: for groups with a TTL, a hash join on the keys restricted to the TTL
        window finds the newest event time per entity row (`_newest_in_window`), then a
        second hash join on (keys, event time) fetches that row's features; the group is
        streamed through hash tables of at most the entity frame's size and never sorted,
        but the cost of the first join grows with the stored rows inside each window.
        ``auto`` estimates that number per group (rows per key times the TTL's share of the
        stored time span) and takes ``range`` when it is at most `RANGE_JOIN_MAX_MATCHES`.

        Before either, ``auto`` and ``merge`` try the merge plan (`merge`, numpy and Arrow
        over the sorted runs the writer stores) per group; ``auto`` keeps it only for
        snapshots stored as at most `MERGE_MAX_RUNS` sorted runs.
        """
        merged = self._merge_joins(entities, timestamp_column, sources, strategy)
        if len(merged) == len(sources):
            return _in_row_order(entities, merged, batch_size)
        con = self._cursor()
        con.register("entities", entities)
        select = [f"e.{q(c)}" for c in entities.column_names if c != ROW_COLUMN]
        ctes: list[str] = []
        joins: list[str] = []
        for i, src in enumerate(sources):
            alias = f"g{i}"
            if i in merged:  # found by the merge plan, in the frame's row order
                found = merged[i]
                con.register(alias, found.append_column("__fl_r", entities.column(ROW_COLUMN)))
                joins.append(f"LEFT JOIN {alias} ON {alias}.__fl_r = e.{ROW_COLUMN}")
                select += [f"{alias}.{q(out)} AS {q(out)}" for _, out in src.features]
                continue
            scan = self.scan(con, f"src{i}", src.files, src.schema)
            windowed = bool(src.event_time and src.ttl_us is not None and timestamp_column)
            if windowed and self._use_range(con, scan, src, strategy):
                assert timestamp_column and src.event_time
                con.register(
                    f"{alias}_newest", self._newest_in_window(con, scan, src, timestamp_column)
                )
                # storage is unique per (keys, event time): each entity row meets one row
                on = [f"g.{q(k)} = n.{q(f'__fl_k{j}')}" for j, k in enumerate(src.keys)]
                on.append(f"g.{q(src.event_time)} = n.__fl_et")
                fetched = ", ".join(
                    f"g.{q(f)} AS {q(f'__fl_f{j}')}" for j, (f, _) in enumerate(src.features)
                )
                ctes.append(
                    f"{alias} AS (SELECT n.__fl_r, {fetched} FROM {q(alias + '_newest')} n "
                    f"JOIN {scan} g ON {' AND '.join(on)})"
                )
                joins.append(f"LEFT JOIN {alias} ON {alias}.__fl_r = e.{ROW_COLUMN}")
                select += [
                    f"{alias}.{q(f'__fl_f{j}')} AS {q(out)}"
                    for j, (_, out) in enumerate(src.features)
                ]
                continue
            inner = [f"{q(k)} AS {q(f'__fl_k{j}')}" for j, k in enumerate(src.keys)]
            if src.event_time:
                inner.append(f"{q(src.event_time)} AS __fl_et")
            inner += [q(f) for f, _ in src.features]
            body = f"(SELECT {', '.join(inner)} FROM {scan})"
            on = [f"e.{q(ek)} = {alias}.{q(f'__fl_k{j}')}" for j, ek in enumerate(src.entity_keys)]
            if src.event_time and timestamp_column:
                on.append(f"e.{q(timestamp_column)} >= {alias}.__fl_et")
                joins.append(f"ASOF LEFT JOIN {body} {alias} ON {' AND '.join(on)}")
            else:
                joins.append(f"LEFT JOIN {body} {alias} ON {' AND '.join(on)}")
            if windowed:
                fresh = (
                    f"epoch_us({alias}.__fl_et) >= epoch_us(e.{q(timestamp_column or '')}) - "
                    f"{int(src.ttl_us or 0)}"
                )
                select += [
                    f"CASE WHEN {fresh} THEN {alias}.{q(f)} END AS {q(out)}"
                    for f, out in src.features
                ]
            else:
                select += [f"{alias}.{q(f)} AS {q(out)}" for f, out in src.features]
        with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
        sql = (
            f"{with_clause}SELECT {', '.join(select)} FROM entities e {' '.join(joins)} "
            f"ORDER BY e.{ROW_COLUMN}"
        )
        return con.sql(sql).to_arrow_reader(batch_size)

    #: ``auto`` takes the merge plan for a snapshot of at most this many sorted runs
    MERGE_MAX_RUNS = 4

    def _merge_joins(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        strategy: str,
    ) -> dict[int, pa.Table]:
        """The features of each source the merge plan serves, by source index; the plan
        taken per source is kept in `last_plans` (for tests and profiles)."""
        self.last_plans = ["duckdb"] * len(sources)
        if strategy not in ("auto", "merge"):
            return {}

        def one(src: PitSource) -> pa.Table | None:
            if not merge.usable(entities, timestamp_column, src):
                return None
            found = merge.plan(src)
            if found is None:
                return None
            # ``auto`` leaves snapshots that are not stored sorted to the DuckDB plans:
            # sorting them here costs more than those plans do
            if strategy == "auto" and (
                not found.sorted_as_stored or len(found.runs) > self.MERGE_MAX_RUNS
            ):
                return None
            return merge.join(entities, timestamp_column, src, found)

        # numpy and Arrow release the GIL: the groups are joined side by side
        workers = min(len(sources), os.cpu_count() or 1)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                tables = list(pool.map(one, sources))
        else:
            tables = [one(src) for src in sources]
        out: dict[int, pa.Table] = {}
        for i, table in enumerate(tables):
            if table is not None:
                out[i] = table
                self.last_plans[i] = "merge"
        return out

    def _newest_in_window(
        self, con: duckdb.DuckDBPyConnection, scan: str, src: PitSource, timestamp_column: str
    ) -> pa.Table:
        """Per entity row with a stored row in its TTL window: the row number (``__fl_r``),
        the keys (``__fl_k0``...) and the newest event time in the window (``__fl_et``).

        Only keys and event times go through this join and its aggregate: carrying the
        features along (``arg_max`` of a struct of them) cost three times as much at size
        l (1.44 s against 0.46 s for 10M rows and 7.7M matches). The result is fetched
        rather than kept as a subquery because DuckDB estimates a grouped join at the size
        of its input and would then build the fetch join's hash table on the whole group.
        """
        assert src.event_time is not None and src.ttl_us is not None
        et, ts = f"g.{q(src.event_time)}", f"e.{q(timestamp_column)}"
        on = [f"e.{q(ek)} = g.{q(k)}" for ek, k in zip(src.entity_keys, src.keys, strict=True)]
        on += [f"{et} <= {ts}", f"epoch_us({et}) >= epoch_us({ts}) - {int(src.ttl_us)}"]
        narrow = ", ".join(q(c) for c in [*src.keys, src.event_time])
        keys = [f"e.{q(ek)}" for ek in src.entity_keys]
        named = ", ".join(f"{k} AS {q(f'__fl_k{j}')}" for j, k in enumerate(keys))
        return con.sql(
            f"SELECT e.{ROW_COLUMN} AS __fl_r, {named}, max({et}) AS __fl_et "
            f"FROM entities e JOIN (SELECT {narrow} FROM {scan}) g ON {' AND '.join(on)} "
            f"GROUP BY e.{ROW_COLUMN}, {', '.join(keys)}"
        ).to_arrow_table()

    def _use_range(
        self, con: duckdb.DuckDBPyConnection, scan: str, src: PitSource, strategy: str
    ) -> bool:
        if strategy in ("asof", "range"):
            return strategy == "range"
        if not src.files or src.event_time is None or src.ttl_us is None:
            return False
        et = q(src.event_time)
        span = self._stored_span(con, src.files, src.event_time)
        measured = f", epoch_us(max({et})) - epoch_us(min({et}))" if span is None else ""
        found = _count_keys(con, scan, src.keys, also=measured)
        rows, distinct = found[0], found[1]
        if span is None:
            span = found[2]
        if not rows or not distinct:
            return False
        share = 1.0 if not span else min(1.0, (src.ttl_us + 1) / span)
        return rows / distinct * share <= self.RANGE_JOIN_MAX_MATCHES

    @staticmethod
    def _stored_span(
        con: duckdb.DuckDBPyConnection, files: Sequence[str], column: str
    ) -> int | None:
        """Microseconds from the earliest to the latest ``column`` value in ``files``, read
        from the row groups' statistics; None when some row group has none. `_use_range`'s
        scan then only counts keys, which halves its cost (size l: 0.03 s a group)."""
        if _remote(files[0]):
            return None  # DuckDB cannot open object-store footers itself
        listed = ", ".join(_lit(f) for f in files)
        complete, span = con.sql(
            "SELECT count(*) > 0 AND count(lo) = count(*) AND count(hi) = count(*), "
            "epoch_us(max(hi)) - epoch_us(min(lo)) FROM (SELECT "
            "try_cast(stats_min_value AS TIMESTAMPTZ) AS lo, "
            "try_cast(stats_max_value AS TIMESTAMPTZ) AS hi "
            f"FROM parquet_metadata([{listed}]) WHERE path_in_schema = $column)",
            params={"column": column},
        ).fetchall()[0]
        return int(span) if complete else None


def _in_row_order(
    entities: pa.Table, found: dict[int, pa.Table], batch_size: int
) -> pa.RecordBatchReader:
    """The entity columns and every source's features, in `ROW_COLUMN` order."""
    columns = [c for c in entities.column_names if c != ROW_COLUMN]
    table = entities.select(columns)
    for i in sorted(found):
        for name, col in zip(found[i].column_names, found[i].columns, strict=True):
            table = table.append_column(name, col)
    rows = entities.column(ROW_COLUMN).to_numpy()
    if len(rows) > 1 and not bool((rows[1:] > rows[:-1]).all()):
        table = table.take(pa.array(rows.argsort(kind="stable")))
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_size))
