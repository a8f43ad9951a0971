"""`FeatureStore`: the one facade the CLI, the server and users call.

It resolves names to registered versions and delegates: definitions and change rules
to `definitions` and `versioning.compat`, commits to `versioning.writer`, storage to
`offline.delta`, computation to the offline engine, records to the registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featureledger.config import CONFIG_FILE, STATE_DIR, RepoConfig
from featureledger.contracts import (
    Distribution,
    ValidationReport,
    classify_contract_change,
    contract_from_yaml,
    contract_to_yaml,
    evaluate,
)
from featureledger.contracts.gates import Gate, evaluate_gates, summarize
from featureledger.contracts.licenses import license_problems, license_table
from featureledger.definitions import (
    Definition,
    Entity,
    FeatureGroup,
    FeatureView,
    FileSource,
    GroupSource,
    PythonTransform,
    SQLTransform,
    VersionId,
    ViewSource,
)
from featureledger.definitions.names import check_name
from featureledger.errors import (
    BreakingChangeError,
    ConfigError,
    DataError,
    DefinitionError,
    FeatureLedgerError,
    GateError,
    IntegrityError,
    LicenseError,
    NotFoundError,
    SchemaMismatchError,
)
from featureledger.hashing import (
    ContentHash,
    artifact_sha256,
    content_hash,
    definition_hash,
    schema_hash,
)
from featureledger.offline import ROW_COLUMN, DeltaGroupTable, DuckDBEngine, PitSource
from featureledger.offline.conform import NaivePolicy, conform_batch, conform_entities, to_arrow
from featureledger.registry import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RunRecord,
    SQLRegistry,
    TrainingDatasetRecord,
    ValidationRecord,
)
from featureledger.versioning import compat
from featureledger.versioning.diff import ColumnStats, DataDiff
from featureledger.versioning.integrity import VerifyReport, check_files, recorded_files
from featureledger.versioning.pointer import read_pointer, write_pointer
from featureledger.versioning.provenance import (
    current_user,
    environment,
    environment_hash,
    library_code_hash,
    pipeline_environment,
)
from featureledger.versioning.writer import MODES, Mode, rebuild_content, widen, write_batch

Action = Literal["create", "update", "unchanged", "refused"]
#: extra columns of quarantined rows: the run that held them back, and when
QUARANTINE_RUN = "__fl_run"
QUARANTINE_AT = "__fl_quarantined_at"


@dataclass
class PlanItem:
    """What `apply` would do to one definition."""

    identity: str
    action: Action
    before: str | None
    after: str | None
    level: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Plan:
    items: list[PlanItem] = field(default_factory=list)

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if i.action == "refused"]

    @property
    def changes(self) -> list[PlanItem]:
        return [i for i in self.items if i.action in ("create", "update")]


@dataclass
class TrainingData:
    """The result of `FeatureStore.training_data`: rows plus the record that pins them."""

    record: TrainingDatasetRecord
    _table: pa.Table | None = None

    @property
    def identity(self) -> VersionId:
        return self.record.identity

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            assert self.record.output_path is not None
            self._table = pq.read_table(self.record.output_path)
        return self._table

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def __len__(self) -> int:
        return self.record.rows


@dataclass(frozen=True)
class PipelineRun:
    """What one feature-pipeline run read and wrote."""

    run_id: str
    version: DataVersion
    inputs: list[str]
    rows: int


@dataclass
class ReproduceReport:
    """The reproducibility predicate, factor by factor, for one recorded run."""

    identity: str
    #: factor -> list of (item, recorded, current)
    factors: dict[str, list[tuple[str, str, str]]] = field(
        default_factory=lambda: {"data": [], "code": [], "environment": []}
    )
    output_expected: str | None = None
    output_actual: str | None = None
    output_note: str = ""

    def add(self, factor: str, item: str, recorded: str, current: str) -> None:
        self.factors[factor].append((item, recorded, current))

    def holds(self, factor: str) -> bool:
        return all(recorded == current for _, recorded, current in self.factors[factor])

    def differences(self, factor: str) -> list[tuple[str, str, str]]:
        return [t for t in self.factors[factor] if t[1] != t[2]]

    @property
    def reproducible(self) -> bool:
        """R = 1[data] x 1[code] x 1[environment]."""
        return all(self.holds(f) for f in ("data", "code", "environment"))

    @property
    def output_matches(self) -> bool | None:
        if self.output_actual is None:
            return None
        return self.output_actual == self.output_expected


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


@dataclass(frozen=True)
class _Window:
    table: pa.Table
    inputs: list[str]


@dataclass(frozen=True)
class _ModelMetrics:
    metrics_raw: dict[str, Any]


@dataclass(frozen=True)
class _JoinPlan:
    """A checked entity frame and the pinned snapshots it will be joined with."""

    entities: pa.Table
    timestamp_column: str | None
    sources: list[PitSource]
    pins: dict[str, dict[str, Any]]
    schema: pa.Schema


class FeatureStore:
    """A feature repository: definitions, versioned feature data and training sets.

    ``FeatureStore("path/to/repo")`` opens a repository made by `FeatureStore.init`
    or ``featureledger init``.
    """

    def __init__(self, repo: str | Path = ".", *, config: RepoConfig | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.config = config or RepoConfig.load(self.repo)
        self.registry = SQLRegistry(self.config.registry_url(self.repo))
        off = self.config.offline
        self.engine = DuckDBEngine(
            temp_directory=self.config.resolve(self.repo, off.temp_directory),
            memory_limit=off.memory_limit,
            threads=off.threads,
        )
        self._offline_root = self.config.resolve(self.repo, off.path)
        self._naive: NaivePolicy = "utc" if self.config.naive_timestamps == "utc" else "error"

    @classmethod
    def init(
        cls, repo: str | Path, *, project: str | None = None, exist_ok: bool = True
    ) -> FeatureStore:
        """Create a repository at ``repo`` (config file and state folder) and open it."""
        root = Path(repo)
        cfg_path = root / CONFIG_FILE
        if cfg_path.exists():
            if not exist_ok:
                raise ConfigError(f"{cfg_path} exists already; open it with FeatureStore(repo)")
            return cls(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / STATE_DIR).mkdir(exist_ok=True)
        config = RepoConfig(project=project or root.resolve().name or "default")
        cfg_path.write_text(
            "# featureledger repository settings; every key is optional.\n" + config.to_yaml()
        )
        return cls(root)

    # -- definitions -----------------------------------------------------------------------------
    def plan(self, objects: Iterable[Definition]) -> Plan:
        """What `apply` would change, without changing anything."""
        return self._plan(list(objects))[0]

    def apply(self, objects: Iterable[Definition]) -> Plan:
        """Register definitions, versioning each change; all or nothing.

        Raises `BreakingChangeError` (and applies nothing) when any change is breaking
        for an existing version.
        """
        # two processes applying at once would both plan "create" and collide; under the
        # lock the second plans against what the first recorded
        with self._apply_lock():
            return self._apply(list(objects))

    @contextlib.contextmanager
    def _apply_lock(self) -> Iterator[None]:
        path = self.repo / STATE_DIR / "apply.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _apply(self, objects: list[Definition]) -> Plan:
        plan, staged = self._plan(objects)
        for item in plan.items:
            if item.action == "refused":
                major = int(item.identity.rsplit("@v", 1)[-1]) if "@v" in item.identity else 1
                reasons = [
                    r.removesuffix(" [major]") for r in item.reasons if r.endswith("[major]")
                ]
                raise BreakingChangeError(item.identity, reasons, major + 1)
        user = current_user()
        for item, (kind, spec, target) in zip(plan.items, staged, strict=True):
            if item.action not in ("create", "update"):
                continue
            major, minor, patch = target
            record = DefinitionRecord(
                kind=kind,
                name=spec["name"],
                major=major,
                minor=minor,
                patch=patch,
                spec=spec,
                spec_hash=definition_hash(spec),
                created_at=datetime.now(UTC),
                created_by=user,
                reasons=item.reasons,
            )
            if kind == "feature_group":
                self._prepare_group_storage(record, item)
            self.registry.add_definition(record)
            self.registry.audit(
                user, "apply", item.identity, {"version": record.semver, "reasons": item.reasons}
            )
        return plan

    def _plan(
        self, objects: list[Definition]
    ) -> tuple[Plan, list[tuple[str, dict[str, Any], tuple[int, int, int]]]]:
        entities: dict[str, Entity] = {}
        groups: list[FeatureGroup] = []
        views: list[FeatureView] = []
        for obj in objects:
            if isinstance(obj, Entity):
                entities[obj.name] = obj
            elif isinstance(obj, FeatureGroup):
                groups.append(obj)
            elif isinstance(obj, FeatureView):
                views.append(obj)
            else:
                raise DefinitionError(
                    f"cannot apply {obj!r}: expected Entity, FeatureGroup or FeatureView"
                )
        for g in groups:  # entities a group names are applied with it
            for e in g.entities:
                entities.setdefault(e.name, e)
        for kind, items in (("feature group", groups), ("feature view", views)):
            names = [i.name for i in items]
            seen = [n for n in names if names.count(n) > 1]
            if seen:
                raise DefinitionError(f"{kind} {seen[0]!r} is given twice in one apply")

        plan = Plan()
        staged: list[tuple[str, dict[str, Any], tuple[int, int, int]]] = []
        group_majors: dict[str, int] = {}
        group_specs: dict[str, dict[str, Any]] = {}

        for e in entities.values():
            spec = e.to_dict()
            current = self.registry.latest_definition("entity", e.name)
            item, target = self._classify(
                "entity", e.name, None, spec, current, compat.classify_entity
            )
            item.identity = f"entity/{e.name}"
            plan.items.append(item)
            staged.append(("entity", spec, target))
        for g in groups:
            registered = {e.name: e for e in g.entities}
            for ename, ent in registered.items():
                if entities[ename].to_dict() != ent.to_dict():
                    raise DefinitionError(
                        f"feature group {g.name!r} uses a different definition of entity "
                        f"{ename!r} than the one being applied; use the same Entity object"
                    )
            spec = _group_spec(g)
            latest = self.registry.latest_definition("feature_group", g.name)
            major = g.version or (latest.major if latest else 1)
            if latest is not None and major > latest.major + 1:
                raise DefinitionError(
                    f"feature group {g.name!r}: version={major} skips versions; the latest is "
                    f"v{latest.major}, so the next major version is {latest.major + 1}"
                )
            current = self.registry.latest_definition("feature_group", g.name, major)
            item, target = self._classify(
                "feature_group", g.name, major, spec, current, _classify_group
            )
            plan.items.append(item)
            staged.append(("feature_group", spec, target))
            group_majors[g.name] = major
            group_specs[g.name] = spec
        for v in views:
            sources = []
            for s in v.sources:
                smajor = s.major or group_majors.get(s.group)
                gspec = group_specs.get(s.group) if smajor == group_majors.get(s.group) else None
                if gspec is None:
                    rec = self.registry.latest_definition("feature_group", s.group, smajor)
                    if rec is None:
                        raise NotFoundError(
                            f"feature view {v.name!r} selects from feature_group/{s.group}"
                            + (f"@v{smajor}" if smajor else "")
                            + ", which is not registered; apply the group with the view"
                        )
                    gspec, smajor = rec.spec, rec.major
                known = [f["name"] for f in gspec["features"]]
                private = [
                    f["name"]
                    for f in gspec["features"]
                    if f["name"] in s.features and f.get("classification") in ("pii", "sensitive")
                ]
                if private and not v.purpose:
                    raise DefinitionError(
                        f"feature view {v.name!r} selects pii/sensitive column(s) {private} of "
                        f"{s.group!r} without a declared purpose; set purpose='...' on the view "
                        "(why the model needs them), or leave those columns out"
                    )
                missing = [f for f in s.features if f not in known]
                if missing:
                    raise DefinitionError(
                        f"feature view {v.name!r}: feature_group/{s.group}@v{smajor} has no "
                        f"feature(s) {missing}"
                    )
                sources.append(ViewSource(s.group, s.features, smajor, s.join_key_map))
            pinned = dataclasses.replace(v, features=sources)
            spec = pinned.to_dict()
            latest = self.registry.latest_definition("feature_view", v.name)
            major = v.version or (latest.major if latest else 1)
            if latest is not None and major > latest.major + 1:
                raise DefinitionError(
                    f"feature view {v.name!r}: version={major} skips versions; the next major "
                    f"version is {latest.major + 1}"
                )
            current = self.registry.latest_definition("feature_view", v.name, major)
            item, target = self._classify(
                "feature_view", v.name, major, spec, current, compat.classify_view
            )
            plan.items.append(item)
            staged.append(("feature_view", spec, target))
        return plan, staged

    @staticmethod
    def _classify(
        kind: str,
        name: str,
        major: int | None,
        spec: dict[str, Any],
        current: DefinitionRecord | None,
        rules: Any,
    ) -> tuple[PlanItem, tuple[int, int, int]]:
        ident = f"{kind}/{name}" + (f"@v{major}" if major else "")
        if current is None:
            target = (major or 1, 0, 0)
            return PlanItem(ident, "create", None, _semver(target), "create"), target
        change: compat.Change = rules(current.spec, spec)
        before = (current.major, current.minor, current.patch)
        if change.level == "none":
            return PlanItem(ident, "unchanged", current.semver, current.semver, "none"), before
        if change.breaking:
            return PlanItem(ident, "refused", current.semver, None, "major", change.reasons), before
        target = compat.bump(before, change.level)
        return (
            PlanItem(
                ident, "update", current.semver, _semver(target), change.level, change.reasons
            ),
            target,
        )

    def _prepare_group_storage(self, record: DefinitionRecord, item: PlanItem) -> None:
        group = _group_from_spec(record.spec, record.major)
        table = self._table(group.name, record.major)
        run_id = str(uuid.uuid4())
        with table.lock():
            if not table.exists():
                version = table.create(group.arrow_schema, run_id)
                self._record_version(
                    group,
                    table,
                    version,
                    "create",
                    ContentHash(),
                    run_id,
                    note=f"created by apply of {record.semver}",
                )
                return
            self._sync_versions(group, table)
            self._evolve_storage(group, table, run_id)

    def _evolve_storage(self, group: FeatureGroup, table: DeltaGroupTable, run_id: str) -> None:
        """Bring the table's schema up to the definition: widen types, add columns.

        The caller holds the table lock.
        """
        stored = table.schema()
        wanted = group.arrow_schema
        widened = [
            f for f in wanted if f.name in stored.names and stored.field(f.name).type != f.type
        ]
        if widened:
            # widening rewrites the files with the new types; rows stay the same
            version = widen(table, wanted, run_id)
            self._record_version(
                group,
                table,
                version,
                "widen",
                rebuild_content(table, version),
                run_id,
                note="types widened: " + ", ".join(f.name for f in widened),
            )
        added = [f for f in wanted if f.name not in stored.names]
        if added:
            parent = self._latest_record(group.name, group.version or 1)
            version = table.add_columns(added, run_id)
            # null cells hash to nothing, so an added column keeps the content hash
            self._record_version(
                group,
                table,
                version,
                "add-columns",
                parent.content,
                run_id,
                note="added: " + ", ".join(f.name for f in added),
            )

    # -- lookups ---------------------------------------------------------------------------------
    def get_entity(self, name: str) -> Entity:
        return Entity.from_dict(self.registry.get_definition("entity", name, None).spec)

    def get_feature_group(
        self, name: str | FeatureGroup, version: int | None = None
    ) -> FeatureGroup:
        if isinstance(name, FeatureGroup):
            version = version or name.version
            name = name.name
        rec = self.registry.get_definition("feature_group", name, version)
        return _group_from_spec(rec.spec, rec.major)

    def get_feature_view(self, name: str | FeatureView, version: int | None = None) -> FeatureView:
        if isinstance(name, FeatureView):
            version = version or name.version
            name = name.name
        rec = self.registry.get_definition("feature_view", name, version)
        return FeatureView.from_dict(rec.spec, rec.major)

    def list_definitions(self, kind: str) -> list[DefinitionRecord]:
        """Every registered version of every definition of ``kind``."""
        return self.registry.definitions(kind)

    def _table(self, group: str, major: int) -> DeltaGroupTable:
        return DeltaGroupTable(self._offline_root / group / f"v{major}")

    # -- data versions ---------------------------------------------------------------------------
    def versions(self, group: str | FeatureGroup, *, major: int | None = None) -> list[DataVersion]:
        """Every data version of a group's definition major version, oldest first."""
        fg = self.get_feature_group(group, major)
        self._sync_versions(fg, self._table(fg.name, fg.version or 1))
        return self.registry.data_versions(fg.name, fg.version or 1)

    def _latest_record(self, group: str, major: int) -> DataVersion:
        versions = self.registry.data_versions(group, major)
        if not versions:
            raise NotFoundError(f"feature_group/{group}@v{major} has no data versions recorded")
        return versions[-1]

    def _record_version(
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
    ) -> DataVersion:
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
        self.registry.add_data_version(record)
        return record

    def _sync_versions(
        self, group: FeatureGroup, table: DeltaGroupTable, below: int | None = None
    ) -> None:
        """Record Delta versions the registry lacks (a writer that died after committing).

        ``below`` stops before that version, which the caller is about to record itself.
        """
        if not table.exists():
            return
        with table.lock(blocking=False) as locked:
            if not locked:
                # a live writer holds the table and records its own commit; recording it
                # here too would race with that writer
                return
            major = group.version or 1
            known = {v.version for v in self.registry.data_versions(group.name, major)}
            last = table.latest_version() if below is None else below - 1
            for version in range(last + 1):
                if version in known:
                    continue
                commit = table.commit(version)
                content = rebuild_content(table, version)
                self._record_version(
                    group,
                    table,
                    version,
                    commit.operation.lower(),
                    content,
                    commit.run_id,
                    note="recovered: committed to Delta but not recorded by its writer",
                )

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
        fg = self.get_feature_group(group, version)
        major = fg.version or 1
        where = f"ingest into feature_group/{fg.name}@v{major}"
        table_in = to_arrow(
            data, where=where, column_types={c.name: c.arrow_type for c in fg.columns}
        )
        now = datetime.now(UTC)
        batch = conform_batch(
            table_in,
            fg,
            where=where,
            naive=self._naive,
            fill_created=pa.scalar(now, pa.timestamp("us", tz="UTC")),
        )
        user = current_user()
        run = self._start_run(
            "ingest",
            user,
            {"group": fg.name, "major": major, "mode": mode, "rows": batch.num_rows, "note": note},
        )
        return self._commit_batch(fg, batch, mode, note, run, user)

    def _commit_batch(
        self, fg: FeatureGroup, batch: pa.Table, mode: Mode, note: str, run: RunRecord, user: str
    ) -> DataVersion:
        """Check a conformed batch against the group's contract, write what may be
        published under the table lock, and record it all; finishes ``run``."""
        major = fg.version or 1
        where = f"ingest into feature_group/{fg.name}@v{major}"
        table = self._table(fg.name, major)
        gate = self._apply_contract(fg, batch, run, user, where)
        batch = gate.publish
        try:
            if gate.held is not None and gate.held.num_rows:
                # held rows are made durable before anything is published: none is lost
                self._quarantine_rows(fg, gate.held, run.id)
            if batch.num_rows == 0:
                parent = self._latest_record(fg.name, major)
                self._record_validation(fg, run, gate, None)
                self.registry.finish_run(run.id, "quarantined", [])
                self.registry.audit(
                    user,
                    "quarantine",
                    str(fg.identity(major)),
                    {"rows": gate.rows_held, "run": run.id},
                )
                return parent
            with table.lock():
                self._sync_versions(fg, table)
                parent = self._latest_record(fg.name, major)
                out = write_batch(
                    table,
                    self.engine,
                    fg,
                    batch,
                    mode,
                    parent_version=parent.version,
                    parent_content=parent.content,
                    run_id=run.id,
                    where=where,
                )
                if out.version is None:
                    self._record_validation(fg, run, gate, parent.version)
                    self.registry.finish_run(run.id, "unchanged", [str(parent.identity)])
                    return parent
                if out.version == parent.version + 1:
                    content = parent.content + out.added - out.removed
                else:  # someone committed outside featureledger in between: recount
                    self._sync_versions(fg, table, below=out.version)
                    content = rebuild_content(table, out.version)
                detail = []
                if out.duplicates_dropped:
                    detail.append(f"{out.duplicates_dropped} in-batch duplicate(s) superseded")
                if out.superseded:
                    detail.append(f"{out.superseded} row(s) older than stored ones skipped")
                if out.unchanged:
                    detail.append(f"{out.unchanged} row(s) already stored")
                record = self._record_version(
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
                )
        except Exception as exc:
            self.registry.finish_run(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        self._record_validation(fg, run, gate, record.version)
        self.registry.finish_run(run.id, "succeeded", [str(record.identity)])
        self.registry.audit(
            user,
            run.kind,
            str(record.identity),
            {
                "mode": mode,
                "rows": batch.num_rows,
                "run": run.id,
                "validation": gate.status,
                "quarantined": gate.rows_held,
            },
        )
        return record

    # -- contracts: write-audit-publish ----------------------------------------------------
    def _apply_contract(
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
        report = evaluate(fg.contract, batch, now=datetime.now(UTC), reference=reference)
        if report.ok:
            return _Gate(batch, None, report, "passed", batch.num_rows)
        if fg.policy == "warn":
            return _Gate(batch, None, report, "warned", batch.num_rows)
        if fg.policy == "quarantine" and report.splittable:
            valid, invalid = report.split(batch)
            return _Gate(valid, invalid, report, "quarantined", batch.num_rows)
        major = fg.version or 1
        path = self.repo / STATE_DIR / "rejected" / fg.name / f"v{major}" / f"{run.id}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(batch, path)
        gate = _Gate(
            batch.slice(0, 0), None, report, "rejected", batch.num_rows, rejected_path=str(path)
        )
        self._record_validation(fg, run, gate, None)
        message = f"{where} (policy {fg.policy}; the batch is kept at {path})"
        self.registry.finish_run(run.id, "rejected", [], error=f"contract violated: {message}")
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
        return self._table(fg.name, major).read(latest[-1].version, columns)

    def _record_validation(
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
        return DeltaGroupTable(self._offline_root / fg.name / f"v{fg.version or 1}_quarantine")

    def _quarantine_rows(self, fg: FeatureGroup, rows: pa.Table, run_id: str) -> None:
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
        fg = self.get_feature_group(group, major)
        table = self._quarantine_table(fg)
        if not table.exists():
            return pa.table({})
        rows = table.read(table.latest_version())
        if run is not None:
            rows = rows.filter(pa.compute.equal(rows.column(QUARANTINE_RUN), run))
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
        fg = self.get_feature_group(group, major)
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
                count = pa.compute.sum(pa.compute.equal(before.column(QUARANTINE_RUN), run))
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
        fg = self.get_feature_group(group, major)
        return self.registry.validations(fg.name, fg.version or 1, version)

    def check_contract(
        self, group: str | FeatureGroup, *, major: int | None = None
    ) -> ValidationReport:
        """Evaluate the group's contract on its current data (what CI runs)."""
        fg = self.get_feature_group(group, major)
        if fg.contract is None:
            raise NotFoundError(f"feature group {fg.name!r} has no contract")
        data = self.read(fg)
        return evaluate(fg.contract, data, now=datetime.now(UTC), reference=None)

    def compact(self, group: str | FeatureGroup, *, version: int | None = None) -> DataVersion:
        """Rewrite a group's files into fewer, key-sorted ones: a new version, same content."""
        fg = self.get_feature_group(group, version)
        major = fg.version or 1
        table = self._table(fg.name, major)
        user = current_user()
        run = self._start_run("compact", user, {"group": fg.name, "major": major})
        with table.lock():
            self._sync_versions(fg, table)
            parent = self._latest_record(fg.name, major)
            files_before = len(table.files(parent.version))
            new = table.optimize(list(fg.primary_key), run.id)
            if new is None:
                self.registry.finish_run(run.id, "unchanged", [str(parent.identity)])
                return parent
            record = self._record_version(
                fg,
                table,
                new,
                "compact",
                parent.content,
                run.id,
                user=user,
                note=f"{files_before} files rewritten as {len(table.files(new))}, sorted by "
                f"{', '.join(fg.primary_key)}",
            )
        self.registry.finish_run(run.id, "succeeded", [str(record.identity)])
        self.registry.audit(user, "compact", str(record.identity), {"run": run.id})
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
        fg = self.get_feature_group(group, major)
        m = fg.version or 1
        resolved = self._resolve_version(fg, version, as_of)
        self._check_files(fg, resolved)
        return self._table(fg.name, m).read(resolved, list(columns) if columns else None)

    def _resolve_version(
        self, fg: FeatureGroup, version: int | None, as_of: datetime | None
    ) -> int:
        m = fg.version or 1
        if version is not None and as_of is not None:
            raise DataError("give either version= or as_of=, not both")
        self._sync_versions(fg, self._table(fg.name, m))
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

    # -- diffs, rollback and integrity -------------------------------------------------------
    def _check_files(self, fg: FeatureGroup, version: int, *, full: bool = False) -> list[str]:
        """Compare a version's files with the checksums recorded at commit.

        Raises `IntegrityError` unless ``full`` (then the problems are returned), so no
        read uses a modified or missing file.
        """
        major = fg.version or 1
        table = self._table(fg.name, major)
        records = [r for r in self.registry.data_versions(fg.name, major) if r.version <= version]
        snapshot = [uri[len(table.uri.rstrip("/")) + 1 :] for uri in table.files(version)]
        problems = check_files(
            table.path, snapshot, recorded_files(r.files for r in records), full=full
        )
        if problems and not full:
            ident = VersionId("feature_group", fg.name, major, version)
            raise IntegrityError(
                f"{ident}: stored files do not match the checksums recorded at commit; nothing "
                "was read. " + "; ".join(problems) + ". Run `featureledger verify "
                f"{ident}` for a full check, and roll back to a good version."
            )
        return problems

    def diff(
        self,
        group: str | FeatureGroup,
        old: int,
        new: int | None = None,
        *,
        major: int | None = None,
    ) -> DataDiff:
        """Schema, row and statistics differences between data versions ``old`` and ``new``."""
        fg = self.get_feature_group(group, major)
        m = fg.version or 1
        new = self._resolve_version(fg, new, None)
        old = self._resolve_version(fg, old, None)
        table = self._table(fg.name, m)
        for v in (old, new):
            self._check_files(fg, v)
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
        fg = self.get_feature_group(group, major)
        m = fg.version or 1
        table = self._table(fg.name, m)
        user = current_user()
        target = self._resolve_version(fg, to, None)
        self._check_files(fg, target)
        record_to = self.registry.data_version(fg.name, m, target)
        assert record_to is not None
        run = self._start_run(
            "rollback", user, {"group": fg.name, "major": m, "to": target, "reason": reason}
        )
        with table.lock():
            self._sync_versions(fg, table)
            records = self.registry.data_versions(fg.name, m)
            version = table.restore(target, run.id)
            # the restored files were checksummed by the commits that first added them
            known = recorded_files(r.files for r in records)
            files = {p: dict(known[p]) for p in self._snapshot_paths(table, version) if p in known}
            record = self._record_version(
                fg,
                table,
                version,
                "rollback",
                record_to.content,
                run.id,
                files=files,
                added=record_to.rows,
                removed=records[-1].rows,
                user=user,
                note=f"rollback to #{target}" + (f": {reason}" if reason else ""),
            )
            # the restored snapshot has the schema of its time; bring it back to the definition
            self._evolve_storage(fg, table, run.id)
        self.registry.finish_run(run.id, "succeeded", [str(record.identity)])
        self.registry.audit(
            user, "rollback", str(record.identity), {"to": target, "reason": reason, "run": run.id}
        )
        return self.registry.data_versions(fg.name, m)[-1]

    @staticmethod
    def _snapshot_paths(table: DeltaGroupTable, version: int) -> list[str]:
        prefix = table.uri.rstrip("/") + "/"
        return [uri[len(prefix) :] for uri in table.files(version)]

    def verify(self, identity: str | VersionId | None = None) -> list[VerifyReport]:
        """Re-hash files and rows of data versions (all latest versions when no identity).

        A data version checks its files' SHA-256 and recomputes its content hash; a
        group identity without ``#N`` checks every version; a training dataset rebuilds
        its rows from its pins and entity frame and compares the content hash.
        """
        if identity is None:
            reports = []
            for rec in self.registry.definitions("feature_group"):
                fg = _group_from_spec(rec.spec, rec.major)
                latest = self.registry.data_versions(fg.name, rec.major)
                if latest and rec == self.registry.latest_definition(
                    "feature_group", fg.name, rec.major
                ):
                    reports.append(self._verify_version(fg, latest[-1].version))
            return reports
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind == "training_dataset":
            return [self._verify_training(ident)]
        if ident.kind != "feature_group":
            raise NotFoundError(f"{ident.kind} identities have no stored data to verify")
        fg = self.get_feature_group(ident.name, ident.major)
        if ident.data is not None:
            return [self._verify_version(fg, ident.data)]
        return [self._verify_version(fg, r.version) for r in self.versions(fg)]

    def _verify_version(self, fg: FeatureGroup, version: int) -> VerifyReport:
        m = fg.version or 1
        ident = VersionId("feature_group", fg.name, m, version)
        record = self.registry.data_version(fg.name, m, version)
        report = VerifyReport(str(ident))
        if record is None:
            report.problems.append("not recorded in the registry")
            return report
        table = self._table(fg.name, m)
        report.checked_files = len(table.files(version))
        report.problems += self._check_files(fg, version, full=True)
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
        record = self._training_record(ident)
        report = VerifyReport(str(record.identity), expected_hash=str(record.content))
        try:
            _, actual = self._rebuild_training(record, None)
        except FeatureLedgerError as exc:
            report.problems.append(f"cannot rebuild: {exc}")
            return report
        report.actual_hash = str(actual)
        if actual != record.content:
            report.problems.append(
                f"rebuilt rows hash to {actual}, not the recorded {record.content}"
            )
        return report

    def _training_record(self, ident: VersionId) -> TrainingDatasetRecord:
        records = self.registry.training_datasets(ident.name, ident.major)
        if ident.number is not None:
            records = [r for r in records if r.number == ident.number]
        if not records:
            raise NotFoundError(f"{ident} is not recorded")
        return records[-1]

    def _rebuild_training(
        self, record: TrainingDatasetRecord, output: str | Path | None
    ) -> tuple[pa.Table | None, ContentHash]:
        fv = self.get_feature_view(record.view, record.major)
        entities = pq.read_table(record.entity_path)
        versions = {g: p["version"] for g, p in record.pins.items()}
        join = self._plan_join(
            fv, entities, record.params.get("timestamp_column", "event_timestamp"), versions, None
        )
        return self._run_join(join, output)

    def pin(self, identity: str | VersionId, path: str | Path) -> Path:
        """Write a pointer file for a data version or training dataset (DVC-style)."""
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind == "training_dataset":
            rec = self._training_record(ident)
            body: dict[str, Any] = {
                "identity": str(rec.identity),
                "content_hash": str(rec.content),
                "content": rec.content.to_dict(),
                "rows": rec.rows,
                "pins": {g: p["identity"] for g, p in rec.pins.items()},
                "entity_hash": rec.entity_hash,
                "entity_uri": Path(rec.entity_path).resolve().as_uri(),
                "repository": self.repo.as_uri(),
            }
        elif ident.kind == "feature_group":
            fg = self.get_feature_group(ident.name, ident.major)
            m = fg.version or 1
            number = self._resolve_version(fg, ident.data, None)
            dv = self.registry.data_version(fg.name, m, number)
            assert dv is not None
            table = self._table(fg.name, m)
            known = recorded_files(
                r.files for r in self.registry.data_versions(fg.name, m) if r.version <= number
            )
            body = {
                "identity": str(dv.identity),
                "content_hash": str(dv.content),
                "content": dv.content.to_dict(),
                "rows": dv.rows,
                "schema_hash": dv.schema_hash,
                "storage_uri": table.path.resolve().as_uri(),
                "files": {
                    p: known[p]["sha256"] for p in self._snapshot_paths(table, number) if p in known
                },
                "repository": self.repo.as_uri(),
            }
        else:
            raise NotFoundError(
                f"only feature group data versions and training datasets can be "
                f"pinned, not {ident.kind}"
            )
        target = write_pointer(path, body)
        self.registry.audit(current_user(), "pin", body["identity"], {"file": str(target)})
        return target

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
            _, actual = self._rebuild_training(self._training_record(ident), tmp)
        else:
            fg = self.get_feature_group(ident.name, ident.major)
            assert ident.data is not None
            self._check_files(fg, ident.data)
            table = self.read(fg, version=ident.data)
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
        self, *, older_than: timedelta, dry_run: bool = True, group: str | None = None
    ) -> dict[str, list[str]]:
        """Delete unreferenced data files older than ``older_than``; the only deletion.

        Files of the latest version and of every version a training dataset pins are
        always kept. Returns the deleted (or, with ``dry_run``, deletable) files per table.
        """
        if older_than < timedelta(0):
            raise DataError("older_than must not be negative")
        pinned: dict[tuple[str, int], set[int]] = {}
        for view in {r.name for r in self.registry.definitions("feature_view")}:
            for td in self.registry.training_datasets(view):
                for g, p in td.pins.items():
                    pinned.setdefault((g, p["major"]), set()).add(p["version"])
        out: dict[str, list[str]] = {}
        user = current_user()
        for rec in self.registry.definitions("feature_group"):
            if group is not None and rec.name != group:
                continue
            table = self._table(rec.name, rec.major)
            key = f"feature_group/{rec.name}@v{rec.major}"
            if key in out or not table.exists():
                continue
            with table.lock():
                keep = sorted(pinned.get((rec.name, rec.major), set()))
                hours = int(older_than.total_seconds() // 3600)
                out[key] = table.vacuum(hours, keep, dry_run)
            if not dry_run and out[key]:
                self.registry.audit(
                    user, "vacuum", key, {"deleted": len(out[key]), "kept_versions": keep}
                )
        return out

    def audit_log(self, identity: str | None = None) -> list[AuditEntry]:
        """The audit trail, oldest first; filtered to identities starting with ``identity``."""
        return self.registry.audit_log(identity)

    def audit_verify(self) -> list[str]:
        """Problems in the hash chain of the audit trail (empty when intact)."""
        return self.registry.audit_verify()

    # -- feature pipelines -------------------------------------------------------------------
    def run_pipeline(
        self,
        group: FeatureGroup | str,
        *,
        start: datetime,
        end: datetime,
        mode: Mode = "upsert",
    ) -> PipelineRun:
        """Compute the window [start, end) of a group's pipeline and upsert it.

        The same call serves backfills and incremental runs; re-running a window whose
        inputs did not change writes nothing. The run records its inputs (file SHA-256 or
        pinned data versions), the transformation's code and module hashes, the
        environment (Python and the packages it imports) and the output's content hash.
        """
        fg = self._pipeline_group(group)
        window = self._pipeline_inputs(fg, start, end, pins=None)
        batch = self._pipeline_output(fg, window.table, start, end)
        transform = fg.transform
        env = pipeline_environment(
            transform.module_imports() if isinstance(transform, PythonTransform) else []
        )
        user = current_user()
        run = self._start_run(
            "pipeline",
            user,
            {
                "group": fg.name,
                "major": fg.version or 1,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "mode": mode,
                "rows": batch.num_rows,
                "output_hash": str(content_hash(batch)),
                "module_hash": transform.module_hash if transform else "",
                "transform": transform.to_dict() if transform else None,
                "environment": env,
            },
            inputs=window.inputs,
            code_hash=transform.code_hash if transform else "identity",
            env_hash=environment_hash(env),
        )
        record = self._commit_batch(
            fg, batch, mode, f"pipeline {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}", run, user
        )
        return PipelineRun(run.id, record, window.inputs, batch.num_rows)

    def _pipeline_group(self, group: FeatureGroup | str) -> FeatureGroup:
        """The group as declared (with its live transformation) checked against the registry."""
        live = group if isinstance(group, FeatureGroup) else None
        registered = self.get_feature_group(group)
        if live is None:
            live = registered
        if registered.source is None:
            raise DefinitionError(
                f"feature group {registered.name!r} has no source; declare source= (and "
                "transform=) on it to run it as a pipeline"
            )
        if isinstance(live.transform, PythonTransform) and live.transform.function is None:
            raise DefinitionError(
                f"feature group {live.name!r}: its Python transformation "
                f"{live.transform.name!r} is not loaded; pass the FeatureGroup object from "
                "your definitions (the CLI loads the repository's files)"
            )
        if live.to_dict() != registered.to_dict():
            raise DefinitionError(
                f"feature group {live.name!r} differs from its registered definition (was the "
                "transformation edited?); run `featureledger apply` first so the new code is "
                "versioned"
            )
        return dataclasses.replace(live, version=registered.version)

    def _pipeline_inputs(
        self, fg: FeatureGroup, start: datetime, end: datetime, pins: list[str] | None
    ) -> _Window:
        if start.tzinfo is None or end.tzinfo is None:
            raise DataError("start and end must be time-zone aware, e.g. datetime(..., tzinfo=UTC)")
        if end <= start:
            raise DataError(f"the window is empty: end {end} is not after start {start}")
        source = fg.source
        if isinstance(source, FileSource):
            path = self.config.resolve(self.repo, source.path)
            if not path.exists():
                raise DataError(f"pipeline source {path} of {fg.name!r} does not exist")
            digest = artifact_sha256(path)
            data = self.engine.window(str(path), None, source.timestamp_column, start, end)
            return _Window(data, [f"file:{path}@sha256:{digest}"])
        assert isinstance(source, GroupSource)
        src = self.get_feature_group(source.group, source.major)
        if src.event_time is None:
            raise DefinitionError(
                f"pipeline source {src.name!r} is static; it has no time to window"
            )
        m = src.version or 1
        pinned = None
        for ident in pins or []:
            parsed = VersionId.parse(ident)
            if parsed.kind == "feature_group" and parsed.name == src.name:
                pinned = parsed.data
        number = self._resolve_version(src, pinned, None)
        self._check_files(src, number)
        table = self._table(src.name, m)
        data = self.engine.window(
            table.files(number), table.schema(number), src.event_time, start, end
        )
        return _Window(data, [str(VersionId("feature_group", src.name, m, number))])

    def _pipeline_output(
        self, fg: FeatureGroup, window: pa.Table, start: datetime, end: datetime
    ) -> pa.Table:
        where = f"pipeline of feature_group/{fg.name}@v{fg.version or 1}"
        transform = fg.transform
        if transform is None:
            out = window
        elif isinstance(transform, SQLTransform):
            out = self.engine.transform(transform.query, window, {"start": start, "end": end})
        else:
            assert transform.function is not None
            out = to_arrow(transform.function(window, start, end), where=where)
        return conform_batch(
            out,
            fg,
            where=where,
            naive=self._naive,
            fill_created=pa.scalar(end, pa.timestamp("us", tz="UTC")),
        )

    def reproduce(
        self, identity: str, *, definitions: Sequence[Definition] = ()
    ) -> ReproduceReport:
        """Re-run a recorded pipeline run from its recorded inputs and compare, factor by factor.

        ``identity`` is ``run/<id>`` or the data version the run wrote. The report gives
        the reproducibility predicate R = data x code x environment, and whether the
        recomputed output hashes to what was written.
        """
        run = self._find_run(identity)
        if run.kind != "pipeline":
            raise DataError(
                f"run/{run.id} is a {run.kind} run; only pipeline runs can be "
                "reproduced by re-running them"
            )
        params = run.params
        live = next(
            (d for d in definitions if isinstance(d, FeatureGroup) and d.name == params["group"]),
            None,
        )
        fg = live or self.get_feature_group(params["group"], params.get("major"))
        fg = dataclasses.replace(fg, version=params.get("major"))
        report = ReproduceReport(f"run/{run.id}")
        # data: every recorded input still hashes as recorded
        for ident in run.inputs:
            if ident.startswith("file:"):
                path, _, digest = ident[len("file:") :].rpartition("@sha256:")
                now = artifact_sha256(path) if Path(path).exists() else "missing"
                report.add("data", ident, digest, now)
            else:
                v = self._verify_version(
                    self.get_feature_group(
                        VersionId.parse(ident).name, VersionId.parse(ident).major
                    ),
                    VersionId.parse(ident).data or 0,
                )
                report.add("data", ident, v.expected_hash or "", v.actual_hash or "missing")
        transform = fg.transform
        code_now = transform.code_hash if transform else "identity"
        module_now = transform.module_hash if transform else ""
        report.add("code", "transformation", run.code_hash, code_now)
        report.add("code", "module", params.get("module_hash", ""), module_now)
        env_then: dict[str, str] = params.get("environment", {})
        env_now = pipeline_environment(
            transform.module_imports() if isinstance(transform, PythonTransform) else []
        )
        for name in sorted(set(env_then) | set(env_now)):
            report.add(
                "environment", name, env_then.get(name, "absent"), env_now.get(name, "absent")
            )
        if isinstance(transform, PythonTransform) and transform.function is None:
            report.output_note = (
                "not re-run: pass the repository's definitions so the Python transformation can run"
            )
            return report
        start = datetime.fromisoformat(params["start"])
        end = datetime.fromisoformat(params["end"])
        try:
            window = self._pipeline_inputs(fg, start, end, pins=run.inputs)
            batch = self._pipeline_output(fg, window.table, start, end)
        except FeatureLedgerError as exc:
            report.output_note = f"re-run failed: {exc}"
            return report
        report.output_expected = params.get("output_hash")
        report.output_actual = str(content_hash(batch))
        return report

    def _find_run(self, identity: str) -> RunRecord:
        ident = VersionId.parse(identity)
        if ident.kind == "run":
            run = self.registry.run(ident.name)
        elif ident.kind == "feature_group" and ident.data is not None:
            fg = self.get_feature_group(ident.name, ident.major)
            dv = self.registry.data_version(fg.name, fg.version or 1, ident.data)
            run = None if dv is None or dv.run_id is None else self.registry.run(dv.run_id)
        else:
            raise DataError(
                f"{identity}: give a run/<id> or a data version like feature_group/NAME@vN#K"
            )
        if run is None:
            raise NotFoundError(f"no run is recorded for {identity}")
        return run

    # -- models and deployments --------------------------------------------------------------
    def register_model(
        self,
        name: str,
        artifact: str | Path,
        *,
        training_dataset: str | VersionId | TrainingData | None = None,
        metrics: Mapping[str, float | Sequence[float]] | None = None,
        gates: Sequence[Gate] = (),
        description: str = "",
    ) -> ModelRecord:
        """Store a model artifact content-addressed and link it to its training dataset.

        ``metrics`` values may be lists of repeated evaluations; gates compare their means
        and record standard errors. A failed gate raises `GateError` and registers nothing.
        "Better than current" gates compare with the model currently deployed under the
        same name, else the latest registered version.
        """
        check_name("model", name)
        source = Path(artifact)
        if not source.exists():
            raise NotFoundError(f"model artifact {source} does not exist")
        td_ident: str | None = None
        if training_dataset is not None:
            ident = (
                training_dataset.identity
                if isinstance(training_dataset, TrainingData)
                else VersionId.parse(str(training_dataset))
            )
            td_ident = str(self._training_record(ident).identity)
        summaries = summarize(metrics or {})
        reference = self._reference_model(name)
        results = evaluate_gates(
            gates, summaries, None if reference is None else summarize(reference.metrics_raw)
        )
        failed = [r.to_dict() for r in results if not r.passed]
        if failed:
            raise GateError(f"model/{name}", failed)
        digest = artifact_sha256(source)
        store_dir = self.repo / STATE_DIR / "models" / digest
        target = store_dir / source.name
        if not target.exists():
            store_dir.mkdir(parents=True, exist_ok=True)
            tmp = store_dir / (source.name + ".partial")
            if source.is_dir():
                shutil.copytree(source, tmp)
            else:
                shutil.copy2(source, tmp)
            tmp.rename(target)
        user = current_user()
        run = self._start_run(
            "register-model", user, {"model": name}, inputs=[td_ident] if td_ident else []
        )
        record = self.registry.add_model(
            ModelRecord(
                name=name,
                version=0,
                artifact_path=str(target),
                artifact_hash=digest,
                training_dataset=td_ident,
                metrics={
                    "raw": {
                        k: v if isinstance(v, int | float) else list(v)
                        for k, v in (metrics or {}).items()
                    },
                    "summary": {k: s.to_dict() for k, s in summaries.items()},
                },
                gates=[r.to_dict() for r in results],
                run_id=run.id,
                user=user,
                created_at=datetime.now(UTC),
                description=description,
            )
        )
        self.registry.finish_run(run.id, "succeeded", [str(record.identity)])
        self.registry.audit(
            user,
            "register",
            str(record.identity),
            {
                "artifact": digest,
                "training_dataset": td_ident,
                "gates": [r.to_dict() for r in results],
            },
        )
        return record

    def _reference_model(self, name: str) -> _ModelMetrics | None:
        deployed = [d for d in self.registry.deployments() if d.model == name]
        models = {m.version: m for m in self.registry.models(name)}
        if deployed:
            current = self.current_deployment(deployed[-1].name)
            if current is not None and current.model_version in models:
                return _ModelMetrics(models[current.model_version].metrics.get("raw", {}))
        if models:
            return _ModelMetrics(models[max(models)].metrics.get("raw", {}))
        return None

    def models(self, name: str | None = None) -> list[ModelRecord]:
        return self.registry.models(name)

    def deploy(
        self, deployment: str, model: str, version: int | None = None, *, reason: str = ""
    ) -> DeploymentRecord:
        """Point ``deployment`` at a registered model version (the latest by default)."""
        check_name("deployment", deployment)
        versions = {m.version: m for m in self.registry.models(model)}
        if not versions:
            raise NotFoundError(f"model/{model} is not registered; register_model it first")
        chosen = max(versions) if version is None else version
        if chosen not in versions:
            raise NotFoundError(
                f"model/{model}/{chosen} does not exist; versions: {sorted(versions)}"
            )
        return self._move_deployment(deployment, model, chosen, "deploy", reason)

    def rollback_deployment(self, deployment: str, *, reason: str = "") -> DeploymentRecord:
        """Point ``deployment`` back at the model it served before the current one."""
        history = self.registry.deployments(deployment)
        if not history:
            raise NotFoundError(f"deployment/{deployment} does not exist")
        current = (history[-1].model, history[-1].model_version)
        earlier = [h for h in history if (h.model, h.model_version) != current]
        if not earlier:
            raise NotFoundError(
                f"deployment/{deployment} has served only model/{current[0]}/{current[1]}; "
                "there is nothing to roll back to"
            )
        prev = earlier[-1]
        return self._move_deployment(deployment, prev.model, prev.model_version, "rollback", reason)

    def _move_deployment(
        self, deployment: str, model: str, version: int, action: str, reason: str
    ) -> DeploymentRecord:
        user = current_user()
        record = self.registry.add_deployment(
            DeploymentRecord(deployment, 0, model, version, action, reason, user, datetime.now(UTC))
        )
        self.registry.audit(
            user,
            action,
            str(record.identity),
            {"model": str(record.model_identity), "reason": reason},
        )
        return record

    def current_deployment(self, deployment: str) -> DeploymentRecord | None:
        history = self.registry.deployments(deployment)
        return history[-1] if history else None

    def deployments(self, deployment: str | None = None) -> list[DeploymentRecord]:
        """Deployment history, oldest first."""
        return self.registry.deployments(deployment)

    # -- training data ---------------------------------------------------------------------------
    def training_data(
        self,
        view: str | FeatureView,
        entity_df: Any,
        *,
        timestamp_column: str = "event_timestamp",
        version: int | None = None,
        versions: Mapping[str, int] | None = None,
        as_of: datetime | None = None,
        output: str | Path | None = None,
    ) -> TrainingData:
        """Point-in-time correct features for each row of ``entity_df``.

        Each input group is pinned to a data version: ``versions[group]`` if given, else
        the version current ``as_of``, else the latest. The result keeps the entity rows'
        order and count. It is recorded as a training dataset with its pins and hashes;
        with ``output`` it is streamed to that Parquet file instead of held in memory.
        """
        fv = self.get_feature_view(view, version)
        vmajor = fv.version or 1
        join = self._plan_join(fv, entity_df, timestamp_column, versions, as_of)
        user = current_user()
        run = self._start_run(
            "training-data",
            user,
            {
                "view": fv.name,
                "major": vmajor,
                "rows": join.entities.num_rows,
                "timestamp_column": timestamp_column,
            },
            inputs=[p["identity"] for p in join.pins.values()],
        )
        try:
            entity_hash = content_hash(join.entities)
            entity_path = (
                self.config.resolve(self.repo, self.config.training_path)
                / fv.name
                / f"v{vmajor}"
                / f"entities-{run.id}.parquet"
            )
            entity_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(join.entities.drop_columns([ROW_COLUMN]), entity_path)
            result, total = self._run_join(join, output)
            td_record = self.registry.add_training_dataset(
                TrainingDatasetRecord(
                    view=fv.name,
                    major=vmajor,
                    number=0,
                    pins=join.pins,
                    entity_hash=str(entity_hash),
                    content=total,
                    rows=total.rows,
                    columns=join.schema.names,
                    entity_path=str(entity_path),
                    output_path=str(Path(output).resolve()) if output else None,
                    run_id=run.id,
                    user=user,
                    created_at=datetime.now(UTC),
                    params={
                        "timestamp_column": timestamp_column,
                        "as_of": as_of.isoformat() if as_of else None,
                    },
                )
            )
        except Exception as exc:
            self.registry.finish_run(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        self.registry.finish_run(run.id, "succeeded", [str(td_record.identity)])
        self.registry.audit(
            user,
            "training-data",
            str(td_record.identity),
            {"pins": {k: v["identity"] for k, v in join.pins.items()}, "run": run.id},
        )
        return TrainingData(td_record, result)

    def _plan_join(
        self,
        fv: FeatureView,
        entity_df: Any,
        timestamp_column: str,
        versions: Mapping[str, int] | None,
        as_of: datetime | None,
    ) -> _JoinPlan:
        """Check the entity frame and pin every input group to one verified data version."""
        vmajor = fv.version or 1
        where = f"training data for feature_view/{fv.name}@v{vmajor}"
        groups: list[tuple[ViewSource, FeatureGroup]] = [
            (s, self.get_feature_group(s.group, s.major)) for s in fv.sources
        ]
        unknown = set(versions or {}) - {g.name for _, g in groups}
        if unknown:
            raise DataError(f"{where}: versions= names group(s) {sorted(unknown)} not in the view")
        problems = license_problems(
            {str(fg.identity(fg.version)): self._effective_licenses(fg) for _, fg in groups},
            fv.use,
            license_table(self.config.licenses),
        )
        if problems:
            raise LicenseError(f"{where}: refused by the licence gate: " + "; ".join(problems))
        key_types: dict[str, pa.DataType] = {}
        for src, fg in groups:
            for key in fg.key_fields:
                col = src.join_key_map.get(key.name, key.name)
                if col in key_types and key_types[col] != key.arrow_type:
                    raise DefinitionError(
                        f"{where}: entity column {col!r} joins keys of different types "
                        f"({key_types[col]} and {key.arrow_type})"
                    )
                key_types[col] = key.arrow_type
        needs_time = any(not fg.is_static for _, fg in groups)
        raw = to_arrow(entity_df, where=where)
        entities = conform_entities(
            raw,
            key_types,
            timestamp_column if needs_time else None,
            where=where,
            naive=self._naive,
        )
        if ROW_COLUMN in entities.column_names:
            raise SchemaMismatchError(where, [f"column name {ROW_COLUMN!r} is reserved"])
        outputs = [fv.output_name(s, f) for s, _ in groups for f in s.features]
        clash = sorted(set(outputs) & set(entities.column_names))
        if clash:
            raise SchemaMismatchError(
                where,
                [
                    f"entity frame column(s) {clash} have the names of features the view adds; "
                    "rename them or set full_feature_names=True on the view"
                ],
            )
        entities = entities.append_column(
            ROW_COLUMN, pa.array(np.arange(entities.num_rows, dtype=np.int64))
        )
        sources: list[PitSource] = []
        pins: dict[str, dict[str, Any]] = {}
        for src, fg in groups:
            m = fg.version or 1
            pinned = self._resolve_version(
                fg,
                (versions or {}).get(fg.name),
                as_of if (versions or {}).get(fg.name) is None else None,
            )
            record = self.registry.data_version(fg.name, m, pinned)
            assert record is not None
            table = self._table(fg.name, m)
            self._check_files(fg, pinned)
            pins[fg.name] = {
                "major": m,
                "version": pinned,
                "content": str(record.content),
                "identity": str(record.identity),
            }
            sources.append(
                PitSource(
                    files=table.files(pinned),
                    schema=table.schema(pinned),
                    keys=fg.primary_key,
                    entity_keys=[src.join_key_map.get(k, k) for k in fg.primary_key],
                    event_time=fg.event_time,
                    # exact integer division: float seconds * 1e6 truncates e.g. 249 us to 248
                    ttl_us=None if fg.ttl is None else fg.ttl // timedelta(microseconds=1),
                    features=[(f, fv.output_name(src, f)) for f in src.features],
                )
            )
        # DuckDB labels UTC as 'Etc/UTC'; results carry the frame's and groups' own types
        schema = pa.schema(
            [entities.schema.field(c) for c in entities.column_names if c != ROW_COLUMN]
            + [
                pa.field(out, fg.arrow_schema.field(f).type)
                for src, fg in groups
                for f, out in ((f, fv.output_name(src, f)) for f in src.features)
            ]
        )
        return _JoinPlan(entities, timestamp_column if needs_time else None, sources, pins, schema)

    def _effective_licenses(
        self, fg: FeatureGroup, seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """The group's licences plus those of every source it is computed from."""
        found = set(fg.licenses)
        if isinstance(fg.source, FileSource):
            found.update(fg.source.licenses)
        elif isinstance(fg.source, GroupSource) and fg.source.group not in seen:
            parent = self.get_feature_group(fg.source.group, fg.source.major)
            found.update(self._effective_licenses(parent, seen | {fg.name}))
        return sorted(found)

    def _run_join(
        self, join: _JoinPlan, output: str | Path | None
    ) -> tuple[pa.Table | None, ContentHash]:
        """Stream the join, hashing each batch; keep it in memory or write it to ``output``."""
        reader = self.engine.pit_join(join.entities, join.timestamp_column, join.sources)
        total = ContentHash()
        batches: list[pa.RecordBatch] = []
        writer = None
        if output is not None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(str(output), join.schema)
        try:
            for raw_batch in reader:
                batch = raw_batch.cast(join.schema)
                total = total + content_hash(batch)
                if writer is not None:
                    writer.write_batch(batch)
                else:
                    batches.append(batch)
        finally:
            if writer is not None:
                writer.close()
        result = None if writer is not None else pa.Table.from_batches(batches, join.schema)
        return result, total

    def training_datasets(
        self, view: str, *, major: int | None = None
    ) -> list[TrainingDatasetRecord]:
        return self.registry.training_datasets(view, major)

    # -- runs and identities ---------------------------------------------------------------------
    def _start_run(
        self,
        kind: str,
        user: str,
        params: dict[str, Any],
        inputs: list[str] | None = None,
        *,
        code_hash: str | None = None,
        env_hash: str | None = None,
    ) -> RunRecord:
        run = RunRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            status="running",
            user=user,
            started_at=datetime.now(UTC),
            params=params,
            inputs=inputs or [],
            code_hash=code_hash or library_code_hash(),
            env_hash=env_hash or environment_hash(),
        )
        self.registry.start_run(run)
        return run

    def show(self, identity: str | VersionId) -> dict[str, Any]:
        """Everything recorded about one identity, as plain data."""
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident.kind == "entity":
            rec = self.registry.get_definition("entity", ident.name, None)
            return {"identity": str(ident), "version": rec.semver, "definition": rec.spec}
        if ident.kind == "feature_group":
            rec = self.registry.get_definition("feature_group", ident.name, ident.major)
            fg = _group_from_spec(rec.spec, rec.major)
            table = self._table(fg.name, rec.major)
            self._sync_versions(fg, table)
            versions = self.registry.data_versions(fg.name, rec.major)
            if ident.data is None:
                latest = versions[-1] if versions else None
                return {
                    "identity": str(VersionId("feature_group", fg.name, rec.major)),
                    "version": rec.semver,
                    "definition": rec.spec,
                    "latest_data_version": None if latest is None else _dv_dict(latest),
                    "storage": table.uri,
                }
            dv = self.registry.data_version(fg.name, rec.major, ident.data)
            if dv is None:
                raise NotFoundError(f"{ident} does not exist; latest is #{versions[-1].version}")
            return _dv_dict(dv)
        if ident.kind == "feature_view":
            rec = self.registry.get_definition("feature_view", ident.name, ident.major)
            return {"identity": str(rec.identity), "version": rec.semver, "definition": rec.spec}
        if ident.kind == "training_dataset":
            records = self.registry.training_datasets(ident.name, ident.major)
            if ident.number is not None:
                records = [r for r in records if r.number == ident.number]
            if not records:
                raise NotFoundError(f"{ident} is not recorded")
            r = records[-1]
            return {
                "identity": str(r.identity),
                "pins": r.pins,
                "entity_hash": r.entity_hash,
                "content_hash": str(r.content),
                "rows": r.rows,
                "columns": r.columns,
                "entity_path": r.entity_path,
                "output_path": r.output_path,
                "run": r.run_id,
                "user": r.user,
                "created_at": r.created_at.isoformat(),
                "params": r.params,
            }
        if ident.kind == "run":
            found = self.registry.run(ident.name)
            if found is None:
                raise NotFoundError(f"{ident} is not recorded")
            return {
                k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in found.__dict__.items()
            }
        raise NotFoundError(f"{ident.kind} identities are not recorded by this store yet")

    @property
    def environment(self) -> dict[str, str]:
        return environment()


def _dv_dict(dv: DataVersion) -> dict[str, Any]:
    return {
        "identity": str(dv.identity),
        "operation": dv.operation,
        "rows": dv.rows,
        "rows_added": dv.rows_added,
        "rows_removed": dv.rows_removed,
        "content_hash": str(dv.content),
        "schema_hash": dv.schema_hash,
        "files": dv.files,
        "run": dv.run_id,
        "user": dv.user,
        "created_at": dv.created_at.isoformat(),
        "note": dv.note,
    }


def _semver(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _group_spec(group: FeatureGroup) -> dict[str, Any]:
    """A group's registry spec: its definition plus its contract in YAML form."""
    spec = group.to_dict()
    if group.contract is not None:
        spec["contract"] = contract_to_yaml(group.contract)
    return spec


def _group_from_spec(spec: dict[str, Any], major: int) -> FeatureGroup:
    group = FeatureGroup.from_dict(spec, major)
    if spec.get("contract"):
        group = dataclasses.replace(group, contract=contract_from_yaml(spec["contract"]))
    return group


def _classify_group(old: dict[str, Any], new: dict[str, Any]) -> compat.Change:
    """Definition rules plus contract rules (a tightened error rule is breaking)."""
    change = compat.classify_group(old, new)
    before, after = old.get("contract"), new.get("contract")
    if before == after:
        return change
    if before is None or after is None:
        # adding a contract does not re-judge stored data (`featureledger contract test`
        # does), and removing one loosens: both are minor
        change.note("minor", "contract " + ("added" if before is None else "removed"))
        return change
    sub = classify_contract_change(contract_from_yaml(before), contract_from_yaml(after))
    for reason in sub.reasons:
        text, _, level = reason.rpartition(" [")
        level = level.rstrip("]")
        change.note(
            level if level in ("patch", "minor", "major") else "minor",  # type: ignore[arg-type]
            "contract: " + text,
        )
    return change
