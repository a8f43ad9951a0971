"""Drift between any two identities or served-feature windows, training-serving skew,
reports, monitors and release checks."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from featureledger.contracts.gates import (
    Gate,
    GateResult,
    MetricSummary,
    evaluate_gates,
    parse_gate,
    summarize,
)
from featureledger.definitions import FeatureGroup, FeatureView, VersionId
from featureledger.definitions.contract import parse_duration
from featureledger.errors import DataError, DefinitionError, FeatureLedgerError, NotFoundError
from featureledger.monitoring import (
    DEFAULT_RELEASE_GATES,
    SKEW_METRICS,
    TIME_METRICS,
    ColumnStats,
    DriftReport,
    Finding,
    Monitor,
    MonitorContext,
    ServedWindow,
    SkewReport,
    check_freshness,
    drift,
    evaluate_monitor,
    export_plots,
    gate_findings,
    load_monitors,
    newest_time,
    release_metrics,
    render_report,
    skew,
)
from featureledger.monitoring.metrics import STATUS_RANK
from featureledger.offline.base import OfflineEngine
from featureledger.offline.logs import REQUEST_TIME
from featureledger.registry import ModelRecord, RegistryBackend, TrainingDatasetRecord
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._feature_logs import FeatureLogs
from featureledger.store._records import VersionRecords
from featureledger.store._stats import StatisticsService, _view_features
from featureledger.store._training import TrainingService
from featureledger.versioning.provenance import current_user

log = logging.getLogger(__name__)


#: release-gate metric families measured from monitoring (the rest come from the caller)
_MONITORED = ("drift.", "freshness.", "skew.")


@dataclass(frozen=True)
class _Side:
    """One side of a drift comparison: stored statistics or served rows."""

    label: str
    data: Mapping[str, ColumnStats] | pa.Table
    features: list[str]


@dataclass
class _Evidence:
    """What monitoring measured for a release check."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    unmeasured: dict[str, str] = field(default_factory=dict)  # metric prefix -> why
    notes: list[str] = field(default_factory=list)
    reference: str | None = None
    drift: DriftReport | None = None
    served_drift: DriftReport | None = None
    skew: SkewReport | None = None


@dataclass(frozen=True)
class ReleaseCheck:
    """The outcome of `release_check`: each gate's result (a gate whose monitoring metric
    could not be measured passes as skipped and says why), the metrics judged (mean,
    standard error, n), the findings kept for failed gates, and the monitoring evidence."""

    model: str
    results: tuple[GateResult, ...]
    metrics: Mapping[str, MetricSummary]
    findings: tuple[Finding, ...] = ()
    drift: DriftReport | None = None
    served_drift: DriftReport | None = None
    skew: SkewReport | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "passed": self.passed,
            "gates": [{**r.to_dict(), "skipped": r.gate in self.skipped} for r in self.results],
            "metrics": {k: s.to_dict() for k, s in self.metrics.items()},
            "findings": [f.to_dict() for f in self.findings],
            "drift": None if self.drift is None else self.drift.to_dict(),
            "served_drift": None if self.served_drift is None else self.served_drift.to_dict(),
            "skew": None if self.skew is None else self.skew.to_dict(),
            "notes": list(self.notes),
        }


def _age(evidence: Mapping[str, Any]) -> float:
    value = evidence.get("value")
    return math.inf if value is None else float(value)


def _kind_name(target: str) -> tuple[str, str]:
    try:
        ident = VersionId.parse(target)
    except FeatureLedgerError:
        return ("", target)
    return (ident.kind, ident.name)


def _finding(stored: Mapping[str, Any]) -> Finding:
    """A `Finding` back from its stored JSON form."""
    known = {f.name for f in fields(Finding)}
    data = {k: v for k, v in stored.items() if k in known}
    if isinstance(data.get("observed_at"), str):
        data["observed_at"] = datetime.fromisoformat(data["observed_at"])
    return Finding(**data)


