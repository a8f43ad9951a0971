"""Shared state and lookups of the store: configuration, registry, engine, tables,
data-version records and runs."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from featureledger.config import CONFIG_FILE, STATE_DIR, RepoConfig
from featureledger.contracts import contract_from_yaml, contract_to_yaml
from featureledger.definitions import Entity, FeatureGroup, FeatureView, VersionId
from featureledger.errors import (
    ConfigError,
    DataError,
    FeatureLedgerError,
    IntegrityError,
    MonitorBlockError,
    NotFoundError,
)
from featureledger.hashing import ContentHash, schema_hash
from featureledger.offline import DeltaGroupTable, DuckDBEngine
from featureledger.offline.conform import NaivePolicy
from featureledger.registry import (
    DataVersion,
    DefinitionRecord,
    RegistryBackend,
    RunRecord,
    open_registry,
)
from featureledger.versioning.integrity import check_files, recorded_files
from featureledger.versioning.provenance import (
    current_user,
    environment,
    environment_hash,
    library_code_hash,
)
from featureledger.versioning.writer import rebuild_content


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


class _StoreBase:
    def __init__(self, repo: str | Path = ".", *, config: RepoConfig | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.config = config or RepoConfig.load(self.repo)
        self.registry: RegistryBackend = open_registry(self.config.registry_url(self.repo))
        off = self.config.offline
        self.engine = DuckDBEngine(
            temp_directory=self.config.resolve(self.repo, off.temp_directory),
            memory_limit=off.memory_limit,
            threads=off.threads,
        )
        self._offline_root = self.config.resolve(self.repo, off.path)
        self._lineage_sink: Any = None
        self._naive: NaivePolicy = "utc" if self.config.naive_timestamps == "utc" else "error"

    @classmethod
    def init(cls, repo: str | Path, *, project: str | None = None, exist_ok: bool = True) -> Self:
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
            self.use_definitions([name])
            version = version or name.version
            name = name.name
        rec = self.registry.get_definition("feature_view", name, version)
        fv = FeatureView.from_dict(rec.spec, rec.major)
        if not fv.on_demand:
            return fv
        # the registry keeps code hashes; the functions come from definitions seen in this
        # process, and only when their code is the registered code
        live: dict[tuple[str, str, str], Any] = self.__dict__.get("_on_demand", {})
        return dataclasses.replace(
            fv, on_demand=[live.get((fv.name, o.name, o.code_hash), o) for o in fv.on_demand]
        )

    def use_definitions(self, objects: Iterable[Any]) -> None:
        """Make the functions of these definitions (on-demand transforms) available to
        reads; `apply` does this for what it applies, the CLI for the repository's files."""
        live: dict[tuple[str, str, str], Any] = self.__dict__.setdefault("_on_demand", {})
        for obj in objects:
            if isinstance(obj, FeatureView):
                for o in obj.on_demand:
                    if o.function is not None:
                        live[(obj.name, o.name, o.code_hash)] = o

    def list_definitions(self, kind: str) -> list[DefinitionRecord]:
        """Every registered version of every definition of ``kind``."""
        return self.registry.definitions(kind)

    def _table(self, group: str, major: int) -> DeltaGroupTable:
        return DeltaGroupTable(self._offline_root / group / f"v{major}")

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

    @staticmethod
    def _snapshot_paths(table: DeltaGroupTable, version: int) -> list[str]:
        prefix = table.uri.rstrip("/") + "/"
        return [uri[len(prefix) :] for uri in table.files(version)]

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

    def _finish_run(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None:
        """Record how a run ended and emit it as OpenLineage events (best effort)."""
        self.registry.finish_run(run_id, status, outputs, error)
        self._emit_lineage(run_id)

    def _emit_lineage(self, run_id: str) -> None:
        transport = self.config.lineage.transport or {"type": "file"}
        if transport.get("type") == "none":
            return
        from featureledger.lineage import DatasetInfo, emit_run, make_sink

        if self._lineage_sink is None:
            self._lineage_sink = make_sink(transport, repo=self.repo)
        run = self.registry.run(run_id)
        if run is None:  # pragma: no cover - we just wrote it
            return
        datasets: dict[str, DatasetInfo] = {}
        for ident in [*run.inputs, *run.outputs]:
            try:
                parsed = VersionId.parse(ident)
            except FeatureLedgerError:
                continue  # file inputs and the like carry no registry record
            if parsed.kind == "feature_group" and parsed.data is not None:
                dv = self.registry.data_version(parsed.name, parsed.major or 1, parsed.data)
                if dv is not None:
                    datasets[ident] = DatasetInfo(
                        content_hash=str(dv.content),
                        schema_hash=dv.schema_hash,
                        rows=dv.rows,
                        operation=dv.operation,
                    )
        emit_run(
            self._lineage_sink,
            run,
            namespace=self.config.lineage.namespace or self.config.project,
            datasets=datasets,
        )

    def _check_blocks(
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
