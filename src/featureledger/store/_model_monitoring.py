"""Monitoring a registered model from its logged predictions: the performance estimator
(CBPE / DLE, PCA drift, reference outputs) fitted and kept as a content-hashed artifact,
estimated and realized performance, multivariate and prediction drift, model monitors and
their report (docs/monitoring.md, "Monitoring a model")."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import VersionId
from featureledger.errors import DataError, DefinitionError, IntegrityError, NotFoundError
from featureledger.monitoring import Finding, Monitor, MonitorContext
from featureledger.monitoring.model_monitors import evaluate_model_monitor, family
from featureledger.monitoring.model_report import render_model_report
from featureledger.monitoring.performance import (
    ModelDriftReport,
    PerformanceEstimator,
    PerformanceReport,
    as_table,
    sha256,
)
from featureledger.monitoring.predictions import join_labels
from featureledger.registry import ModelRecord, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._runs import Runs
from featureledger.store._training import TrainingData, TrainingService
from featureledger.versioning.provenance import current_user

#: the run kind whose params point at a model's estimator artifact
RUN_KIND = "fit-performance-estimator"
ARTIFACT_NAME = "performance-estimator.pkl"


@dataclass(frozen=True)
class EstimatorRecord:
    """Where a model's performance estimator is kept and what it was fitted on."""

    model: str
    uri: str
    sha256: str
    task: str
    features: tuple[str, ...]
    fitted_on: str
    reference_rows: int
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "uri": self.uri,
            "sha256": self.sha256,
            "task": self.task,
            "features": list(self.features),
            "fitted_on": self.fitted_on,
            "reference_rows": self.reference_rows,
            "run_id": self.run_id,
        }


