"""Monitors on a model (``model/NAME[/N]`` targets): what each metric reads from a
`PerformanceReport` or `ModelDriftReport`, and the documented rule saying what to do.

- ``estimated_drop`` / ``realized_drop``: the largest relative drop of a metric over the
  chunks (default: the task's primary metric; ``features`` names others);
- ``estimated_<m>`` / ``realized_<m>``: the worst chunk's value of metric m (roc_auc, f1,
  accuracy, precision, recall, mae, rmse), against the caller's levels, e.g. the gate;
- ``multivariate_drift``: the largest PCA reconstruction error over the chunks, in
  reference sampling errors above the reference;
- ``psi``, ``js``, ``ks``, ``wasserstein``, ``null_fraction``: prediction drift, the score
  and prediction distributions against the reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from featureledger.errors import DefinitionError
from featureledger.monitoring.metrics import DEFAULT_THRESHOLDS
from featureledger.monitoring.monitors import (
    Finding,
    Monitor,
    MonitorContext,
    Value,
    evaluate_monitor,
)
from featureledger.monitoring.performance import (
    TASK_METRICS,
    ModelDriftReport,
    PerformanceReport,
)

#: (metric family, status) -> what to do; docs/monitoring.md prints the same table
RULES: Mapping[tuple[str, str], str] = {
    ("prediction_drift", "warn"): (
        "moderate shift of the model's outputs (PSI 0.1-0.25): retrain with recent data"
    ),
    ("prediction_drift", "alert"): (
        "major shift of the model's outputs (PSI above 0.25): investigate the cause first "
        "(an upstream change, a broken feature pipeline, a new population) before retraining"
    ),
    ("multivariate_drift", "warn"): (
        "the joint feature distribution moved: read the per-feature drift of the view to find "
        "the features that changed"
    ),
    ("multivariate_drift", "alert"): (
        "the features left the reference band: investigate the cause first; if the data is "
        "valid and the population changed, retrain with recent data"
    ),
    ("estimated_drop", "warn"): (
        "estimated performance is dropping: collect labels for the affected chunks to confirm, "
        "and prepare a retraining with recent data"
    ),
    ("estimated_drop", "alert"): (
        "estimated performance dropped: retrain with recent data; the estimate assumes "
        "calibration holds and no concept drift, so confirm with labels as they arrive"
    ),
    (
        "realized_drop",
        "warn",
    ): "realized performance is dropping: retrain with recent labelled data",
    ("realized_drop", "alert"): (
        "realized performance dropped: roll the deployment back to the last good model and "
        "retrain with recent labelled data"
    ),
    ("gate", "warn"): "a performance level is close to the gate: prepare a retraining",
    ("gate", "alert"): (
        "performance is below the gate the model was registered with: block promotion of "
        "this version, retrain, and verify with labels"
    ),
}

DRIFT_METRICS = ("psi", "js", "ks", "chi2", "wasserstein", "null_fraction")


def family(metric: str) -> str:
    """The rule family of a model monitor metric."""
    if metric in DRIFT_METRICS:
        return "prediction_drift"
    if metric in ("multivariate_drift", "estimated_drop", "realized_drop"):
        return metric
    if metric.startswith(("estimated_", "realized_")):
        return "gate"
    raise DefinitionError(
        f"{metric!r} is not a model monitor metric; use estimated_drop, realized_drop, "
        "estimated_<metric>, realized_<metric>, multivariate_drift or a drift metric "
        f"({', '.join(DRIFT_METRICS)})"
    )


def recommendation(metric: str, status: str) -> str:
    """What the documented rule says to do for a ``status`` finding of ``metric``."""
    return RULES.get((family(metric), status), "")


def model_value(
    monitor: Monitor,
    performance: PerformanceReport | None,
    drift: ModelDriftReport | None,
) -> Value:
    """The value ``monitor`` judges, read from the reports (None: nothing to judge)."""
    metric = monitor.metric
    kind = family(metric)
    if kind == "prediction_drift":
        return None if drift is None else drift.prediction
    if kind == "multivariate_drift":
        return None if drift is None or not drift.multivariate else drift.max_z
    if performance is None:
        return None
    if kind == "gate":
        source, name = metric.split("_", 1)
        if name not in TASK_METRICS[performance.task]:
            raise DefinitionError(
                f"monitor {monitor.name!r}: {name!r} is not estimated for {performance.task} "
                f"models; use one of {', '.join(TASK_METRICS[performance.task])}"
            )
        return {
            name: performance.values("estimated" if source == "estimated" else "realized")[name]
        }
    drops = performance.drops("estimated" if kind == "estimated_drop" else "realized")
    if not monitor.features:  # the task's primary metric
        return {performance.metrics[0]: drops[performance.metrics[0]]}
    return drops


def evaluate_model_monitor(
    monitor: Monitor,
    performance: PerformanceReport | None,
    drift: ModelDriftReport | None,
    context: MonitorContext | None = None,
) -> Finding:
    """Judge a model monitor and add the rule's recommendation to the finding's message
    and evidence (``recommendation``)."""
    if monitor.metric in DRIFT_METRICS and monitor.metric not in DEFAULT_THRESHOLDS:
        raise DefinitionError(f"monitor {monitor.name!r}: unknown drift metric {monitor.metric}")
    found = evaluate_monitor(monitor, model_value(monitor, performance, drift), context)
    advice = recommendation(monitor.metric, found.status)
    if not advice:
        return found
    evidence: dict[str, Any] = {**found.evidence, "recommendation": advice}
    return dataclasses.replace(found, evidence=evidence, message=f"{found.message}. {advice}")
