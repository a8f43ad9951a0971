"""`FeatureStore`: the one thin facade users, the CLI and the server call.

Each concern is a service constructed here with exactly the ports and collaborators it
needs (see docs/architecture.md); every public method delegates to one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import pyarrow as pa

from featureledger.config import RepoConfig, create_repository
from featureledger.contracts import ValidationReport
from featureledger.contracts.gates import Gate
from featureledger.definitions import Definition, Entity, FeatureGroup, FeatureView, VersionId
from featureledger.definitions.split import Split
from featureledger.errors import OnlineStoreUnavailable
from featureledger.lineage import Impact, LineageGraph
from featureledger.monitoring import (
    DEFAULT_RELEASE_GATES,
    ColumnStats,
    DriftReport,
    Finding,
    Monitor,
    SkewReport,
)
from featureledger.monitoring.evaluation import Evaluation
from featureledger.offline import OfflineEngine
from featureledger.online import OnlineStore
from featureledger.registry import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RegistryBackend,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
)
from featureledger.storage import Storage
from featureledger.store._backfill import Backfill
from featureledger.store._compose import compose
from featureledger.store._definitions import Plan
from featureledger.store._deployments import DeploymentService
from featureledger.store._evaluation import EvaluationService
from featureledger.store._fallback import offline_fallback
from featureledger.store._forward import forward
from featureledger.store._llm import LLMService
from featureledger.store._model_monitoring import ModelMonitoringService
from featureledger.store._monitoring import ReleaseCheck
from featureledger.store._online import Materialization, OnlineFeatures
from featureledger.store._pipelines import PipelineRun
from featureledger.store._predictions import PredictionService
from featureledger.store._reproduce import verify_report
from featureledger.store._training import TrainingData
from featureledger.store._versions import VacuumResult
from featureledger.versioning.diff import DataDiff
from featureledger.versioning.integrity import VerifyReport
from featureledger.versioning.provenance import environment
from featureledger.versioning.reproduce import ReproduceReport
from featureledger.versioning.writer import Mode


class FeatureStore:
    """A feature repository: definitions, versioned feature data and training sets.

    ``FeatureStore("path/to/repo")`` opens a repository made by `FeatureStore.init`
    or ``featureledger init``. Use it as a context manager, or call `close`, to finish
    background work when done.
    """

    def __init__(self, repo: str | Path = ".", *, config: RepoConfig | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.config = config or RepoConfig.load(self.repo)
        svc = self._svc = compose(self.repo, self.config)
        self.registry: RegistryBackend = svc.registry
        self.storage: Storage = svc.storage
        self.engine: OfflineEngine = svc.engine

    @classmethod
    def init(cls, repo: str | Path, *, project: str | None = None, exist_ok: bool = True) -> Self:
        """Create a repository at ``repo`` (config file and state folder) and open it."""
        create_repository(Path(repo), project=project, exist_ok=exist_ok)
        return cls(repo)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Finish background work (statistics, feature logs, token-use entries) and release
        connections; the store stays usable: what was closed opens again on next use."""
        self._svc.statistics.wait()
        self._svc.logs.flush()
        self._svc.deployments.flush()
        self._svc.access.flush_token_audit()
        self._svc.online.close()
        self._svc.runs.close()
        self.engine.close()
        self.registry.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def llm(self) -> LLMService:
        """Corpora, embedding indexes, retrieval traces, fine-tuning sets (docs/llm.md)."""
        return self._svc.llm

    @property
    def environment(self) -> dict[str, str]:
        """The Python environment of this process (recorded with every run)."""
        return environment()

    def get_entity(self, name: str) -> Entity:
        return self._svc.catalog.get_entity(name)

    def get_feature_group(
        self, name: str | FeatureGroup, version: int | None = None
    ) -> FeatureGroup:
        return self._svc.catalog.get_feature_group(name, version)

    def get_feature_view(self, name: str | FeatureView, version: int | None = None) -> FeatureView:
        return self._svc.catalog.get_feature_view(name, version)

    def use_definitions(self, objects: Iterable[Any]) -> None:
        """Make the functions of these definitions (on-demand transforms) available to reads;
        `apply` does this for what it applies, the CLI for the repository's files."""
        return self._svc.catalog.use_definitions(objects)

    def list_definitions(self, kind: str) -> list[DefinitionRecord]:
        """Every registered version of every definition of ``kind``."""
        return self._svc.catalog.list_definitions(kind)

    def versions(self, group: str | FeatureGroup, *, major: int | None = None) -> list[DataVersion]:
        """Every data version of a group's definition major version, oldest first."""
        return self._svc.records.versions(group, major=major)

    def show(self, identity: str | VersionId) -> dict[str, Any]:
        """Everything recorded about one identity, as plain data."""
        return self._svc.records.show(identity)

    def plan(self, objects: Iterable[Definition]) -> Plan:
        """What `apply` would change, without changing anything."""
        return self._svc.definitions.plan(objects)

    def apply(self, objects: Iterable[Definition]) -> Plan:
        """Register definitions, versioning each change; all or nothing."""
        return self._svc.definitions.apply(objects)

    def rollback_view(self, name: str, *, to: str, reason: str = "") -> DefinitionRecord:
        """Register the spec of an earlier version of a feature view as its newest version."""
        return self._svc.definitions.rollback_view(name, to=to, reason=reason)

    def ingest(
        self,
        group: str | FeatureGroup,
        data: Any,
        *,
        mode: Mode = "upsert",
        version: int | None = None,
        note: str = "",
    ) -> DataVersion:
        """Write a batch as one atomic data version and return its record."""
        return self._svc.data.ingest(group, data, mode=mode, version=version, note=note)

    def quarantined(
        self, group: str | FeatureGroup, *, run: str | None = None, major: int | None = None
    ) -> pa.Table:
        """Rows held back by the quarantine policy, with the rules each failed and its run."""
        return self._svc.data.quarantined(group, run=run, major=major)

    def resolve_quarantine(
        self,
        group: str | FeatureGroup,
        *,
        run: str | None = None,
        reason: str = "",
        major: int | None = None,
    ) -> int:
        """Remove held rows (of one run, or all) once fixed and re-ingested; returns how many."""
        return self._svc.data.resolve_quarantine(group, run=run, reason=reason, major=major)

    def validations(
        self, group: str | FeatureGroup, *, version: int | None = None, major: int | None = None
    ) -> list[ValidationRecord]:
        """Contract reports of a group's ingests (of one data version when given)."""
        return self._svc.data.validations(group, version=version, major=major)

    def check_contract(
        self, group: str | FeatureGroup, *, major: int | None = None
    ) -> ValidationReport:
        """Evaluate the group's contract on its current data (what CI runs)."""
        return self._svc.data.check_contract(group, major=major)

    def compact(self, group: str | FeatureGroup, *, version: int | None = None) -> DataVersion:
        """Rewrite a group's files into fewer, key-sorted ones: a new version, same content."""
        return self._svc.data.compact(group, version=version)

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
        return self._svc.data.read(
            group, version=version, as_of=as_of, major=major, columns=columns
        )

    def history(
        self,
        group: str | FeatureGroup,
        key: Any = None,
        *,
        version: int | None = None,
        major: int | None = None,
    ) -> pa.Table:
        """A key's rows with the interval ``[valid_from, valid_to)`` each was current (SCD
        type 2); ``key`` is a value, or ``{column: value}`` for a composite key."""
        return self._svc.history.history(group, key, version=version, major=major)

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
        strict: bool = False,
        split: Split | str | None = None,
        label: str | None = None,
        helpers: Sequence[str] = (),
    ) -> TrainingData:
        """Point-in-time correct features for each row of ``entity_df``; warns when an
        input has no data at the frame's times, and refuses then with ``strict``.
        ``split`` records parts (``...:test``); ``label``/``helpers`` name columns."""
        return self._svc.training.training_data(
            view,
            entity_df,
            timestamp_column=timestamp_column,
            version=version,
            versions=versions,
            as_of=as_of,
            output=output,
            strict=strict,
            split=split,
            label=label,
            helpers=helpers,
        )

    def training_set(self, identity: str | VersionId) -> TrainingData:
        """A recorded training dataset, or one part of its split
        (``training_dataset/fraud@v1/3:test``), by identity."""
        return self._svc.training.training_set(identity)

    def training_datasets(
        self, view: str, *, major: int | None = None
    ) -> list[TrainingDatasetRecord]:
        return self._svc.training.training_datasets(view, major=major)

    def diff(
        self,
        group: str | FeatureGroup,
        old: int,
        new: int | None = None,
        *,
        major: int | None = None,
    ) -> DataDiff:
        """Schema, row and statistics differences between data versions ``old`` and ``new``."""
        return self._svc.versioning.diff(group, old, new, major=major)

    def rollback(
        self,
        group: str | FeatureGroup,
        *,
        to: int,
        reason: str = "",
        major: int | None = None,
    ) -> DataVersion:
        """A new data version whose content equals version ``to``; nothing is deleted."""
        return self._svc.versioning.rollback(group, to=to, reason=reason, major=major)

    def verify(
        self, identity: str | VersionId | None = None, *, definitions: Sequence[Definition] = ()
    ) -> list[VerifyReport]:
        """Re-hash the files and rows of data versions; a training set is rebuilt from its
        pins and its code and environment are compared too (with ``definitions``, the
        repository's code; else the registered)."""
        ident = VersionId.parse(identity) if isinstance(identity, str) else identity
        if ident is not None and ident.kind == "training_dataset":
            record = self._svc.training.record(ident)
            return [verify_report(self._svc.reproduce.training_set(record, definitions))]
        return self._svc.versioning.verify(identity)

    def pin(self, identity: str | VersionId, path: str | Path) -> Path:
        """Write a pointer file for a data version or training dataset (DVC-style)."""
        return self._svc.versioning.pin(identity, path)

    def unpin(self, pointer: str | Path, *, keep_file: bool = False) -> list[dict[str, Any]]:
        """Release a pointer file's pins (and remove the file unless ``keep_file``)."""
        return self._svc.versioning.unpin(pointer, keep_file=keep_file)

    def pins(self, group: str | None = None) -> list[dict[str, Any]]:
        """Pointer files that keep data versions from vacuum, as the registry records them."""
        return self.registry.pins(group)

    def checkout(self, pointer: str | Path, output: str | Path) -> VerifyReport:
        """Materialize the data a pointer file names into ``output`` (Parquet), verified."""
        return self._svc.versioning.checkout(pointer, output)

    def vacuum(
        self,
        *,
        older_than: timedelta,
        dry_run: bool = True,
        group: str | None = None,
        force: bool = False,
    ) -> VacuumResult:
        """Delete unreferenced data files older than ``older_than``; the only deletion.
        Versions pinned by training sets or pointer files are kept (``force``: not those of
        pointer files; audited)."""
        return self._svc.versioning.vacuum(
            older_than=older_than, dry_run=dry_run, group=group, force=force
        )

    def audit_log(self, identity: str | None = None) -> list[AuditEntry]:
        """The audit trail, oldest first; filtered to identities starting with ``identity``."""
        return self._svc.versioning.audit_log(identity)

    def audit_verify(self, against: dict[str, Any] | None = None) -> list[str]:
        """Problems in the keyed audit chain and the version rows it records, and against
        a head checkpoint from `audit_head` (empty when intact)."""
        return self._svc.versioning.audit_verify(against)

    def rotate_audit_key(self, *, reason: str = "") -> int:
        """Verify the audit chain under the current key, re-key it under a new key file
        (audited, atomic); returns how many entries were re-MAC-ed. Export a new checkpoint."""
        return self._svc.versioning.rotate_audit_key(reason)

    def audit_head(self) -> dict[str, Any]:
        """A signed checkpoint of the audit chain's newest entry: keep it outside the
        registry, then `audit_verify(against=...)` detects truncation and re-chaining."""
        return self._svc.versioning.audit_head()

    def run_pipeline(
        self,
        group: FeatureGroup | str,
        *,
        start: datetime,
        end: datetime,
        mode: Mode = "upsert",
    ) -> PipelineRun:
        """Compute the window [start, end) of a group's pipeline and upsert it."""
        return self._svc.pipelines.run_pipeline(group, start=start, end=end, mode=mode)

    def backfill(
        self,
        group: str | FeatureGroup,
        /,
        *,
        from_version: int,
        to_version: int | None = None,
        recompute: bool = False,
    ) -> Backfill:
        """Fill major version ``to_version`` (default: the latest) of a group from major
        ``from_version``, copying rows or (``recompute``) re-running its pipeline, as one
        audited data version (`BackfillService.backfill`; docs/versioning.md)."""
        return self._svc.backfill.backfill(
            group, from_version=from_version, to_version=to_version, recompute=recompute
        )

    def runs(self, state: str | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first (only those in ``state``); runs whose process is gone
        are marked ``abandoned`` first."""
        return self._svc.runs.listed(state)

    def reproduce(
        self, identity: str, *, definitions: Sequence[Definition] = ()
    ) -> ReproduceReport:
        """R(m) = data x code x environment, factor by factor, for a training set, model,
        deployment, pipeline run or the data version a pipeline wrote, with restore hints."""
        return self._svc.reproduce.reproduce(identity, definitions=definitions)

    def register_model(
        self,
        name: str,
        artifact: str | Path,
        *,
        training_dataset: str | VersionId | TrainingData | None = None,
        metrics: Mapping[str, float | Sequence[float]] | None = None,
        gates: Sequence[Gate] = (),
        description: str = "",
        code: Callable[..., Any] | str | Path | None = None,
        evaluation: Evaluation | None = None,
        estimator_reference: Any = None,
        estimator_options: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """Store a model artifact content-addressed and link it to its training dataset
        (and its training code, a function or script, for `reproduce`); gates read
        ``metrics`` and an ``evaluation``'s figures, slices included; with
        ``estimator_reference`` (its test split), fit its performance estimator too."""
        return self._svc.models.register_model(
            name,
            artifact,
            training_dataset=training_dataset,
            metrics=metrics,
            gates=gates,
            description=description,
            code=code,
            evaluation=evaluation,
            estimator_reference=estimator_reference,
            estimator_options=estimator_options,
        )

    evaluate = forward("evaluation", EvaluationService.evaluate)

    def fit_transforms(
        self,
        name: str,
        training_dataset: str | VersionId | TrainingData,
        transforms: Sequence[Any],
    ) -> ModelRecord:
        """Fit model-dependent transforms on a training dataset and register the fitted state as a
        versioned, content-addressed artifact linked to that dataset."""
        return self._svc.models.fit_transforms(name, training_dataset, transforms)

    def load_transforms(self, identity: str) -> Any:
        """The fitted transforms of ``model/NAME/N``, checked against their recorded hash."""
        return self._svc.models.load_transforms(identity)

    def models(self, name: str | None = None) -> list[ModelRecord]:
        return self._svc.models.models(name)

    # -- deployments, predictions and their logs (docs/serving.md): the services' own methods
    deploy = forward("deployments", DeploymentService.deploy)
    rollback_deployment = forward("deployments", DeploymentService.rollback)
    canary = forward("deployments", DeploymentService.canary)
    shadow = forward("deployments", DeploymentService.shadow)
    configure_deployment = forward("deployments", DeploymentService.configure)
    promote = forward("deployments", DeploymentService.promote)
    deployment_status = forward("deployments", DeploymentService.status)
    predict = forward("deployments", DeploymentService.predict)
    flush_predictions = forward("deployments", DeploymentService.flush)
    batch_predict = forward("predictions", PredictionService.batch_predict)
    predictions = forward("predictions", PredictionService.predictions)
    prediction_log = forward("predictions", PredictionService.prediction_log)
    log_labels = forward("predictions", PredictionService.log_labels)
    realized_performance = forward("predictions", PredictionService.realized_performance)

    def current_deployment(self, deployment: str) -> DeploymentRecord | None:
        return self._svc.models.current_deployment(deployment)

    def deployments(self, deployment: str | None = None) -> list[DeploymentRecord]:
        """Deployment history, oldest first."""
        return self._svc.models.deployments(deployment)

    def lineage_graph(self, *, include_runs: bool = True) -> LineageGraph:
        """The DAG of sources, data versions, views, training sets, models, deployments."""
        return self._svc.lineage.lineage_graph(include_runs=include_runs)

    def lineage(
        self,
        identity: str,
        *,
        direction: Literal["upstream", "downstream"] = "upstream",
        depth: int | None = None,
        format: Literal["text", "json", "dot", "mermaid"] = "text",
        include_runs: bool = True,
    ) -> str:
        """Render what ``identity`` was made from (upstream) or what was made from it;
        ``include_runs=False`` leaves the runs out (they remain the edges' evidence)."""
        return self._svc.lineage.lineage(
            identity, direction=direction, depth=depth, format=format, include_runs=include_runs
        )

    def impact(self, identity: str) -> Impact:
        """The training sets, models and deployments affected if ``identity`` is bad."""
        return self._svc.lineage.impact(identity)

    def impact_report(self, identity: str, *, format: Literal["text", "json"] = "text") -> str:
        return self._svc.lineage.impact_report(identity, format=format)

    def wait_for_stats(self, timeout: float | None = None) -> bool:
        """Wait until the statistics being computed after writes are stored."""
        return self._svc.statistics.wait(timeout)

    def stats(self, identity: str) -> dict[str, ColumnStats]:
        """Statistics of a data version or training dataset, computed once and kept."""
        return self._svc.statistics.stats(identity)

    def drift(
        self,
        reference: str,
        current: str,
        *,
        features: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> DriftReport:
        """Drift of ``current`` against ``reference`` per feature."""
        return self._svc.monitoring.drift(reference, current, features=features, now=now)

    def report(
        self,
        reference: str,
        current: str,
        output: str | Path,
        *,
        features: Sequence[str] | None = None,
        png_dir: str | Path | None = None,
        now: datetime | None = None,
    ) -> Path:
        """Write a self-contained HTML drift report (and, optionally, each plot as PNG)."""
        return self._svc.monitoring.report(
            reference, current, output, features=features, png_dir=png_dir, now=now
        )

    def monitors(self) -> list[Monitor]:
        """The monitors declared in the repository's ``monitors.yaml`` (none if absent)."""
        return self._svc.monitoring.monitors()

    def run_monitors(
        self, monitors: Sequence[Monitor] | None = None, *, now: datetime | None = None
    ) -> list[Finding]:
        """Evaluate monitors, keep their findings, and return them."""
        return self._svc.monitoring.run_monitors(monitors, now=now)

    # -- monitoring a model (docs/monitoring.md, "Monitoring a model") --------------------------
    fit_performance_estimator = forward(
        "model_monitoring", ModelMonitoringService.fit_performance_estimator
    )
    estimate_performance = forward("model_monitoring", ModelMonitoringService.estimate_performance)
    model_drift = forward("model_monitoring", ModelMonitoringService.model_drift)
    run_model_monitors = forward("model_monitoring", ModelMonitoringService.run_model_monitors)
    model_report = forward("model_monitoring", ModelMonitoringService.model_report)

    def open_findings(self) -> list[dict[str, object]]:
        return self._svc.monitoring.open_findings()

    def resolve_monitor(self, monitor: str, *, reason: str) -> int:
        """Accept a monitor's open findings (e.g. an expected shift), with the reason."""
        return self._svc.monitoring.resolve_monitor(monitor, reason=reason)

    def release_check(
        self,
        model: str,
        version: int | None = None,
        *,
        gates: Sequence[str | Gate] = DEFAULT_RELEASE_GATES,
        metrics: Mapping[str, float | Sequence[float]] | None = None,
        window: str | timedelta | None = "1d",
        now: datetime | None = None,
    ) -> ReleaseCheck:
        """Judge a model candidate against release gates and keep the failures as findings."""
        return self._svc.monitoring.release_check(
            model, version, gates=gates, metrics=metrics, window=window, now=now
        )

    def skew(
        self,
        view: str | FeatureView,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        major: int | None = None,
    ) -> SkewReport:
        """Training-serving skew: logged online values against the point-in-time offline values for
        the same entities at the same request times, per feature (the view's latest major version,
        or ``major``)."""
        return self._svc.monitoring.skew(view, start=start, end=end, major=major)

    def flush_feature_logs(self) -> None:
        """Write every served row logged so far (logging itself never waits)."""
        return self._svc.logs.flush()

    def feature_log(
        self,
        view: str | FeatureView,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        major: int | None = None,
    ) -> pa.Table:
        """Served rows logged for ``view`` (its latest major version, or ``major``) with start <=
        request time < end."""
        return self._svc.logs.read(view, start=start, end=end, major=major)

    def online_store(self) -> OnlineStore:
        """The configured online store (SQLite by default), opened once."""
        return self._svc.online.store()

    def materialize(
        self,
        names: Sequence[str] | None = None,
        *,
        incremental: bool = True,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[Materialization]:
        """Write the latest value per entity of online groups into the online store."""
        return self._svc.online.materialize(
            names, incremental=incremental, start=start, end=end, progress=progress
        )

    def online_freshness(self) -> list[dict[str, Any]]:
        """How current each group's online copy is, from the registry alone (no data read)."""
        return self._svc.online.online_freshness()

    def push(self, group: str | FeatureGroup, rows: Any, *, to: str = "online") -> int:
        """Write streaming rows to the online store, the offline store, or both."""
        return self._svc.online.push(group, rows, to=to)

    def get_online_features(
        self,
        view: str | FeatureView,
        entity_rows: Any,
        *,
        now: datetime | None = None,
        log: bool = False,
        request_data: Any = None,
    ) -> OnlineFeatures:
        """Latest features for each entity row, with the view's TTLs applied as offline.

        `OnlineStoreUnavailable` (retryable) when the online store cannot be reached; with
        ``online.fallback: offline`` the last materialized values are read offline instead,
        flagged ``source == "offline-fallback"`` (not logged)."""
        try:
            return self._svc.online.get_online_features(
                view, entity_rows, now=now, log=log, request_data=request_data
            )
        except OnlineStoreUnavailable as exc:
            if self.config.online.fallback != "offline":
                raise
            return offline_fallback(
                self._svc.online, view, entity_rows, cause=exc, now=now, request_data=request_data
            )

    def create_token(
        self,
        role: str,
        views: Iterable[str] = (),
        purpose: str = "",
        *,
        all_views: bool = False,
        deployments: Iterable[str] = (),
    ) -> str:
        """Create an API token that reads ``views`` (or every view with ``all_views``) and
        calls ``deployments``; with none it reads nothing. Returns the secret once."""
        return self._svc.access.create_token(
            role, views, purpose, all_views=all_views, deployments=deployments
        )

    def authorize_predict(self, record: TokenRecord, deployment: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` names ``deployment`` in its scope."""
        return self._svc.access.authorize_predict(record, deployment)

    def tokens(self) -> list[TokenRecord]:
        """Every API token (hashes only), revoked ones included."""
        return self._svc.access.tokens()

    def revoke_token(self, token_id: str, *, by: str | None = None) -> TokenRecord:
        """Revoke a token by id; it is refused from then on. ``by``: who (audit log)."""
        return self._svc.access.revoke_token(token_id, by=by)

    def check_token(self, token: str | None) -> TokenRecord:
        """The record of an active token; `TokenError` if missing, unknown or revoked."""
        return self._svc.access.check_token(token)

    def authorize_read(self, record: TokenRecord, view: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` may read every column of ``view``."""
        return self._svc.access.authorize_read(record, view)

    def authorize_index(self, record: TokenRecord, index: str, *, include_pii: bool) -> None:
        """Raise `AccessDeniedError` unless the token may search embedding index ``index``."""
        return self._svc.access.authorize_index(record, index, include_pii=include_pii)

    def authorize_push(
        self, record: TokenRecord, group: str, columns: Iterable[str] | None = None
    ) -> None:
        """Raise `AccessDeniedError` unless ``record`` may push ``columns`` into ``group``."""
        return self._svc.access.authorize_push(record, group, columns)

    def authorize_push_columns(
        self, record: TokenRecord, group: str, columns: Iterable[str]
    ) -> None:
        """Raise `AccessDeniedError` if ``record`` may not write one of ``columns``."""
        return self._svc.access.authorize_push_columns(record, group, columns)

    def authorize_admin(self, record: TokenRecord, action: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` is an admin token."""
        return self._svc.access.authorize_admin(record, action)

    def may_see_private(self, record: TokenRecord, view: str) -> bool:
        """Whether ``record`` may see values of ``view``'s pii/sensitive columns."""
        return self._svc.access.may_see_private(record, view)

    def private_columns(self, view: str) -> list[str]:
        """Output columns of ``view`` classified pii or sensitive, declared or derived."""
        return self._svc.access.private_columns(view)

    def audit_token_use(self, record: TokenRecord, obj: str, *, allowed: bool) -> None:
        """Count one use of a token in the audit trail (action ``token-use``)."""
        return self._svc.access.audit_token_use(record, obj, allowed=allowed)

    def flush_token_audit(self) -> None:
        """Wait until every queued token-use entry is in the audit trail."""
        return self._svc.access.flush_token_audit()
