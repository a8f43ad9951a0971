"""The prediction-log side of model monitoring: chunks of logged predictions, delayed labels
joined to them, and the result types of performance estimation and model drift."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.contract import parse_duration
from featureledger.errors import DataError
from featureledger.monitoring.drift import DriftReport

Task = Literal["binary", "regression"]

#: metrics each task estimates, the first is the primary one
TASK_METRICS: Mapping[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "f1", "accuracy", "precision", "recall"),
    "regression": ("mae", "rmse"),
}
#: metrics where a lower value is better (all others: higher is better)
LOWER_IS_BETTER = frozenset({"mae", "rmse"})
#: the width of every band, in reference sampling errors (NannyML and control charts use 3)
BAND_SIGMAS = 3.0
#: random reference samples drawn to measure a metric's sampling error
BOOTSTRAP_SAMPLES = 50
#: the estimator artifact's format; a different one is refused with what to do
FORMAT = 1


# -- chunks ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Rows of a table judged together: by count (``chunk_size``) or by time (``period``)."""

    key: str
    start: datetime | None
    end: datetime | None
    rows: np.ndarray  # row indices into the table

    @property
    def size(self) -> int:
        return len(self.rows)


def chunks(
    table: pa.Table,
    *,
    chunk_size: int | None = None,
    period: str | None = None,
    time_column: str = "predicted_at",
) -> list[Chunk]:
    """Split ``table`` into chunks in time order: ``period`` ("1d", "6h") floors
    ``time_column``; ``chunk_size`` takes consecutive rows (a last partial chunk is kept);
    neither: one chunk of everything."""
    n = table.num_rows
    times = None
    if time_column in table.column_names:
        times = (
            table.column(time_column).cast(pa.timestamp("us", "UTC")).to_numpy(zero_copy_only=False)
        )
        order = np.argsort(times, kind="stable")
    else:
        order = np.arange(n)
    if period is not None:
        if times is None:
            raise DataError(
                f"chunks by period need a {time_column!r} column; give chunk_size instead"
            )
        step = int(parse_duration(period).total_seconds() * 1_000_000)
        stamps = times[order].astype("datetime64[us]").astype(np.int64)
        floors = stamps - stamps % step
        out = []
        for value in np.unique(floors):
            idx = order[floors == value]
            first = _dt(int(value))
            out.append(Chunk(first.isoformat(), first, _dt(int(value) + step), idx))
        return out
    size = n if chunk_size is None else int(chunk_size)
    if size <= 0:
        raise DataError(f"chunk_size must be positive, got {chunk_size}")
    out = []
    for begin in range(0, n, size):
        idx = order[begin : begin + size]
        start: datetime | None = None
        end: datetime | None = None
        if times is not None and len(idx):
            sel = times[idx].astype("datetime64[us]").astype(np.int64)
            start, end = _dt(int(sel.min())), _dt(int(sel.max()))
        out.append(Chunk(f"[{begin}:{begin + len(idx)}]" if chunk_size else "all", start, end, idx))
    return out


def _dt(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkPerformance:
    """One metric of one chunk: the estimate with its band, the reference band and the
    realized value (NaN without labels)."""

    chunk: str
    start: datetime | None
    end: datetime | None
    rows: int
    labelled: int
    metric: str
    estimated: float
    lower: float
    upper: float
    reference: float
    reference_lower: float
    reference_upper: float
    realized: float

    @property
    def alert(self) -> bool:
        """The estimate is outside the reference's band on the bad side."""
        if self.metric in LOWER_IS_BETTER:
            return self.estimated > self.reference_upper
        return self.estimated < self.reference_lower

    def drop(self, kind: Literal["estimated", "realized"] = "estimated") -> float:
        """The relative drop from the reference (positive: worse)."""
        value = self.estimated if kind == "estimated" else self.realized
        if not math.isfinite(value) or not self.reference:
            return math.nan
        change = (value - self.reference) / abs(self.reference)
        return change if self.metric in LOWER_IS_BETTER else -change

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": self.rows,
            "labelled": self.labelled,
            "metric": self.metric,
            "estimated": _json(self.estimated),
            "lower": _json(self.lower),
            "upper": _json(self.upper),
            "reference": _json(self.reference),
            "reference_lower": _json(self.reference_lower),
            "reference_upper": _json(self.reference_upper),
            "realized": _json(self.realized),
            "alert": self.alert,
        }


