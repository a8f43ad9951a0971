"""Model monitoring without labels, and with them: performance estimation, multivariate drift
and prediction drift over chunks of logged predictions.

- CBPE (confidence-based performance estimation), binary classification: the positive-class
  scores are calibrated on a labelled reference (isotonic regression), and each calibrated
  probability p is the expected share of a positive label. The expected confusion matrix of
  a chunk is TP = sum p*yhat, FP = sum (1-p)*yhat, FN = sum p*(1-yhat), TN = sum (1-p)*(1-yhat),
  which gives accuracy, precision, recall and F1; ROC AUC is the AUC of the ROC curve whose
  rows carry positive weight p and negative weight 1-p.
- DLE (direct loss estimation), regression: a gradient-boosted model of |y - yhat| and one of
  (y - yhat)^2, fitted on the reference from the features and the prediction, estimate MAE
  and RMSE per chunk.
- Multivariate drift: PCA reconstruction error of the standardized features, fitted on the
  reference; the mean error of a chunk against the reference's band.
- Prediction drift: the existing `drift` metrics (PSI, JS, KS, ...) on the score and
  prediction columns.

Confidence bands come from the reference's sampling error: the standard deviation of the
realized metric over random reference samples of ``chunk_size`` rows, scaled by
sqrt(chunk_size / n) for a chunk of n rows; bands are +-3 of those. Everything here is pure:
arrays and tables in, frozen results out. scikit-learn is imported only when fitting.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.errors import DataError
from featureledger.monitoring.drift import drift
from featureledger.monitoring.metrics import Threshold
from featureledger.monitoring.predictions import (
    BAND_SIGMAS,
    BOOTSTRAP_SAMPLES,
    FORMAT,
    LOG_COLUMNS,
    LOWER_IS_BETTER,
    TASK_METRICS,
    ChunkError,
    ChunkPerformance,
    ModelDriftReport,
    PerformanceReport,
    Task,
    as_table,
    chunks,
)

#: monitor metrics on a model target and their default levels (featureledger's choices,
#: documented in docs/monitoring.md "Monitoring a model")
MODEL_THRESHOLDS: Mapping[str, Threshold] = {
    "estimated_drop": Threshold(0.05, 0.10, True, True, "featureledger: 5 % / 10 % relative drop"),
    "realized_drop": Threshold(0.05, 0.10, True, True, "featureledger: 5 % / 10 % relative drop"),
    "multivariate_drift": Threshold(2.0, 3.0, True, True, "reference band: 2 / 3 sampling errors"),
}


def metric_direction(metric: str) -> bool | None:
    """``higher_is_worse`` of a model monitor metric such as ``estimated_roc_auc``
    (None: not a performance metric)."""
    for prefix in ("estimated_", "realized_"):
        if metric.startswith(prefix):
            name = metric[len(prefix) :]
            if any(name in names for names in TASK_METRICS.values()):
                return name in LOWER_IS_BETTER
    return None


# -- metric kernels -------------------------------------------------------------------------------
def weighted_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC where row i counts as ``positive[i]`` of a positive and ``1 - positive[i]`` of
    a negative, ranked by ``score`` (ties count half). With 0/1 labels this is the usual
    ROC AUC; with calibrated probabilities it is CBPE's expected ROC AUC."""
    s = np.asarray(score, dtype=float)
    p = np.asarray(positive, dtype=float)
    pos, neg = p.sum(), (1.0 - p).sum()
    if s.size == 0 or pos <= 0 or neg <= 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s, p = s[order], p[order]
    # one ROC point per distinct score: ties move along the diagonal, which counts them half
    last = np.r_[s[1:] != s[:-1], True]
    tp = np.r_[0.0, np.cumsum(p)[last]] / pos
    fp = np.r_[0.0, np.cumsum(1.0 - p)[last]] / neg
    return float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2.0))


