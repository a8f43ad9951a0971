"""Model evaluation: scikit-learn's metrics on a whole split and on each population slice.

Pure computation (arrays in, a typed result out); `FeatureStore.evaluate` finds the rows,
the labels and the model's scores. Binary classification and regression are covered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from featureledger.contracts.gates import Gate, GateResult, evaluate_gates, summarize

Task = Literal["classification", "regression"]
#: metrics where higher is better (the rest: lower is better)
HIGHER_IS_BETTER = frozenset({"auc", "f1", "accuracy"})
#: bins of the calibration curve and of the expected calibration error
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class SliceFigures:
    """The metrics of the rows where helper column ``column`` equals ``value``."""

    column: str
    value: str
    rows: int
    metrics: dict[str, float | None]

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "rows": self.rows, **self.metrics}


@dataclass(frozen=True)
class Evaluation:
    """What `FeatureStore.evaluate` measured: metrics on the whole split and per slice.

    A metric is ``None`` where it is undefined (AUC of a slice with one class)."""

    task: Task
    rows: int
    metrics: dict[str, float | None]
    slices: tuple[SliceFigures, ...] = ()
    #: classification: mean predicted probability and observed rate per bin
    calibration: dict[str, list[float]] = field(default_factory=dict)
    #: what was scored: ``model/NAME/N`` or a description, and the training set part
    model: str = ""
    training_set: str = ""
    threshold: float = 0.5

    def slice_metric(self, metric: str) -> dict[str, float | None]:
        """``{"region=south": 0.71, ...}`` for one metric."""
        return {s.name: s.metrics.get(metric) for s in self.slices}

    def slice_figures(self) -> dict[str, dict[str, float | None]]:
        """Every slice metric as the slice gates read them: ``{metric: {slice: value}}``."""
        names = sorted({m for s in self.slices for m in s.metrics})
        return {m: self.slice_metric(m) for m in names}

    def check(self, gates: Sequence[Gate]) -> list[GateResult]:
        """These figures against ``gates`` (a "better than current" gate, which needs
        the registry, passes here: `FeatureStore.register_model` judges it)."""
        found = {k: v for k, v in self.metrics.items() if v is not None}
        return evaluate_gates(gates, summarize(found), None, self.slice_figures())

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "metrics": self.metrics,
            "slices": [s.to_dict() for s in self.slices],
            "calibration": self.calibration,
            "model": self.model,
            "training_set": self.training_set,
            "threshold": self.threshold,
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def classification_metrics(
    y: np.ndarray, score: np.ndarray, threshold: float = 0.5
) -> dict[str, float | None]:
    """ROC AUC, F1 and accuracy at ``threshold``, log loss and expected calibration error
    (probabilities only), positive rate; undefined ones are None."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    y = y.astype(np.int64)
    predicted = (score >= threshold).astype(np.int64)
    both = np.unique(y).size == 2
    probabilities = bool(score.size) and float(score.min()) >= 0.0 and float(score.max()) <= 1.0
    return {
        "auc": _finite(roc_auc_score(y, score)) if both else None,
        "f1": float(f1_score(y, predicted, zero_division=0.0)) if y.size else None,
        "accuracy": float(accuracy_score(y, predicted)) if y.size else None,
        "log_loss": (
            float(log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]))
            if probabilities and y.size
            else None
        ),
        "ece": expected_calibration_error(y, score) if probabilities and y.size else None,
        "positive_rate": float(y.mean()) if y.size else None,
    }


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    if not y.size:
        return {"mae": None, "rmse": None}
    return {
        "mae": float(mean_absolute_error(y, predicted)),
        "rmse": math.sqrt(float(mean_squared_error(y, predicted))),
    }


def expected_calibration_error(y: np.ndarray, probability: np.ndarray) -> float:
    """The row-weighted mean gap between predicted probability and observed rate over
    `CALIBRATION_BINS` equal-width bins (empty bins weigh nothing)."""
    bins = np.minimum((probability * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    predicted = np.bincount(bins, weights=probability, minlength=CALIBRATION_BINS)
    observed = np.bincount(bins, weights=y, minlength=CALIBRATION_BINS)
    used = counts > 0
    gaps = np.abs(predicted[used] - observed[used]) / counts[used]
    return float(np.sum(gaps * counts[used]) / y.size)


def calibration_curve(y: np.ndarray, probability: np.ndarray) -> dict[str, list[float]]:
    from sklearn.calibration import calibration_curve as curve

    observed, predicted = curve(y, probability, n_bins=CALIBRATION_BINS, strategy="uniform")
    return {"predicted": [float(v) for v in predicted], "observed": [float(v) for v in observed]}


def evaluate_arrays(
    task: Task,
    y: np.ndarray,
    score: np.ndarray,
    slices: Mapping[str, Sequence[Any]] | None = None,
    *,
    threshold: float = 0.5,
    model: str = "",
    training_set: str = "",
) -> Evaluation:
    """Metrics of ``score`` against ``y`` on all rows and per value of each slice column."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            "model evaluation computes scikit-learn's metrics: pip install 'featureledger[models]'"
        ) from None
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    if y.shape[0] != score.shape[0]:
        raise ValueError(f"{score.shape[0]} predictions for {y.shape[0]} labelled rows")

    def measure(yy: np.ndarray, ss: np.ndarray) -> dict[str, float | None]:
        if task == "classification":
            return classification_metrics(yy, ss, threshold)
        return regression_metrics(yy.astype(np.float64), ss)

    figures = []
    for column, values in (slices or {}).items():
        labels = np.array(["null" if v is None else str(v) for v in values], dtype=object)
        for value in sorted(set(labels.tolist())):
            at = labels == value
            figures.append(SliceFigures(column, value, int(at.sum()), measure(y[at], score[at])))
    probabilities = task == "classification" and bool(score.size) and score.min() >= 0
    probabilities = probabilities and score.max() <= 1 and np.unique(y).size == 2
    return Evaluation(
        task,
        int(y.shape[0]),
        measure(y, score),
        tuple(figures),
        calibration_curve(y.astype(np.int64), score) if probabilities else {},
        model,
        training_set,
        threshold,
    )
