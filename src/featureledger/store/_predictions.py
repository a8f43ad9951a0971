"""Batch inference into versioned prediction tables, the prediction log every prediction
is written to, delayed labels and the realized performance they give."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import VersionId
from featureledger.definitions.names import check_name
from featureledger.errors import DataError, NotFoundError
from featureledger.offline.conform import to_arrow
from featureledger.offline.delta import DeltaGroupTable
from featureledger.offline.logs import FeatureLogWriter
from featureledger.registry import RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._models import ModelService
from featureledger.store._predictor import TS, ModelRuntime, complete_rows, log_rows, view_keys
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.store._training import TrainingService
from featureledger.versioning.provenance import current_user


@dataclass(frozen=True)
class BatchPredictions:
    """One `batch_predict` run: the data version it wrote and its rows."""

    name: str
    version: int
    model: str
    rows: int
    feature_versions: dict[str, int]
    table: pa.Table

    @property
    def identity(self) -> str:
        return f"predictions/{self.name}/{self.version}"

    def to_arrow(self) -> pa.Table:
        return self.table


_WINDOW = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(window: str | timedelta) -> timedelta:
    """``"1d"``, ``"6h"``, ``"30m"``, ``"1w"`` or a timedelta."""
    if isinstance(window, timedelta):
        span = window
    else:
        match = _WINDOW.fullmatch(window.strip())
        if match is None:
            raise DataError(f"window {window!r} not understood; use e.g. 1d, 6h, 30m or 1w")
        span = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if span <= timedelta(0):
        raise DataError(f"window {window!r} must be positive")
    return span


def _versions_json(pins: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {
        str(VersionId.parse(p["identity"]).without_data()): int(p["version"]) for p in pins.values()
    }


class PredictionService:
    """``batch_predict``, the prediction log (batch rows written at once, served rows off
    the request path), delayed labels and realized performance."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        tables: Tables,
        runs: Runs,
        training: TrainingService,
        models: ModelService,
        runtime: ModelRuntime,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.tables = tables
        self.runs = runs
        self.training = training
        self.models = models
        self.runtime = runtime
        self._writers: dict[str, FeatureLogWriter] = {}

    # -- batch inference --------------------------------------------------------------------
    def batch_predict(
        self,
        model: str,
        entities: Any,
        *,
        as_of: Literal["point_in_time", "latest"] = "point_in_time",
        output: str | None = None,
        timestamp_column: str = "event_timestamp",
        transforms: str | None = None,
    ) -> BatchPredictions:
        """Score ``entities`` with ``model`` and write the predictions as the next data
        version of ``predictions/OUTPUT`` (default: the model's name)."""
        if as_of not in ("point_in_time", "latest"):
            raise DataError(
                f"batch_predict: as_of must be 'point_in_time' or 'latest', not {as_of!r}"
            )
        record = self.runtime.record(model)
        name = check_name("predictions", output or record.name)
        where = f"batch_predict of {record.identity} into predictions/{name}"
        fv = self.runtime.view(record)
        keys = view_keys(fv, self.catalog)
        frame = to_arrow(entities, where=where)
        if frame.num_rows == 0:
            raise DataError(f"{where}: no entity rows were given")
        now = datetime.now(UTC)
        if as_of == "latest":  # the features current now, TTLs applied as online
            stamp = pa.array([now] * frame.num_rows, TS)
            if timestamp_column in frame.column_names:
                frame = frame.set_column(
                    frame.schema.get_field_index(timestamp_column), timestamp_column, stamp
                )
            else:
                frame = frame.append_column(timestamp_column, stamp)
        elif timestamp_column not in frame.column_names:
            raise DataError(
                f"{where}: the entity frame has no {timestamp_column!r} column to read features "
                "as of; add it, or pass as_of='latest'"
            )
        join = self.training.plan_join(fv, frame, timestamp_column, None, None)
        joined, _ = self.training.run_join(join, None)
        assert joined is not None
        versions = _versions_json(join.pins)
        if transforms is not None:
            joined = self.models.load_transforms(transforms).apply(joined)
        predictor = self.runtime.predictor(record)
        names = predictor.inputs(
            joined, [c for c in joined.column_names if c not in (*keys, timestamp_column)]
        )
        prediction = np.full(joined.num_rows, np.nan)
        score: np.ndarray | None = None
        complete = complete_rows(joined, names)
        if complete.any():
            got, p = predictor.score(joined.filter(pa.array(complete)), names)
            prediction[complete] = got
            if p is not None:
                score = np.full(joined.num_rows, np.nan)
                score[complete] = p
        rows = log_rows(
            when=now,
            deployment=None,
            model=str(record.identity),
            role="batch",
            fallback=False,
            keys=joined.select(keys),
            event_time=joined.column(timestamp_column),
            prediction=prediction,
            score=score,
            feature_versions=json.dumps(versions, sort_keys=True),
        )
        inputs = [
            str(record.identity),
            *([record.training_dataset] if record.training_dataset else []),
            *(p["identity"] for p in join.pins.values()),
            *([transforms] if transforms else []),
        ]
        user = current_user()
        params = {"model": str(record.identity), "output": name, "as_of": as_of}
        run = self.runs.start(
            "batch-predict", user, params | {"rows": rows.num_rows}, inputs=inputs
        )
        table = self.tables.predictions(name)
        try:
            # one lock around commit, log and record: a concurrent call or a repair never
            # sees a version half recorded
            with table.lock():
                self._repair(name, table)
                if not table.exists():
                    table.create(rows.schema, run.id)
                version = table.overwrite(rows, run.id, schema_mode="overwrite")
                ident = f"predictions/{name}/{version}"
                self._append_log(self.tables.prediction_log("model", record.name), rows, run.id)
                self.runs.finish(run.id, "succeeded", [ident])
        except BaseException as exc:
            self.runs.finish(run.id, "failed", [], f"{type(exc).__name__}: {exc}")
            raise
        self.registry.audit(user, "batch-predict", ident, params | {"rows": rows.num_rows})
        return BatchPredictions(name, version, str(record.identity), rows.num_rows, versions, rows)

    def predictions(self, name: str, version: int | None = None) -> pa.Table:
        """The rows of ``predictions/NAME`` (its latest data version, or ``version``)."""
        table = self.tables.predictions(name)
        if not table.exists():
            raise NotFoundError(f"predictions/{name} does not exist; write it with batch_predict")
        with table.lock():
            self._repair(name, table)
        return table.read(table.latest_version() if version is None else version)

    def _repair(self, name: str, table: DeltaGroupTable) -> None:
        """A writer killed between its commit and its record: log the rows of that version
        (those the log lacks) and record the run's output, so the next call finds it whole."""
        if not table.exists():
            return
        latest = table.latest_version()
        if latest == 0:
            return
        commit = table.commit(latest)
        run = self.registry.run(commit.run_id) if commit.run_id else None
        if run is not None and run.status == "succeeded":
            return
        rows = table.read(latest)
        model = VersionId.parse(rows.column("model")[0].as_py()).name if rows.num_rows else name
        log = self.tables.prediction_log("model", model)
        if log.exists() and rows.num_rows:
            logged = log.read(log.latest_version(), ["prediction_id"])
            rows = rows.filter(
                pc.invert(pc.is_in(rows.column("prediction_id"), logged.column("prediction_id")))
            )
        if rows.num_rows:
            self._append_log(log, rows, commit.run_id or "repair")
        if run is not None:
            self.registry.finish_run(
                run.id, "succeeded", [f"predictions/{name}/{latest}"], "recovered"
            )

    # -- the prediction log -----------------------------------------------------------------
    @staticmethod
    def _append_log(table: DeltaGroupTable, rows: pa.Table, run_id: str) -> None:
        data = rows.cast(pa.schema([f.with_nullable(True) for f in rows.schema]))
        with table.lock():
            if not table.exists():
                table.create(data.schema, run_id)
            table.append(data, run_id, schema_mode="merge")

    def log_served(self, deployment: str, rows: pa.Table) -> None:
        """Queue served rows for the deployment's log (written in the background)."""
        writer = self._writers.get(deployment)
        if writer is None:
            path = self.tables.prediction_log("deployment", deployment).path
            writer = self._writers.setdefault(deployment, FeatureLogWriter(path))
        writer.log(rows)

    def flush(self) -> None:
        """Write every served prediction queued so far."""
        for writer in list(self._writers.values()):
            writer.flush()

    def prediction_log(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Logged predictions with start <= predicted_at < end: of ``deployment/NAME``
        (served), of ``model/NAME[/N]`` (batch, and served by any deployment), or of a
        bare NAME (the deployment of that name, else the model)."""
        self.flush()
        deployments = {d.name for d in self.registry.deployments()}
        if name.startswith("deployment/"):
            kind, key, number = "deployment", name.split("/", 1)[1], None
        elif name.startswith("model/"):
            ident = VersionId.parse(name)
            kind, key, number = "model", ident.name, ident.number
        else:
            kind, key, number = ("deployment" if name in deployments else "model"), name, None
        parts: list[pa.Table] = []
        if kind == "deployment":
            parts.append(self._read_log("deployment", key))
        else:
            table = self.tables.predictions(key)
            if table.exists():
                with table.lock():
                    self._repair(key, table)
            parts.append(self._read_log("model", key))
            parts += [self._read_log("deployment", d) for d in sorted(deployments)]
        found = [p for p in parts if p.num_rows]
        if not found:
            if kind == "model":
                self.runtime.record(key)  # NotFoundError when no such model exists
            elif key not in deployments:
                raise NotFoundError(f"deployment/{key} does not exist")
            return parts[0]
        rows = pa.concat_tables(found, promote_options="permissive")
        if kind == "model":
            models = rows.column("model")
            wanted = f"model/{key}/{number}" if number is not None else None
            mask = (
                pc.equal(models, wanted)
                if wanted
                else pc.starts_with(models, pattern=f"model/{key}/")
            )
            rows = rows.filter(mask)
        times = rows.column("predicted_at")
        if start is not None:
            rows = rows.filter(pc.greater_equal(times, pa.scalar(start, TS)))
            times = rows.column("predicted_at")
        if end is not None:
            rows = rows.filter(pc.less(times, pa.scalar(end, TS)))
        return rows.sort_by([("predicted_at", "ascending")])

    def _read_log(self, kind: str, name: str) -> pa.Table:
        table = self.tables.prediction_log(kind, name)
        if not table.exists():
            return pa.table({"prediction_id": pa.array([], pa.string())})
        return table.read(table.latest_version())

    # -- delayed labels ---------------------------------------------------------------------
    def log_labels(self, deployment: str, labels: Any) -> int:
        """Store delayed labels for a deployment's predictions: a ``label`` column with
        ``prediction_id``, or with the entity keys and ``event_timestamp``."""
        where = f"labels for deployment/{deployment}"
        if not self.registry.deployments(deployment):
            raise NotFoundError(f"deployment/{deployment} does not exist")
        frame = to_arrow(labels, where=where)
        if "label" not in frame.column_names:
            raise DataError(f"{where}: there is no 'label' column; it has {frame.column_names}")
        if (
            "prediction_id" not in frame.column_names
            and "event_timestamp" not in frame.column_names
        ):
            raise DataError(
                f"{where}: each label needs a prediction_id, or the entity keys and "
                "event_timestamp of the prediction it labels"
            )
        try:
            label = pc.cast(frame.column("label"), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"{where}: labels must be numbers (0/1 or values): {exc}") from exc
        frame = frame.set_column(frame.schema.get_field_index("label"), "label", label)
        if "event_timestamp" in frame.column_names:
            i = frame.schema.get_field_index("event_timestamp")
            frame = frame.set_column(i, "event_timestamp", pc.cast(frame.column(i), TS))
        frame = frame.append_column(
            "labelled_at", pa.array([datetime.now(UTC)] * frame.num_rows, TS)
        )
        self._append_log(self.tables.labels(deployment), frame, f"labels-{deployment}")
        return frame.num_rows

    def labelled(self, deployment: str) -> Any:
        """The deployment's logged predictions joined to their labels (pandas)."""
        import pandas as pd

        log = self.prediction_log(f"deployment/{deployment}").to_pandas()
        table = self.tables.labels(deployment)
        if not table.exists() or log.empty:
            return log.assign(label=pd.Series(dtype=float)).iloc[0:0]
        labels = table.read(table.latest_version()).to_pandas()
        labels = labels.sort_values("labelled_at")
        out = []
        if "prediction_id" in labels:
            by_id = labels.dropna(subset=["prediction_id"]).drop_duplicates(
                "prediction_id", keep="last"
            )
            out.append(log.merge(by_id[["prediction_id", "label"]], on="prediction_id"))
            labels = labels[labels["prediction_id"].isna()]
        on = [c for c in labels.columns if c in log.columns and c not in ("prediction_id",)]
        if len(labels) and "event_timestamp" in on:
            on = [c for c in on if c not in ("label", "labelled_at")]
            by_key = labels.drop_duplicates(on, keep="last")[[*on, "label"]]
            out.append(log.merge(by_key, on=on))
        if not out:
            return log.assign(label=pd.Series(dtype=float)).iloc[0:0]
        return pd.concat(out, ignore_index=True).drop_duplicates("prediction_id", keep="last")

    def realized_performance(
        self, deployment: str, window: str | timedelta = "1d", *, roles: Sequence[str] = ()
    ) -> pa.Table:
        """Metrics of the labelled predictions per window of prediction time, role and
        model: ROC AUC, F1, accuracy and log loss where a score was logged (binary
        classification), MAE and RMSE otherwise (scikit-learn's implementations)."""
        import pandas as pd
        from sklearn import metrics

        span = parse_window(window)
        joined = self.labelled(deployment)
        if roles:
            joined = joined[joined["role"].isin(list(roles))]
        rows: list[dict[str, Any]] = []
        if len(joined):
            epoch = pd.Timestamp(0, tz="UTC")
            step = pd.Timedelta(span)
            joined = joined.assign(
                window_start=epoch + ((joined["predicted_at"] - epoch) // step) * step
            )
            for (start, role, model), part in joined.groupby(
                ["window_start", "role", "model"], sort=True
            ):
                y = part["label"].to_numpy(float)
                pred = part["prediction"].to_numpy(float)
                ok = ~np.isnan(pred)
                out: dict[str, Any] = {
                    "window_start": start.to_pydatetime(),
                    "window_end": (start + step).to_pydatetime(),
                    "role": role,
                    "model": model,
                    "rows": len(part),
                }
                score = part["score"].to_numpy(float)
                if ok.any() and not np.isnan(score[ok]).all():
                    s = score[ok]
                    two = len(set(y[ok].tolist())) == 2
                    out["auc"] = float(metrics.roc_auc_score(y[ok], s)) if two else None
                    out["f1"] = float(metrics.f1_score(y[ok], pred[ok], zero_division=0))
                    out["accuracy"] = float(metrics.accuracy_score(y[ok], pred[ok]))
                    out["log_loss"] = float(metrics.log_loss(y[ok], s, labels=[0.0, 1.0]))
                elif ok.any():
                    out["mae"] = float(metrics.mean_absolute_error(y[ok], pred[ok]))
                    out["rmse"] = float(np.sqrt(metrics.mean_squared_error(y[ok], pred[ok])))
                rows.append(out)
        schema = pa.schema(
            [
                ("window_start", TS),
                ("window_end", TS),
                ("role", pa.string()),
                ("model", pa.string()),
                ("rows", pa.int64()),
                *((m, pa.float64()) for m in ("auc", "f1", "accuracy", "log_loss", "mae", "rmse")),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)