class ModelMonitoringService:
    """Performance estimators, model drift and model monitors."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        files: StoreFiles,
        runs: Runs,
        catalog: Catalog,
        training: TrainingService,
    ) -> None:
        self.registry = registry
        self.files = files
        self.runs = runs
        self.catalog = catalog
        self.training = training

    # -- the estimator ------------------------------------------------------------------------
    def model(self, model: str | VersionId | ModelRecord) -> ModelRecord:
        """``model/NAME/N``, ``model/NAME`` or ``NAME`` (the latest version)."""
        if isinstance(model, ModelRecord):
            return model
        text = str(model)
        ident = VersionId.parse(text if "/" in text else f"model/{text}")
        found = [
            m
            for m in self.registry.models(ident.name)
            if ident.number is None or m.version == ident.number
        ]
        if not found:
            raise NotFoundError(f"{ident} is not registered; register_model it first")
        return found[-1]

    def prepare(
        self,
        reference: Any,
        *,
        training_dataset: str | None = None,
        predictor: Any = None,
        drift_reference: Any = None,
        **options: Any,
    ) -> PerformanceEstimator:
        """Fit an estimator without storing it (register_model fits before it records).

        ``reference``: a training dataset (identity or `TrainingData`, e.g. the test split)
        or a frame with features, ``prediction`` (and ``score``) and ``label``. A training
        set without model outputs is scored with ``predictor`` (``predict_proba`` /
        ``predict`` over its feature columns). ``drift_reference`` (default: the model's
        training dataset, else the reference) is where the PCA of multivariate drift is
        fitted."""
        table, fitted_on = self._reference(reference)
        features = options.get("features")
        label = options.get("label", "label")
        if predictor is not None:
            table = _score(table, predictor, features, label, options)
        if drift_reference is None and training_dataset is not None:
            drift_reference = training_dataset
        drift_table = None if drift_reference is None else self._reference(drift_reference)[0]
        return PerformanceEstimator.fit(
            table, drift_reference=drift_table, fitted_on=fitted_on, **options
        )

    def fit_performance_estimator(
        self,
        model: str | VersionId | ModelRecord,
        reference: Any,
        *,
        predictor: Any = None,
        drift_reference: Any = None,
        **options: Any,
    ) -> EstimatorRecord:
        """Fit the model's performance estimator on a labelled reference (its test split)
        and keep it as a content-hashed artifact; it replaces the model's earlier one.

        ``options`` go to `PerformanceEstimator.fit` (task, features, label, score,
        prediction, chunk_size, variance, threshold)."""
        record = self.model(model)
        est = self.prepare(
            reference,
            training_dataset=record.training_dataset,
            predictor=predictor,
            drift_reference=drift_reference,
            **options,
        )
        return self.persist(record, est)

    def persist(self, record: ModelRecord, est: PerformanceEstimator) -> EstimatorRecord:
        """Store ``est`` for ``record``. A crash before the run is finished leaves the
        earlier estimator in force (the half-done run is reaped as abandoned)."""
        ident = str(record.identity)
        data = est.to_bytes()
        digest = sha256(data)
        uri = self.files.model_uri(digest, ARTIFACT_NAME)
        user = current_user()
        inputs = [ident] + ([est.fitted_on] if _is_identity(est.fitted_on) else [])
        described = {
            "uri": uri,
            "sha256": digest,
            "task": est.task,
            "features": est.features,
            "fitted_on": est.fitted_on,
            "reference_rows": est.reference_rows,
        }
        run = self.runs.start(RUN_KIND, user, {"model": ident, "estimator": described}, inputs)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / ARTIFACT_NAME
                path.write_bytes(data)
                self.files.put(path, uri)
        except BaseException as exc:
            self.runs.finish(run.id, "failed", [], error=str(exc))
            raise
        self.runs.finish(run.id, "succeeded", [])
        self.registry.audit(user, "fit-estimator", ident, described)
        return EstimatorRecord(
            ident,
            uri,
            digest,
            est.task,
            tuple(est.features),
            est.fitted_on,
            est.reference_rows,
            run.id,
        )

    def estimator_record(self, model: str | VersionId | ModelRecord) -> EstimatorRecord:
        """The model's latest successfully stored estimator."""
        ident = str(self.model(model).identity)
        found = [
            r
            for r in self.registry.runs("succeeded")
            if r.kind == RUN_KIND and r.params.get("model") == ident
        ]
        if not found:
            raise NotFoundError(
                f"{ident} has no performance estimator; fit one on its test split with "
                "fit_performance_estimator(model, reference) or register_model(..., "
                "estimator_reference=...)"
            )
        run = max(found, key=lambda r: (r.ended_at or r.started_at, r.started_at))
        e = run.params["estimator"]
        return EstimatorRecord(
            ident,
            e["uri"],
            e["sha256"],
            e["task"],
            tuple(e["features"]),
            e["fitted_on"],
            int(e["reference_rows"]),
            run.id,
        )

    def performance_estimator(self, model: str | VersionId | ModelRecord) -> PerformanceEstimator:
        """The model's estimator, checked against the hash recorded when it was stored."""
        rec = self.estimator_record(model)
        data = self.files.read_bytes(rec.uri)
        if sha256(data) != rec.sha256:
            raise IntegrityError(
                f"{rec.model}: the stored performance estimator {rec.uri} does not match the "
                f"hash recorded when it was fitted (run {rec.run_id}); fit it again"
            )
        return PerformanceEstimator.from_bytes(data, where=f"{rec.model} estimator")

    # -- judging predictions -------------------------------------------------------------------
    def estimate_performance(
        self,
        model: str | VersionId | ModelRecord,
        predictions: Any,
        *,
        labels: Any = None,
        chunk_size: int | None = None,
        period: str | None = None,
    ) -> PerformanceReport:
        """Estimated performance per chunk of logged predictions (rows of this model only,
        when they carry a ``model`` column), and the realized performance where ``labels``
        (``prediction_id`` or entity keys + ``event_timestamp``, and ``label``) arrived."""
        record = self.model(model)
        est = self.performance_estimator(record)
        table = self._predictions(
            record, est, predictions, labels, features=est.task == "regression"
        )
        return est.estimate(table, chunk_size=chunk_size, period=period, model=str(record.identity))

    def model_drift(
        self,
        model: str | VersionId | ModelRecord,
        predictions: Any,
        *,
        chunk_size: int | None = None,
        period: str | None = None,
    ) -> ModelDriftReport:
        """Multivariate drift (PCA reconstruction error per chunk) and prediction drift of
        logged predictions against the model's reference."""
        record = self.model(model)
        est = self.performance_estimator(record)
        table = self._predictions(record, est, predictions, None, features=est.pca is not None)
        return est.drift(table, chunk_size=chunk_size, period=period, model=str(record.identity))

    def run_model_monitors(
        self,
        monitors: Sequence[Monitor],
        predictions: Any,
        *,
        labels: Any = None,
        chunk_size: int | None = None,
        period: str | None = None,
        now: datetime | None = None,
    ) -> list[Finding]:
        """Evaluate monitors on ``model/...`` targets over logged predictions, keep their
        findings (a breach is stored; the monitor's earlier finding is superseded) and
        return them. ``action: block`` at the alert level stops `deploy` of the version."""
        when = now or datetime.now(UTC)
        out = []
        cache: dict[str, tuple[PerformanceReport | None, ModelDriftReport | None]] = {}
        for monitor in monitors:
            target = VersionId.parse(monitor.target)
            if target.kind != "model":
                raise DefinitionError(
                    f"monitor {monitor.name!r} targets {monitor.target}; run_model_monitors "
                    "takes model/NAME[/N] targets (run_monitors takes the others)"
                )
            record = self.model(monitor.target)
            ident = str(record.identity)
            kind = family(monitor.metric)
            key = f"{ident}|{'drift' if kind.endswith('drift') else 'perf'}"
            if key not in cache:
                if kind.endswith("drift"):
                    cache[key] = (
                        None,
                        self.model_drift(record, predictions, chunk_size=chunk_size, period=period),
                    )
                else:
                    cache[key] = (
                        self.estimate_performance(
                            record, predictions, labels=labels, chunk_size=chunk_size, period=period
                        ),
                        None,
                    )
            perf, drift = cache[key]
            context = MonitorContext(
                reference=self.estimator_record(record).fitted_on or ident,
                current=f"predictions of {ident}",
                now=when,
            )
            finding = evaluate_model_monitor(monitor, perf, drift, context)
            # stored under the resolved version, so a blocking finding stops its deploy
            finding = _retarget(finding, ident)
            self.registry.resolve_findings(monitor.name, "superseded by a later evaluation")
            if finding.breached:
                self.registry.add_finding(
                    monitor.name, ident, finding.status, finding.blocking, finding.to_dict()
                )
            out.append(finding)
        return out

    def model_report(
        self,
        model: str | VersionId | ModelRecord,
        predictions: Any,
        output: str | Path,
        *,
        labels: Any = None,
        chunk_size: int | None = None,
        period: str | None = None,
        png_dir: str | Path | None = None,
        now: datetime | None = None,
    ) -> Path:
        """Write an HTML page: estimated against realized performance per chunk with its
        band, the PCA reconstruction error against the reference band, prediction drift,
        and the model's open findings."""
        record = self.model(model)
        ident = str(record.identity)
        perf = self.estimate_performance(
            record, predictions, labels=labels, chunk_size=chunk_size, period=period
        )
        drift = self.model_drift(record, predictions, chunk_size=chunk_size, period=period)
        findings = [f for f in self.registry.open_findings() if str(f.get("target", "")) == ident]
        page = render_model_report(
            ident,
            perf,
            drift,
            findings,
            fitted_on=self.estimator_record(record).fitted_on,
            generated_at=now or datetime.now(UTC),
            png_dir=png_dir,
        )
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        return target

    # -- helpers ----------------------------------------------------------------------------
    def _reference(self, reference: Any) -> tuple[pa.Table, str]:
        """A reference as a table, and the identity it came from ('' for a frame)."""
        if isinstance(reference, TrainingData | str | VersionId):
            record = self.training.record(reference)
            return self.training.rows(record), str(record.identity)
        return as_table(reference), ""

    def _predictions(
        self,
        record: ModelRecord,
        est: PerformanceEstimator,
        predictions: Any,
        labels: Any,
        *,
        features: bool,
    ) -> pa.Table:
        """This model's logged rows, with labels joined and, when the log holds no feature
        values, the features read point-in-time from the model's view."""
        table = as_table(predictions)
        ident = str(record.identity)
        if "model" in table.column_names:
            table = table.filter(pc.equal(table.column("model"), ident))
            if table.num_rows == 0:
                raise DataError(
                    f"{ident}: the predictions hold no rows of this model (column 'model'); "
                    "pass its logged predictions"
                )
        missing = [f for f in est.features if f not in table.column_names]
        if features and missing:
            table = self._with_features(record, table, missing)
        if labels is not None:
            table = join_labels(table, labels, label=est.label)
        return table

    def _with_features(self, record: ModelRecord, table: pa.Table, missing: list[str]) -> pa.Table:
        if not record.training_dataset or "event_timestamp" not in table.column_names:
            raise DataError(
                f"{record.identity}: the predictions lack feature column(s) {missing} and "
                "cannot be joined point-in-time (the model has no training dataset, or the "
                "rows no event_timestamp); include the features"
            )
        td = self.training.record(record.training_dataset)
        fv = self.catalog.get_feature_view(td.view, td.major)
        # the view's entity keys, as the log holds them (other columns, such as features
        # that were logged, must not become join keys)
        keys: list[str] = []
        for src in fv.sources:
            fg = self.catalog.get_feature_group(src.group, src.major)
            for key in fg.primary_key:
                col = src.join_key_map.get(key, key)
                if col not in keys:
                    keys.append(col)
        absent = [k for k in keys if k not in table.column_names]
        if absent:
            raise DataError(
                f"{record.identity}: the predictions lack the entity key column(s) {absent} of "
                f"feature_view/{fv.name}; the features cannot be read point-in-time"
            )
        entities = table.select([*keys, "event_timestamp"]).append_column(
            "__row", pa.array(np.arange(table.num_rows), pa.int64())
        )
        join = self.training.plan_join(fv, entities, "event_timestamp", None, None)
        joined, _ = self.training.run_join(join, None)
        assert joined is not None
        joined = joined.sort_by("__row")
        for name in missing:
            if name in joined.column_names:
                table = table.append_column(name, joined.column(name))
        return table


