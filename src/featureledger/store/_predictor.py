"""Scoring with registered models: artifacts loaded once per version (hash-checked), their
fitted model-dependent transforms, and the prediction-log rows every prediction becomes."""

from __future__ import annotations

import io
import json
import pickle
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import FeatureView, VersionId
from featureledger.errors import DataError, IntegrityError, NotFoundError
from featureledger.registry import ModelRecord, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._training import TrainingService

TS = pa.timestamp("us", tz="UTC")

#: roles a prediction-log row may carry (docs/serving.md#the-prediction-log)
ROLES = ("primary", "canary", "challenger", "shadow", "fallback", "batch")


class Predictor:
    """A loaded model: ``score(table)`` gives predictions (0/1 for a binary classifier,
    the value for a regressor) and, for classifiers, the positive-class probability."""

    def __init__(self, identity: str, model: Any, features: Sequence[str] | None) -> None:
        self.identity = identity
        self.model = model
        #: the input columns, in the order the model was fitted on; None: every non-key one
        self.features = None if features is None else list(features)

    def inputs(self, table: pa.Table, default: Sequence[str]) -> list[str]:
        names = self.features if self.features is not None else list(default)
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise DataError(
                f"{self.identity}: the model needs column(s) {missing}, which neither the "
                f"view's features nor the request give (it has {table.column_names})"
            )
        return names

    def score(self, table: pa.Table, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        x = (
            np.column_stack(
                [
                    pc.cast(table.column(n), pa.float64()).to_numpy(zero_copy_only=False)
                    for n in names
                ]
            )
            if names
            else np.empty((table.num_rows, 0))
        )
        if isinstance(self.model, _LinearJSON):
            return self.model.score(x)
        frame: Any = x
        if hasattr(self.model, "feature_names_in_"):  # fitted on a DataFrame: give one back
            import pandas as pd

            frame = pd.DataFrame(x, columns=list(names))
        proba = getattr(self.model, "predict_proba", None)
        classes = getattr(self.model, "classes_", None)
        if proba is not None and classes is not None and len(classes) == 2:
            p = np.asarray(proba(frame), dtype=float)[:, 1]
            label = np.asarray(self.model.predict(frame))
            return (label == classes[1]).astype(float), p
        return np.asarray(self.model.predict(frame), dtype=float).reshape(-1), None


@dataclass(frozen=True)
class _LinearJSON:
    """The demo's logistic model: JSON weights over standardized columns."""

    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.nan_to_num(x, nan=0.0)
        z = (x - self.mean) / np.where(self.std, self.std, 1)
        p = 1.0 / (1.0 + np.exp(-(np.column_stack([np.ones(len(x)), z]) @ self.weights)))
        return (p >= 0.5).astype(float), p


def load_predictor(record: ModelRecord, data: bytes) -> Predictor:
    """The model in an artifact: joblib or pickle files (anything with ``predict``, and
    ``predict_proba`` for classifiers), or the demo's JSON weights."""
    ident = str(record.identity)
    suffix = PurePosixPath(record.artifact_path).suffix.lower()
    if suffix == ".json":
        params = json.loads(data)
        if not {"features", "weights", "mean", "std"} <= set(params):
            raise DataError(f"{ident}: a JSON model needs features, weights, mean and std")
        model = _LinearJSON(
            np.array(params["weights"]), np.array(params["mean"]), np.array(params["std"])
        )
        return Predictor(ident, model, params["features"])
    if suffix == ".joblib":
        import joblib

        obj = joblib.load(io.BytesIO(data))
    elif suffix in (".pkl", ".pickle"):
        # the artifact is the project's own, content-addressed and hash-checked first
        obj = pickle.loads(data)
    else:
        raise DataError(
            f"{ident}: cannot load a {suffix or 'suffix-less'} artifact; register a .joblib "
            "or .pkl file (an object with predict/predict_proba) or the demo's .json weights"
        )
    if not callable(getattr(obj, "predict", None)):
        raise DataError(f"{ident}: the loaded {type(obj).__name__} has no predict method")
    names = getattr(obj, "feature_names_in_", None)
    return Predictor(ident, obj, None if names is None else [str(n) for n in names])


def view_keys(fv: FeatureView, catalog: Catalog) -> list[str]:
    """The entity key columns a request for ``fv`` carries, in the view's order."""
    keys: list[str] = []
    for src in fv.sources:
        fg = catalog.get_feature_group(src.group, src.major)
        for k in fg.primary_key:
            column = src.join_key_map.get(k, k)
            if column not in keys:
                keys.append(column)
    return keys


def log_rows(
    *,
    when: datetime,
    deployment: str | None,
    model: str | None,
    role: str,
    fallback: bool,
    keys: pa.Table,
    event_time: pa.Array | pa.ChunkedArray,
    prediction: np.ndarray | pa.Array,
    score: np.ndarray | pa.Array | None,
    feature_versions: str,
    ids: list[str] | None = None,
) -> pa.Table:
    """Prediction-log rows in the shared contract's columns and types."""
    n = keys.num_rows
    columns: dict[str, Any] = {
        "prediction_id": pa.array(ids or [uuid.uuid4().hex for _ in range(n)], pa.string()),
        "predicted_at": pa.array([when] * n, TS),
        "deployment": pa.array([deployment] * n, pa.string()),
        "model": pa.array([model] * n, pa.string()),
        "role": pa.array([role] * n, pa.string()),
        "fallback": pa.array([fallback] * n, pa.bool_()),
    }
    for name in keys.column_names:
        columns[name] = keys.column(name)
    columns["event_timestamp"] = pc.cast(event_time, TS)
    columns["prediction"] = pa.array(prediction, pa.float64(), from_pandas=True)
    columns["score"] = (
        pa.nulls(n, pa.float64())
        if score is None
        else pa.array(score, pa.float64(), from_pandas=True)
    )
    columns["feature_versions"] = pa.array([feature_versions] * n, pa.string())
    return pa.table(columns)


class ModelRuntime:
    """Models by identity, each loaded once per version and checked against its hash."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        files: StoreFiles,
        training: TrainingService,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.files = files
        self.training = training
        self._loaded: dict[str, Predictor] = {}
        self._lock = threading.Lock()

    def record(self, model: str | ModelRecord, version: int | None = None) -> ModelRecord:
        """``model/NAME/N``, ``NAME`` (latest, or ``version``) or a record."""
        if isinstance(model, ModelRecord):
            return model
        name, number = model, version
        if model.startswith("model/"):
            ident = VersionId.parse(model)
            name, number = ident.name, ident.number if ident.number is not None else version
        found = {m.version: m for m in self.registry.models(name)}
        if not found:
            raise NotFoundError(f"model/{name} is not registered; register_model it first")
        chosen = max(found) if number is None else number
        if chosen not in found:
            raise NotFoundError(f"model/{name}/{chosen} does not exist; versions: {sorted(found)}")
        return found[chosen]

    def view(self, record: ModelRecord) -> FeatureView:
        """The feature view the model's training set was read from."""
        if not record.training_dataset:
            raise DataError(
                f"{record.identity} names no training dataset, so featureledger does not know "
                "which features it reads; register it with training_dataset=..."
            )
        td = self.training.record(record.training_dataset)
        return self.catalog.get_feature_view(td.view, td.major)

    def predictor(self, record: ModelRecord) -> Predictor:
        ident = str(record.identity)
        hit = self._loaded.get(ident)
        if hit is not None:
            return hit
        with self._lock:  # one load per version, however many requests arrive at once
            hit = self._loaded.get(ident)
            if hit is None:
                if self.files.sha256(record.artifact_path) != record.artifact_hash:
                    raise IntegrityError(
                        f"{ident}: the stored artifact {record.artifact_path} does not match "
                        "the SHA-256 recorded at registration; register the model again"
                    )
                data = self.files.read_bytes(record.artifact_path)
                hit = self._loaded[ident] = load_predictor(record, data)
        return hit


def complete_rows(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """Rows whose every model input is present (not null, not NaN)."""
    ok = np.ones(table.num_rows, dtype=bool)
    for n in names:
        column = table.column(n)
        valid = pc.is_valid(column)
        if pa.types.is_floating(column.type):
            valid = pc.and_(valid, pc.invert(pc.fill_null(pc.is_nan(column), True)))
        ok &= valid.to_numpy(zero_copy_only=False)
    return ok
