"""Diffs, rollback, integrity checks, pointer files, vacuum and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from featureledger.definitions import FeatureGroup, VersionId
from featureledger.errors import DataError, FeatureLedgerError, IntegrityError, NotFoundError
from featureledger.hashing import ContentHash, content_hash
from featureledger.offline.base import OfflineEngine
from featureledger.registry import AuditEntry, DataVersion, RegistryBackend
from featureledger.storage import is_remote
from featureledger.store._auditkey import rotate_audit_key
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._definitions import DefinitionService
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._specs import group_from_spec
from featureledger.store._tables import Tables
from featureledger.store._training import TrainingService
from featureledger.versioning.diff import ColumnStats, DataDiff
from featureledger.versioning.integrity import VerifyReport, recorded_files
from featureledger.versioning.pointer import pointer_path, read_pointer, write_pointer
from featureledger.versioning.provenance import current_user
from featureledger.versioning.writer import rebuild_content


class VacuumResult(dict[str, list[str]]):
    """Per table, the files vacuum deleted (or would delete, on a dry run).

    ``pinned``: per table, the data versions kept because pointer files name them (version
    -> the files), or with ``forced``, the ones that were not kept although files name them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pinned: dict[str, dict[int, list[str]]] = {}
        self.forced = False


class VersionService:
    """Diffs, rollback, verification, pointer files, vacuum and the audit trail."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        tables: Tables,
        catalog: Catalog,
        definitions: DefinitionService,
        records: VersionRecords,
        runs: Runs,
        data: DataService,
        training: TrainingService,
        repo: Path,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.tables = tables
        self.catalog = catalog
        self.definitions = definitions
        self.records = records
        self.runs = runs
        self.data = data
        self.training = training
        self.repo = repo

    def diff(
        self,
        group: str | FeatureGroup,
        old: int,
        new: int | None = None,
        *,
        major: int | None = None,
    ) -> DataDiff:
        """Schema, row and statistics differences between data versions ``old`` and ``new``."""
        fg = self.catalog.get_feature_group(group, major)
        m = fg.version or 1
        new = self.records.resolve(fg, new, None)
        old = self.records.resolve(fg, old, None)
        table = self.tables.table(fg.name, m)
        for v in (old, new):
            self.records.check_files(fg, v)
        a_schema, b_schema = table.schema(old), table.schema(new)
        raw = self.engine.diff(
            (table.files(old), a_schema), (table.files(new), b_schema), fg.unique_key
        )
        result = DataDiff(
            group=fg.name,
            old=str(VersionId("feature_group", fg.name, m, old)),
            new=str(VersionId("feature_group", fg.name, m, new)),
            columns_added=[c for c in b_schema.names if c not in a_schema.names],
            columns_removed=[c for c in a_schema.names if c not in b_schema.names],
            columns_retyped={
                c: (str(a_schema.field(c).type), str(b_schema.field(c).type))
                for c in b_schema.names
                if c in a_schema.names and a_schema.field(c).type != b_schema.field(c).type
            },
            added=raw["added"],  # type: ignore[arg-type]
            removed=raw["removed"],  # type: ignore[arg-type]
            changed=raw["changed"],  # type: ignore[arg-type]
            unchanged=raw["unchanged"],  # type: ignore[arg-type]
            changed_by_column=raw["changed_by_column"],  # type: ignore[arg-type]
            examples=raw["examples"],  # type: ignore[arg-type]
        )
        stats: dict[str, dict[str, dict[str, Any]]] = raw["stats"]  # type: ignore[assignment]
        result.stats_old = {k: ColumnStats(**v) for k, v in stats["old"].items()}
        result.stats_new = {k: ColumnStats(**v) for k, v in stats["new"].items()}
        result.rows_old = result.removed + result.changed + result.unchanged
        result.rows_new = result.added + result.changed + result.unchanged
        return result

    def rollback(
        self,
        group: str | FeatureGroup,
        *,
        to: int,
        reason: str = "",
        major: int | None = None,
    ) -> DataVersion:
        """A new data version whose content equals version ``to``; nothing is deleted."""
        fg = self.catalog.get_feature_group(group, major)
        m = fg.version or 1
        table = self.tables.table(fg.name, m)
        user = current_user()
        target = self.records.resolve(fg, to, None)
        self.records.check_files(fg, target)
        record_to = self.registry.data_version(fg.name, m, target)
        assert record_to is not None
        run = self.runs.start(
            "rollback", user, {"group": fg.name, "major": m, "to": target, "reason": reason}
        )
        with table.lock():
            self.records.sync(fg, table)
            records = self.registry.data_versions(fg.name, m)
            version = table.restore(target, run.id)
            content = record_to.content
            if table.remote and version != records[-1].version + 1:
                # another writer's commit landed before the restore on object storage,
                # and Delta rebased the restore onto it: count what it holds
                self.records.sync(fg, table, below=version)
                content = rebuild_content(table, version)
            # the restored files were checksummed by the commits that first added them
            known = recorded_files(r.files for r in records)
            files = {
                p: dict(known[p]) for p in self.records.snapshot_paths(table, version) if p in known
            }
            record = self.records.record(
                fg,
                table,
                version,
                "rollback",
                content,
                run.id,
                files=files,
                added=record_to.rows,
                removed=records[-1].rows,
                user=user,
                note=f"rollback to #{target}" + (f": {reason}" if reason else ""),
                details={"to": target, "reason": reason, "run": run.id},
            )
            # the restored snapshot has the schema of its time; bring it back to the definition
            self.definitions.evolve_storage(fg, table, run.id)
        self.runs.finish(run.id, "succeeded", [str(record.identity)])
        return self.registry.data_versions(fg.name, m)[-1]

    def verify(self, identity: str | VersionId | None = None) -> list[VerifyReport]:
        """Re-hash files and rows of data versions (all latest versions when no identity).

        A data version checks its files' SHA-256 and recomputes its content hash; a
        group identity without ``#N`` checks every version; a training dataset rebuilds
        its rows from its pins and entity frame and compares the content hash.
        """
        if identity is None:
            reports = []
            for rec in self.registry.definitions("feature_group"):
                fg = group_from_spec(rec.spec, rec.major)
                try:
                    latest = self.registry.data_versions(fg.name, rec.major)
                except IntegrityError as exc:  # a corrupt registry row: report it, go on
                    ident = VersionId("feature_group", fg.name, rec.major)
                    reports.append(VerifyReport(str(ident), problems=[str(exc)]))
                    continue
                if latest and rec == self.registry.latest_definition(
                    "feature_group", fg.name, rec.major
                ):
                    reports.append(self.verify_version(fg, latest[-1].version))
            return reports
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind == "training_dataset":
            return [self._verify_training(ident)]
        if ident.kind != "feature_group":
            raise NotFoundError(f"{ident.kind} identities have no stored data to verify")
        fg = self.catalog.get_feature_group(ident.name, ident.major)
        if ident.data is not None:
            return [self.verify_version(fg, ident.data)]
        try:
            versions = self.records.versions(fg)
        except IntegrityError as exc:
            return [VerifyReport(str(ident), problems=[str(exc)])]
        return [self.verify_version(fg, r.version) for r in versions]

    def verify_version(self, fg: FeatureGroup, version: int) -> VerifyReport:
        m = fg.version or 1
        ident = VersionId("feature_group", fg.name, m, version)
        report = VerifyReport(str(ident))
        try:
            record = self.registry.data_version(fg.name, m, version)
            self.registry.data_versions(fg.name, m)  # the file check reads every record
        except IntegrityError as exc:
            report.problems.append(str(exc))
            return report
        if record is None:
            report.problems.append("not recorded in the registry")
            return report
        table = self.tables.table(fg.name, m)
        report.checked_files = len(table.files(version))
        report.problems += self.records.check_files(fg, version, full=True)
        report.expected_hash = str(record.content)
        if not any("missing" in p for p in report.problems):
            try:
                actual = rebuild_content(table, version)
            except Exception as exc:  # a tampered file may not even parse
                report.problems.append(f"rows cannot be read: {exc}")
                return report
            report.actual_hash = str(actual)
            if actual != record.content:
                report.problems.append(
                    f"content hash {actual} differs from the recorded {record.content}"
                )
        return report

    def _verify_training(self, ident: VersionId) -> VerifyReport:
        record = self.training.record(ident)
        report = VerifyReport(str(record.identity), expected_hash=str(record.content))
        try:
            _, actual = self.training.rebuild(record, None)
        except FeatureLedgerError as exc:
            report.problems.append(f"cannot rebuild: {exc}")
            return report
        report.actual_hash = str(actual)
        if actual != record.content:
            report.problems.append(
                f"rebuilt rows hash to {actual}, not the recorded {record.content}"
            )
        return report

    def pin(self, identity: str | VersionId, path: str | Path) -> Path:
        """Write a pointer file for a data version or training dataset (DVC-style)."""
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind == "training_dataset":
            rec = self.training.record(ident)
            body: dict[str, Any] = {
                "identity": str(rec.identity),
                "content_hash": str(rec.content),
                "content": rec.content.to_dict(),
                "rows": rec.rows,
                "pins": {g: p["identity"] for g, p in rec.pins.items()},
                "entity_hash": rec.entity_hash,
                "entity_uri": rec.entity_path
                if is_remote(rec.entity_path)
                else Path(rec.entity_path).resolve().as_uri(),
                "repository": self.repo.as_uri(),
            }
        elif ident.kind == "feature_group":
            fg = self.catalog.get_feature_group(ident.name, ident.major)
            m = fg.version or 1
            number = self.records.resolve(fg, ident.data, None)
            dv = self.registry.data_version(fg.name, m, number)
            assert dv is not None
            table = self.tables.table(fg.name, m)
            known = recorded_files(
                r.files for r in self.registry.data_versions(fg.name, m) if r.version <= number
            )
            body = {
                "identity": str(dv.identity),
                "content_hash": str(dv.content),
                "content": dv.content.to_dict(),
                "rows": dv.rows,
                "schema_hash": dv.schema_hash,
                "storage_uri": table.uri if table.remote else table.path.resolve().as_uri(),
                "files": {
                    p: known[p]["sha256"]
                    for p in self.records.snapshot_paths(table, number)
                    if p in known
                },
                "repository": self.repo.as_uri(),
            }
        else:
            raise NotFoundError(
                f"only feature group data versions and training datasets can be "
                f"pinned, not {ident.kind}"
            )
        # registered before the file exists: a crash in between leaves a pin without a
        # file (vacuum keeps a little more), never a file whose data vacuum may delete
        target = pointer_path(path).resolve()
        user = current_user()
        if ident.kind == "training_dataset":
            needed = [(g, p["major"], p["version"]) for g, p in rec.pins.items()]
        else:
            needed = [(fg.name, m, number)]
        for g, major, version in needed:
            self.registry.add_pin(g, major, version, str(target), body["identity"], user)
        return write_pointer(target, body)

    def unpin(self, pointer: str | Path, *, keep_file: bool = False) -> list[dict[str, Any]]:
        """Release what the pointer file at ``pointer`` pins, so vacuum may delete it once old
        enough; the file is removed too unless ``keep_file``. Returns the released pins."""
        target = pointer_path(pointer).resolve()
        # the file goes first: a crash in between leaves a pin without a file (vacuum keeps a
        # little more, and unpin again finishes), never a file whose data vacuum may delete
        if not keep_file:
            target.unlink(missing_ok=True)
        released = self.registry.remove_pins(str(target), current_user())
        if not released:
            raise NotFoundError(
                f"no pins registered for {target}; `featureledger pins` lists the pointer "
                "files the registry knows"
            )
        return released

    def checkout(self, pointer: str | Path, output: str | Path) -> VerifyReport:
        """Materialize the data a pointer file names into ``output`` (Parquet), verified.

        Raises `IntegrityError` and leaves no output file when the data's hash differs.
        """
        data = read_pointer(pointer)
        ident = VersionId.parse(data["identity"])
        expected = ContentHash.from_dict(data["content"]) if "content" in data else None
        out = Path(output)
        tmp = out.with_name(out.name + ".partial")
        if ident.kind == "training_dataset":
            _, actual = self.training.rebuild(self.training.record(ident), tmp)
        else:
            fg = self.catalog.get_feature_group(ident.name, ident.major)
            assert ident.data is not None
            self.records.check_files(fg, ident.data)
            table = self.data.read(fg, version=ident.data)
            actual = content_hash(table)
            pq.write_table(table, tmp)
        report = VerifyReport(
            str(ident), expected_hash=data["content_hash"], actual_hash=str(actual)
        )
        if str(actual) != data["content_hash"] or (expected is not None and actual != expected):
            tmp.unlink(missing_ok=True)
            raise IntegrityError(
                f"{ident}: the data hashes to {actual}, but {pointer} pins "
                f"{data['content_hash']}; nothing was written to {out}"
            )
        tmp.replace(out)
        return report

    def vacuum(
        self,
        *,
        older_than: timedelta,
        dry_run: bool = True,
        group: str | None = None,
        force: bool = False,
    ) -> VacuumResult:
        """Delete unreferenced data files older than ``older_than``; the only deletion.

        Files of the latest version, of every version a training dataset pins and of every
        version a pointer file names (`pin`) are kept; ``force`` drops the pointer files'
        protection (audited). Vacuum's own table commits are recorded as maintenance.
        """
        if older_than < timedelta(0):
            raise DataError("older_than must not be negative")
        pinned: dict[tuple[str, int], set[int]] = {}
        for view in {r.name for r in self.registry.definitions("feature_view")}:
            for td in self.registry.training_datasets(view):
                for g, p in td.pins.items():
                    pinned.setdefault((g, p["major"]), set()).add(p["version"])
        by_files: dict[tuple[str, int], dict[int, list[str]]] = {}
        for pin in self.registry.pins(group):
            paths = by_files.setdefault((pin["group"], pin["major"]), {})
            paths.setdefault(pin["version"], []).append(pin["path"])
        out = VacuumResult()
        out.forced = force
        user = current_user()
        for rec in self.registry.definitions("feature_group"):
            if group is not None and rec.name != group:
                continue
            table = self.tables.table(rec.name, rec.major)
            key = f"feature_group/{rec.name}@v{rec.major}"
            if key in out or not table.exists():
                continue
            files = by_files.get((rec.name, rec.major), {})
            keep = set(pinned.get((rec.name, rec.major), set()))
            if not force:
                keep |= set(files)
            out.pinned[key] = files
            with table.lock():
                before = table.latest_version()
                hours = int(older_than.total_seconds() // 3600)
                out[key] = table.vacuum(hours, sorted(keep), dry_run)
                if not dry_run:
                    self._record_maintenance(rec.name, rec.major, table, before, user)
            if not dry_run and (out[key] or (force and files)):
                details: dict[str, Any] = {"deleted": len(out[key]), "kept_versions": sorted(keep)}
                if force:
                    details["forced"] = True
                    details["pins_overridden"] = {str(v): p for v, p in sorted(files.items())}
                self.registry.audit(user, "vacuum", key, details)
        return out

    def _record_maintenance(
        self, group: str, major: int, table: Any, before: int, user: str
    ) -> None:
        # the vacuum's own commits (VACUUM START/END) change no data: recorded as maintenance,
        # so they are neither data versions nor "recovered" later
        for version in range(before + 1, table.latest_version() + 1):
            commit = table.commit(version)
            self.registry.add_maintenance(
                group, major, version, commit.operation.lower(), commit.run_id, user
            )

    def audit_log(self, identity: str | None = None) -> list[AuditEntry]:
        """The audit trail, oldest first; filtered to identities starting with ``identity``."""
        return self.registry.audit_log(identity)

    def audit_verify(self, against: dict[str, Any] | None = None) -> list[str]:
        """Problems in the keyed audit chain, the version rows it records, and against a
        head checkpoint (empty when intact)."""
        return self.registry.audit_verify(against=against)

    def audit_head(self) -> dict[str, Any]:
        """A signed checkpoint of the audit chain's newest entry, to keep elsewhere."""
        return self.registry.audit_head()

    def rotate_audit_key(self, reason: str = "") -> int:
        """Move the audit chain to a new key (file); returns how many entries were re-MAC-ed."""
        return rotate_audit_key(self.repo, self.registry, current_user(), reason)
