"""Model-dependent transforms: fitted on a training set, then applied unchanged to serving.

A transform's fitted state is plain JSON (means, ranges, category lists), stored as a
content-addressed artifact and linked to the training dataset it was fitted on, so serving a
model applies exactly the arithmetic its training rows went through.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.errors import DataError


def _floats(table: pa.Table, column: str, where: str) -> np.ndarray:
    if column not in table.column_names:
        raise DataError(f"{where}: column {column!r} is missing; it has {table.column_names}")
    return pc.cast(table.column(column), pa.float64()).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class StandardScaler:
    """(x - mean) / std per column; nulls stay null, constant columns map to 0."""

    columns: Sequence[str]
    kind: str = "standard"

    def fit(self, table: pa.Table) -> dict[str, Any]:
        params = {}
        for c in self.columns:
            x = _floats(table, c, "fit standard scaler")
            x = x[~np.isnan(x)]
            params[c] = {
                "mean": float(x.mean()) if len(x) else 0.0,
                "std": float(x.std()) if len(x) else 1.0,
            }
        return params

    @staticmethod
    def apply(table: pa.Table, params: dict[str, Any]) -> pa.Table:
        for c, p in params.items():
            scale = p["std"] or 1.0
            values = pc.divide(
                pc.subtract(pc.cast(table.column(c), pa.float64()), p["mean"]), scale
            )
            table = table.set_column(table.schema.get_field_index(c), c, values)
        return table


@dataclass(frozen=True)
class MinMaxScaler:
    """(x - min) / (max - min) per column, with the training range (not clipped)."""

    columns: Sequence[str]
    kind: str = "minmax"

    def fit(self, table: pa.Table) -> dict[str, Any]:
        params = {}
        for c in self.columns:
            x = _floats(table, c, "fit min-max scaler")
            x = x[~np.isnan(x)]
            params[c] = {
                "min": float(x.min()) if len(x) else 0.0,
                "max": float(x.max()) if len(x) else 1.0,
            }
        return params

    @staticmethod
    def apply(table: pa.Table, params: dict[str, Any]) -> pa.Table:
        for c, p in params.items():
            span = (p["max"] - p["min"]) or 1.0
            values = pc.divide(pc.subtract(pc.cast(table.column(c), pa.float64()), p["min"]), span)
            table = table.set_column(table.schema.get_field_index(c), c, values)
        return table


@dataclass(frozen=True)
class OneHot:
    """One 0/1 column ``<column>=<category>`` per category seen in training; an unseen
    category sets none of them."""

    column: str
    kind: str = "onehot"

    def fit(self, table: pa.Table) -> dict[str, Any]:
        if self.column not in table.column_names:
            raise DataError(f"fit one-hot: column {self.column!r} is missing")
        values = pc.unique(table.column(self.column).drop_null()).to_pylist()
        return {self.column: sorted(str(v) for v in values)}

    @staticmethod
    def apply(table: pa.Table, params: dict[str, Any]) -> pa.Table:
        for c, categories in params.items():
            as_text = pc.cast(table.column(c), pa.string())
            for cat in categories:
                hit = pc.fill_null(pc.equal(as_text, cat), False).cast(pa.int8())
                table = table.append_column(f"{c}={cat}", hit)
        return table


@dataclass(frozen=True)
class LabelEncoder:
    """Category -> its index in the sorted training categories; unseen -> -1, null -> null."""

    column: str
    kind: str = "label"

    def fit(self, table: pa.Table) -> dict[str, Any]:
        return OneHot(self.column).fit(table)

    @staticmethod
    def apply(table: pa.Table, params: dict[str, Any]) -> pa.Table:
        for c, categories in params.items():
            as_text = pc.cast(table.column(c), pa.string())
            index = pc.index_in(as_text, value_set=pa.array(categories, pa.string()))
            coded = pc.if_else(pc.and_(pc.is_null(index), pc.is_valid(as_text)), -1, index)
            table = table.set_column(table.schema.get_field_index(c), c, coded.cast(pa.int64()))
        return table


@dataclass(frozen=True)
class SklearnTransform:
    """A hook for scikit-learn style transformers (``fit(X)``, ``transform(X)``) on numeric
    columns; the fitted estimator is pickled into the artifact."""

    estimator: Any
    columns: Sequence[str]
    kind: str = "sklearn"

    def fit(self, table: pa.Table) -> dict[str, Any]:
        x = np.column_stack([_floats(table, c, "fit sklearn transform") for c in self.columns])
        fitted = self.estimator.fit(x)
        return {"columns": list(self.columns), "pickle": pickle.dumps(fitted).hex()}

    @staticmethod
    def apply(table: pa.Table, params: dict[str, Any]) -> pa.Table:
        # the artifact is the project's own, content-addressed and hash-checked on load
        fitted = pickle.loads(bytes.fromhex(params["pickle"]))
        x = np.column_stack([_floats(table, c, "sklearn transform") for c in params["columns"]])
        y = np.asarray(fitted.transform(x), dtype=float)
        for i, c in enumerate(params["columns"]):
            table = table.set_column(table.schema.get_field_index(c), c, pa.array(y[:, i]))
        return table


Transform = StandardScaler | MinMaxScaler | OneHot | LabelEncoder | SklearnTransform
_APPLY = {
    "standard": StandardScaler.apply,
    "minmax": MinMaxScaler.apply,
    "onehot": OneHot.apply,
    "label": LabelEncoder.apply,
    "sklearn": SklearnTransform.apply,
}


@dataclass
class FittedTransforms:
    """Fitted steps in order; ``to_json``/``from_json`` are the artifact format."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def fit(cls, transforms: Sequence[Transform], table: pa.Table) -> FittedTransforms:
        steps = []
        for t in transforms:
            params = t.fit(table)
            steps.append({"kind": t.kind, "params": params})
            table = _APPLY[t.kind](table, params)  # later steps see earlier outputs
        return cls(steps)

    def apply(self, table: pa.Table) -> pa.Table:
        for step in self.steps:
            table = _APPLY[step["kind"]](table, step["params"])
        return table

    def to_json(self) -> str:
        return json.dumps({"format": 1, "steps": self.steps}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FittedTransforms:
        data = json.loads(text)
        return cls(list(data["steps"]))
