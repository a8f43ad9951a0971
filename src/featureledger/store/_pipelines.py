"""Feature pipelines: windowed runs with provenance, and `reproduce`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from featureledger.config import RepoConfig
from featureledger.definitions import (
    Definition,
    FeatureGroup,
    FileSource,
    GroupSource,
    PythonTransform,
    SQLTransform,
    VersionId,
)
from featureledger.errors import DataError, DefinitionError, FeatureLedgerError, NotFoundError
from featureledger.hashing import artifact_sha256, content_hash
from featureledger.offline.base import OfflineEngine
from featureledger.offline.conform import NaivePolicy, conform_batch, to_arrow
from featureledger.registry import DataVersion, RegistryBackend, RunRecord
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.store._versions import VersionService
from featureledger.versioning.provenance import (
    current_user,
    environment_hash,
    function_location,
    pipeline_environment,
)
from featureledger.versioning.reproduce import ReproduceReport, compare
from featureledger.versioning.writer import Mode


@dataclass(frozen=True)
class PipelineRun:
    """What one feature-pipeline run read and wrote."""

    run_id: str
    version: DataVersion
    inputs: list[str]
    rows: int


@dataclass(frozen=True)
class _Window:
    table: pa.Table
    inputs: list[str]


class PipelineService:
    """Feature pipelines and the reproducibility check of their runs."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        data: DataService,
        versioning: VersionService,
        config: RepoConfig,
        repo: Path,
        naive: NaivePolicy,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.data = data
        self.versioning = versioning
        self.config = config
        self.repo = repo
        self._naive = naive

    def run_pipeline(
        self,
        group: FeatureGroup | str,
        *,
        start: datetime,
        end: datetime,
        mode: Mode = "upsert",
        note: str = "",
    ) -> PipelineRun:
        """Compute the window [start, end) of a group's pipeline and upsert it.

        The same call serves backfills and incremental runs; re-running a window whose
        inputs did not change writes nothing. The run records its inputs (file SHA-256 or
        pinned data versions), the transformation's code hash (per function, with its
        parts), the environment (Python and the packages the function uses) and the
        output's content hash.
        """
        fg = self._pipeline_group(group)
        window = self._pipeline_inputs(fg, start, end, pins=None)
        batch = self._pipeline_output(fg, window.table, start, end)
        transform = fg.transform
        env = pipeline_environment(
            transform.module_imports() if isinstance(transform, PythonTransform) else []
        )
        user = current_user()
        run = self.runs.start(
            "pipeline",
            user,
            {
                "group": fg.name,
                "major": fg.version or 1,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "mode": mode,
                "rows": batch.num_rows,
                # what the transformation read, for the column lineage of its events
                "source_columns": window.table.column_names,
                "output_hash": str(content_hash(batch)),
                "transform": transform.to_dict() if transform else None,
                "environment": env,
            },
            inputs=window.inputs,
            code_hash=transform.code_hash if transform else "identity",
            env_hash=environment_hash(env),
        )
        window_note = f"pipeline {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}"
        record = self.data.commit_batch(
            fg, batch, mode, f"{note}; {window_note}" if note else window_note, run, user
        )
        return PipelineRun(run.id, record, window.inputs, batch.num_rows)

    @staticmethod
    def _reproduce_code(
        report: ReproduceReport,
        recorded: str,
        params: Mapping[str, Any],
        transform: SQLTransform | PythonTransform | None,
    ) -> None:
        """The code factor: per-function hashes name the part that changed; runs recorded
        before ``fn1`` compare the function's raw source and its whole module, as then."""
        if not isinstance(transform, PythonTransform) or recorded.startswith("fn1:"):
            report.add(
                "code", "transformation", recorded, transform.code_hash if transform else "identity"
            )
            if isinstance(transform, PythonTransform):
                then = (params.get("transform") or {}).get("code_parts") or {}
                now = transform.code_parts
                for part in sorted(set(then) | set(now)):
                    report.add(
                        "code",
                        f"transformation: {part}",
                        then.get(part, "absent"),
                        now.get(part, "absent"),
                    )
            return
        report.add("code", "transformation", recorded, transform.legacy_code_hash)
        report.add("code", "module", params.get("module_hash", ""), transform.module_hash)

    def _pipeline_group(self, group: FeatureGroup | str) -> FeatureGroup:
        """The group as declared (with its live transformation) checked against the registry."""
        live = group if isinstance(group, FeatureGroup) else None
        registered = self.catalog.get_feature_group(group)
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
        src = self.catalog.get_feature_group(source.group, source.major)
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
        number = self.records.resolve(src, pinned, None)
        self.records.check_files(src, number)
        table = self.tables.table(src.name, m)
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
        self, identity: str | RunRecord, *, definitions: Sequence[Definition] = ()
    ) -> ReproduceReport:
        """Re-run a recorded pipeline run from its recorded inputs and compare, factor by factor.

        ``identity`` is ``run/<id>`` or the data version the run wrote. The report gives
        the reproducibility predicate R = data x code x environment, and whether the
        recomputed output hashes to what was written.
        """
        run = identity if isinstance(identity, RunRecord) else self.find_run(identity)
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
        fg = live or self.catalog.get_feature_group(params["group"], params.get("major"))
        fg = dataclasses.replace(fg, version=params.get("major"))
        report = ReproduceReport(f"run/{run.id}", covers=[*run.outputs, f"run/{run.id}"])
        # data: every recorded input still hashes as recorded
        for ident in run.inputs:
            if ident.startswith("file:"):
                path, _, digest = ident[len("file:") :].rpartition("@sha256:")
                now = artifact_sha256(path) if Path(path).exists() else "missing"
                report.add("data", ident, digest, now)
            else:
                v = self.versioning.verify_version(
                    self.catalog.get_feature_group(
                        VersionId.parse(ident).name, VersionId.parse(ident).major
                    ),
                    VersionId.parse(ident).data or 0,
                )
                report.add("data", ident, v.expected_hash or "", v.actual_hash or "missing")
        transform = fg.transform
        self._reproduce_code(report, run.code_hash, params, transform)
        env_then: dict[str, str] = params.get("environment", {})
        env_now = pipeline_environment(
            transform.module_imports() if isinstance(transform, PythonTransform) else []
        )
        report.environment_lock = dict(env_then)
        compare(report, "environment", env_then, env_now)
        if isinstance(transform, PythonTransform) and transform.function is not None:
            report.where["transformation"] = function_location(transform.function)
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

    def find_run(self, identity: str) -> RunRecord:
        ident = VersionId.parse(identity)
        if ident.kind == "run":
            run = self.registry.run(ident.name)
        elif ident.kind == "feature_group" and ident.data is not None:
            fg = self.catalog.get_feature_group(ident.name, ident.major)
            dv = self.registry.data_version(fg.name, fg.version or 1, ident.data)
            run = None if dv is None or dv.run_id is None else self.registry.run(dv.run_id)
        else:
            raise DataError(
                f"{identity}: give a run/<id> or a data version like feature_group/NAME@vN#K"
            )
        if run is None:
            raise NotFoundError(f"no run is recorded for {identity}")
        return run