def _retarget(finding: Finding, ident: str) -> Finding:
    import dataclasses

    return dataclasses.replace(finding, target=ident)


def _is_identity(text: str) -> bool:
    try:
        VersionId.parse(text)
    except Exception:
        return False
    return bool(text)


def _score(
    table: pa.Table,
    predictor: Any,
    features: Sequence[str] | None,
    label: str,
    options: Mapping[str, Any],
) -> pa.Table:
    """Add the predictor's ``score`` (positive-class probability) and ``prediction`` to a
    reference that has none."""
    score, prediction = options.get("score", "score"), options.get("prediction", "prediction")
    skip = {label, score, prediction, "event_timestamp"}
    cols = (
        list(features)
        if features is not None
        else [
            f.name
            for f in table.schema
            if f.name not in skip and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        ]
    )
    x = np.column_stack(
        [
            np.asarray(table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False))
            for c in cols
        ]
    )
    if (
        score not in table.column_names
        and hasattr(predictor, "predict_proba")
        and options.get("task") != "regression"
    ):
        table = table.append_column(
            score, pa.array(np.asarray(predictor.predict_proba(x))[:, 1], pa.float64())
        )
    if prediction not in table.column_names:
        table = table.append_column(
            prediction, pa.array(np.asarray(predictor.predict(x), dtype=float), pa.float64())
        )
    return table
