"""Declared monitors, the findings they produce and the action each finding asks for.

A `Monitor` watches one metric of one feature group or feature view: drift metrics (psi, js,
ks, chi2, wasserstein, null_fraction), the skew match rate, freshness ages (event_age,
ingest_age) or any metric the caller measures (latency_p99_ms, ...). Monitors are written in
Python or YAML (`monitors_from_yaml`). `evaluate_monitor` judges a value -- a number, values
per feature, a `DriftReport` or a `SkewReport` -- and returns a `Finding` with its evidence.

The action is taken at the alert level: ``warn`` only reports; ``block`` makes the finding
*blocking* (the caller refuses training data or a model promotion while it is open);
``suggest_rollback`` names the last good version, which the caller finds in lineage and
passes in the `MonitorContext`. A monitor with a warn level only never takes its action.

Nothing here reads data or the registry: the caller resolves targets, windows and
references, and stores the findings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import yaml

from featureledger.definitions.contract import format_duration, parse_duration
from featureledger.definitions.identity import VersionId
from featureledger.definitions.names import check_name
from featureledger.errors import DefinitionError, FeatureLedgerError, TimestampError
from featureledger.monitoring.drift import DriftReport
from featureledger.monitoring.metrics import (
    DEFAULT_THRESHOLDS,
    STATUS_RANK,
    Status,
    Threshold,
    worst,
)
from featureledger.monitoring.performance import MODEL_THRESHOLDS, metric_direction
from featureledger.monitoring.skew import SkewReport

Action = Literal["warn", "block", "suggest_rollback"]
ACTIONS: tuple[str, ...] = get_args(Action)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
#: metrics whose values are ages in seconds; their levels may be written as durations
TIME_METRICS = ("event_age", "ingest_age")
#: a model target (``model/NAME[/N]``) watches logged predictions (docs/monitoring.md)
TARGET_KINDS = ("feature_group", "feature_view", "model")
#: per-feature numbers a `SkewReport` answers itself; other metrics come from its drift part
SKEW_METRICS = ("match_rate", "mean_abs_diff", "value_mismatches", "stale")


@dataclass(frozen=True)
class Monitor:
    """One declared check.

    ``target``: ``feature_group/NAME`` or ``feature_view/NAME`` (a version may be given).
    ``warn`` / ``alert``: levels of the metric's value (durations such as "2h" for the
    freshness ages); both omitted: the defaults of `DEFAULT_THRESHOLDS`.
    ``higher_is_worse`` is taken from the defaults for known metrics (p-values and match
    rates breach *below* their levels) and is True otherwise.
    ``features``: the features judged (empty: all). ``window``: how much recent data the
    caller compares (e.g. "1d" of served features). ``reference``: what it is compared with:
    "previous" data version, the "training" dataset of the deployed model, or an identity.
    """

    name: str
    target: str
    metric: str
    warn: float | None = None
    alert: float | None = None
    features: tuple[str, ...] = ()
    window: timedelta | None = None
    reference: str = "previous"
    severity: Severity = "warning"
    owner: str = ""
    action: Action = "warn"
    higher_is_worse: bool | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_name("monitor", self.name)
        where = f"monitor {self.name!r}"
        try:
            ident = VersionId.parse(self.target)
        except FeatureLedgerError as exc:
            raise DefinitionError(f"{where}: {exc}") from None
        if ident.kind not in TARGET_KINDS:
            raise DefinitionError(
                f"{where}: target {self.target!r} must be a feature_group/NAME, "
                "feature_view/NAME or model/NAME[/N]"
            )
        if not self.metric:
            raise DefinitionError(f"{where}: give the metric to watch")
        for label, allowed, got in (
            ("action", ACTIONS, self.action),
            ("severity", SEVERITIES, self.severity),
        ):
            if got not in allowed:
                raise DefinitionError(
                    f"{where}: {label} {got!r} is not one of {', '.join(allowed)}"
                )
        levels = {"warn": self.warn, "alert": self.alert}
        for label, raw in levels.items():
            if raw is None:
                continue
            if self.metric in TIME_METRICS and isinstance(raw, str | timedelta):
                value = parse_duration(raw).total_seconds()
            elif isinstance(raw, bool) or not isinstance(raw, int | float):
                raise DefinitionError(f"{where}: {label} must be a number, got {raw!r}")
            else:
                value = float(raw)
            object.__setattr__(self, label, value)
        if self.warn is None and self.alert is None and _default(self.metric) is None:
            raise DefinitionError(
                f"{where}: metric {self.metric!r} has no default levels; give warn and/or alert"
            )
        if self.window is not None:
            object.__setattr__(self, "window", parse_duration(self.window))
        if isinstance(self.features, str):
            object.__setattr__(self, "features", (self.features,))
        object.__setattr__(self, "features", tuple(self.features))
        if self.action != "warn" and self.threshold.alert is None:
            raise DefinitionError(
                f"{where}: action {self.action!r} is taken at the alert level; give alert too"
            )

    @property
    def threshold(self) -> Threshold:
        default = _default(self.metric)
        direction = metric_direction(self.metric)
        higher = (
            self.higher_is_worse
            if self.higher_is_worse is not None
            else default.higher_is_worse
            if default is not None
            else direction
            if direction is not None
            else True
        )
        if self.warn is None and self.alert is None and default is not None:
            return Threshold(default.warn, default.alert, higher, True, default.source)
        return Threshold(self.warn, self.alert, higher, True, f"monitor {self.name}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "target": self.target, "metric": self.metric}
        for f in fields(self)[3:]:
            value = getattr(self, f.name)
            if value == f.default or (f.name == "features" and not value):
                continue
            if f.name in ("warn", "alert") and self.metric in TIME_METRICS:
                value = format_duration(timedelta(seconds=value))
            elif f.name == "window":
                value = format_duration(value)
            elif f.name == "features":
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Monitor:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DefinitionError(
                f"monitor {data.get('name', '?')!r}: unknown key(s) {unknown}; "
                f"allowed: {', '.join(f.name for f in fields(cls))}"
            )
        missing = [k for k in ("name", "target", "metric") if k not in data]
        if missing:
            raise DefinitionError(f"monitor {data.get('name', '?')!r}: missing {missing}")
        values = dict(data)
        if "features" in values:
            feats = values["features"]
            values["features"] = tuple([feats] if isinstance(feats, str) else feats or ())
        return cls(**values)


def _default(metric: str) -> Threshold | None:
    return DEFAULT_THRESHOLDS.get(metric) or MODEL_THRESHOLDS.get(metric)


@dataclass(frozen=True)
class MonitorContext:
    """What the caller knows about the evaluation: the identities compared (``reference``,
    ``current``), the last version known good (from lineage, for suggest_rollback) and the
    evaluation time."""

    reference: str | None = None
    current: str | None = None
    last_good: str | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class Finding:
    """The outcome of one monitor evaluation. ``blocking``: the monitor's action is block
    and its alert level was breached; ``rollback_to``: the version a suggest_rollback
    monitor proposes. ``evidence`` holds the metric value, the threshold, the versions
    compared and the breaching features."""

    monitor: str
    target: str
    metric: str
    status: Status
    severity: Severity
    action: Action
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    blocking: bool = False
    rollback_to: str | None = None
    owner: str = ""
    observed_at: datetime | None = None

    @property
    def breached(self) -> bool:
        return self.status in ("warn", "alert")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = dict(self.evidence)
        out["observed_at"] = None if self.observed_at is None else self.observed_at.isoformat()
        return out


Value = float | int | Mapping[str, float] | DriftReport | SkewReport | None


def evaluate_monitor(
    monitor: Monitor, value: Value, context: MonitorContext | None = None
) -> Finding:
    """Judge ``value`` against ``monitor``'s levels.

    ``value`` is one number, a mapping of feature to number, a `DriftReport` (the monitor's
    metric is read per feature) or a `SkewReport` (match_rate, mean_abs_diff, ... per
    feature; drift metrics from its served-vs-training comparison).
    The finding's status is the worst over the monitor's features; its evidence lists the
    breaching ones.
    """
    ctx = context or MonitorContext()
    now = ctx.now or datetime.now(UTC)
    limit = monitor.threshold
    reference, current = ctx.reference, ctx.current
    if isinstance(value, DriftReport):
        reference, current = reference or value.reference, current or value.current
        values: dict[str, float] | None = value.values(monitor.metric, monitor.features)
    elif isinstance(value, SkewReport) and monitor.metric in SKEW_METRICS:
        values = {
            name: _number(getattr(f, monitor.metric))
            for name, f in value.features.items()
            if not monitor.features or name in monitor.features
        }
    elif isinstance(value, SkewReport):  # a drift metric: served vs training distributions
        dist = value.distribution
        values = {} if dist is None else dist.values(monitor.metric, monitor.features)
    elif isinstance(value, Mapping):
        values = {
            k: float(v) for k, v in value.items() if not monitor.features or k in monitor.features
        }
    elif value is None:
        values = {}
    else:
        values = None
    judged = {"": float(value)} if values is None else values  # type: ignore[arg-type]
    statuses = {k: limit.status(v) for k, v in judged.items()}
    status = worst(statuses.values())
    # the worst value: highest status, then furthest past the levels
    sign = 1.0 if limit.higher_is_worse else -1.0
    key = max(
        judged,
        key=lambda k: (STATUS_RANK[statuses[k]], _finite(sign * judged[k])),
        default=None,
    )
    shown = None if key is None else judged[key]
    breaching = {k: _json(v) for k, v in judged.items() if statuses[k] in ("warn", "alert") and k}
    acted = status == "alert"
    rollback = ctx.last_good if acted and monitor.action == "suggest_rollback" else None
    evidence: dict[str, Any] = {
        "metric": monitor.metric,
        "value": _json(shown),
        "threshold": limit.to_dict(),
        "reference": reference,
        "current": current,
    }
    if key:
        evidence["feature"] = key
    if breaching:
        evidence["features"] = breaching
    if monitor.window is not None:
        evidence["window"] = format_duration(monitor.window)
    return Finding(
        monitor=monitor.name,
        target=monitor.target,
        metric=monitor.metric,
        status=status,
        severity=monitor.severity,
        action=monitor.action,
        message=_message(monitor, status, key, shown, limit, acted, ctx.last_good),
        evidence=evidence,
        blocking=acted and monitor.action == "block",
        rollback_to=rollback,
        owner=monitor.owner,
        observed_at=now,
    )


def check_freshness(
    monitor: Monitor,
    *,
    newest_event_time: datetime | None = None,
    last_ingest: datetime | None = None,
    now: datetime | None = None,
    context: MonitorContext | None = None,
) -> Finding:
    """A freshness SLO: the age at ``now`` of the newest event time (metric ``event_age``)
    or of the last successful ingest (``ingest_age``). No such time at all is an infinite
    age, so it breaches every level."""
    if monitor.metric not in TIME_METRICS:
        raise ValueError(
            f"monitor {monitor.name!r} watches {monitor.metric!r}; freshness checks need "
            f"one of {', '.join(TIME_METRICS)}"
        )
    ctx = context or MonitorContext()
    now = now or ctx.now or datetime.now(UTC)
    stamp = newest_event_time if monitor.metric == "event_age" else last_ingest
    for label, t in (("now", now), (monitor.metric, stamp)):
        if t is not None and t.tzinfo is None:
            raise TimestampError(
                f"monitor {monitor.name!r}: {label} {t.isoformat()} has no time zone; "
                "give time-zone-aware datetimes (UTC)"
            )
    age = math.inf if stamp is None else (now - stamp).total_seconds()
    found = evaluate_monitor(
        monitor, age, MonitorContext(ctx.reference, ctx.current, ctx.last_good, now)
    )
    what = "newest event" if monitor.metric == "event_age" else "last successful ingest"
    shown = (
        "none recorded"
        if stamp is None
        else f"{format_duration(timedelta(seconds=round(age)))} old"
    )
    evidence = {
        **found.evidence,
        "timestamp": None if stamp is None else stamp.isoformat(),
        "now": now.isoformat(),
    }
    message = f"{monitor.name}: {what} of {monitor.target} is {shown} ({found.status})"
    if found.status in ("warn", "alert"):
        message += f"; limit {_levels(monitor.threshold, seconds=True)}"
    return Finding(
        **{**asdict(found), "evidence": evidence, "message": message, "observed_at": now}
    )


def newest_time(value: str | None) -> datetime | None:
    """A stored statistics' ``max`` of a temporal column as a datetime (naive values are UTC)."""
    if value is None:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that must stop a training set or a promotion (``monitor run`` exits
    non-zero when there is any)."""
    return [f for f in findings if f.blocking]


# -- YAML -----------------------------------------------------------------------------------------
def monitors_from_yaml(text: str) -> list[Monitor]:
    """Monitors from YAML: a list, or a mapping with a ``monitors`` list, of monitor fields."""
    data = yaml.safe_load(text) or []
    if isinstance(data, Mapping):
        data = data.get("monitors", [])
    if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
        raise DefinitionError("monitors YAML must be a list of monitors (or monitors: [...])")
    monitors = [Monitor.from_dict(d) for d in data]
    seen: set[str] = set()
    for m in monitors:
        if m.name in seen:
            raise DefinitionError(f"monitor {m.name!r} is declared twice; names must be unique")
        seen.add(m.name)
    return monitors


def load_monitors(path: str | Path) -> list[Monitor]:
    return monitors_from_yaml(Path(path).read_text())


def monitors_to_yaml(monitors: Sequence[Monitor]) -> str:
    return yaml.safe_dump({"monitors": [m.to_dict() for m in monitors]}, sort_keys=False)


# -- release gates --------------------------------------------------------------------------------
#: gates for ``featureledger.contracts.gates.parse_gate`` over `release_metrics` output
DEFAULT_RELEASE_GATES: tuple[str, ...] = (
    "drift.max_psi<=0.25",
    "freshness.breaches<=0",
    "skew.min_match_rate>=0.99",
)


def release_metrics(
    *,
    drift: DriftReport | Sequence[DriftReport] = (),
    freshness: Sequence[Finding] = (),
    skew: SkewReport | Sequence[SkewReport] = (),
) -> dict[str, list[float]]:
    """Monitoring results as release-gate metrics, one value per repeated evaluation.

    A model candidate's gates (``featureledger.contracts.gates``) combine these with its
    quality, latency and cost metrics: pass several drift or skew reports (per window, per
    bootstrap resample) and the gate records mean and standard error rather than one point.
    Names: drift.max_psi, drift.alerts, freshness.breaches, freshness.max_age_s,
    skew.min_match_rate.
    """
    drifts = [drift] if isinstance(drift, DriftReport) else list(drift)
    skews = [skew] if isinstance(skew, SkewReport) else list(skew)
    out: dict[str, list[float]] = {}
    if drifts:
        out["drift.max_psi"] = [max(_finite_values(d.values("psi")), default=0.0) for d in drifts]
        out["drift.alerts"] = [
            float(sum(f.status == "alert" for f in d.features.values())) for d in drifts
        ]
    if freshness:
        out["freshness.breaches"] = [float(sum(f.status == "alert" for f in freshness))]
        ages = [f.evidence.get("value") for f in freshness]
        out["freshness.max_age_s"] = [
            max((math.inf if a is None else float(a) for a in ages), default=0.0)
        ]
    if skews:
        out["skew.min_match_rate"] = [
            min(_finite_values({k: f.match_rate for k, f in s.features.items()}), default=1.0)
            for s in skews
        ]
    return out


class GateResultLike(Protocol):
    gate: str
    passed: bool
    detail: str
    observed: dict[str, Any]


def gate_findings(
    results: Iterable[GateResultLike],
    *,
    target: str,
    action: Action = "block",
    severity: Severity = "critical",
    owner: str = "",
    context: MonitorContext | None = None,
    monitor: str | None = None,
) -> list[Finding]:
    """Findings from release-gate results (``contracts.gates.evaluate_gates``), so a failed
    gate is stored and listed like any monitor finding; failures block by default.
    ``monitor``: the name they are kept and resolved under (default ``gate:GATE``)."""
    ctx = context or MonitorContext()
    now = ctx.now or datetime.now(UTC)
    out = []
    for r in results:
        failed = not r.passed
        out.append(
            Finding(
                monitor=monitor or f"gate:{r.gate}",
                target=target,
                metric=r.gate,
                status="alert" if failed else "ok",
                severity=severity,
                action=action,
                message=f"release gate {r.gate}: {'failed' if failed else 'passed'} ({r.detail})",
                evidence={
                    "observed": r.observed,
                    "reference": ctx.reference,
                    "current": ctx.current,
                },
                blocking=failed and action == "block",
                rollback_to=ctx.last_good if failed and action == "suggest_rollback" else None,
                owner=owner,
                observed_at=now,
            )
        )
    return out


# -- helpers --------------------------------------------------------------------------------------
def _message(
    monitor: Monitor,
    status: Status,
    feature: str | None,
    value: float | None,
    limit: Threshold,
    acted: bool,
    last_good: str | None,
) -> str:
    where = monitor.target + (f" feature {feature}" if feature else "")
    if status == "n/a":
        return f"{monitor.name}: no {monitor.metric} value for {where}"
    text = f"{monitor.name}: {monitor.metric} {_fmt(value)} on {where} ({status}; {_levels(limit)})"
    if acted and monitor.action == "block":
        text += "; blocking until resolved"
    elif acted and monitor.action == "suggest_rollback":
        text += (
            f"; suggest rolling back to {last_good}"
            if last_good
            else "; rollback suggested but no earlier good version is known"
        )
    return text


def _levels(limit: Threshold, *, seconds: bool = False) -> str:
    if not seconds:
        return limit.describe()
    op = ">=" if limit.higher_is_worse else "<"
    parts = [
        f"{op} {format_duration(timedelta(seconds=v))} {k}"
        for k, v in (("warn", limit.warn), ("alert", limit.alert))
        if v is not None
    ]
    return ", ".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _finite_values(values: Mapping[str, float]) -> list[float]:
    return [v for v in values.values() if not math.isnan(v)]


def _json(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