class MonitoringService:
    """Drift, skew, reports, monitors, findings and release checks."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        repo: Path,
        catalog: Catalog,
        records: VersionRecords,
        data: DataService,
        training: TrainingService,
        statistics: StatisticsService,
        logs: FeatureLogs,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.repo = repo
        self.catalog = catalog
        self.records = records
        self.data = data
        self.training = training
        self.statistics = statistics
        self.logs = logs

    # -- drift and reports ----------------------------------------------------------------------
    def drift(
        self,
        reference: str,
        current: str,
        *,
        features: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> DriftReport:
        """Drift of ``current`` against ``reference`` per feature.

        Each side is a data version or training dataset (compared from their kept
        statistics) or a window of logged serving features, ``served/VIEW[:WINDOW]`` (e.g.
        ``served/fraud:1d``, ending ``now``), whose statistics are computed with the other
        side's bins.
        """
        when = now or datetime.now(UTC)
        ref, cur = self._side(reference, when), self._side(current, when)
        if features is None:  # keys and times are not features: compare what both serve
            theirs = set(cur.features)
            features = [f for f in ref.features if f in theirs]
        return drift(
            ref.data,
            cur.data,
            features=features,
            reference_id=ref.label,
            current_id=cur.label,
            engine=self.engine,
        )

    def _side(self, text: str, now: datetime) -> _Side:
        if ServedWindow.is_served(text):
            window = ServedWindow.parse(text)
            fv = self.catalog.get_feature_view(window.view, window.major)
            start, end = window.bounds(now)
            rows = self._served_rows(fv, start, end)
            if rows.num_rows == 0:
                raise DataError(
                    f"{window.describe(now)}: no served rows were logged in that window; "
                    "serve with get_online_features(..., log=True) or widen the window"
                )
            return _Side(window.describe(now), rows, _view_features(fv))
        ident = self.statistics.identity(text)
        return _Side(
            str(ident), self.statistics.stats(str(ident)), self.statistics.feature_names(ident)
        )

    def _served_rows(self, fv: FeatureView, start: datetime | None, end: datetime) -> pa.Table:
        """Logged served rows of ``fv`` with start <= request time < end (none: empty)."""
        try:
            return self.logs.read(fv, start=start, end=end)
        except NotFoundError:
            return pa.table({f: pa.array([], pa.float64()) for f in _view_features(fv)})

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
        """Write a self-contained HTML drift report (and, optionally, each plot as PNG).

        Besides the drift table and a plot per feature, the page lists the open findings
        (monitors, freshness SLOs, release gates) on the groups and views compared, and,
        when a side is a window of served features, the skew of that window.
        """
        when = now or datetime.now(UTC)
        result = self.drift(reference, current, features=features, now=when)
        targets = self._report_targets([reference, current])
        findings = [
            _finding(f)
            for f in self.registry.open_findings()
            if _kind_name(str(f.get("target", ""))) in targets
        ]
        skew_report = None
        served = next((t for t in (current, reference) if ServedWindow.is_served(t)), None)
        if served is not None:
            window = ServedWindow.parse(served)
            start, end = window.bounds(when)
            try:
                skew_report = self.skew(window.view, start=start, end=end, major=window.major)
            except FeatureLedgerError as exc:  # e.g. no offline data at the served times
                log.info("report: no skew section for %s: %s", served, exc)
        page = render_report(
            f"{result.current} vs {result.reference}",
            result,
            findings,
            skew_report,
            generated_at=when,
        )
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        if png_dir is not None:
            export_plots(png_dir, result)
        return target

    def _report_targets(self, sides: Sequence[str]) -> set[tuple[str, str]]:
        """The (kind, name) of the groups and views a report compares."""
        out: set[tuple[str, str]] = set()
        for text in sides:
            if ServedWindow.is_served(text):
                fv = self.catalog.get_feature_view(ServedWindow.parse(text).view)
            else:
                ident = self.statistics.identity(text)
                if ident.kind == "feature_group":
                    out.add(("feature_group", ident.name))
                    continue
                record = self.training.record(ident)
                fv = self.catalog.get_feature_view(record.view, record.major)
            out.add(("feature_view", fv.name))
            out |= {("feature_group", src.group) for src in fv.sources}
        return out

    # -- monitors ---------------------------------------------------------------------------
    def monitors(self) -> list[Monitor]:
        """The monitors declared in the repository's ``monitors.yaml`` (none if absent)."""
        path = self.repo / "monitors.yaml"
        return load_monitors(path) if path.exists() else []

    def run_monitors(
        self, monitors: Sequence[Monitor] | None = None, *, now: datetime | None = None
    ) -> list[Finding]:
        """Evaluate monitors, keep their findings, and return them.

        A monitor's earlier open finding is resolved (superseded) by its new evaluation, so
        the open findings are always those of the latest run. On a feature group, drift
        monitors compare the latest data version with the previous non-empty one
        (``reference: previous``) or a given identity. On a feature view, they compare the
        served features of the monitor's window with the training set of the deployed
        model (``reference: training``), the window before (``previous``) or an identity;
        skew metrics evaluate `skew` over the window. Freshness monitors read the newest
        event time from kept statistics and the last write from the registry; on a view,
        the worst of its groups counts.
        """
        when = now or datetime.now(UTC)
        findings = []
        declared = self.monitors() if monitors is None else monitors
        if monitors is None:  # model monitors judge logged predictions: run_model_monitors
            declared = [m for m in declared if not m.target.startswith("model/")]
        for monitor in declared:
            if monitor.target.startswith("model/"):
                raise DefinitionError(
                    f"monitor {monitor.name!r} watches {monitor.target}: pass it with the "
                    "model's logged predictions to run_model_monitors"
                )
            finding = self._evaluate(monitor, when)
            self.registry.resolve_findings(monitor.name, "superseded by a later evaluation")
            if finding.breached:
                self.registry.add_finding(
                    monitor.name,
                    monitor.target,
                    finding.status,
                    finding.blocking,
                    finding.to_dict(),
                )
            findings.append(finding)
        return findings

    def _evaluate(self, monitor: Monitor, when: datetime) -> Finding:
        target = VersionId.parse(monitor.target)
        if target.kind == "feature_view":
            fv = self.catalog.get_feature_view(target.name, target.major)
            if monitor.metric in TIME_METRICS:
                return self._view_freshness(monitor, fv, when)
            return self._evaluate_view(monitor, fv, when)
        fg = self.catalog.get_feature_group(target.name, target.major)
        if monitor.metric in TIME_METRICS:
            return self._group_freshness(monitor, fg, when)
        if monitor.metric in SKEW_METRICS:
            raise DefinitionError(
                f"monitor {monitor.name!r}: {monitor.metric} compares served with offline "
                "values; give a feature_view/NAME target"
            )
        records = [r for r in self.records.versions(fg) if r.rows]
        if not records:
            raise NotFoundError(f"monitor {monitor.name!r}: {fg.name!r} holds no data yet")
        current = str(records[-1].identity)
        reference = monitor.reference
        if reference == "previous":
            # with one version there is nothing to compare with yet: it is its own reference
            reference = str(records[-2].identity) if len(records) > 1 else current
        result = self.drift(reference, current, features=list(monitor.features) or None)
        context = MonitorContext(
            reference=reference, current=current, last_good=reference, now=when
        )
        return evaluate_monitor(monitor, result, context)

    def _group_freshness(self, monitor: Monitor, fg: FeatureGroup, when: datetime) -> Finding:
        records = [r for r in self.records.versions(fg) if r.rows]
        newest = None
        if records and fg.event_time:
            st = self.statistics.stats(str(records[-1].identity)).get(fg.event_time)
            newest = None if st is None else newest_time(st.max)  # type: ignore[arg-type]
        last = records[-1].created_at if records else None
        context = MonitorContext(current=str(records[-1].identity) if records else None)
        return check_freshness(
            monitor, newest_event_time=newest, last_ingest=last, now=when, context=context
        )

    def _view_freshness(self, monitor: Monitor, fv: FeatureView, when: datetime) -> Finding:
        """The view is as fresh as its stalest source group (static groups have no event
        time and count only for ingest_age)."""
        groups = [self.catalog.get_feature_group(s.group, s.major) for s in fv.sources]
        if monitor.metric == "event_age":
            groups = [g for g in groups if g.event_time]
        per_group = [
            (
                g,
                self._group_freshness(
                    dataclasses.replace(monitor, target=f"feature_group/{g.name}"), g, when
                ),
            )
            for g in groups
        ]
        if not per_group:
            return evaluate_monitor(monitor, None, MonitorContext(now=when))
        group, worst = max(per_group, key=lambda p: (STATUS_RANK[p[1].status], _age(p[1].evidence)))
        ages = {g.name: p.evidence.get("value") for g, p in per_group}
        return dataclasses.replace(
            worst,
            target=monitor.target,
            message=f"{worst.message} (stalest source group of {monitor.target})",
            evidence={**worst.evidence, "group": group.name, "groups": ages},
        )

    def _evaluate_view(self, monitor: Monitor, fv: FeatureView, when: datetime) -> Finding:
        window = ServedWindow(fv.name, fv.version, monitor.window)
        start, end = window.bounds(when)
        current = window.describe(when)
        served = self._served_rows(fv, start, end)
        extra: dict[str, Any] = {
            "window_start": None if start is None else start.isoformat(),
            "window_end": end.isoformat(),
            "served_rows": served.num_rows,
        }
        if monitor.metric in SKEW_METRICS:
            reference = "point-in-time offline values"
            value: Any = None
            if served.num_rows:
                value = report = self.skew(fv, start=start, end=end)
                extra |= {
                    "joined_rows": report.joined_rows,
                    "causes": {
                        k: f.cause for k, f in report.features.items() if f.cause is not None
                    },
                }
        else:
            reference, ref_data = self._view_reference(monitor, fv, when)
            value = None
            if served.num_rows:
                features = list(monitor.features) or _view_features(fv)
                value = drift(
                    ref_data,
                    served,
                    features=features,
                    reference_id=reference,
                    current_id=current,
                    engine=self.engine,
                )
        context = MonitorContext(reference=reference, current=current, now=when)
        finding = evaluate_monitor(monitor, value, context)
        if value is None:
            finding = dataclasses.replace(
                finding,
                message=f"{monitor.name}: no served rows of feature_view/{fv.name} were logged "
                f"in {current}; nothing to judge",
            )
        return dataclasses.replace(finding, evidence={**finding.evidence, **extra})

    def _view_reference(
        self, monitor: Monitor, fv: FeatureView, when: datetime
    ) -> tuple[str, Mapping[str, ColumnStats] | pa.Table]:
        """What a view's served window is compared with, and its label."""
        if monitor.reference == "training":
            record = self._view_training_set(fv)
            return str(record.identity), self.statistics.stats(str(record.identity))
        if monitor.reference == "previous":
            if monitor.window is None:
                raise DefinitionError(
                    f"monitor {monitor.name!r}: reference 'previous' on a feature view is the "
                    "window before this one; give a window (e.g. 1d) or use reference: training"
                )
            end = when - monitor.window
            window = ServedWindow(fv.name, fv.version, monitor.window)
            return window.describe(end), self._served_rows(fv, end - monitor.window, end)
        side = self._side(monitor.reference, when)
        return side.label, side.data

    def _view_training_set(self, fv: FeatureView) -> TrainingDatasetRecord:
        """The training set of the model deployed most recently that was built from ``fv``,
        else the view's latest training set."""
        models = {(m.name, m.version): m for m in self.registry.models()}
        current: dict[str, Any] = {}
        for move in self.registry.deployments():  # by name, then sequence: the last is current
            current[move.name] = move
        for move in sorted(current.values(), key=lambda d: d.at, reverse=True):
            model = models.get((move.model, move.model_version))
            if model is None or not model.training_dataset:
                continue
            ident = VersionId.parse(model.training_dataset)
            if ident.name == fv.name and ident.major == (fv.version or 1):
                return self.training.record(ident)
        records = self.registry.training_datasets(fv.name, fv.version or 1)
        if not records:
            raise NotFoundError(
                f"feature_view/{fv.name}@v{fv.version or 1} has no training dataset to compare "
                "served features with; build one with training_data or give reference: ID"
            )
        return records[-1]

    def open_findings(self) -> list[dict[str, object]]:
        return self.registry.open_findings()

    def resolve_monitor(self, monitor: str, *, reason: str) -> int:
        """Accept a monitor's open findings (e.g. an expected shift), with the reason."""
        if not reason.strip():
            raise DataError("give a reason when resolving a finding; it goes to the audit log")
        n = self.registry.resolve_findings(monitor, f"resolved: {reason}")
        self.registry.audit(
            current_user(),
            "resolve-finding",
            f"monitor/{monitor}",
            {"findings": n, "reason": reason},
        )
        return n

    # -- release gates --------------------------------------------------------------------------
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
        """Judge a model candidate against release gates and keep the failures as findings.

        The gates see the quality metrics recorded at registration, the caller's
        ``metrics`` (latency, cost, ...; repeated values give mean and standard error), and
        monitoring: drift of the training set against the latest data of its groups and
        against the served features of ``window`` (the worse of the two counts), freshness
        monitors on its inputs, and skew over the window. A failed gate is kept as a
        blocking finding on the model version (monitor ``release:NAME/N``), which stops
        `deploy` until a later check passes or it is resolved.
        """
        when = now or datetime.now(UTC)
        record = self._model_record(model, version)
        ident = str(record.identity)
        seen = self._release_evidence(record, window, when)
        quality = record.metrics.get("raw", {})
        summaries = summarize({**quality, **(metrics or {}), **seen.metrics})
        baseline = self._deployed_metrics(record)
        results: list[GateResult] = []
        skipped: dict[str, str] = {}
        for gate in (parse_gate(g) if isinstance(g, str) else g for g in gates):
            why = next((w for k, w in seen.unmeasured.items() if gate.metric.startswith(k)), None)
            if gate.metric not in summaries and why is not None:
                results.append(GateResult(gate.name, True, f"not measured: {why}"))
                skipped[gate.name] = why
            else:
                results += evaluate_gates([gate], summaries, baseline)
        name = f"release:{record.name}/{record.version}"
        again = (
            f"; fix it and run `featureledger model check {record.name} --version {record.version}`"
        )
        failed = [r for r in results if not r.passed]
        context = MonitorContext(reference=seen.reference, current=ident, now=when)
        findings = [
            dataclasses.replace(f, message=f.message + again)
            for f in gate_findings(failed, target=ident, monitor=name, context=context)
        ]
        self.registry.resolve_findings(name, "superseded by a later release check")
        for f in findings:
            self.registry.add_finding(name, ident, f.status, f.blocking, f.to_dict())
        self.registry.audit(
            current_user(),
            "release-check",
            ident,
            {"passed": not failed, "gates": [r.to_dict() for r in results]},
        )
        return ReleaseCheck(
            ident,
            tuple(results),
            summaries,
            tuple(findings),
            seen.drift,
            seen.served_drift,
            seen.skew,
            skipped,
            tuple(seen.notes),
        )

    def _release_evidence(
        self, record: ModelRecord, window: str | timedelta | None, when: datetime
    ) -> _Evidence:
        """Drift, freshness and skew of a model's inputs as release-gate metrics, and why
        any could not be measured."""
        seen = _Evidence()
        if record.training_dataset is None:
            why = f"{record.identity} was registered without a training dataset"
            seen.unmeasured.update(dict.fromkeys(_MONITORED, why))
            return seen
        td = self.training.record(record.training_dataset)
        seen.reference = str(td.identity)
        fv = self.catalog.get_feature_view(td.view, td.major)
        seen.drift = self._drift_to_latest(td)
        served = ServedWindow(
            fv.name, fv.version, None if window is None else parse_duration(window)
        )
        start, end = served.bounds(when)
        rows = self._served_rows(fv, start, end)
        if rows.num_rows:
            seen.served_drift = drift(
                self.statistics.stats(seen.reference),
                rows,
                features=_view_features(fv),
                reference_id=seen.reference,
                current_id=served.describe(when),
                engine=self.engine,
            )
            seen.skew = self.skew(fv, start=start, end=end)
        else:
            seen.unmeasured["skew."] = f"no served rows in {served.describe(when)}"
            seen.notes.append(f"served drift not measured: {seen.unmeasured['skew.']}")
        inputs = {("feature_group", g) for g in td.pins} | {("feature_view", fv.name)}
        freshness = [
            self._evaluate(m, when)
            for m in self.monitors()
            if m.metric in TIME_METRICS
            and (VersionId.parse(m.target).kind, VersionId.parse(m.target).name) in inputs
        ]
        reports = [r for r in (seen.drift, seen.served_drift) if r is not None]
        seen.metrics = release_metrics(drift=reports, freshness=freshness, skew=seen.skew or ())
        for key in ("drift.max_psi", "drift.alerts"):  # offline and served: the worse counts
            seen.metrics[key] = [max(seen.metrics[key])]
        if not freshness:
            seen.metrics["freshness.breaches"] = [0.0]
            seen.unmeasured["freshness.max_age_s"] = "no freshness monitor on the inputs"
            seen.notes.append("no freshness monitor targets the model's inputs: none breached")
        return seen

    def _model_record(self, name: str, version: int | None) -> ModelRecord:
        versions = {m.version: m for m in self.registry.models(name)}
        if not versions:
            raise NotFoundError(f"model/{name} is not registered; register_model it first")
        chosen = max(versions) if version is None else version
        if chosen not in versions:
            raise NotFoundError(
                f"model/{name}/{chosen} does not exist; versions: {sorted(versions)}"
            )
        return versions[chosen]

    def _deployed_metrics(self, candidate: ModelRecord) -> dict[str, MetricSummary] | None:
        """Metrics of the version of the candidate's model deployed now, if another one is."""
        current: dict[str, Any] = {}
        for move in self.registry.deployments():
            current[move.name] = move
        for move in sorted(current.values(), key=lambda d: d.at, reverse=True):
            if move.model == candidate.name and move.model_version != candidate.version:
                deployed = self._model_record(move.model, move.model_version)
                return summarize(deployed.metrics.get("raw", {}))
        return None

    def _drift_to_latest(self, record: TrainingDatasetRecord) -> DriftReport:
        """A training set against the latest non-empty versions of the groups it pins,
        from kept statistics (same bins, so exact)."""
        fv = self.catalog.get_feature_view(record.view, record.major)
        current: dict[str, ColumnStats] = {}
        labels = []
        for src in fv.sources:
            pin = record.pins.get(src.group)
            versions = (
                []
                if pin is None
                else [v for v in self.records.versions(src.group, major=pin["major"])]
            )
            latest = next((v for v in reversed(versions) if v.rows), None)
            if latest is None:
                continue
            labels.append(str(latest.identity))
            stats = self.statistics.stats(str(latest.identity))
            for feature in src.features:
                if feature in stats:
                    current[fv.output_name(src, feature)] = stats[feature]
        return drift(
            self.statistics.stats(str(record.identity)),
            current,
            features=[f for f in _view_features(fv) if f in current],
            reference_id=str(record.identity),
            current_id=", ".join(labels) or "no data",
            engine=self.engine,
        )

    def skew(
        self,
        view: str | FeatureView,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        major: int | None = None,
    ) -> SkewReport:
        """Training-serving skew: logged online values against the point-in-time offline
        values for the same entities at the same request times, per feature (the view's
        latest major version, or ``major``)."""
        fv = self.catalog.get_feature_view(view, major)
        served = self.logs.read(fv, start=start, end=end)
        features = [fv.output_name(s, f) for s in fv.sources for f in s.features]
        keys = sorted(
            {
                s.join_key_map.get(k, k)
                for s in fv.sources
                for k in self.catalog.get_feature_group(s.group, s.major).primary_key
            }
        )
        # one row per (keys, request time): the same entity asked twice in one request
        # was served the same values
        served = (
            served.group_by([*keys, REQUEST_TIME], use_threads=False)
            .aggregate([(f, "last") for f in features])
            .rename_columns([*keys, REQUEST_TIME, *features])
        )
        join = self.training.plan_join(
            fv, served.select([*keys, REQUEST_TIME]), REQUEST_TIME, None, None
        )
        offline, _ = self.training.run_join(join, None)
        assert offline is not None
        # every stored row of the timed groups, so a served value can be recognised as an
        # older version of the key's value (a stale online copy)
        parts = []
        for src in fv.sources:
            fg = self.catalog.get_feature_group(src.group, src.major)
            if fg.event_time is None:
                continue
            rows = self.data.read(fg, columns=[*fg.primary_key, fg.event_time, *src.features])
            parts.append(
                rows.rename_columns(
                    [src.join_key_map.get(k, k) for k in fg.primary_key]
                    + ["event_time"]
                    + [fv.output_name(src, f) for f in src.features]
                )
            )
        history = pa.concat_tables(parts, promote_options="permissive") if parts else None
        if history is not None:  # static groups have no history: their columns stay null
            for feature in features:
                if feature not in history.column_names:
                    history = history.append_column(
                        feature, pa.nulls(history.num_rows, offline.schema.field(feature).type)
                    )
        return skew(
            offline,
            served,
            keys,
            features,
            request_time=REQUEST_TIME,
            history=history,
            engine=self.engine,
        )
