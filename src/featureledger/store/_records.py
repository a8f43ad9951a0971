"""Data-version records: what each Delta commit of a feature group is in the books,
recovery of commits a dead writer left unrecorded, version resolution and file checks."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from featureledger.definitions import FeatureGroup, VersionId
from featureledger.errors import DataError, IntegrityError, MonitorBlockError, NotFoundError
from featureledger.hashing import ContentHash, schema_hash
from featureledger.lineage.privacy import PRIVATE, effective_classification
from featureledger.offline import DeltaGroupTable
from featureledger.offline.delta import Commit
from featureledger.registry import DataVersion, RegistryBackend
from featureledger.store import _describe as describe
from featureledger.store._catalog import Catalog
from featureledger.store._specs import group_from_spec
from featureledger.store._tables import Tables
from featureledger.versioning.integrity import check_files, recorded_files
from featureledger.versioning.provenance import current_user
from featureledger.versioning.writer import rebuild_content

#: Delta operations that commit no data change: recorded as maintenance, not data versions
MAINTENANCE = frozenset({"VACUUM START", "VACUUM END"})


def _writer_gone(writer: str | None) -> bool:
    """True when ``writer`` ("host:pid") ran on this host and that process has ended.

    A reused pid reads as alive, which only delays recovery until `recover_after`.
    """
    if not writer:
        return False
    host, _, pid = writer.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class VersionRecords:
    """The registry's view of each group table's commits."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        tables: Tables,
        catalog: Catalog,
        recover_after: timedelta = timedelta(minutes=15),
    ) -> None:
        self.registry = registry
        self.tables = tables
        self.catalog = catalog
        #: on object storage: the age at which an unrecorded commit is recovered even
        #: when its writer may still be alive on another machine
        self.recover_after = recover_after
        #: called with every data version once it is recorded (statistics on write)
        self.listeners: list[Callable[[DataVersion], None]] = []

    def versions(self, group: str | FeatureGroup, *, major: int | None = None) -> list[DataVersion]:
        """Every data version of a group's definition major version, oldest first."""
        fg = self.catalog.get_feature_group(group, major)
        self.sync(fg, self.tables.table(fg.name, fg.version or 1))
        return self.registry.data_versions(fg.name, fg.version or 1)

    def latest(self, group: str, major: int) -> DataVersion:
        versions = self.registry.data_versions(group, major)
        if not versions:
            raise NotFoundError(f"feature_group/{group}@v{major} has no data versions recorded")
        return versions[-1]

    def record(
        self,
        group: FeatureGroup,
        table: DeltaGroupTable,
        version: int,
        operation: str,
        content: ContentHash,
        run_id: str | None,
        *,
        files: dict[str, dict[str, Any]] | None = None,
        added: int = 0,
        removed: int = 0,
        note: str = "",
        user: str | None = None,
        action: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> DataVersion:
        """Record a committed version with its audit entry (``action``, default the
        operation, and ``details``), both in one registry transaction."""
        commit = table.commit(version)
        record = DataVersion(
            group=group.name,
            major=group.version or 1,
            version=version,
            operation=operation,
            rows=content.rows,
            rows_added=added,
            rows_removed=removed,
            content=content,
            schema_hash=schema_hash(table.schema(version)),
            files=files if files is not None else table.checksums(commit.added),
            run_id=run_id,
            user=user or current_user(),
            created_at=commit.timestamp,
            note=note,
        )
        try:
            self.registry.add_data_version(record, action=action, details=details)
        except Exception:
            # on object storage a reader may have recovered this commit just before its
            # writer recorded it (or two readers recovered it at once): same commit, same run
            found = self.registry.data_version(group.name, record.major, version)
            if found is None or found.run_id != run_id:
                raise
            return found
        for listener in self.listeners:
            listener(record)
        return record

    def sync(self, group: FeatureGroup, table: DeltaGroupTable, below: int | None = None) -> None:
        """Record Delta versions the registry lacks (a writer that died after committing).

        ``below`` stops before that version, which the caller is about to record itself.
        On local disk this happens when no live writer holds the table's lock; on object
        storage, where there is no lock, commit by commit as `recoverable` decides.
        """
        if not table.exists():
            return
        with table.lock(blocking=False) as locked:
            if not locked and not table.remote:
                # a live writer holds the table and records its own commit; recording it
                # here too would race with that writer
                return
            major = group.version or 1
            known = {v.version for v in self.registry.data_versions(group.name, major)}
            known |= set(self.registry.maintenance_versions(group.name, major))
            last = table.latest_version() if below is None else below - 1
            for version in range(last + 1):
                if version in known:
                    continue
                commit = table.commit(version)
                if table.remote and not self.recoverable(commit):
                    continue
                if commit.operation.upper() in MAINTENANCE:
                    # no data changed: a vacuum's bookkeeping commit, not a data version
                    self.registry.add_maintenance(
                        group.name,
                        major,
                        version,
                        commit.operation.lower(),
                        commit.run_id,
                        current_user(),
                    )
                    continue
                if commit.content is not None:  # the hash its writer computed and logged
                    content = commit.content
                else:
                    content = rebuild_content(table, version)
                self.record(
                    group,
                    table,
                    version,
                    commit.operation.lower(),
                    content,
                    commit.run_id,
                    note="recovered: committed to Delta but not recorded by its writer",
                    user=current_user(),
                    action="recovered",
                    details={"operation": commit.operation.lower(), "run": commit.run_id},
                )

    def recoverable(self, commit: Commit) -> bool:
        """Whether an unrecorded commit on object storage is safe to record here.

        No one else will record it when no run of this registry made it (a commit made
        outside featureledger), when its run is recorded as ended, or when the writing
        process ran on this host and is gone. A writer on another machine whose run is
        still open is presumed dead once the commit is `recover_after` old.
        """
        run = self.registry.run(commit.run_id) if commit.run_id else None
        if run is None or run.status != "running":
            return True
        if _writer_gone(commit.writer):
            return True
        return datetime.now(UTC) - commit.timestamp >= self.recover_after

    def head(self, group: FeatureGroup, table: DeltaGroupTable) -> tuple[int, ContentHash]:
        """The version a new write builds on and its content hash: the latest recorded
        one, or on object storage a newer commit that is not recorded yet (its writer is
        alive, or it is not old enough to recover), with the content hash that commit
        logged, else one counted from its rows."""
        major = group.version or 1
        latest = self.latest(group.name, major)
        # maintenance commits after the latest data version change no data: build on them
        maintenance = self.registry.maintenance_versions(group.name, major)
        top = latest.version
        while top + 1 in maintenance:
            top += 1
        if table.remote:
            head = table.latest_version()
            if head > top:
                logged = table.commit(head).content
                return head, logged if logged is not None else rebuild_content(table, head)
        return top, latest.content

    def resolve(self, fg: FeatureGroup, version: int | None, as_of: datetime | None) -> int:
        m = fg.version or 1
        if version is not None and as_of is not None:
            raise DataError("give either version= or as_of=, not both")
        self.sync(fg, self.tables.table(fg.name, m))
        records = self.registry.data_versions(fg.name, m)
        if version is not None:
            if not any(r.version == version for r in records):
                raise NotFoundError(
                    f"feature_group/{fg.name}@v{m}#{version} does not exist; versions are "
                    f"0..{records[-1].version if records else '?'}"
                )
            return version
        if as_of is not None:
            if as_of.tzinfo is None:
                raise DataError("as_of must be time-zone aware, e.g. datetime(..., tzinfo=UTC)")
            eligible = [r.version for r in records if r.created_at <= as_of]
            if not eligible:
                raise NotFoundError(
                    f"feature_group/{fg.name}@v{m} had no data version at {as_of.isoformat()}"
                )
            return eligible[-1]
        return records[-1].version

    def check_files(self, fg: FeatureGroup, version: int, *, full: bool = False) -> list[str]:
        """Compare a version's files with the checksums recorded at commit.

        Raises `IntegrityError` unless ``full`` (then the problems are returned), so no
        read uses a modified or missing file.
        """
        major = fg.version or 1
        table = self.tables.table(fg.name, major)
        records = [r for r in self.registry.data_versions(fg.name, major) if r.version <= version]
        snapshot = [uri[len(table.uri.rstrip("/")) + 1 :] for uri in table.files(version)]
        known = recorded_files(r.files for r in records)
        if table.remote and len(records) <= version:
            # on object storage a live writer's commit may be unrecorded for a moment while
            # later ones build on it: its files are hashed now, as recording it would
            have = {r.version for r in records}
            for pending in (v for v in range(version + 1) if v not in have):
                for path, entry in table.checksums(table.commit(pending).added).items():
                    known.setdefault(path, entry)
        problems = check_files(
            table.uri,
            snapshot,
            known,
            full=full,
            storage=table.storage,
        )
        if problems and not full:
            ident = VersionId("feature_group", fg.name, major, version)
            raise IntegrityError(
                f"{ident}: stored files do not match the checksums recorded at commit; nothing "
                "was read. " + "; ".join(problems) + ". Run `featureledger verify "
                f"{ident}` for a full check, and roll back to a good version."
            )
        return problems

    @staticmethod
    def snapshot_paths(table: DeltaGroupTable, version: int) -> list[str]:
        prefix = table.uri.rstrip("/") + "/"
        return [uri[len(prefix) :] for uri in table.files(version)]

    def check_blocks(
        self,
        where: str,
        groups: Sequence[str],
        *,
        views: Sequence[str] = (),
        models: Sequence[str] = (),
    ) -> None:
        """Refuse when an open blocking finding targets one of ``groups`` or ``views``
        (names) or ``models`` (``model/NAME/N`` identities)."""
        wanted = {("feature_group", g) for g in groups} | {("feature_view", v) for v in views}

        def hit(target: str) -> bool:
            ident = VersionId.parse(target)
            return (ident.kind, ident.name) in wanted or str(ident) in models

        blocking = [
            f for f in self.registry.open_findings() if f.get("blocking") and hit(str(f["target"]))
        ]
        if blocking:
            raise MonitorBlockError(where, blocking)

    def classification(self, fg: FeatureGroup) -> dict[str, str]:
        """Each private, derived or declassified column of ``fg`` -> why it is labelled so."""

        def lookup(name: str, major: int | None) -> FeatureGroup:
            rec = self.registry.get_definition("feature_group", name, major)
            return group_from_spec(rec.spec, rec.major)

        labels = effective_classification(fg, lookup)
        return {
            name: label.why(fg.name, name)
            for name, label in labels.items()
            if label.classification in PRIVATE or label.derived_from
        }

    def show(self, identity: str | VersionId) -> dict[str, Any]:
        """Everything recorded about one identity, as plain data."""
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind in ("entity", "feature_view"):
            major = None if ident.kind == "entity" else ident.major
            return describe.definition(
                ident, self.registry.get_definition(ident.kind, ident.name, major)
            )
        if ident.kind == "feature_group":
            rec = self.registry.get_definition("feature_group", ident.name, ident.major)
            fg = group_from_spec(rec.spec, rec.major)
            table = self.tables.table(fg.name, rec.major)
            self.sync(fg, table)
            versions = self.registry.data_versions(fg.name, rec.major)
            return describe.group(
                ident, rec, versions, table.uri, fg.scd_type, self.classification(fg)
            )
        if ident.kind == "training_dataset":
            records = self.registry.training_datasets(ident.name, ident.major)
            return describe.training_dataset(ident, records)
        if ident.kind == "run":
            found = self.registry.run(ident.name)
            if found is None:
                raise NotFoundError(f"{ident} is not recorded")
            return {
                k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(found).items()
            }
        raise NotFoundError(f"{ident.kind} identities are not recorded by this store yet")
