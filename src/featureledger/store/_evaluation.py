"""Model validation by featureledger: score a model on a recorded split, whole and per slice."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from featureledger.definitions import VersionId
from featureledger.errors import DataError, IntegrityError, NotFoundError
from featureledger.monitoring.evaluation import Evaluation, Task, evaluate_arrays
from featureledger.registry import RegistryBackend
from featureledger.store._files import StoreFiles
from featureledger.store._training import TrainingData, TrainingService

#: columns of a predictions frame taken as the score, in this order
SCORE_COLUMNS = ("probability", "score", "prediction")


class EvaluationService:
    """`FeatureStore.evaluate`: the rows of a split, the model's scores, the metrics."""

    def __init__(
        self, *, registry: RegistryBackend, training: TrainingService, files: StoreFiles
    ) -> None:
        self.registry = registry
        self.training = training
        self.files = files

    def evaluate(
        self,
        model: Any,
        training_set: str | VersionId | TrainingData,
        *,
        split: str | None = "test",
        label: str | None = None,
        slices: Sequence[str] = (),
        task: Task | None = None,
        threshold: float = 0.5,
    ) -> Evaluation:
        """Score ``model`` on part ``split`` of ``training_set`` (its whole rows with
        ``split=None``, or the part its identity names)."""
        td = self.training.training_set(training_set)
        if td.split is None and split is not None:
            if not td.parts:
                raise NotFoundError(
                    f"{td.identity} has no parts, so it has no {split!r} split; build it "
                    "with training_data(..., split=...) or evaluate with split=None"
                )
            td = td.part(split)
        where = f"evaluation on {td.identity}"
        rows = td.to_arrow()
        label = label or td.label_name
        if label is None or label not in rows.column_names:
            raise DataError(
                f"{where}: no label column {label!r}; pass label= here or to training_data"
            )
        missing = [c for c in slices if c not in rows.column_names]
        if missing:
            raise DataError(
                f"{where}: slice column(s) {missing} are not in the training set; declare "
                "them as helpers (FeatureView(helpers=...) or training_data(helpers=...))"
            )
        labels = rows.column(label)
        if labels.null_count:
            raise DataError(
                f"{where}: label {label!r} is null in {labels.null_count:,} row(s); fill or "
                "drop them before building the training set"
            )
        y = labels.to_numpy()
        task = task or _task_of(model, y)
        name, score = self._scores(model, td, task, where)
        if score.shape[0] != rows.num_rows:
            raise DataError(
                f"{where}: {score.shape[0]:,} predictions for {rows.num_rows:,} rows; give "
                "one prediction per row, in the training set's order"
            )
        return evaluate_arrays(
            task,
            y,
            score,
            {c: rows.column(c).to_pylist() for c in slices},
            threshold=threshold,
            model=name,
            training_set=str(td.identity),
        )

    def _scores(
        self, model: Any, td: TrainingData, task: Task, where: str
    ) -> tuple[str, np.ndarray]:
        """The model's scores: the positive class's probability for a classifier with
        ``predict_proba``, else ``predict``; or the given predictions."""
        name = type(model).__name__
        if isinstance(model, str | VersionId):
            name = str(model)
            model = self.load_model(name)
        if hasattr(model, "predict_proba") or hasattr(model, "predict"):
            features = _matrix(td.features())
            if task == "classification" and hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(features), dtype=np.float64)
                return name, proba[:, -1] if proba.ndim == 2 else proba
            return name, np.asarray(model.predict(features), dtype=np.float64).reshape(-1)
        return "predictions", _predictions(model, where)

    def load_model(self, identity: str) -> Any:
        """A registered model's artifact, checked against its recorded hash and unpickled
        (only artifacts this repository registered are loaded)."""
        ident = VersionId.parse(identity)
        found = [
            m
            for m in self.registry.models(ident.name)
            if ident.number is None or m.version == ident.number
        ]
        if ident.kind != "model" or not found:
            raise NotFoundError(f"{identity} is not a registered model")
        record = found[-1]
        if self.files.sha256(record.artifact_path) != record.artifact_hash:
            raise IntegrityError(
                f"{record.identity}: the stored artifact does not match the hash recorded at "
                "registration; register the model again"
            )
        try:
            return pickle.loads(self.files.read_bytes(record.artifact_path))
        except Exception as exc:
            raise DataError(
                f"{record.identity}: its artifact is not a pickled model ({exc}); load it "
                "yourself and pass the object, or pass a frame of predictions"
            ) from exc


def _task_of(model: Any, y: np.ndarray) -> Task:
    if hasattr(model, "predict_proba"):
        return "classification"
    if y.dtype.kind == "b" or (y.dtype.kind in "iu" and np.unique(y).size <= 2):
        return "classification"
    return "regression"


def _matrix(features: pa.Table) -> Any:
    """The features as a DataFrame (models fitted on one keep their column names), or a
    float matrix when pandas is not installed."""
    try:
        return features.to_pandas()
    except ImportError:
        return np.column_stack(
            [c.to_numpy(zero_copy_only=False).astype(np.float64) for c in features.columns]
        )


def _predictions(frame: Any, where: str) -> np.ndarray:
    """A frame of predictions (Arrow, pandas, polars, a mapping) or an array of them."""
    if hasattr(frame, "to_arrow") and not isinstance(frame, pa.Table):
        frame = frame.to_arrow()
    if not isinstance(frame, pa.Table) and hasattr(frame, "columns"):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    if isinstance(frame, dict):
        frame = pa.table(frame)
    if isinstance(frame, pa.Table):
        chosen = next((c for c in SCORE_COLUMNS if c in frame.column_names), None)
        if chosen is None and frame.num_columns == 1:
            chosen = frame.column_names[0]
        if chosen is None:
            raise DataError(
                f"{where}: a predictions frame needs one column, or one named "
                f"{' / '.join(SCORE_COLUMNS)}; got {frame.column_names}"
            )
        return frame.column(chosen).to_numpy().astype(np.float64)
    try:
        return np.asarray(frame, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: the model is neither an object with predict/predict_proba, a "
            "registered model/NAME/N, nor a frame or array of predictions"
        ) from None
