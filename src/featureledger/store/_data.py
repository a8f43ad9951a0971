"""Writing and reading feature data: ingest with contracts (write-audit-publish),
quarantine, compaction and time-travel reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featureledger.contracts import Distribution, ValidationReport, evaluate
from featureledger.definitions import FeatureGroup
from featureledger.definitions.contract import Contract, NotNull
from featureledger.errors import DataError, NotFoundError
from featureledger.hashing import ContentHash
from featureledger.offline import DeltaGroupTable
from featureledger.offline.base import OfflineEngine
from featureledger.offline.conform import NaivePolicy, conform_parts, to_arrow
from featureledger.offline.faults import FAILED_RULES_COLUMN, RowFaults
from featureledger.registry import DataVersion, RegistryBackend, RunRecord, ValidationRecord
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.versioning.provenance import current_user
from featureledger.versioning.writer import MODES, Mode, rebuild_content, write_with_retry

#: extra columns of quarantined rows: the run that held them back, and when
QUARANTINE_RUN = "__fl_run"


QUARANTINE_AT = "__fl_quarantined_at"


@dataclass(frozen=True)
class _Gate:
    """A batch after its contract check: what to publish and what to hold back."""

    publish: pa.Table
    held: pa.Table | None
    report: ValidationReport | None
    status: str
    rows_in: int
    rejected_path: str | None = None

    @property
    def rows_held(self) -> int:
        return 0 if self.held is None else self.held.num_rows


class DataService:
    """Ingest (write-audit-publish), quarantine, compaction and reads."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        repo: Path,
        naive: NaivePolicy,
        files: StoreFiles,
    ) -> None:
        self.files = files
        self.registry = registry
        self.engine = engine
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.repo = repo
        self._naive = naive

    def ingest(
        self,
        group: str | FeatureGroup,
        data: Any,
        *,
        mode: Mode = "upsert",
        version: int | None = None,
        note: str = "",
    ) -> DataVersion:
        """Write a batch as one atomic data version and return its record.

        ``upsert`` replaces stored rows with the same key and event time when the
        batch's created_time is not older; ``append`` refuses such rows; ``overwrite``
        replaces the whole table. Re-ingesting data already stored creates no version
        and returns the current one.
        """
        if mode not in MODES:
            raise DataError(f"mode must be one of {MODES}, got {mode!r}")
        fg = self.catalog.get_feature_group(group, version)
        major = fg.version or 1
        where = f"ingest into feature_group/{fg.name}@v{major}"
        faults = RowFaults(where)
        table_in = to_arrow(
            data,
            where=where,
            column_types={c.name: c.arrow_type for c in fg.columns},
            faults=faults,
        )
        now = datetime.now(UTC)
        optional, notes = self.added_columns(fg)
        parts = conform_parts(
            table_in,
            fg,
            where=where,
            naive=self._naive,
            fill_created=pa.scalar(now, pa.timestamp("us", tz="UTC")),
            optional=optional,
            notes=notes,
            faults=faults,
        )
        if parts.problems:
            # the file's other faults come in the same message, so one fix-up round does
            parts.raise_problems(where, self._contract_faults(fg, parts.partial))
        assert parts.table is not None
        batch = parts.table
        user = current_user()
        run = self.runs.start(
            "ingest",
            user,
            {"group": fg.name, "major": major, "mode": mode, "rows": batch.num_rows, "note": note},
        )
        held = 0
        if faults:
            batch, held = self.hold_faulty_rows(fg, batch, faults, run, user)
        return self.commit_batch(fg, batch, mode, note, run, user, held=held)

    def hold_faulty_rows(
        self, fg: FeatureGroup, batch: pa.Table, faults: RowFaults, run: RunRecord, user: str
    ) -> tuple[pa.Table, int]:
        """Rows that cannot be stored (null keys, unparseable values, bad times): under a
        quarantine policy they are held back with their reasons and the good rows are
        returned; otherwise the whole batch is kept under ``rejected/`` and refused."""
        major = fg.version or 1
        if fg.policy == "quarantine":
            good, held = faults.split(batch, fg.arrow_schema)
            try:
                # held rows are made durable before anything is published: none is lost
                self.quarantine_rows(fg, held, run.id)
            except Exception as exc:
                self.runs.finish(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
                raise
            return good, held.num_rows
        path = self.files.rejected_uri(fg.name, major, run.id)
        try:
            self.files.write_parquet(faults.annotated(batch), path)
        except Exception as exc:
            self.runs.finish(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        rows = int(faults.mask(batch.num_rows).sum())
        error = faults.error(
            f" Nothing was written; the whole batch ({batch.num_rows} rows, {rows} at fault) "
            f"is kept at {path} with the reasons in column {FAILED_RULES_COLUMN!r} (policy "
            f"{fg.policy}). Fix those rows and ingest again, or set policy='quarantine' to "
            "publish the good rows and hold back the others."
        )
        self.runs.finish(run.id, "rejected", [], error=str(error))
        self.registry.audit(
            user,
            "reject",
            str(fg.identity(major)),
            {"rows": batch.num_rows, "faulty_rows": rows, "run": run.id, "kept_at": str(path)},
        )
        raise error

    def added_columns(self, fg: FeatureGroup) -> tuple[list[str], dict[str, str]]:
        """Feature columns a minor version of this major added, split into those a batch
        may leave out (stored as null) and notes for those it may not (the contract
        says not null)."""
        major = fg.version or 1
        history = [
            d for d in self.registry.definitions("feature_group", fg.name) if d.major == major
        ]
        if len(history) < 2:
            return [], {}
        first = {f["name"] for f in history[0].spec.get("features", [])}
        since: dict[str, str] = {}
        for record in history[1:]:
            for f in record.spec.get("features", []):
                since.setdefault(f["name"], record.semver)
        not_null = _not_null_columns(fg)
        optional: list[str] = []
        notes: dict[str, str] = {}
        for name in fg.feature_names:
            if name in first or name not in since:
                continue
            if name in not_null:
                notes[name] = (
                    f"added in {since[name]}, and the contract says it may not be null, so "
                    "every batch must carry it"
                )
            else:
                optional.append(name)
        return optional, notes

    def _contract_faults(self, fg: FeatureGroup, partial: pa.Table) -> list[str]:
        """The contract's error-severity failures on the columns that did conform."""
        if fg.contract is None or partial.num_rows == 0:
            return []
        contract = _restricted(fg.contract, set(partial.column_names))
        if contract is None:
            return []
        try:
            report = evaluate(contract, partial, now=datetime.now(UTC), engine=self.engine)
        except DataError:  # a rule that cannot run on a partial batch says nothing here
            return []
        return [f"contract: {r.describe()}" for r in report.errors]

    def commit_batch(
        self,
        fg: FeatureGroup,
        batch: pa.Table,
        mode: Mode,
        note: str,
        run: RunRecord,
        user: str,
        *,
        held: int = 0,
    ) -> DataVersion:
        """Check a conformed batch against the group's contract, write what may be
        published under the table lock, and record it all; finishes ``run``. ``held``
        counts rows of the input already quarantined for row faults."""
        major = fg.version or 1
        where = f"ingest into feature_group/{fg.name}@v{major}"
        table = self.tables.table(fg.name, major)
        if batch.num_rows == 0:  # every row was held for a row fault: no contract to judge
            gate = _Gate(batch, None, None, "unchecked", 0)
        else:
            gate = self.apply_contract(fg, batch, run, user, where)
        batch = gate.publish
        try:
            if gate.held is not None and gate.held.num_rows:
                # held rows are made durable before anything is published: none is lost
                self.quarantine_rows(fg, gate.held, run.id)
            if batch.num_rows == 0:
                parent = self.records.latest(fg.name, major)
                self.record_validation(fg, run, gate, None)
                self.runs.finish(run.id, "quarantined", [])
                self.registry.audit(
                    user,
                    "quarantine",
                    str(fg.identity(major)),
                    {"rows": gate.rows_held + held, "run": run.id},
                )
                return parent
            # local disk: writers queue on the table lock. Object storage: the lock is a
            # no-op; each try is pinned to land right after its parent, and a lost race
            # is redone from the new head (versioning.writer.write_with_retry)
            with table.lock():

                def head() -> tuple[int, ContentHash]:
                    self.records.sync(fg, table)
                    return self.records.head(fg, table)

                out, parent_content = write_with_retry(
                    table, self.engine, fg, batch, mode, run_id=run.id, where=where, parent=head
                )
                assert out.parent is not None
                if out.version is None:
                    parent = self.registry.data_version(
                        fg.name, major, out.parent
                    ) or self.records.latest(fg.name, major)
                    self.record_validation(fg, run, gate, parent.version)
                    self.runs.finish(run.id, "unchanged", [str(parent.identity)])
                    return parent
                if out.version == out.parent + 1:
                    content = parent_content + out.added - out.removed
                else:  # someone committed outside featureledger in between: recount
                    self.records.sync(fg, table, below=out.version)
                    content = rebuild_content(table, out.version)
                detail = []
                if out.duplicates_dropped:
                    detail.append(f"{out.duplicates_dropped} in-batch duplicate(s) superseded")
                if out.superseded:
                    detail.append(f"{out.superseded} row(s) older than stored ones skipped")
                if out.unchanged:
                    detail.append(f"{out.unchanged} row(s) already stored")
                if out.attempts > 1:
                    detail.append(f"written again after {out.attempts - 1} lost commit race(s)")
                record = self.records.record(
                    fg,
                    table,
                    out.version,
                    out.operation,
                    content,
                    run.id,
                    files=out.files,
                    added=out.added.rows,
                    removed=out.removed.rows,
                    note="; ".join([note, *detail]) if note else "; ".join(detail),
                    user=user,
                    # the entry commits with the version row: no version without its entry
                    action=run.kind,
                    details={
                        "mode": mode,
                        "rows": batch.num_rows,
                        "run": run.id,
                        "validation": gate.status,
                        "quarantined": gate.rows_held + held,
                    },
                )
        except Exception as exc:
            self.runs.finish(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        self.record_validation(fg, run, gate, record.version)
        self.runs.finish(run.id, "succeeded", [str(record.identity)])
        return record

    def apply_contract(
        self, fg: FeatureGroup, batch: pa.Table, run: RunRecord, user: str, where: str
    ) -> _Gate:
        """Evaluate the contract and split the batch by the group's policy.

        strict rejects the batch on any error; quarantine holds back the failing rows
        (or rejects, when a rule judges the batch as a whole); warn publishes all. A
        rejected batch is kept as Parquet beside the run record, so nothing is lost.
        """
        if fg.contract is None:
            return _Gate(batch, None, None, "unchecked", batch.num_rows)
        reference = self._contract_reference(fg)
        report = evaluate(
            fg.contract, batch, now=datetime.now(UTC), reference=reference, engine=self.engine
        )
        if report.ok:
            return _Gate(batch, None, report, "passed", batch.num_rows)
        if fg.policy == "warn":
            return _Gate(batch, None, report, "warned", batch.num_rows)
        if fg.policy == "quarantine" and report.splittable:
            valid, invalid = report.split(batch)
            return _Gate(valid, invalid, report, "quarantined", batch.num_rows)
        major = fg.version or 1
        path = self.files.rejected_uri(fg.name, major, run.id)
        self.files.write_parquet(batch, path)
        gate = _Gate(
            batch.slice(0, 0), None, report, "rejected", batch.num_rows, rejected_path=str(path)
        )
        self.record_validation(fg, run, gate, None)
        message = f"{where} (policy {fg.policy}; the batch is kept at {path})"
        self.runs.finish(run.id, "rejected", [], error=f"contract violated: {message}")
        self.registry.audit(
            user,
            "reject",
            str(fg.identity(major)),
            {"rows": batch.num_rows, "run": run.id, "kept_at": str(path)},
        )
        report.raise_for_errors(message)
        raise AssertionError("unreachable: a failed report raises")  # pragma: no cover

    def _contract_reference(self, fg: FeatureGroup) -> pa.Table | None:
        """The latest published data, for distribution rules (None when there are none)."""
        assert fg.contract is not None
        columns = sorted({r.column for r in fg.contract.all_rules if isinstance(r, Distribution)})
        if not columns:
            return None
        major = fg.version or 1
        latest = self.registry.data_versions(fg.name, major)
        if not latest or latest[-1].rows == 0:
            return None
        return self.tables.table(fg.name, major).read(latest[-1].version, columns)

    def record_validation(
        self, fg: FeatureGroup, run: RunRecord, gate: _Gate, version: int | None
    ) -> None:
        if gate.report is None:
            return
        self.registry.add_validation(
            ValidationRecord(
                run_id=run.id,
                group=fg.name,
                major=fg.version or 1,
                version=version,
                status=gate.status,
                policy=fg.policy,
                rows_in=gate.rows_in,
                rows_published=gate.publish.num_rows,
                rows_quarantined=gate.rows_held,
                report=gate.report.to_dict(),
                rejected_path=gate.rejected_path,
                created_at=datetime.now(UTC),
            )
        )

    def _quarantine_table(self, fg: FeatureGroup) -> DeltaGroupTable:
        return self.tables.quarantine(fg.name, fg.version or 1)

    def quarantine_rows(self, fg: FeatureGroup, rows: pa.Table, run_id: str) -> None:
        n = rows.num_rows
        held = rows.append_column(QUARANTINE_RUN, pa.array([run_id] * n, pa.string()))
        held = held.append_column(
            QUARANTINE_AT, pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC"))
        )
        held = held.cast(pa.schema([f.with_nullable(True) for f in held.schema]))
        table = self._quarantine_table(fg)
        with table.lock():
            if not table.exists():
                table.create(held.schema, run_id)
            table.append(held, run_id, schema_mode="merge")

    def quarantined(
        self, group: str | FeatureGroup, *, run: str | None = None, major: int | None = None
    ) -> pa.Table:
        """Rows held back by the quarantine policy, with the rules each failed and its run."""
        fg = self.catalog.get_feature_group(group, major)
        table = self._quarantine_table(fg)
        if not table.exists():
            return pa.table({})
        rows = table.read(table.latest_version())
        if run is not None:
            rows = rows.filter(pc.equal(rows.column(QUARANTINE_RUN), run))
        return rows

    def resolve_quarantine(
        self,
        group: str | FeatureGroup,
        *,
        run: str | None = None,
        reason: str = "",
        major: int | None = None,
    ) -> int:
        """Remove held rows (of one run, or all) once fixed and re-ingested; returns how many.

        The quarantine is a Delta table, so the removed rows stay readable in its history.
        """
        fg = self.catalog.get_feature_group(group, major)
        if run is not None:
            try:
                run = str(uuid.UUID(run))
            except ValueError:
                raise DataError(f"{run!r} is not a run id (a UUID)") from None
        table = self._quarantine_table(fg)
        if not table.exists():
            return 0
        with table.lock():
            before = table.read(table.latest_version(), [QUARANTINE_RUN])
            if run is not None:
                count = pc.sum(pc.equal(before.column(QUARANTINE_RUN), run))
                n = int(count.as_py() or 0)
            else:
                n = before.num_rows
            if n:
                table.delete(None if run is None else f"{QUARANTINE_RUN} = '{run}'")
        self.registry.audit(
            current_user(),
            "resolve-quarantine",
            str(fg.identity(major)),
            {"run": run, "rows": n, "reason": reason},
        )
        return n

    def validations(
        self, group: str | FeatureGroup, *, version: int | None = None, major: int | None = None
    ) -> list[ValidationRecord]:
        """Contract reports of a group's ingests (of one data version when given)."""
        fg = self.catalog.get_feature_group(group, major)
        return self.registry.validations(fg.name, fg.version or 1, version)

    def check_contract(
        self, group: str | FeatureGroup, *, major: int | None = None
    ) -> ValidationReport:
        """Evaluate the group's contract on its current data (what CI runs)."""
        fg = self.catalog.get_feature_group(group, major)
        if fg.contract is None:
            raise NotFoundError(f"feature group {fg.name!r} has no contract")
        data = self.read(fg)
        return evaluate(
            fg.contract, data, now=datetime.now(UTC), reference=None, engine=self.engine
        )

    def compact(self, group: str | FeatureGroup, *, version: int | None = None) -> DataVersion:
        """Rewrite a group's files into fewer, key-sorted ones: a new version, same content."""
        fg = self.catalog.get_feature_group(group, version)
        major = fg.version or 1
        table = self.tables.table(fg.name, major)
        user = current_user()
        run = self.runs.start("compact", user, {"group": fg.name, "major": major})
        with table.lock():
            self.records.sync(fg, table)
            parent = self.records.latest(fg.name, major)
            files_before = len(table.files(parent.version))
            new = table.optimize(list(fg.primary_key), run.id)
            if new is None:
                self.runs.finish(run.id, "unchanged", [str(parent.identity)])
                return parent
            # on object storage another writer's commit may have landed in between, and
            # the compaction commit then holds its rows too: recount
            same = new == parent.version + 1 or not table.remote
            record = self.records.record(
                fg,
                table,
                new,
                "compact",
                parent.content if same else rebuild_content(table, new),
                run.id,
                user=user,
                note=f"{files_before} files rewritten as {len(table.files(new))}, sorted by "
                f"{', '.join(fg.primary_key)}",
                details={"run": run.id},
            )
        self.runs.finish(run.id, "succeeded", [str(record.identity)])
        return record

    def read(
        self,
        group: str | FeatureGroup,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
        major: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The rows of one data version: ``version`` by number, or the one current ``as_of``."""
        fg = self.catalog.get_feature_group(group, major)
        m = fg.version or 1
        resolved = self.records.resolve(fg, version, as_of)
        self.records.check_files(fg, resolved)
        return self.tables.table(fg.name, m).read(resolved, list(columns) if columns else None)


def _not_null_columns(fg: FeatureGroup) -> set[str]:
    """Columns the group's contract refuses nulls in (error severity)."""
    if fg.contract is None:
        return set()
    return {
        r.column for r in fg.contract.all_rules if isinstance(r, NotNull) and r.severity == "error"
    }


def _restricted(contract: Contract, present: set[str]) -> Contract | None:
    """The contract's rules that read only ``present`` columns (distribution rules and
    SLOs left out: they judge published data, not a refused batch)."""
    columns = [c for c in contract.columns if c.name in present]  # type: ignore[union-attr]
    key = contract.key if set(contract.key) <= present else ()
    rules = [
        r
        for r in contract.rules
        if not isinstance(r, Distribution)
        and set(r.columns) <= present
        # a SQL check may name any column: only run it on a batch that has them all
        and (r.kind != "check" or set(contract.column_names) <= present)
        and (r.columns or key or r.kind != "unique")
    ]
    if not rules and not columns:
        return None
    return Contract(dataset=contract.dataset, columns=columns, rules=rules, key=key)