def confusion(positive: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float, float]:
    """(TP, FP, FN, TN): counts with 0/1 labels, expectations with probabilities."""
    p = np.asarray(positive, dtype=float)
    yhat = np.asarray(predicted, dtype=float)
    return (
        float(np.sum(p * yhat)),
        float(np.sum((1 - p) * yhat)),
        float(np.sum(p * (1 - yhat))),
        float(np.sum((1 - p) * (1 - yhat))),
    )


def classification_metrics(
    score: np.ndarray, positive: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """roc_auc, f1, accuracy, precision and recall from scores, (expected) labels and
    predicted classes."""
    tp, fp, fn, tn = confusion(positive, predicted)
    n = tp + fp + fn + tn

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else math.nan

    return {
        "roc_auc": weighted_auc(score, positive),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, n),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def regression_metrics(abs_error: np.ndarray, sq_error: np.ndarray) -> dict[str, float]:
    """mae and rmse from (expected) absolute and squared errors."""
    if len(abs_error) == 0:
        return {"mae": math.nan, "rmse": math.nan}
    return {
        "mae": float(np.mean(abs_error)),
        "rmse": float(math.sqrt(max(float(np.mean(sq_error)), 0.0))),
    }


# -- estimator ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """A metric's reference value and sampling error at ``size`` rows."""

    reference: float
    sigma: float
    size: int

    def sigma_at(self, n: int) -> float:
        return self.sigma * math.sqrt(self.size / n) if n > 0 else math.inf


@dataclass
class PCADrift:
    """PCA reconstruction error of standardized features (missing values: the mean)."""

    columns: list[str]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # k x d
    explained: float
    band: Band

    @classmethod
    def fit(
        cls, x: np.ndarray, columns: Sequence[str], *, variance: float, size: int, seed: int = 0
    ) -> PCADrift:
        mean = np.nanmean(x, axis=0)
        scale = np.nanstd(x, axis=0)
        scale[~np.isfinite(scale) | (scale == 0)] = 1.0
        z = _standardize(x, mean, scale)
        _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        share = (s**2) / max(float(np.sum(s**2)), 1e-300)
        k = int(np.searchsorted(np.cumsum(share), variance) + 1)
        k = min(k, len(columns))
        fitted = cls(list(columns), mean, scale, vt[:k], float(np.sum(share[:k])), Band(0, 0, 1))
        errors = fitted.row_errors(x)
        fitted.band = _band(lambda idx: float(np.mean(errors[idx])), len(errors), size, seed)
        return fitted

    def row_errors(self, x: np.ndarray) -> np.ndarray:
        z = _standardize(x, self.mean, self.scale)
        back = (z @ self.components.T) @ self.components
        return np.sqrt(np.sum((z - back) ** 2, axis=1))


def _one_thread() -> Any:
    """Gradient boosting on one OpenMP thread: on a busy machine its threads spin-wait
    for each other (measured: 67 s instead of 1.3 s for 5000 rows under load 12 on 2 cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="openmp")


def _standardize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, dtype=float) - mean) / scale
    z[~np.isfinite(z)] = 0.0  # a missing value sits at the mean
    return z


def _band(metric: Any, n: int, size: int, seed: int) -> Band:
    """The value on all ``n`` reference rows and its standard deviation over random
    samples of ``size`` rows (without replacement)."""
    rng = np.random.default_rng(seed)
    size = max(2, min(size, n))
    draws = [metric(rng.choice(n, size=size, replace=False)) for _ in range(BOOTSTRAP_SAMPLES)]
    values = np.array([d for d in draws if math.isfinite(d)], dtype=float)
    sigma = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return Band(float(metric(np.arange(n))), sigma, size)


@dataclass
class PerformanceEstimator:
    """What CBPE or DLE, PCA drift and prediction drift learned from a labelled reference.

    Kept as a content-hashed artifact (`to_bytes`, `sha256`); `estimate` and `drift`
    judge new predictions with it."""

    task: Task
    features: list[str]
    label: str
    score: str | None
    prediction: str
    chunk_size: int
    bands: dict[str, Band]
    calibration: tuple[np.ndarray, np.ndarray] | None = None  # isotonic knots (x, y)
    threshold: float = 0.5
    loss_models: tuple[Any, Any] | None = None  # |error| and error^2 regressors
    pca: PCADrift | None = None
    reference_outputs: dict[str, np.ndarray] = field(default_factory=dict)
    reference_rows: int = 0
    fitted_on: str = ""
    format: int = FORMAT

    # -- fitting
    @classmethod
    def fit(
        cls,
        reference: Any,
        *,
        task: Task | None = None,
        features: Sequence[str] | None = None,
        label: str = "label",
        score: str | None = "score",
        prediction: str = "prediction",
        chunk_size: int | None = None,
        drift_reference: Any = None,
        variance: float = 0.65,
        threshold: float = 0.5,
        fitted_on: str = "",
        seed: int = 0,
    ) -> PerformanceEstimator:
        """Fit on a labelled reference table (features, prediction, score for binary
        classification, label), ideally the model's test split: data it was not trained on.

        ``task`` defaults to binary when the labels are all 0/1 and a score column exists.
        ``features`` default to the numeric columns other than label, score, prediction and
        the prediction log's bookkeeping columns. ``drift_reference`` (default: the
        reference) is where the PCA of multivariate drift is fitted, e.g. the training set.
        ``chunk_size`` is the chunk size the bands are measured at (default: a fifth of
        the reference, at most 5000 rows)."""
        table = as_table(reference)
        where = f"performance estimator{f' for {fitted_on}' if fitted_on else ''}"
        for col in (label, prediction):
            if col not in table.column_names:
                raise DataError(
                    f"{where}: the reference has no {col!r} column; it needs features, "
                    f"{prediction!r} (and {score!r} for binary classification) and {label!r}"
                )
        keep = _not_null(table, [label, prediction])
        table = table.filter(keep)
        if table.num_rows < 20:
            raise DataError(
                f"{where}: {table.num_rows} labelled reference rows; give at least 20 "
                "(a test split of a few thousand rows gives usable bands)"
            )
        y = _floats(table, label)
        has_score = score is not None and score in table.column_names
        if task is None:
            task = "binary" if has_score and set(np.unique(y)) <= {0.0, 1.0} else "regression"
        if task == "binary" and not has_score:
            raise DataError(f"{where}: binary classification needs the {score!r} column")
        feats = list(features) if features is not None else _feature_columns(table, label, score)
        missing = [f for f in feats if f not in table.column_names]
        if missing:
            raise DataError(f"{where}: feature column(s) {missing} are not in the reference")
        size = chunk_size or max(50, min(table.num_rows // 5, 5000))
        yhat = _floats(table, prediction)
        outputs = {prediction: yhat}
        est = cls(
            task=task,
            features=feats,
            label=label,
            score=score if has_score else None,
            prediction=prediction,
            chunk_size=size,
            bands={},
            threshold=threshold,
            reference_rows=table.num_rows,
            fitted_on=fitted_on,
        )
        if task == "binary":
            from sklearn.isotonic import IsotonicRegression

            s = _floats(table, score)  # type: ignore[arg-type]
            outputs[score] = s  # type: ignore[index]
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
            est.calibration = (np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_))
            for m in TASK_METRICS["binary"]:
                est.bands[m] = _band(
                    lambda idx, m=m: classification_metrics(s[idx], y[idx], yhat[idx])[m],
                    len(y),
                    size,
                    seed,
                )
        else:
            from sklearn.ensemble import HistGradientBoostingRegressor

            x = _design(table, feats, prediction)
            err = y - yhat
            with _one_thread():
                models = tuple(
                    HistGradientBoostingRegressor(random_state=seed).fit(x, target)
                    for target in (np.abs(err), err**2)
                )
            est.loss_models = (models[0], models[1])
            for m in TASK_METRICS["regression"]:
                est.bands[m] = _band(
                    lambda idx, m=m: regression_metrics(np.abs(err[idx]), err[idx] ** 2)[m],
                    len(y),
                    size,
                    seed,
                )
        est.reference_outputs = outputs
        base = table if drift_reference is None else as_table(drift_reference)
        numeric = [f for f in feats if f in base.column_names]
        if numeric:
            est.pca = PCADrift.fit(
                _matrix(base, numeric), numeric, variance=variance, size=size, seed=seed
            )
        return est

    # -- estimating
    def calibrated(self, score: np.ndarray) -> np.ndarray:
        assert self.calibration is not None
        knots_x, knots_y = self.calibration
        return np.interp(np.asarray(score, dtype=float), knots_x, knots_y)

    def expected(self, table: pa.Table) -> dict[str, float]:
        """The estimated metrics of ``table``'s rows (no labels used)."""
        if table.num_rows == 0:
            return {m: math.nan for m in TASK_METRICS[self.task]}
        if self.task == "binary":
            s = _floats(table, self.score)  # type: ignore[arg-type]
            yhat = self._predicted(table, s)
            return classification_metrics(s, self.calibrated(s), yhat)
        assert self.loss_models is not None
        x = _design(table, self.features, self.prediction)
        with _one_thread():
            abs_err = np.clip(self.loss_models[0].predict(x), 0.0, None)
            sq_err = np.clip(self.loss_models[1].predict(x), 0.0, None)
        return regression_metrics(abs_err, sq_err)

    def realized(self, table: pa.Table) -> dict[str, float]:
        """The metrics of ``table``'s labelled rows (NaN without any)."""
        labelled = table.filter(_not_null(table, [self.label])) if table.num_rows else table
        if labelled.num_rows == 0:
            return {m: math.nan for m in TASK_METRICS[self.task]}
        y = _floats(labelled, self.label)
        if self.task == "binary":
            s = _floats(labelled, self.score)  # type: ignore[arg-type]
            return classification_metrics(s, y, self._predicted(labelled, s))
        err = y - _floats(labelled, self.prediction)
        return regression_metrics(np.abs(err), err**2)

    def _predicted(self, table: pa.Table, score: np.ndarray) -> np.ndarray:
        if self.prediction in table.column_names:
            yhat = _floats(table, self.prediction)
            return np.where(np.isnan(yhat), score >= self.threshold, yhat)
        return (score >= self.threshold).astype(float)

    def estimate(
        self,
        predictions: Any,
        *,
        chunk_size: int | None = None,
        period: str | None = None,
        model: str = "",
    ) -> PerformanceReport:
        """Estimated (and, where a label column is present, realized) performance per
        chunk, each with its band."""
        table = as_table(predictions)
        self._check_columns(table, need_features=self.task == "regression")
        rows = []
        for chunk in chunks(table, chunk_size=chunk_size or self.chunk_size, period=period):
            part = table.take(pa.array(chunk.rows, pa.int64()))
            est = self.expected(part)
            real = (
                self.realized(part)
                if self.label in part.column_names
                else {m: math.nan for m in est}
            )
            labelled = (
                int(part.num_rows - part.column(self.label).null_count)
                if self.label in part.column_names
                else 0
            )
            for metric, value in est.items():
                band = self.bands[metric]
                sigma = BAND_SIGMAS * band.sigma_at(chunk.size)
                rows.append(
                    ChunkPerformance(
                        chunk=chunk.key,
                        start=chunk.start,
                        end=chunk.end,
                        rows=chunk.size,
                        labelled=labelled,
                        metric=metric,
                        estimated=value,
                        lower=value - sigma,
                        upper=value + sigma,
                        reference=band.reference,
                        reference_lower=band.reference - sigma,
                        reference_upper=band.reference + sigma,
                        realized=real.get(metric, math.nan),
                    )
                )
        return PerformanceReport(model, self.task, tuple(rows))

    def drift(
        self,
        predictions: Any,
        *,
        chunk_size: int | None = None,
        period: str | None = None,
        model: str = "",
    ) -> ModelDriftReport:
        """Multivariate drift per chunk (PCA reconstruction error against the reference's
        band) and prediction drift of the whole table against the reference."""
        table = as_table(predictions)
        multi: list[ChunkError] = []
        if self.pca is not None:
            self._check_columns(table, need_features=True, need_outputs=False)
            errors = self.pca.row_errors(_matrix(table, self.pca.columns))
            band = self.pca.band
            for chunk in chunks(table, chunk_size=chunk_size or self.chunk_size, period=period):
                value = float(np.mean(errors[chunk.rows])) if chunk.size else math.nan
                sigma = band.sigma_at(chunk.size)
                multi.append(
                    ChunkError(
                        chunk=chunk.key,
                        start=chunk.start,
                        end=chunk.end,
                        rows=chunk.size,
                        error=value,
                        reference=band.reference,
                        lower=band.reference - BAND_SIGMAS * sigma,
                        upper=band.reference + BAND_SIGMAS * sigma,
                        z=(value - band.reference) / sigma if sigma > 0 else math.nan,
                    )
                )
        outputs = [c for c in self.reference_outputs if c in table.column_names]
        ref = pa.table({c: self._output(c, pa.array(v)) for c, v in self.reference_outputs.items()})
        cur = pa.table({c: self._output(c, table.column(c)) for c in outputs})
        predicted = drift(
            ref,
            cur,
            features=outputs,
            reference_id=f"{self.fitted_on or 'reference'} predictions",
            current_id="logged predictions",
        )
        return ModelDriftReport(
            model, tuple(multi), predicted, self.pca.explained if self.pca else 0
        )

    def _output(self, column: str, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A model output for drift: a class label is a category (0/1 bins into one
        equal-frequency bin), a score or a regression value a number."""
        floats = values.cast(pa.float64())
        if self.task == "binary" and column == self.prediction:
            return pc.cast(pc.cast(floats, pa.int64()), pa.string())
        return floats

    def _check_columns(
        self, table: pa.Table, *, need_features: bool, need_outputs: bool = True
    ) -> None:
        wanted = list(self.features) if need_features else []
        if need_outputs:
            wanted.append(self.score or "score" if self.task == "binary" else self.prediction)
        missing = [c for c in wanted if c and c not in table.column_names]
        if missing:
            raise DataError(
                f"performance estimation ({self.task}): the predictions lack column(s) "
                f"{missing}; log them or join the features point-in-time first"
            )

    # -- the artifact
    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def from_bytes(data: bytes, *, where: str = "performance estimator") -> PerformanceEstimator:
        """Read an artifact back; only call this on bytes whose recorded hash was checked
        (a pickle runs code when loaded)."""
        est = pickle.loads(data)
        if not isinstance(est, PerformanceEstimator) or est.format != FORMAT:
            raise DataError(
                f"{where}: stored in another format; fit it again with fit_performance_estimator"
            )
        return est


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _feature_columns(table: pa.Table, label: str, score: str | None) -> list[str]:
    skip = LOG_COLUMNS | {label, score, "prediction"}
    return [
        f.name
        for f in table.schema
        if f.name not in skip and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def _floats(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column).cast(pa.float64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)


def _matrix(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    if not columns:
        return np.empty((table.num_rows, 0))
    return np.column_stack([_floats(table, c) for c in columns])


def _design(table: pa.Table, features: Sequence[str], prediction: str) -> np.ndarray:
    """The loss models' inputs: the features and the prediction (NaN stays missing)."""
    return np.column_stack([_matrix(table, features), _floats(table, prediction)])


def _not_null(table: pa.Table, columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    mask = pa.array(np.ones(table.num_rows, dtype=bool))
    for c in columns:
        mask = pc.and_(mask, pc.is_valid(table.column(c)))
    return mask
