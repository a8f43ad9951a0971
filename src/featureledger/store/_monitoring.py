"""Statistics per version (kept, and computed after each write), drift between any two
identities or served-feature windows, reports, monitors and release checks."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

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
    bins_of,
    check_freshness,
    compute_stats,
    drift,
    evaluate_monitor,
    export_plots,
    gate_findings,
    load_monitors,
    newest_time,
    release_metrics,
    render_report,
    stats_from_json,
    stats_to_json,
)
from featureledger.monitoring.metrics import STATUS_RANK
from featureledger.registry import DataVersion, ModelRecord, TrainingDatasetRecord
from featureledger.store._lineage import _LineageMixin
from featureledger.versioning.provenance import current_user

if TYPE_CHECKING:
    import pyarrow.dataset as pads

log = logging.getLogger(__name__)

#: release-gate metric families measured from monitoring (the rest come from the caller)
_MONITORED = ("drift.", "freshness.", "skew.")


class _StatsWorker:
    """Computes statistics after commits, one at a time, on a thread that lives while there
    is work. It is not a daemon, so the interpreter waits for it before exiting."""

    def __init__(self, job: Callable[[VersionId, pa.Table | None], object]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs: deque[tuple[VersionId, pa.Table | None]] = deque()
        self._pending: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def submit(self, ident: VersionId, rows: pa.Table | None) -> None:
        with self._lock:
            self._jobs.append((ident, rows))
            self._pending[str(ident)] = self._pending.get(str(ident), 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="featureledger-stats")
                self._thread.start()

    def pending(self, ident: str) -> bool:
        with self._lock:
            return ident in self._pending

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted job is done; False on timeout."""
        with self._lock:
            if self._thread is threading.current_thread():
                return False
            return self._idle.wait_for(lambda: self._thread is None, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    self._idle.notify_all()
                    return
                ident, rows = self._jobs.popleft()
            try:
                self._job(ident, rows)
            except Exception:  # a write never fails for its statistics: say so, carry on
                log.warning(
                    "statistics of %s were not computed after its commit; `featureledger "
                    "stats %s` computes them on demand",
                    ident,
                    ident,
                    exc_info=True,
                )
            finally:
                with self._lock:
                    left = self._pending.pop(str(ident)) - 1
                    if left:
                        self._pending[str(ident)] = left


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


class _MonitoringMixin(_LineageMixin):
    if TYPE_CHECKING:  # served-feature logs and skew live in _online, which builds on this

        def feature_log(
            self,
            view: str | FeatureView,
            *,
            start: datetime | None = None,
            end: datetime | None = None,
            major: int | None = None,
        ) -> pa.Table: ...

        def skew(
            self,
            view: str | FeatureView,
            *,
            start: datetime | None = None,
            end: datetime | None = None,
            major: int | None = None,
        ) -> SkewReport: ...

    # -- statistics at write time -------------------------------------------------------------
    def _record_version(self, *args: Any, **kwargs: Any) -> DataVersion:
        # every committed data version passes here: once it is recorded (published), its
        # statistics are computed as monitoring.stats_on_write says
        record = super()._record_version(*args, **kwargs)
        if record.rows:
            self._stats_on_write(record.identity, None)
        return record

    def _training_recorded(self, record: TrainingDatasetRecord, rows: pa.Table | None) -> None:
        self._stats_on_write(record.identity, rows)

    def _stats_on_write(self, ident: VersionId, rows: pa.Table | None) -> None:
        mode = self.config.monitoring.stats_on_write
        if mode == "off":
            return
        if mode == "sync":
            try:
                self._stats_of(ident, rows)
            except Exception:  # the write stands; the statistics wait for first use
                log.warning("statistics of %s were not computed", ident, exc_info=True)
            return
        worker = self.__dict__.get("_stats_worker")
        if worker is None:
            worker = self.__dict__["_stats_worker"] = _StatsWorker(self._stats_of)
        worker.submit(ident, rows)

    def wait_for_stats(self, timeout: float | None = None) -> bool:
        """Wait until the statistics being computed after writes are stored."""
        worker: _StatsWorker | None = self.__dict__.get("_stats_worker")
        return True if worker is None else worker.wait(timeout)

    def close(self) -> None:
        """Finish background work (statistics of recent writes). The store stays usable."""
        self.wait_for_stats()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statistics -----------------------------------------------------------------------------
    def stats(self, identity: str) -> dict[str, ColumnStats]:
        """Statistics of a data version or training dataset, computed once and kept.

        They are computed after each write (``monitoring.stats_on_write``) or else here on
        first use. Numeric histograms of a group's versions, and of the training sets built
        from it, share the bins of the group's first non-empty version.
        """
        ident = self._stats_identity(identity)
        worker: _StatsWorker | None = self.__dict__.get("_stats_worker")
        if worker is not None and worker.pending(str(ident)):
            worker.wait()
        return self._stats_of(ident)

    def _stats_of(self, ident: VersionId, rows: pa.Table | None = None) -> dict[str, ColumnStats]:
        cached = self.registry.get_stats(str(ident))
        if cached is not None:
            return dict(stats_from_json(cached))
        if ident.kind == "feature_group":
            stats = self._group_stats(ident)
        else:
            record = self._training_record(ident)
            data: pa.Table | pads.Dataset
            if rows is not None:
                data = rows
            elif record.output_path and Path(record.output_path).exists():
                import pyarrow.dataset as pads  # imports pandas: kept off the CLI's start

                data = pads.dataset(record.output_path, format="parquet")
            else:
                data = self._training_rows(record)
            stats = compute_stats(data, reference_bins=self._training_bins(record))
        self.registry.put_stats(str(ident), stats_to_json(stats))
        return dict(stats)

    def _group_stats(self, ident: VersionId) -> dict[str, ColumnStats]:
        fg = self.get_feature_group(ident.name, ident.major)
        major = ident.major or 1
        records = self.registry.data_versions(fg.name, major)
        record = next((r for r in records if r.version == ident.data), None)
        if record is None:
            raise NotFoundError(f"{ident} is not recorded")
        # the same rows have the same statistics: a rollback or compaction reuses them
        for other in records:
            if (
                other.version != record.version
                and other.content == record.content
                and other.schema_hash == record.schema_hash
            ):
                kept = self.registry.get_stats(str(other.identity))
                if kept is not None:
                    return dict(stats_from_json(kept))
        assert ident.data is not None
        self._check_files(fg, ident.data)
        baseline = self._baseline(fg.name, major)
        reference = None
        if baseline is not None and baseline.version != ident.data:
            reference = bins_of(self._stats_of(baseline.identity))
        table = self._table(fg.name, major)
        import pyarrow.dataset as pads  # imports pandas: kept off the CLI's start

        data = pads.dataset(table.files(ident.data), format="parquet")
        return dict(compute_stats(data, reference_bins=reference))

    def _baseline(self, group: str, major: int) -> DataVersion | None:
        """The group's first non-empty version: its bins are every version's bins."""
        return next((v for v in self.registry.data_versions(group, major) if v.rows), None)

    def _training_bins(self, record: TrainingDatasetRecord) -> dict[str, Any]:
        """Each feature's bins from its source group's baseline, under its output name, so
        a training set compares bin for bin with the versions of its groups."""
        fv = self.get_feature_view(record.view, record.major)
        bins: dict[str, Any] = {}
        for src in fv.sources:
            pin = record.pins.get(src.group)
            baseline = None if pin is None else self._baseline(src.group, pin["major"])
            if baseline is None:
                continue
            reference = bins_of(self._stats_of(baseline.identity))
            for feature in src.features:
                if feature in reference:
                    bins[fv.output_name(src, feature)] = reference[feature]
        return bins

    def _stats_identity(self, identity: str) -> VersionId:
        ident = VersionId.parse(identity)
        if ident.kind == "feature_group":
            fg = self.get_feature_group(ident.name, ident.major)
            number = self._resolve_version(fg, ident.data, None)
            return VersionId("feature_group", fg.name, fg.version or 1, number)
        if ident.kind == "training_dataset":
            return self._training_record(ident).identity
        raise NotFoundError(
            f"{identity}: statistics exist for feature group data versions and training "
            "datasets only"
        )

    def _feature_names(self, ident: VersionId) -> list[str]:
        if ident.kind == "feature_group":
            return list(self.get_feature_group(ident.name, ident.major).feature_names)
        record = self._training_record(ident)
        return _view_features(self.get_feature_view(record.view, record.major))

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
            ref.data, cur.data, features=features, reference_id=ref.label, current_id=cur.label
        )

    def _side(self, text: str, now: datetime) -> _Side:
        if ServedWindow.is_served(text):
            window = ServedWindow.parse(text)
            fv = self.get_feature_view(window.view, window.major)
            start, end = window.bounds(now)
            rows = self._served_rows(fv, start, end)
            if rows.num_rows == 0:
                raise DataError(
                    f"{window.describe(now)}: no served rows were logged in that window; "
                    "serve with get_online_features(..., log=True) or widen the window"
                )
            return _Side(window.describe(now), rows, _view_features(fv))
        ident = self._stats_identity(text)
        return _Side(str(ident), self.stats(str(ident)), self._feature_names(ident))

    def _served_rows(self, fv: FeatureView, start: datetime | None, end: datetime) -> pa.Table:
        """Logged served rows of ``fv`` with start <= request time < end (none: empty)."""
        try:
            return self.feature_log(fv, start=start, end=end)
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
                fv = self.get_feature_view(ServedWindow.parse(text).view)
            else:
                ident = self._stats_identity(text)
                if ident.kind == "feature_group":
                    out.add(("feature_group", ident.name))
                    continue
                record = self._training_record(ident)
                fv = self.get_feature_view(record.view, record.major)
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
        for monitor in self.monitors() if monitors is None else monitors:
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
            fv = self.get_feature_view(target.name, target.major)
            if monitor.metric in TIME_METRICS:
                return self._view_freshness(monitor, fv, when)
            return self._evaluate_view(monitor, fv, when)
        fg = self.get_feature_group(target.name, target.major)
        if monitor.metric in TIME_METRICS:
            return self._group_freshness(monitor, fg, when)
        if monitor.metric in SKEW_METRICS:
            raise DefinitionError(
                f"monitor {monitor.name!r}: {monitor.metric} compares served with offline "
                "values; give a feature_view/NAME target"
            )
        records = [r for r in self.versions(fg) if r.rows]
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
        records = [r for r in self.versions(fg) if r.rows]
        newest = None
        if records and fg.event_time:
            st = self.stats(str(records[-1].identity)).get(fg.event_time)
            newest = None if st is None else newest_time(st.max)  # type: ignore[arg-type]
        last = records[-1].created_at if records else None
        context = MonitorContext(current=str(records[-1].identity) if records else None)
        return check_freshness(
            monitor, newest_event_time=newest, last_ingest=last, now=when, context=context
        )

    def _view_freshness(self, monitor: Monitor, fv: FeatureView, when: datetime) -> Finding:
        """The view is as fresh as its stalest source group (static groups have no event
        time and count only for ingest_age)."""
        groups = [self.get_feature_group(s.group, s.major) for s in fv.sources]
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
            return str(record.identity), self.stats(str(record.identity))
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
                return self._training_record(ident)
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
        td = self._training_record(record.training_dataset)
        seen.reference = str(td.identity)
        fv = self.get_feature_view(td.view, td.major)
        seen.drift = self._drift_to_latest(td)
        served = ServedWindow(
            fv.name, fv.version, None if window is None else parse_duration(window)
        )
        start, end = served.bounds(when)
        rows = self._served_rows(fv, start, end)
        if rows.num_rows:
            seen.served_drift = drift(
                self.stats(seen.reference),
                rows,
                features=_view_features(fv),
                reference_id=seen.reference,
                current_id=served.describe(when),
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
        fv = self.get_feature_view(record.view, record.major)
        current: dict[str, ColumnStats] = {}
        labels = []
        for src in fv.sources:
            pin = record.pins.get(src.group)
            versions = (
                [] if pin is None else [v for v in self.versions(src.group, major=pin["major"])]
            )
            latest = next((v for v in reversed(versions) if v.rows), None)
            if latest is None:
                continue
            labels.append(str(latest.identity))
            stats = self.stats(str(latest.identity))
            for feature in src.features:
                if feature in stats:
                    current[fv.output_name(src, feature)] = stats[feature]
        return drift(
            self.stats(str(record.identity)),
            current,
            features=[f for f in _view_features(fv) if f in current],
            reference_id=str(record.identity),
            current_id=", ".join(labels) or "no data",
        )


def _view_features(fv: FeatureView) -> list[str]:
    return [fv.output_name(s, f) for s in fv.sources for f in s.features]


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
