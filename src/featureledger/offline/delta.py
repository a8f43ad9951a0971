"""Feature-group storage on Delta Lake: one table per group definition major version.

Every commit carries ``featureledger.run`` in its commit metadata, so a commit can be
matched to the run that wrote it even if the process died before recording it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureledger.errors import ConcurrentWriteError, NotFoundError
from featureledger.hashing import file_sha256

if TYPE_CHECKING:
    from deltalake import CommitProperties, DeltaTable

# deltalake is imported by the methods that use it: the CLI's light commands (list, show)
# import this module through the store but never open a table

RUN_KEY = "featureledger.run"

#: table locks the current thread holds (lock path -> depth), so `lock` is re-entrant
_HELD = threading.local()


def _commit(run_id: str) -> CommitProperties:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={RUN_KEY: run_id})


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: datetime
    operation: str
    run_id: str | None
    added: list[dict[str, Any]]
    removed: list[str]


class DeltaGroupTable:
    """One feature group version's Delta table on local disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.uri = str(self.path)

    # -- lifecycle ------------------------------------------------------------------------------
    def exists(self) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri)

    def create(self, schema: pa.Schema, run_id: str) -> int:
        """Create the empty table (data version 0)."""
        from deltalake import DeltaTable

        self.path.mkdir(parents=True, exist_ok=True)
        DeltaTable.create(self.uri, schema, mode="error", commit_properties=_commit(run_id))
        return 0

    def table(self, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri, version=version)
        except TableNotFoundError as exc:
            raise NotFoundError(f"no Delta table at {self.uri}") from exc
        except Exception as exc:
            if version is not None and "version" in str(exc).lower():
                raise NotFoundError(
                    f"data version {version} does not exist in {self.uri} "
                    f"(latest is {self.latest_version()})"
                ) from exc
            raise

    def latest_version(self) -> int:
        from deltalake import DeltaTable

        return DeltaTable(self.uri).version()

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
        waiting when another thread or process holds the lock.
        """
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

    def read(self, version: int, columns: list[str] | None = None) -> pa.Table:
        return self.table(version).to_pyarrow_table(columns=columns)

    def commit(self, version: int) -> Commit:
        """What the commit of ``version`` added and removed, from its log entry."""
        log = self.path / "_delta_log" / f"{version:020d}.json"
        if not log.exists():
            raise NotFoundError(f"{self.uri}: no commit log for version {version}")
        info: dict[str, Any] = {}
        added: list[dict[str, Any]] = []
        removed: list[str] = []
        for line in log.read_text().splitlines():
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
        return Commit(version, ts, info.get("operation", "?"), run, added, removed)

    def commits(self) -> list[Commit]:
        latest = self.latest_version()
        return [self.commit(v) for v in range(latest + 1)]

    def checksums(self, added: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """SHA-256 and size of each added data file, keyed by its path in the table."""
        out = {}
        for a in added:
            path = self.path / a["path"]
            out[a["path"]] = {
                "sha256": file_sha256(str(path)),
                "size": a["size"],
                # lets reads trust an untouched file without re-hashing it
                "mtime_ns": path.stat().st_mtime_ns,
            }
        return out

    # -- writing --------------------------------------------------------------------------------
    def append(self, data: pa.Table, run_id: str, *, schema_mode: str | None = None) -> int:
        return self._write(data, "append", run_id, schema_mode=schema_mode)

    def delete(self, predicate: str | None) -> int:
        """Delete rows matching ``predicate`` (all without one) in a new version."""
        self.table().delete(predicate)
        return self.latest_version()

    def overwrite(self, data: pa.Table, run_id: str, *, schema_mode: str | None = None) -> int:
        return self._write(data, "overwrite", run_id, schema_mode=schema_mode)

    def _write(self, data: pa.Table, mode: str, run_id: str, schema_mode: str | None = None) -> int:
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError

        try:
            write_deltalake(  # type: ignore[call-overload]
                self.uri,
                data,
                mode=mode,
                schema_mode=schema_mode,
                commit_properties=_commit(run_id),
            )
        except CommitFailedError as exc:
            raise ConcurrentWriteError(
                f"{self.uri}: another writer committed first ({exc}); nothing was written by "
                "this call. Try again."
            ) from exc
        return self.latest_version()

    def merge(self, data: pa.Table, keys: list[str], run_id: str, prune: str = "") -> int:
        """Replace rows matching ``keys`` and insert the rest, in one commit."""
        from deltalake.exceptions import CommitFailedError

        predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        if prune:
            predicate += f" AND {prune}"
        try:
            (
                self.table()
                .merge(
                    data,
                    predicate=predicate,
                    source_alias="s",
                    target_alias="t",
                    commit_properties=_commit(run_id),
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        except CommitFailedError as exc:
            raise ConcurrentWriteError(
                f"{self.uri}: another writer committed first ({exc}); nothing was written by "
                "this call. Try again."
            ) from exc
        return self.latest_version()

    def optimize(self, sort_by: list[str], run_id: str) -> int | None:
        """Rewrite small files into large ones sorted by ``sort_by``; None if nothing changed.

        The rows stay the same: the commit is marked as not changing data.
        """
        before = self.latest_version()
        if len(self.files(before)) <= 1:  # z_order would rewrite a lone file for nothing
            return None
        self.table().optimize.z_order(sort_by, commit_properties=_commit(run_id))
        after = self.latest_version()
        return None if after == before else after

    def restore(self, version: int, run_id: str) -> int:
        """Commit a new version whose files are exactly those of ``version``."""
        from deltalake.exceptions import CommitFailedError

        try:
            self.table().restore(version, commit_properties=_commit(run_id))
        except CommitFailedError as exc:
            raise ConcurrentWriteError(
                f"{self.uri}: another writer committed first ({exc}); try again"
            ) from exc
        return self.latest_version()

    def vacuum(self, retention_hours: int, keep: list[int], dry_run: bool) -> list[str]:
        """Delete files no longer referenced by the latest version nor by ``keep`` versions,
        once older than the retention; returns the files (to be) deleted."""
        return list(
            self.table().vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                keep_versions=keep,
            )
        )

    def add_columns(self, fields: list[pa.Field], run_id: str) -> int:
        from deltalake.schema import Field as DeltaField

        self.table().alter.add_columns(
            [DeltaField.from_arrow(f) for f in fields],
            commit_properties=_commit(run_id),
        )
        return self.latest_version()


def group_table_path(root: str | Path, group: str, major: int) -> Path:
    return Path(root) / group / f"v{major}"
