"""Registered models, release gates and deployments."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from featureledger.contracts.gates import Gate, evaluate_gates, summarize
from featureledger.definitions import VersionId
from featureledger.definitions.names import check_name
from featureledger.errors import GateError, IntegrityError, NotFoundError
from featureledger.hashing import artifact_sha256
from featureledger.monitoring.evaluation import Evaluation
from featureledger.registry import DeploymentRecord, ModelRecord, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._training import TrainingData, TrainingService
from featureledger.versioning.provenance import (
    code_provenance,
    current_user,
    pipeline_environment,
)

#: the item under which a model's training code is recorded and compared
TRAINING_CODE = "training code"


def training_code(code: Callable[..., Any] | str | Path | None) -> dict[str, Any]:
    """What a model registration records of its training code and environment: a
    function's ``fn1:`` hash, parts and location, or a script's SHA-256 and path."""
    if code is None:
        found: dict[str, Any] = {"code": {}, "imports": []}
    elif callable(code):
        found = code_provenance({TRAINING_CODE: code})
    else:
        path = Path(code).resolve()
        if not path.is_file():
            raise NotFoundError(
                f"training code {path} does not exist; pass the script or a function"
            )
        found = {
            "code": {TRAINING_CODE: f"sha256:{artifact_sha256(path)[:16]}"},
            "code_where": {TRAINING_CODE: str(path)},
            "imports": [],
        }
    return {**found, "environment": pipeline_environment(found["imports"])}


def _identity(given: str | VersionId | TrainingData, whole: VersionId) -> VersionId:
    """The training set a model names: the whole set, or the part given (``...:train``)."""
    if isinstance(given, TrainingData):
        split = given.split
    else:
        split = (VersionId.parse(given) if isinstance(given, str) else given).split
    return replace(whole, split=split)


class Estimators(Protocol):
    """Fits a performance estimator before a model is recorded and keeps it after."""

    def prepare(
        self, reference: Any, *, training_dataset: str | None = ..., **options: Any
    ) -> Any: ...

    def persist(self, record: ModelRecord, est: Any) -> Any: ...


@dataclass(frozen=True)
class _ModelMetrics:
    metrics_raw: dict[str, Any]


class ModelService:
    """Models with their gates, and deployments."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        training: TrainingService,
        repo: Path,
        files: StoreFiles,
    ) -> None:
        self.files = files
        self.registry = registry
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.training = training
        self.repo = repo
        self.estimators: Estimators | None = None

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
        """Store a model artifact content-addressed and link it to its training dataset.

        ``metrics`` values may be lists of repeated evaluations; gates compare their means
        and record standard errors. A failed gate raises `GateError` and registers nothing.
        "Better than current" gates compare with the model currently deployed under the
        same name, else the latest registered version. ``code`` is the training code, a
        function or a script file: its hash (and the environment) is recorded for
        `reproduce`. ``evaluation`` (`FeatureStore.evaluate`) adds its metrics, and its
        slice figures for slice gates; it is kept with the model. ``estimator_reference``
        (the test split, or a frame with features, score/prediction and label) fits the
        model's performance estimator
        (``estimator_options``: see `fit_performance_estimator`); it is fitted before
        anything is recorded, so a reference that cannot be used registers nothing.
        """
        check_name("model", name)
        source = Path(artifact)
        if not source.exists():
            raise NotFoundError(f"model artifact {source} does not exist")
        if training_dataset is None and evaluation is not None and evaluation.training_set:
            training_dataset = VersionId.parse(evaluation.training_set).whole()
        td_ident: str | None = None
        if training_dataset is not None:
            td_record = self.training.record(training_dataset)
            td_ident = str(_identity(training_dataset, td_record.identity))
            self.records.check_blocks(f"registration of model/{name}", list(td_record.pins))
        if evaluation is not None:
            found = {k: v for k, v in evaluation.metrics.items() if v is not None}
            metrics = {**found, **(metrics or {})}
        summaries = summarize(metrics or {})
        reference = self._reference_model(name)
        results = evaluate_gates(
            gates,
            summaries,
            None if reference is None else summarize(reference.metrics_raw),
            None if evaluation is None else evaluation.slice_figures(),
        )
        failed = [r.to_dict() for r in results if not r.passed]
        if failed:
            raise GateError(f"model/{name}", failed)
        estimator = None
        if estimator_reference is not None:
            assert self.estimators is not None, "compose() wires the estimators"
            estimator = self.estimators.prepare(
                estimator_reference, training_dataset=td_ident, **(estimator_options or {})
            )
        digest = artifact_sha256(source)
        target = self.files.model_uri(digest, source.name)
        self.files.put(source, target)
        user = current_user()
        run = self.runs.start(
            "register-model",
            user,
            {"model": name, **training_code(code)},
            inputs=[td_ident] if td_ident else [],
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
                    **({"evaluation": evaluation.to_dict()} if evaluation else {}),
                },
                gates=[r.to_dict() for r in results],
                run_id=run.id,
                user=user,
                created_at=datetime.now(UTC),
                description=description,
            )
        )
        self.runs.finish(run.id, "succeeded", [str(record.identity)])
        if estimator is not None and self.estimators is not None:
            self.estimators.persist(record, estimator)
        self._log_to_mlflow(record)
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

    def fit_transforms(
        self,
        name: str,
        training_dataset: str | VersionId | TrainingData,
        transforms: Sequence[Any],
    ) -> ModelRecord:
        """Fit model-dependent transforms on a training dataset and register the fitted
        state as a versioned, content-addressed artifact linked to that dataset."""
        from featureledger.transforms.model_dependent import FittedTransforms

        record = self.training.record(training_dataset)
        fitted = FittedTransforms.fit(transforms, self.training.rows(record))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.transforms.json"
            path.write_text(fitted.to_json())
            return self.register_model(
                name,
                path,
                training_dataset=str(record.identity),
                description="fitted model-dependent transforms",
            )

    def load_transforms(self, identity: str) -> Any:
        """The fitted transforms of ``model/NAME/N``, checked against their recorded hash."""
        from featureledger.transforms.model_dependent import FittedTransforms

        ident = VersionId.parse(identity)
        found = [
            m
            for m in self.registry.models(ident.name)
            if ident.number is None or m.version == ident.number
        ]
        if not found:
            raise NotFoundError(f"{identity} is not registered")
        record = found[-1]
        if self.files.sha256(record.artifact_path) != record.artifact_hash:
            raise IntegrityError(
                f"{record.identity}: the stored transforms do not match the "
                "hash recorded at registration"
            )
        return FittedTransforms.from_json(self.files.read_bytes(record.artifact_path).decode())

    def _log_to_mlflow(self, record: ModelRecord) -> None:
        """When mlflow is installed and a run is active, tag it with what the model read."""
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is None:
            return
        tags = {
            "featureledger.model": str(record.identity),
            "featureledger.artifact_sha256": record.artifact_hash,
        }
        if record.training_dataset:
            td = self.training.record(VersionId.parse(record.training_dataset))
            tags |= {
                "featureledger.training_dataset": str(td.identity),
                "featureledger.training_dataset.content_hash": str(td.content),
                "featureledger.training_dataset.entity_hash": td.entity_hash,
            }
            for group, pin in td.pins.items():
                tags[f"featureledger.pin.{group}"] = f"{pin['identity']} {pin['content']}"
        mlflow.set_tags(tags)

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
        """Point ``deployment`` at a registered model version (the latest by default).

        Refused with `MonitorBlockError` while a blocking finding is open on the model's
        inputs (the groups its training set pins, its view) or on the version itself (a
        failed release check). Rolling a deployment back is never blocked.
        """
        check_name("deployment", deployment)
        versions = {m.version: m for m in self.registry.models(model)}
        if not versions:
            raise NotFoundError(f"model/{model} is not registered; register_model it first")
        chosen = max(versions) if version is None else version
        if chosen not in versions:
            raise NotFoundError(
                f"model/{model}/{chosen} does not exist; versions: {sorted(versions)}"
            )
        self.check_deployable(versions[chosen], f"deploy of {{}} to deployment/{deployment}")
        return self.move_deployment(deployment, model, chosen, "deploy", reason)

    def check_deployable(self, candidate: ModelRecord, where: str) -> None:
        """`MonitorBlockError` while a blocking finding is open on the model's inputs or on
        the version itself; ``where`` has a ``{}`` for the model's identity."""
        groups: list[str] = []
        views: list[str] = []
        if candidate.training_dataset:
            td = self.training.record(candidate.training_dataset)
            groups, views = list(td.pins), [td.view]
        self.records.check_blocks(
            where.format(candidate.identity),
            groups,
            views=views,
            models=[str(candidate.identity)],
        )

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
        return self.move_deployment(deployment, prev.model, prev.model_version, "rollback", reason)

    def move_deployment(
        self,
        deployment: str,
        model: str,
        version: int,
        action: str,
        reason: str,
        config: Mapping[str, Any] | None = None,
    ) -> DeploymentRecord:
        """Append a move; without ``config`` the strategy (canary, shadow, fallback) of the
        current move is kept, less any part that now names the primary model itself."""
        if config is None:
            current = self.current_deployment(deployment)
            config = {} if current is None else dict(current.config)
            for part in ("canary", "shadow"):
                held = config.get(part)
                if held and (held["model"], held["version"]) == (model, version):
                    config.pop(part)
        user = current_user()
        record = self.registry.add_deployment(
            DeploymentRecord(
                deployment,
                0,
                model,
                version,
                action,
                reason,
                user,
                datetime.now(UTC),
                dict(config),
            )
        )
        self.registry.audit(
            user,
            action,
            str(record.identity),
            {"model": str(record.model_identity), "reason": reason}
            | ({"config": dict(config)} if config else {}),
        )
        return record

    def current_deployment(self, deployment: str) -> DeploymentRecord | None:
        history = self.registry.deployments(deployment)
        return history[-1] if history else None

    def deployments(self, deployment: str | None = None) -> list[DeploymentRecord]:
        """Deployment history, oldest first."""
        return self.registry.deployments(deployment)