@dataclass(frozen=True)
class PerformanceReport:
    """Estimated and realized performance of a model per chunk and metric."""

    model: str
    task: str
    rows: tuple[ChunkPerformance, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        return TASK_METRICS[self.task]

    def series(self, metric: str) -> list[ChunkPerformance]:
        return [r for r in self.rows if r.metric == metric]

    def drops(self, kind: Literal["estimated", "realized"] = "estimated") -> dict[str, float]:
        """Each metric's largest relative drop over the chunks (NaN when never measured)."""
        out = {}
        for metric in self.metrics:
            values = [d for r in self.series(metric) if math.isfinite(d := r.drop(kind))]
            out[metric] = max(values) if values else math.nan
        return out

    def values(self, kind: Literal["estimated", "realized"]) -> dict[str, float]:
        """Each metric's worst chunk value."""
        out = {}
        for metric in self.metrics:
            got = [
                v
                for r in self.series(metric)
                if math.isfinite(v := r.estimated if kind == "estimated" else r.realized)
            ]
            worst = max if metric in LOWER_IS_BETTER else min
            out[metric] = worst(got) if got else math.nan
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "task": self.task, "chunks": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True)
class ChunkError:
    """Mean PCA reconstruction error of one chunk against the reference's band;
    ``z`` is its distance from the reference value in sampling errors."""

    chunk: str
    start: datetime | None
    end: datetime | None
    rows: int
    error: float
    reference: float
    lower: float
    upper: float
    z: float

    @property
    def alert(self) -> bool:
        return self.error > self.upper or self.error < self.lower

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": self.rows,
            "error": _json(self.error),
            "reference": _json(self.reference),
            "lower": _json(self.lower),
            "upper": _json(self.upper),
            "z": _json(self.z),
            "alert": self.alert,
        }


@dataclass(frozen=True)
class ModelDriftReport:
    """Multivariate drift per chunk and the drift of the model's outputs."""

    model: str
    multivariate: tuple[ChunkError, ...]
    prediction: DriftReport
    explained_variance: float

    @property
    def max_z(self) -> float:
        zs = [c.z for c in self.multivariate if math.isfinite(c.z)]
        return max(zs) if zs else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "explained_variance": self.explained_variance,
            "multivariate": [c.to_dict() for c in self.multivariate],
            "prediction": self.prediction.to_dict(),
        }


# -- labels and tables ----------------------------------------------------------------------------
def join_labels(
    predictions: Any, labels: Any, *, keys: Sequence[str] = (), label: str = "label"
) -> pa.Table:
    """The predictions with their delayed ``label`` (null where none arrived yet), joined by
    ``prediction_id`` when the labels have it, else by ``keys`` + ``event_timestamp``
    (``keys`` default: the other columns both tables have, i.e. the entity keys)."""
    preds, labs = as_table(predictions), as_table(labels)
    if "prediction_id" in labs.column_names:
        on = ["prediction_id"]
    else:
        keys = keys or [
            c
            for c in labs.column_names
            if c in preds.column_names and c not in (label, "event_timestamp")
        ]
        on = [*keys, "event_timestamp"]
    missing = [c for c in [*on, label] if c not in labs.column_names] + [
        c for c in on if c not in preds.column_names
    ]
    if missing or not on:
        raise DataError(
            f"labels: cannot join on {on}; missing column(s) {sorted(set(missing))}. Give "
            "prediction_id (or the entity keys and event_timestamp) and label"
        )
    labs = labs.select([*on, label])
    if pc.any(pc.is_null(labs.column(label))).as_py() is True:
        labs = labs.filter(pc.is_valid(labs.column(label)))
    if labs.group_by(on).aggregate([]).num_rows != labs.num_rows:
        raise DataError(f"labels: more than one label for some {on}; keep one per prediction")
    if label in preds.column_names:
        preds = preds.drop_columns([label])
    preds = preds.append_column("__row", pa.array(np.arange(preds.num_rows), pa.int64()))
    joined = preds.join(labs.cast(_label_schema(labs, label)), on, join_type="left outer")
    return joined.sort_by("__row").drop_columns(["__row"])


def _label_schema(labs: pa.Table, label: str) -> pa.Schema:
    return pa.schema([f if f.name != label else pa.field(label, pa.float64()) for f in labs.schema])


def as_table(data: Any) -> pa.Table:
    """An Arrow table from a table, a pandas or polars frame, or a mapping of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if hasattr(data, "to_arrow"):
        return data.to_arrow()
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise DataError(f"expected an Arrow table or a data frame, got {type(data).__name__}")


#: prediction-log columns that are never model features
LOG_COLUMNS = frozenset(
    {
        "prediction_id",
        "predicted_at",
        "deployment",
        "model",
        "role",
        "fallback",
        "event_timestamp",
        "feature_versions",
    }
)


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None
