"""The embedded online store: one SQLite file in WAL mode, zero setup.

Layout (docs/serving.md): a ``WITHOUT ROWID`` table per table key,
``"fl_online__<table_key>" (k BLOB PRIMARY KEY, ts INTEGER, ver INTEGER, v BLOB)`` holding
the key bytes, the event time in microseconds, the interned source version and the ``flr1``
row blob (see `featureledger.online.codec`); beside it ``fl_online_tables`` (key schema per
table), ``fl_online_schemas`` (every feature schema a table's rows were written with) and
``fl_online_versions`` (source version strings by id). A full rebuild (`replace`) writes
``"fl_online__~<build>~<table_key>"`` and renames it over the live table in one transaction.

Writes hand SQLite a whole chunk at once: the key and row bytes as two blobs and the event
times as a JSON array, split inside SQLite by ``substr`` over ``json_each`` in one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE WHERE excluded.ts >= ts``. That keeps the
per-row cost in C: no Python object per row or per value. Reads join ``json_each`` of the
request positions with the primary key in one query.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.errors import FeatureLedgerError, NotFoundError
from featureledger.online.base import Rows, check_build, check_table_key
from featureledger.online.codec import (
    Bytes,
    Chunk,
    RowSchema,
    TableLayout,
    assemble,
    check_features,
    encode_key,
    encode_keys,
    encoded_chunks,
    key_columns_for_read,
    schema_from_bytes,
    schema_to_bytes,
)
from featureledger.online.point import decode_one, point_key

_META = (
    "CREATE TABLE IF NOT EXISTS fl_online_tables ("
    "table_key TEXT PRIMARY KEY, keys BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS fl_online_schemas ("
    "table_key TEXT NOT NULL, schema_id INTEGER NOT NULL, schema BLOB NOT NULL, "
    "PRIMARY KEY (table_key, schema_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS fl_online_versions ("
    "id INTEGER PRIMARY KEY, version TEXT NOT NULL UNIQUE)",
)
#: digits of each offset in the fixed-width decimal offset strings handed to SQLite
_DIGITS = 12


def _table(table_key: str) -> str:
    return f'"fl_online__{table_key}"'


def _build_key(table_key: str, build: str) -> str:
    """The name of an unfinished build: ``~`` cannot start a table key, so builds never
    clash with live tables and `tables` can leave them out."""
    return f"~{build}~{table_key}"


def _json_ints(values: np.ndarray) -> str:
    if len(values) < 4096:
        return "[" + ",".join(map(str, values.tolist())) + "]"
    text = pc.cast(pa.array(values), pa.string())
    joined = pc.binary_join(pa.ListArray.from_arrays([0, len(text)], text), ",")
    return "[" + joined[0].as_py() + "]"


_COUNTS: dict[int, str] = {}


def _json_count(n: int) -> str:
    """A JSON array of ``n`` elements: a row generator for ``json_each``, cached."""
    text = _COUNTS.get(n)
    if text is None:
        text = "[" + ",".join("0" * n) + "]"
        if n <= 4096:
            _COUNTS[n] = text
    return text


def _offsets_text(offsets: np.ndarray) -> bytes:
    """Offsets (rebased to 0) as back-to-back zero-padded decimals, for ``substr`` in SQL.

    A BLOB, not TEXT: ``substr`` on a blob indexes bytes directly, on text it walks the
    characters from the start, which makes a chunk's write quadratic.
    """
    rebased = offsets - offsets[0]
    if len(rebased) < 64:
        return "".join(f"{int(o):0{_DIGITS}d}" for o in rebased).encode()
    text = pc.utf8_lpad(pc.cast(pa.array(rebased), pa.string()), _DIGITS, "0")
    joined = pc.binary_join(pa.ListArray.from_arrays([0, len(text)], text), "")
    return bytes(joined[0].as_buffer())


def _blob(data: np.ndarray) -> memoryview | bytes:
    # an empty buffer would bind as NULL, and substr(NULL, ...) is NULL even for length 0
    return data.data if len(data) else b"\x00"


def _slice_sql(blob: str, width: int | None, offsets: str, index: str) -> str:
    """SQL for element ``index`` of ``blob`` split at fixed ``width`` or at ``offsets``."""
    if width is not None:
        return f"substr(:{blob}, {index} * {width} + 1, {width})"
    start = f"CAST(substr(:{offsets}, {index} * {_DIGITS} + 1, {_DIGITS}) AS INTEGER)"
    end = f"CAST(substr(:{offsets}, {index} * {_DIGITS} + {_DIGITS + 1}, {_DIGITS}) AS INTEGER)"
    return f"substr(:{blob}, {start} + 1, {end} - {start})"


class SQLiteOnlineStore:
    """Online store in one SQLite file (``":memory:"`` for a private in-memory one).

    Each thread gets its own connection (WAL lets readers run beside a writer, also in
    other processes); an in-memory store shares one connection behind a lock.
    ``synchronous="off"`` trades the file's crash safety for write speed (docs/serving.md).
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 30.0,
        cache_mib: int = 64,
        synchronous: Literal["normal", "off"] = "normal",
    ) -> None:
        if synchronous not in ("normal", "off"):
            raise ValueError(f"synchronous must be 'normal' or 'off', got {synchronous!r}")
        self.path = str(path)
        self._synchronous = synchronous.upper()
        self._timeout = timeout
        self._cache_kib = cache_mib * 1024
        self._local = threading.local()
        self._mutex = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._layouts: dict[str, TableLayout] = {}
        self._versions: dict[int, str] = {}
        self._closed = False
        self._shared: sqlite3.Connection | None = None
        if self.path == ":memory:":
            self._shared = self._connect()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            for ddl in _META:
                con.execute(ddl)

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({self.path!r})"

    # -- connections -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise FeatureLedgerError(f"{self!r} is closed; open a new store")
        con = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        # 16 KiB pages (for new files): bulk writes run ~40% faster than with 4 KiB, point
        # reads are as fast, and a small push rewrites 16 KiB, not 64, per page it touches
        con.execute("PRAGMA page_size=16384")
        con.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit is durable after the next checkpoint; the online store is a
        # cache of the offline one, so a crash costs at most a re-materialization. OFF skips
        # the fsyncs (bulk writes 15-35% faster here) but an OS crash or power loss during a
        # write can corrupt the file; a crash of the process alone cannot.
        con.execute(f"PRAGMA synchronous={self._synchronous}")
        # checkpoint every 64 MiB of WAL instead of 16: bulk writes spend half as long in
        # checkpoints, and the WAL stays bounded
        con.execute("PRAGMA wal_autocheckpoint=4096")
        con.execute(f"PRAGMA cache_size=-{self._cache_kib}")
        con.execute("PRAGMA mmap_size=268435456")
        with self._mutex:
            self._connections.append(con)
        return con

    def _con(self) -> sqlite3.Connection:
        if self._shared is not None:
            if self._closed:
                raise FeatureLedgerError(f"{self!r} is closed; open a new store")
            return self._shared
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None or self._closed:
            con = self._connect()
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._mutex if self._shared is not None else _NOLOCK:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- metadata ------------------------------------------------------------------------------
    def _load_layout(self, con: sqlite3.Connection, table_key: str) -> TableLayout | None:
        row = con.execute(
            "SELECT keys FROM fl_online_tables WHERE table_key = ?", (table_key,)
        ).fetchone()
        if row is None:
            self._layouts.pop(table_key, None)
            return None
        layout = TableLayout(schema_from_bytes(row[0]))
        for (blob,) in con.execute(
            "SELECT schema FROM fl_online_schemas WHERE table_key = ?", (table_key,)
        ):
            layout.add(schema_from_bytes(blob))
        self._layouts[table_key] = layout
        return layout

    def _layout(self, table_key: str) -> TableLayout:
        layout = self._layouts.get(table_key)
        if layout is None:
            check_table_key(table_key)
            layout = self._load_layout(self._con(), table_key)
            if layout is None:
                raise NotFoundError(
                    f"online table {table_key!r} does not exist in {self!r}; materialize it first"
                )
        return layout

    def _layout_for(self, table_key: str, feature_names: Sequence[str]) -> TableLayout:
        layout = self._layout(table_key)
        if not layout.types.keys() >= set(feature_names):
            layout = self._reload(table_key)  # another process may have added them
            check_features(layout, feature_names, table_key)
        return layout

    def _reload(self, table_key: str) -> TableLayout:
        layout = self._load_layout(self._con(), table_key)
        if layout is None:
            raise NotFoundError(f"online table {table_key!r} was deleted while being read")
        return layout

    def _version_names(self, ids: Sequence[int]) -> list[str]:
        if len(ids) == 1 and ids[0] in self._versions:
            return [self._versions[ids[0]]]
        if any(i not in self._versions for i in ids):
            rows = self._con().execute("SELECT id, version FROM fl_online_versions").fetchall()
            self._versions.update(rows)
        return [self._versions[i] for i in ids]

    # -- the port ------------------------------------------------------------------------------
    def write(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        atomic: bool = False,
    ) -> int:
        check_table_key(table_key)
        return self._write(table_key, rows, key_columns, event_time_column, source_version, atomic)

    def _write(
        self,
        name: str,
        rows: Rows,
        key_columns: Sequence[str],
        event_time_column: str | None,
        source_version: str,
        atomic: bool,
    ) -> int:
        if not isinstance(source_version, str) or not source_version:
            raise ValueError("source_version must be a non-empty string")
        if atomic:  # one transaction: readers and a crash see all of the write or none
            try:
                with self._tx() as con:

                    def prepare_in(keys: pa.Schema, row_schema: RowSchema) -> tuple[pa.Schema, int]:
                        layout = self._ensure(con, name, keys, row_schema)
                        return layout.keys, self._intern(con, source_version)

                    return sum(
                        self._upsert(con, name, chunk, version)
                        for chunk, version in encoded_chunks(
                            rows, key_columns, event_time_column, prepare_in
                        )
                    )
            except BaseException:
                self._layouts.pop(name, None)  # it may hold schemas the rollback undid
                raise

        def prepare(keys: pa.Schema, row_schema: RowSchema) -> tuple[pa.Schema, int]:
            with self._tx() as con:
                layout = self._ensure(con, name, keys, row_schema)
                return layout.keys, self._intern(con, source_version)

        changed = 0
        for chunk, version in encoded_chunks(rows, key_columns, event_time_column, prepare):
            with self._tx() as con:
                changed += self._upsert(con, name, chunk, version)
        return changed

    def replace(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        build: str,
    ) -> int:
        """Write ``rows`` into a new table beside the live one, then rename it over the live
        one in one transaction (readers see the old table or the new one)."""
        check_table_key(table_key)
        staged = _build_key(table_key, check_build(build))
        self._drop(staged)  # a leftover of the same build id starts afresh
        changed = self._write(staged, rows, key_columns, event_time_column, source_version, False)
        with self._tx() as con:
            built = con.execute(
                "SELECT 1 FROM fl_online_tables WHERE table_key = ?", (staged,)
            ).fetchone()
            self._drop_in(con, table_key)
            if built is not None:  # None: the input had no schema, the table goes
                con.execute(f"ALTER TABLE {_table(staged)} RENAME TO {_table(table_key)}")
                for meta in ("fl_online_tables", "fl_online_schemas"):
                    con.execute(
                        f"UPDATE {meta} SET table_key = ? WHERE table_key = ?", (table_key, staged)
                    )
        # the build's layout is the new table's: reads take the fast path at once
        layout = self._layouts.pop(staged, None)
        if built is not None and layout is not None:
            self._layouts[table_key] = layout
        else:
            self._layouts.pop(table_key, None)
        return changed

    def builds(self) -> list[tuple[str, str]]:
        with self._mutex if self._shared is not None else _NOLOCK:
            rows = (
                self._con()
                .execute(
                    "SELECT table_key FROM fl_online_tables WHERE table_key LIKE '~%' "
                    "ORDER BY table_key"
                )
                .fetchall()
            )
        found = []
        for (name,) in rows:
            build, _, table_key = name[1:].partition("~")
            found.append((table_key, build))
        return sorted(found)

    def discard_build(self, table_key: str, build: str) -> None:
        check_table_key(table_key)
        self._drop(_build_key(table_key, check_build(build)))

    def _ensure(
        self, con: sqlite3.Connection, table_key: str, keys: pa.Schema, rs: RowSchema
    ) -> TableLayout:
        layout = self._load_layout(con, table_key)
        if layout is None:
            con.execute(
                "INSERT INTO fl_online_tables (table_key, keys) VALUES (?, ?)",
                (table_key, schema_to_bytes(keys)),
            )
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(table_key)} (k BLOB PRIMARY KEY, "
                "ts INTEGER NOT NULL, ver INTEGER NOT NULL, v BLOB NOT NULL) WITHOUT ROWID"
            )
            layout = TableLayout(keys)
        layout.check_keys(keys, table_key)
        if rs.id not in layout.schemas:
            con.execute(
                "INSERT INTO fl_online_schemas (table_key, schema_id, schema) VALUES (?, ?, ?)",
                (table_key, rs.id, schema_to_bytes(rs.schema)),
            )
            layout.add(rs.schema)
        elif not layout.schemas[rs.id].schema.equals(rs.schema):
            raise FeatureLedgerError(
                f"online table {table_key!r}: two feature schemas share the id {rs.id:08x} "
                "(a 32-bit hash collision); rename a feature or use a new table key"
            )
        self._layouts[table_key] = layout
        return layout

    def _intern(self, con: sqlite3.Connection, version: str) -> int:
        con.execute("INSERT OR IGNORE INTO fl_online_versions (version) VALUES (?)", (version,))
        (vid,) = con.execute(
            "SELECT id FROM fl_online_versions WHERE version = ?", (version,)
        ).fetchone()
        self._versions[vid] = version
        return int(vid)

    def _upsert(self, con: sqlite3.Connection, table_key: str, chunk: Chunk, version: int) -> int:
        table = _table(table_key)
        key_sql = _slice_sql("k", chunk.keys.width, "ko", "key")
        row_sql = _slice_sql("v", chunk.rows.width, "vo", "key")
        sql = (
            f"INSERT INTO {table} (k, ts, ver, v) SELECT {key_sql}, value, :ver, {row_sql} "
            "FROM json_each(:ts) WHERE true ON CONFLICT (k) DO UPDATE SET ts = excluded.ts, "
            f"ver = excluded.ver, v = excluded.v WHERE excluded.ts >= {table}.ts"
        )
        params: dict[str, object] = {
            "k": _blob(chunk.keys.contiguous()),
            "v": _blob(chunk.rows.contiguous()),
            "ts": _json_ints(chunk.times),
            "ver": version,
        }
        if chunk.keys.width is None:
            params["ko"] = _offsets_text(chunk.keys.offsets)
        if chunk.rows.width is None:
            params["vo"] = _offsets_text(chunk.rows.offsets)
        before = con.total_changes
        con.execute(sql, params)
        return con.total_changes - before

    def read(
        self,
        table_key: str,
        keys: pa.Table,
        feature_names: Sequence[str],
        *,
        now: datetime,
        ttl: timedelta | None,
    ) -> pa.Table:
        layout = self._layout_for(table_key, feature_names)
        n = keys.num_rows
        columns = key_columns_for_read(keys, layout.keys)
        table = _table(table_key)
        try:
            with self._mutex if self._shared is not None else _NOLOCK:
                if n == 1:
                    # the serving hot path: one prepared point lookup
                    key = encode_key(columns, layout.key_specs)
                    rows = (
                        []
                        if key is None
                        else self._con()
                        .execute(f"SELECT 0, ts, ver, v FROM {table} WHERE k = ?", (key,))
                        .fetchall()
                    )
                else:
                    rows = self._select(table, *encode_keys(columns, layout.key_specs), n)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            self._layouts.pop(table_key, None)
            raise NotFoundError(
                f"online table {table_key!r} does not exist in {self!r}; materialize it first"
            ) from exc
        if len(rows) == 1:
            ((position, time, version, blob),) = rows
            found = (
                _FIRST if position == 0 else np.array((position,), dtype=np.int64),
                np.array((time,), dtype=np.int64),
                np.array((version,), dtype=np.int64),
                Bytes.from_list((blob,)),
            )
        elif rows:
            positions, times, versions, blobs = zip(*rows, strict=True)
            found = (
                np.array(positions, dtype=np.int64),
                np.array(times, dtype=np.int64),
                np.array(versions, dtype=np.int64),
                Bytes.from_list(blobs),
            )
        else:
            empty = np.empty(0, dtype=np.int64)
            found = (empty, empty, empty, Bytes.from_list([]))
        return assemble(
            layout,
            n,
            *found,
            feature_names,
            now=now,
            ttl=ttl,
            version_names=self._version_names,
            reload=lambda: self._reload(table_key),
        )

    def read_one(
        self,
        table_key: str,
        key: Sequence[object],
        feature_names: tuple[str, ...],
        *,
        now: datetime,
        ttl: timedelta | None,
    ) -> tuple[tuple[object, ...], tuple[pa.DataType, ...]] | None:
        """One entity's features as Python values (`featureledger.online.point`), or None
        when `read` must answer instead."""
        layout = self._layouts.get(table_key)
        encoded = point_key(layout, key, feature_names)
        if encoded is None:
            return None
        assert layout is not None
        try:
            with self._mutex if self._shared is not None else _NOLOCK:
                row = (
                    self._con()
                    .execute(f"SELECT ts, v FROM {_table(table_key)} WHERE k = ?", (encoded,))
                    .fetchone()
                )
        except sqlite3.OperationalError:
            return None  # e.g. dropped by another process: `read` says so
        time, blob = (None, None) if row is None else row
        return decode_one(layout, time, blob, feature_names, now=now, ttl=ttl)

    def _select(
        self, table: str, key_bytes: Bytes, valid: np.ndarray | None, n: int
    ) -> list[tuple[int, int, int, bytes]]:
        con = self._con()
        positions = None
        if valid is not None:
            positions = np.flatnonzero(valid)
            if len(positions) == 0:
                return []
            key_bytes = key_bytes.take(positions)
        key_sql = _slice_sql("k", key_bytes.width, "ko", "j.key")
        sql = (
            f"SELECT j.key, t.ts, t.ver, t.v FROM json_each(:p) AS j "
            f"CROSS JOIN {table} AS t ON t.k = {key_sql}"
        )
        params: dict[str, object] = {
            "p": _json_count(len(key_bytes)),
            "k": _blob(key_bytes.contiguous()),
        }
        if key_bytes.width is None:
            params["ko"] = _offsets_text(key_bytes.offsets)
        rows = con.execute(sql, params).fetchall()
        if positions is not None:
            # j.key counts the non-null keys; map back to request rows
            back = positions.tolist()
            rows = [(back[r[0]], r[1], r[2], r[3]) for r in rows]
        return rows

    def delete_table(self, table_key: str) -> None:
        check_table_key(table_key)
        self._drop(table_key)

    def _drop(self, name: str) -> None:
        with self._tx() as con:
            self._drop_in(con, name)
        self._layouts.pop(name, None)

    @staticmethod
    def _drop_in(con: sqlite3.Connection, name: str) -> None:
        con.execute(f"DROP TABLE IF EXISTS {_table(name)}")
        con.execute("DELETE FROM fl_online_schemas WHERE table_key = ?", (name,))
        con.execute("DELETE FROM fl_online_tables WHERE table_key = ?", (name,))

    def tables(self) -> list[str]:
        with self._mutex if self._shared is not None else _NOLOCK:
            rows = (
                self._con()
                .execute(
                    "SELECT table_key FROM fl_online_tables WHERE table_key NOT LIKE '~%' "
                    "ORDER BY table_key"
                )
                .fetchall()
            )
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            for con in self._connections:
                con.close()
            self._connections.clear()
            self._shared = None


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOLOCK = _NoLock()
_FIRST = np.zeros(1, dtype=np.int64)
_FIRST.flags.writeable = False
