"""Feature-group storage on Delta Lake: one table per group definition major version.

Every commit carries ``featureledger.run`` in its commit metadata, so a commit can be
matched to the run that wrote it even if the process died before recording it, and
``featureledger.commit`` (a fresh token), so a writer on object storage can find the
version its own commit landed at.

Tables live on a `Storage`: a local folder, where writers are serialized by an
``flock`` beside the table, or an object store, where there is no lock: Delta's
conditional put of the next log entry decides which writer wins. A write given
``parent=`` is then built on that snapshot and may only land directly after it
(``max_commit_retries=0``), so the caller's content-hash update from the parent stays
exact, and `ConcurrentWriteError` tells it to recompute from the new latest version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureledger.errors import ConcurrentWriteError, NotFoundError, StorageError
from featureledger.hashing import ContentHash
from featureledger.storage import Storage, is_remote, object_sha256, open_storage

if TYPE_CHECKING:
    from deltalake import CommitProperties, DeltaTable

    from featureledger.offline.base import WrittenFile


def _dl() -> Any:
    """deltalake, imported on first use: the CLI's light commands (list, show of an entity)
    reach this module through the store but never open a table."""
    import deltalake
    import deltalake.exceptions

    return deltalake


RUN_KEY = "featureledger.run"
COMMIT_KEY = "featureledger.commit"
#: the content hash of the version a commit makes, when its writer knew it
CONTENT_KEY = "featureledger.content"
#: "host:pid" of the process that made a commit, so a reader on the same host can tell
#: whether that writer is gone (crash recovery on object storage, docs/storage.md)
WRITER_KEY = "featureledger.writer"

#: table locks the current thread holds (lock path -> depth), so `lock` is re-entrant
_HELD = threading.local()


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: datetime
    operation: str
    run_id: str | None
    added: list[dict[str, Any]]
    removed: list[str]
    content: ContentHash | None = None
    token: str | None = None
    #: "host:pid" of the writing process (None for commits made outside featureledger)
    writer: str | None = None


def writer_id() -> str:
    """This process as a commit's writer: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class DeltaGroupTable:
    """One feature group version's Delta table, on local disk or in object storage."""

    def __init__(self, uri: str | Path, storage: Storage | None = None) -> None:
        text = str(uri)
        self.remote = is_remote(text)
        self.uri = text.rstrip("/") if self.remote else str(Path(text))
        #: the local folder; for a remote table only a name (nothing is written there)
        self.path = Path(self.uri)
        self.storage = storage if storage is not None else open_storage(self.uri)
        self._options = self.storage.storage_options
        self._head: DeltaTable | None = None

    def __repr__(self) -> str:
        return f"DeltaGroupTable({self.uri!r})"

    # -- lifecycle ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return _dl().DeltaTable.is_deltatable(self.uri, storage_options=self._options or None)

    def create(self, schema: pa.Schema, run_id: str) -> int:
        """Create the empty table (data version 0)."""
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)
        _dl().DeltaTable.create(
            self.uri,
            schema,
            mode="error",
            storage_options=self._options or None,
            commit_properties=self._props(run_id)[0],
        )
        return 0

    def _props(
        self, run_id: str, content: ContentHash | None = None, *, strict: bool = False
    ) -> tuple[CommitProperties, str]:
        token = uuid.uuid4().hex
        meta = {RUN_KEY: run_id, COMMIT_KEY: token, WRITER_KEY: writer_id()}
        if content is not None:
            meta[CONTENT_KEY] = json.dumps(content.to_dict())
        if strict:  # land right after the snapshot read, or fail
            return _dl().CommitProperties(custom_metadata=meta, max_commit_retries=0), token
        return _dl().CommitProperties(custom_metadata=meta), token

    def _landed(self, token: str, after: int) -> int:
        """The version a commit landed at: under the local lock the latest; on object
        storage the first version after ``after`` that carries the commit's token."""
        latest = self.latest_version()
        if not self.remote:
            return latest
        for version in range(after + 1, latest + 1):
            if self.commit(version).token == token:
                return version
        return after  # the operation had nothing to commit (an empty delete or optimize)

    def table(self, version: int | None = None) -> DeltaTable:
        """The table at ``version`` (latest when None).

        On object storage the latest snapshot is kept and brought up to date from the
        log entries added since (a fresh load reads every entry since the last
        checkpoint, one request each), so a writer retrying after a lost race pays for
        the new commits only. The kept object is shared: a later ``table()`` call on
        this instance moves it to the newest version.
        """
        if self.remote and self._head is not None:
            if version is None:
                self._head.update_incremental()
                return self._head
            if self._head.version() == version:
                return self._head
        try:
            loaded = _dl().DeltaTable(
                self.uri, version=version, storage_options=self._options or None
            )
        except _dl().exceptions.TableNotFoundError as exc:
            raise NotFoundError(f"no Delta table at {self.uri}") from exc
        except Exception as exc:
            if version is not None and "version" in str(exc).lower():
                raise NotFoundError(
                    f"data version {version} does not exist in {self.uri} "
                    f"(latest is {self.latest_version()})"
                ) from exc
            raise
        if self.remote and version is None:
            self._head = loaded
        return loaded

    def latest_version(self) -> int:
        return self.table().version()

    def version_at(self, when: datetime) -> int:
        """The latest version committed at or before ``when``."""
        best = None
        for commit in self.commits():
            if commit.timestamp <= when:
                best = commit.version
        if best is None:
            raise NotFoundError(
                f"{self.uri}: no data version existed at {when.isoformat()} "
                "(the table was created later)"
            )
        return best

    @contextlib.contextmanager
    def lock(self, *, blocking: bool = True) -> Iterator[bool]:
        """Serialize writers to this table across processes on one machine.

        Re-entrant within a thread. With ``blocking=False`` it yields False instead of
        waiting when another thread or process holds the lock. On object storage there
        is nothing to lock: it yields True at once (commits rely on Delta's conditional
        put, see the module docstring) and ``blocking=False`` yields False, since live
        writers may be between their commit and recording it.
        """
        if self.remote:
            yield blocking
            return
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.parent / f".{self.path.name}.lock"
        held: dict[str, int] = _HELD.__dict__.setdefault("paths", {})
        key = str(lock_path.resolve())
        if held.get(key):
            held[key] += 1
            try:
                yield True
            finally:
                held[key] -= 1
            return
        with open(lock_path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            held[key] = 1
            try:
                yield True
            finally:
                held.pop(key, None)
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading --------------------------------------------------------------------------------
    def files(self, version: int) -> list[str]:
        return list(self.table(version).file_uris())

    def schema(self, version: int | None = None) -> pa.Schema:
        return pa.schema(self.table(version).schema().to_arrow())

    def time_range(self, version: int, column: str) -> tuple[Any, Any] | None:
        """The least and greatest value of a timestamp column in a version (None when it
        holds no value), from the files' Delta statistics when every file has them; those
        are truncated to milliseconds, so the greatest is rounded up by 1 ms."""
        import pyarrow.compute as pc

        actions = pa.table(self.table(version).get_add_actions(flatten=True))
        lo, hi = f"min.{column}", f"max.{column}"
        if actions.num_rows == 0:
            return None
        if lo in actions.column_names and hi in actions.column_names:
            mins, maxs = actions.column(lo), actions.column(hi)
            counts = actions.column("num_records")
            nc = f"null_count.{column}"
            nulls = actions.column(nc) if nc in actions.column_names else pc.multiply(counts, 0)
            # a file of only nulls has no bounds, and that is not a missing statistic
            holds = pc.greater(counts, nulls)
            lacking = pc.and_(holds, pc.or_(pc.is_null(mins), pc.is_null(maxs)))
            if not pc.any(lacking).as_py():
                low, high = pc.min(mins).as_py(), pc.max(maxs).as_py()
                if low is None:
                    return None
                return low, high + timedelta(milliseconds=1)
        bounds = pc.min_max(self.read(version, [column]).column(column)).as_py()
        if bounds["min"] is None:
            return None
        return bounds["min"], bounds["max"]

    def read(
        self,
        version: int,
        columns: list[str] | None = None,
        filters: list[tuple[str, str, Any]] | None = None,
    ) -> pa.Table:
        """The rows of ``version``; ``filters`` (ANDed ``(column, "=", value)``) skip files
        by their statistics and rows by value."""
        snapshot = self.table(version)
        try:
            return snapshot.to_pyarrow_table(columns=columns, filters=filters or None)
        except pa.ArrowNotImplementedError:
            # pyarrow before 26 cannot compare the string_view columns of files rewritten by
            # delta-rs merges with a string: read, cast to plain strings, then filter
            import pyarrow.compute as pc

            table = snapshot.to_pyarrow_table(columns=columns)
            plain = pa.schema(
                f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                for f in table.schema
            )
            table = table.cast(plain)
            mask = None
            for name, op, value in filters or []:
                if op not in ("=", "=="):
                    raise
                test = pc.equal(table.column(name), pa.scalar(value, table.schema.field(name).type))
                mask = test if mask is None else pc.and_(mask, test)
            return table if mask is None else table.filter(mask)

    def commit(self, version: int) -> Commit:
        """What the commit of ``version`` added and removed, from its log entry."""
        log = f"{self.uri}/_delta_log/{version:020d}.json"
        try:
            text = self.storage.read_bytes(log).decode()
        except StorageError as exc:
            if self.storage.exists(log):
                raise
            raise NotFoundError(f"{self.uri}: no commit log for version {version}") from exc
        info: dict[str, Any] = {}
        added: list[dict[str, Any]] = []
        removed: list[str] = []
        # newline-delimited JSON: split on "\n" only. `splitlines` also splits on \x85,
        # \u2028 and others, which JSON leaves unescaped inside strings (a column's min/max
        # statistics can hold them), and every later read of the log would then fail
        for line in text.split("\n"):
            if not line.strip():
                continue
            action = json.loads(line)
            if "commitInfo" in action:
                info = action["commitInfo"]
            elif "add" in action:
                add = action["add"]
                stats = json.loads(add.get("stats") or "{}")
                added.append(
                    {"path": add["path"], "size": add["size"], "rows": stats.get("numRecords")}
                )
            elif "remove" in action:
                removed.append(action["remove"]["path"])
        ts = datetime.fromtimestamp(info.get("timestamp", 0) / 1000, tz=UTC)
        run = (info.get(RUN_KEY) or info.get("userMetadata", {}) or {}) if info else None
        if isinstance(run, dict):
            run = run.get(RUN_KEY)
        content = None
        if info.get(CONTENT_KEY):
            content = ContentHash.from_dict(json.loads(info[CONTENT_KEY]))
        return Commit(
            version,
            ts,
            info.get("operation", "?"),
            run,
            added,
            removed,
            content,
            info.get(COMMIT_KEY),
            info.get(WRITER_KEY),
        )

    def commits(self) -> list[Commit]:
        latest = self.latest_version()
        return [self.commit(v) for v in range(latest + 1)]

    def checksums(self, added: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """SHA-256 and size of each added data file, keyed by its path in the table."""
        out = {}
        for a in added:
            uri = f"{self.uri}/{a['path']}"
            info = self.storage.info(uri)
            out[a["path"]] = {
                "sha256": object_sha256(self.storage, uri),
                "size": a["size"],
                # lets reads trust an untouched file without re-hashing it
                "mtime_ns": info.mtime_ns if info else None,
            }
        return out

    # -- writing --------------------------------------------------------------------------------
    # ``parent``: build the write on that version and land directly after it or raise
    # ConcurrentWriteError (object storage; under the local lock the latest is the parent).
    # ``content``: the content hash of the version being made, kept in its commit.
    def append(
        self,
        data: pa.Table,
        run_id: str,
        *,
        schema_mode: str | None = None,
        parent: int | None = None,
        content: ContentHash | None = None,
    ) -> int:
        return self._write(data, "append", run_id, schema_mode, parent, content)

    def delete(self, predicate: str | None) -> int:
        """Delete rows matching ``predicate`` (all without one) in a new version."""
        dt = self.table()
        before = dt.version()
        props, token = self._props("")
        try:
            dt.delete(predicate, commit_properties=props)
        except _dl().exceptions.CommitFailedError as exc:
            raise self._conflict(exc) from exc
        return self._landed(token, before)

    def overwrite(
        self,
        data: pa.Table,
        run_id: str,
        *,
        schema_mode: str | None = None,
        parent: int | None = None,
        content: ContentHash | None = None,
    ) -> int:
        return self._write(data, "overwrite", run_id, schema_mode, parent, content)

    def _conflict(self, exc: Exception) -> ConcurrentWriteError:
        return ConcurrentWriteError(
            f"{self.uri}: another writer committed first ({exc}); nothing was written by "
            "this call. Try again."
        )

    def _base(self, parent: int | None) -> tuple[DeltaTable, bool]:
        """The snapshot a write builds on, and whether it must land right after it."""
        strict = parent is not None and self.remote
        return self.table(parent if strict else None), strict

    def _write(
        self,
        data: pa.Table,
        mode: str,
        run_id: str,
        schema_mode: str | None = None,
        parent: int | None = None,
        content: ContentHash | None = None,
    ) -> int:
        target: DeltaTable | str = self.uri
        strict, read = False, -1
        if self.remote:
            try:
                target, strict = self._base(parent)
                read = target.version()
            except NotFoundError:
                if parent is not None:
                    raise  # the write creates the table only when no parent is expected
        props, token = self._props(run_id, content, strict=strict)
        try:
            if isinstance(target, _dl().DeltaTable):
                _dl().write_deltalake(
                    target, data, mode=mode, schema_mode=schema_mode, commit_properties=props
                )
            else:
                _dl().write_deltalake(
                    target,
                    data,
                    mode=mode,
                    schema_mode=schema_mode,
                    commit_properties=props,
                    storage_options=self._options or None,
                )
        except _dl().exceptions.CommitFailedError as exc:
            raise self._conflict(exc) from exc
        return read + 1 if strict else self._landed(token, read)

    def commit_files(
        self,
        files: Sequence[WrittenFile],
        removed: Sequence[str],
        mode: str,
        run_id: str,
        *,
        parent: int | None = None,
        content: ContentHash | None = None,
    ) -> int:
        """One commit of data files already written into the table's folder (by an
        engine's workers): adds ``files``, removes the ``removed`` URIs of the snapshot
        (mode "append"), or replaces every file (mode "overwrite"). Until this commit
        lands the files are in no version: a writer killed before it leaves orphans that
        `vacuum` deletes, and readers never see them."""
        from deltalake.transaction import AddAction, RemoveAction

        base, strict = self._base(parent)
        read = base.version()
        prefix = self.uri.rstrip("/") + "/"
        sizes = {}
        if removed:
            flat = pa.table(base.get_add_actions(flatten=True))
            sizes = dict(
                zip(
                    flat.column("path").to_pylist(),
                    flat.column("size_bytes").to_pylist(),
                    strict=True,
                )
            )
        now = int(datetime.now(UTC).timestamp() * 1000)
        actions: list[Any] = [AddAction(f.path, f.size, {}, now, True, f.stats) for f in files]
        for uri in removed:
            path = uri.removeprefix(prefix)
            actions.append(RemoveAction(path, True, now, sizes.get(path)))
        props, token = self._props(run_id, content, strict=strict)
        try:
            base.create_write_transaction(actions, mode, base.schema(), commit_properties=props)
        except _dl().exceptions.CommitFailedError as exc:
            raise self._conflict(exc) from exc
        return read + 1 if strict else self._landed(token, read)

    def merge(
        self,
        data: pa.Table,
        keys: list[str],
        run_id: str,
        prune: str = "",
        *,
        parent: int | None = None,
        content: ContentHash | None = None,
    ) -> int:
        """Replace rows matching ``keys`` and insert the rest, in one commit."""
        predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        if prune:
            predicate += f" AND {prune}"
        base, strict = self._base(parent)
        read = base.version()
        props, token = self._props(run_id, content, strict=strict)
        try:
            (
                base.merge(
                    data,
                    predicate=predicate,
                    source_alias="s",
                    target_alias="t",
                    commit_properties=props,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        except _dl().exceptions.CommitFailedError as exc:
            raise self._conflict(exc) from exc
        return read + 1 if strict else self._landed(token, read)

    def optimize(self, sort_by: list[str], run_id: str) -> int | None:
        """Rewrite small files into large ones sorted by ``sort_by``; None if nothing changed.

        The rows stay the same: the commit is marked as not changing data.
        """
        dt = self.table()
        before = dt.version()
        if len(dt.file_uris()) <= 1:  # z_order would rewrite a lone file for nothing
            return None
        props, token = self._props(run_id)
        dt.optimize.z_order(sort_by, commit_properties=props)
        landed = self._landed(token, before)
        return None if landed == before else landed

    def restore(self, version: int, run_id: str) -> int:
        """Commit a new version whose files are exactly those of ``version``."""
        dt = self.table()
        before = dt.version()
        props, token = self._props(run_id)
        try:
            dt.restore(version, commit_properties=props)
        except _dl().exceptions.CommitFailedError as exc:
            raise self._conflict(exc) from exc
        return self._landed(token, before)

    def vacuum(self, retention_hours: int, keep: list[int], dry_run: bool) -> list[str]:
        """Delete files no longer referenced by the latest version nor by ``keep`` versions,
        once older than the retention; returns the files (to be) deleted.

        Files no commit ever named (a writer killed after writing its files, before its
        commit) go too: Delta's "full" vacuum, which dates them by their modification time.
        On object storage, where no lock keeps writers out, that needs a retention of an
        hour or more, so a write in flight never loses its files before it commits."""
        return list(
            self.table().vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                keep_versions=keep,
                full=not self.remote or retention_hours >= 1,
            )
        )

    def add_columns(self, fields: list[pa.Field], run_id: str) -> int:
        from deltalake.schema import Field as DeltaField

        dt = self.table()
        before = dt.version()
        props, token = self._props(run_id)
        dt.alter.add_columns([DeltaField.from_arrow(f) for f in fields], commit_properties=props)
        return self._landed(token, before)


def group_table_path(root: str | Path, group: str, major: int) -> Path:
    return Path(root) / group / f"v{major}"


def group_table_uri(storage: Storage, group: str, major: int) -> str:
    """Where a group major version's table lives under ``storage``'s root."""
    return storage.uri(group, f"v{major}")
