"""Deployments with strategies: blue/green, a weighted canary sticky by entity key, a
shadow challenger and a fallback; online predictions through them (docs/serving.md).

The request and response of a deployment are its own (entity keys and request data in;
prediction, score, model and feature versions, role and fallback flag out), so a new
model version behind it changes no client."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from featureledger.definitions import FeatureView
from featureledger.definitions.names import check_name
from featureledger.errors import DataError, NotFoundError, OnlineStoreUnavailable
from featureledger.registry import DeploymentRecord, ModelRecord, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._models import ModelService
from featureledger.store._online import OnlineService
from featureledger.store._predictions import PredictionService
from featureledger.store._predictor import TS, ModelRuntime, complete_rows, log_rows, view_keys

#: hash buckets of the sticky split: fine enough for weights in steps of 0.01 %
BUCKETS = 1 << 32


def sticky_bucket(deployment: str, key: Sequence[Any]) -> float:
    """Where an entity falls in [0, 1) for ``deployment``: a hash of the deployment's name
    and the entity's key values, so one entity always gets the same arm, and raising a
    canary's weight only moves entities from the primary to the canary."""
    text = json.dumps([deployment, *key], default=str, separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % BUCKETS) / BUCKETS


@dataclass
class _Arm:
    record: ModelRecord
    view: FeatureView
    keys: list[str]


@dataclass
class _State:
    """A deployment's current move with its models resolved (reused for a few seconds)."""

    record: DeploymentRecord
    primary: _Arm
    canary: _Arm | None
    weight: float
    shadow: _Arm | None
    fallback: _Arm | None
    last_prediction: bool
    transforms: str | None
    expires: float
    keys: list[str] = field(default_factory=list)


class DeploymentService:
    """Strategies recorded with each deployment move, and predictions served through them."""

    #: how long a deployment's resolved state is reused (a move in this process clears it)
    STATE_SECONDS = 2.0

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        models: ModelService,
        online: OnlineService,
        predictions: PredictionService,
        runtime: ModelRuntime,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.models = models
        self.online = online
        self.predictions = predictions
        self.runtime = runtime
        self._states: dict[str, _State] = {}
        #: deployment -> entity key -> (prediction, score, model) of its last served answer
        self._last: dict[str, dict[tuple[Any, ...], tuple[float, float | None, str]]] = {}
        self._versions: tuple[float, dict[str, int]] = (0.0, {})
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        #: failures of shadow scoring (never seen by a caller)
        self.shadow_errors: list[str] = []

    # -- strategies -------------------------------------------------------------------------
    def _current(self, deployment: str) -> DeploymentRecord:
        current = self.models.current_deployment(deployment)
        if current is None:
            raise NotFoundError(
                f"deployment/{deployment} does not exist; `featureledger deploy {deployment} "
                "MODEL` creates it"
            )
        return current

    def _move(
        self,
        current: DeploymentRecord,
        model: str,
        version: int,
        action: str,
        reason: str,
        config: Mapping[str, Any],
    ) -> DeploymentRecord:
        self._states.pop(current.name, None)
        return self.models.move_deployment(
            current.name, model, version, action, reason, {k: v for k, v in config.items() if v}
        )

    def deploy(
        self, deployment: str, model: str, version: int | None = None, *, reason: str = ""
    ) -> DeploymentRecord:
        """The blue/green switch: `ModelService.deploy`, seen at once by this process."""
        self._states.pop(deployment, None)
        return self.models.deploy(deployment, model, version, reason=reason)

    def canary(
        self,
        deployment: str,
        model: str,
        version: int | None = None,
        *,
        weight: float = 0.1,
        reason: str = "",
    ) -> DeploymentRecord:
        """Send a share ``weight`` of the entities (sticky by key hash) to another model."""
        if not 0.0 < weight < 1.0:
            raise DataError(f"canary weight must be between 0 and 1 (exclusive), got {weight}")
        current = self._current(deployment)
        candidate = self.runtime.record(model, version)
        self.models.check_deployable(candidate, f"canary of {{}} in deployment/{deployment}")
        arm = {"model": candidate.name, "version": candidate.version, "weight": float(weight)}
        return self._move(
            current,
            current.model,
            current.model_version,
            "canary",
            reason,
            current.config | {"canary": arm},
        )

    def shadow(
        self, deployment: str, model: str, version: int | None = None, *, reason: str = ""
    ) -> DeploymentRecord:
        """Score a copy of every request with a challenger; its answers are logged (role
        ``shadow``), never returned."""
        current = self._current(deployment)
        candidate = self.runtime.record(model, version)
        arm = {"model": candidate.name, "version": candidate.version}
        return self._move(
            current,
            current.model,
            current.model_version,
            "shadow",
            reason,
            current.config | {"shadow": arm},
        )

    def configure(
        self,
        deployment: str,
        *,
        fallback: str | None = None,
        fallback_version: int | None = None,
        last_prediction: bool | None = None,
        transforms: str | None = None,
        reason: str = "",
    ) -> DeploymentRecord:
        """Set the fallback model (``fallback``; "" removes it), whether the entity's last
        prediction is the fallback after it, and the fitted transforms (``model/NAME/N``)."""
        current = self._current(deployment)
        config = dict(current.config)
        if fallback is not None:
            if fallback:
                chosen = self.runtime.record(fallback, fallback_version)
                config["fallback"] = {"model": chosen.name, "version": chosen.version}
            else:
                config.pop("fallback", None)
        if last_prediction is not None:
            config["last_prediction"] = "on" if last_prediction else "off"
        if transforms is not None:
            if transforms:
                self.models.load_transforms(transforms)  # exists and matches its hash
            config["transforms"] = transforms
        return self._move(
            current, current.model, current.model_version, "configure", reason, config
        )

    def promote(self, deployment: str, *, reason: str = "") -> DeploymentRecord:
        """Make the canary (else the shadow) the primary model: the blue/green switch."""
        current = self._current(deployment)
        config = dict(current.config)
        arm = config.pop("canary", None) or config.pop("shadow", None)
        if not arm:
            raise NotFoundError(
                f"deployment/{deployment} has no canary or shadow to promote; start one with "
                "`featureledger deployment canary` or `deploy` a version directly"
            )
        candidate = self.runtime.record(arm["model"], arm["version"])
        self.models.check_deployable(candidate, f"promotion of {{}} in deployment/{deployment}")
        if config.get("shadow") and (config["shadow"]["model"], config["shadow"]["version"]) == (
            candidate.name,
            candidate.version,
        ):
            config.pop("shadow")
        return self._move(current, candidate.name, candidate.version, "promote", reason, config)

    def rollback(self, deployment: str, *, reason: str = "") -> DeploymentRecord:
        """End a canary or shadow (the primary stays); without one, point the deployment
        back at the model it served before."""
        current = self._current(deployment)
        if current.config.get("canary") or current.config.get("shadow"):
            config = {k: v for k, v in current.config.items() if k not in ("canary", "shadow")}
            return self._move(
                current, current.model, current.model_version, "rollback", reason, config
            )
        self._states.pop(deployment, None)
        return self.models.rollback_deployment(deployment, reason=reason)

    def status(self, deployment: str) -> dict[str, Any]:
        """The traffic split, the models behind it and the predictions served per role."""
        current = self._current(deployment)
        config = current.config
        canary = config.get("canary")
        weight = float(canary["weight"]) if canary else 0.0

        def ident(arm: Mapping[str, Any] | None) -> str | None:
            return None if not arm else f"model/{arm['model']}/{arm['version']}"

        served: dict[str, dict[str, int]] = {}
        log = self.predictions.prediction_log(f"deployment/{deployment}")
        if log.num_rows:
            counts = log.group_by(["role", "model"]).aggregate([("prediction_id", "count")])
            for row in counts.to_pylist():
                served.setdefault(row["role"], {})[row["model"] or "-"] = row["prediction_id_count"]
        return {
            "deployment": deployment,
            "primary": str(current.model_identity),
            "canary": ident(canary),
            "shadow": ident(config.get("shadow")),
            "fallback": ident(config.get("fallback")),
            "last_prediction_fallback": config.get("last_prediction", "on") == "on",
            "transforms": config.get("transforms"),
            "traffic": {"primary": 1.0 - weight, **({"canary": weight} if canary else {})},
            "served": served,
            "since": current.at,
            "action": current.action,
        }

    # -- serving ----------------------------------------------------------------------------
    def _arm(self, arm: Mapping[str, Any] | None) -> _Arm | None:
        if not arm:
            return None
        record = self.runtime.record(arm["model"], arm["version"])
        view = self.runtime.view(record)
        return _Arm(record, view, view_keys(view, self.catalog))

    def state(self, deployment: str) -> _State:
        clock = time.monotonic()
        hit = self._states.get(deployment)
        if hit is not None and hit.expires > clock:
            return hit
        current = self._current(deployment)
        config = current.config
        primary = self._arm({"model": current.model, "version": current.model_version})
        assert primary is not None
        canary = config.get("canary")
        state = _State(
            record=current,
            primary=primary,
            canary=self._arm(canary),
            weight=float(canary["weight"]) if canary else 0.0,
            shadow=self._arm(config.get("shadow")),
            fallback=self._arm(config.get("fallback")),
            last_prediction=config.get("last_prediction", "on") == "on",
            transforms=config.get("transforms") or None,
            expires=clock + self.STATE_SECONDS,
            keys=primary.keys,
        )
        self._states[deployment] = state
        return state

    def feature_versions(self, view: FeatureView) -> dict[str, int]:
        """The data version of each of the view's groups the online store serves."""
        clock = time.monotonic()
        if self._versions[0] <= clock:
            served = {
                f"feature_group/{m['group']}@v{m['major']}": int(m["version"])
                for m in self.registry.latest_materializations(self.online.store_name())
            }
            self._versions = (clock + self.STATE_SECONDS, served)
        wanted = {f"feature_group/{s.group}@v{s.major or 1}" for s in view.sources}
        return {k: v for k, v in self._versions[1].items() if k in wanted}

    def predict(
        self,
        deployment: str,
        entities: Sequence[Mapping[str, Any]],
        request_data: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """One answer per entity row, in order: the canary's for the entities its weight
        covers, the primary's for the rest, a fallback's where features are missing or the
        model fails (flagged). Every answer, and the shadow's, is logged."""
        check_name("deployment", deployment)
        where = f"prediction of deployment/{deployment}"
        rows = [dict(r) for r in entities]
        if not rows:
            raise DataError(f"{where}: no entity rows were given")
        extra = [dict(r) for r in request_data] if request_data is not None else None
        if extra is not None and len(extra) != len(rows):
            raise DataError(f"{where}: request_data has {len(extra)} rows for {len(rows)} entities")
        state = self.state(deployment)
        for i, row in enumerate(rows):
            missing = [k for k in state.keys if row.get(k) is None]
            if missing:
                raise DataError(f"{where}: entity row {i} lacks the key(s) {missing}")
        when = datetime.now(UTC)
        arms: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            key = [row[k] for k in state.keys]
            canary = state.canary is not None and sticky_bucket(deployment, key) < state.weight
            arms.setdefault("canary" if canary else "primary", []).append(i)
        answers: list[dict[str, Any]] = [{} for _ in rows]
        for role, index in arms.items():
            arm = state.canary if role == "canary" else state.primary
            assert arm is not None
            got = self._serve(
                deployment,
                state,
                arm,
                role,
                [rows[i] for i in index],
                None if extra is None else [extra[i] for i in index],
                when,
            )
            for i, answer in zip(index, got, strict=True):
                answers[i] = answer
        if state.shadow is not None:
            self._submit_shadow(deployment, state, rows, extra, when)
        return answers

    def _features(
        self,
        arm: _Arm,
        rows: list[dict[str, Any]],
        extra: list[dict[str, Any]] | None,
        transforms: str | None,
    ) -> pa.Table:
        table = self.online.get_online_features(
            arm.view.name, [{k: r[k] for k in arm.keys} for r in rows], request_data=extra
        ).to_arrow()
        if transforms:
            table = self.models.load_transforms(transforms).apply(table)
        return table

    def _score(
        self, arm: _Arm, table: pa.Table
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str]:
        """Predictions, scores, which rows got one, and why the others did not."""
        predictor = self.runtime.predictor(arm.record)
        names = predictor.inputs(table, [c for c in table.column_names if c not in arm.keys])
        complete = complete_rows(table, names)
        prediction = np.full(table.num_rows, np.nan)
        score: np.ndarray | None = None
        reason = ""
        if not complete.all():
            absent = [n for n in names if table.column(n).null_count]
            reason = f"missing features {absent}"
        if complete.any():
            try:
                got, p = predictor.score(table.filter(pa.array(complete)), names)
            except Exception as exc:  # the model's own failure: a fallback answers
                return (
                    prediction,
                    None,
                    np.zeros(table.num_rows, bool),
                    (f"{arm.record.identity} raised {type(exc).__name__}: {exc}"),
                )
            prediction[complete] = got
            if p is not None:
                score = np.full(table.num_rows, np.nan)
                score[complete] = p
        return prediction, score, complete, reason

    def _serve(
        self,
        deployment: str,
        state: _State,
        arm: _Arm,
        role: str,
        rows: list[dict[str, Any]],
        extra: list[dict[str, Any]] | None,
        when: datetime,
    ) -> list[dict[str, Any]]:
        versions = self.feature_versions(arm.view)
        try:
            table = self._features(arm, rows, extra, state.transforms)
            prediction, score, ok, reason = self._score(arm, table)
        except OnlineStoreUnavailable as exc:
            prediction, score = np.full(len(rows), np.nan), None
            ok, reason = np.zeros(len(rows), bool), f"online store unavailable: {exc}"
        keys = pa.Table.from_pylist([{k: r[k] for k in state.keys} for r in rows])
        answers: list[dict[str, Any]] = []
        logged: list[pa.Table] = []
        if ok.any():
            mask = pa.array(ok)
            part = log_rows(
                when=when,
                deployment=deployment,
                model=str(arm.record.identity),
                role=role,
                fallback=False,
                keys=keys.filter(mask),
                event_time=pa.array([when] * int(ok.sum()), TS),
                prediction=prediction[ok],
                score=None if score is None else score[ok],
                feature_versions=json.dumps(versions, sort_keys=True),
            )
            logged.append(part)
            last = self._last_predictions(deployment, state)
            for r in part.to_pylist():
                last[tuple(r[k] for k in state.keys)] = (r["prediction"], r["score"], r["model"])
        done = iter(logged[0].to_pylist()) if logged else iter(())
        failed = [i for i in range(len(rows)) if not ok[i]]
        fallback = self._fallback(
            deployment,
            state,
            [rows[i] for i in failed],
            None if extra is None else [extra[i] for i in failed],
            keys.take(failed) if failed else keys.slice(0, 0),
            when,
            reason,
        )
        fallback_rows = iter(fallback)
        for i in range(len(rows)):
            if ok[i]:
                answers.append(_answer(next(done), state.keys, versions))
            else:
                table, why = next(fallback_rows)
                r = table.to_pylist()[0]
                answers.append(_answer(r, state.keys, json.loads(r["feature_versions"]), why))
        logged += [table for table, _ in fallback]
        if logged:
            self.predictions.log_served(deployment, pa.concat_tables(logged))
        return answers

    def _fallback(
        self,
        deployment: str,
        state: _State,
        rows: list[dict[str, Any]],
        extra: list[dict[str, Any]] | None,
        keys: pa.Table,
        when: datetime,
        reason: str,
    ) -> list[tuple[pa.Table, str]]:
        """Answers for rows the model could not score: the fallback model's, else the
        entity's last served prediction, else none (prediction null), each flagged."""
        if not rows:
            return []
        n = len(rows)
        prediction, score = np.full(n, np.nan), np.full(n, np.nan)
        models: list[str | None] = [None] * n
        why = [f"{reason}; no fallback answered" for _ in range(n)]
        versions: dict[str, int] = {}
        if state.fallback is not None:
            arm = state.fallback
            versions = self.feature_versions(arm.view)
            with contextlib.suppress(OnlineStoreUnavailable):
                table = self._features(arm, rows, extra, None)
                got, p, ok, _ = self._score(arm, table)
                for i in np.flatnonzero(ok).tolist():
                    prediction[i] = got[i]
                    score[i] = np.nan if p is None else p[i]
                    models[i] = str(arm.record.identity)
                    why[i] = f"{reason}; answered by the fallback model"
        if state.last_prediction:
            last = self._last_predictions(deployment, state)
            for j, row in enumerate(rows):
                if models[j] is None:
                    hit = last.get(tuple(row[k] for k in state.keys))
                    if hit is not None:
                        prediction[j] = hit[0]
                        score[j] = np.nan if hit[1] is None else hit[1]
                        models[j] = hit[2]
                        why[j] = f"{reason}; the entity's last prediction"
        out = []
        for i in range(n):
            table = log_rows(
                when=when,
                deployment=deployment,
                model=models[i],
                role="fallback",
                fallback=True,
                keys=keys.slice(i, 1),
                event_time=pa.array([when], TS),
                prediction=prediction[i : i + 1],
                score=score[i : i + 1],
                feature_versions=json.dumps(versions if models[i] else {}, sort_keys=True),
            )
            out.append((table, why[i]))
        return out

    def _last_predictions(
        self, deployment: str, state: _State
    ) -> dict[tuple[Any, ...], tuple[float, float | None, str]]:
        """The last answer per entity, primed once from the prediction log."""
        with self._lock:
            last = self._last.get(deployment)
            if last is None:
                last = self._last[deployment] = {}
                table = self.predictions.tables.prediction_log("deployment", deployment)
                if table.exists():
                    log = table.read(table.latest_version())
                    if all(k in log.column_names for k in state.keys):
                        for r in log.sort_by("predicted_at").to_pylist():
                            if r["role"] in ("primary", "canary") and r["prediction"] is not None:
                                key = tuple(r[k] for k in state.keys)
                                last[key] = (r["prediction"], r["score"], r["model"])
        return last

    def _submit_shadow(
        self,
        deployment: str,
        state: _State,
        rows: list[dict[str, Any]],
        extra: list[dict[str, Any]] | None,
        when: datetime,
    ) -> None:
        """The challenger scores a copy off the request path; only the log sees it."""
        with self._lock:
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="fl-shadow")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(
                self._shadow_pool.submit(self._shadow, deployment, state, rows, extra, when)
            )

    def _shadow(
        self,
        deployment: str,
        state: _State,
        rows: list[dict[str, Any]],
        extra: list[dict[str, Any]] | None,
        when: datetime,
    ) -> None:
        arm = state.shadow
        assert arm is not None
        try:
            table = self._features(arm, rows, extra, state.transforms)
            prediction, score, _, _ = self._score(arm, table)
            keys = pa.Table.from_pylist([{k: r[k] for k in state.keys} for r in rows])
            self.predictions.log_served(
                deployment,
                log_rows(
                    when=when,
                    deployment=deployment,
                    model=str(arm.record.identity),
                    role="shadow",
                    fallback=False,
                    keys=keys,
                    event_time=pa.array([when] * len(rows), TS),
                    prediction=prediction,
                    score=score,
                    feature_versions=json.dumps(self.feature_versions(arm.view), sort_keys=True),
                ),
            )
        except Exception as exc:  # a challenger's failure never reaches a caller
            self.shadow_errors.append(f"{arm.record.identity}: {type(exc).__name__}: {exc}")

    def flush(self) -> None:
        """Wait for shadow scoring, then write every queued prediction-log row."""
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            f.result()
        self.predictions.flush()


def _answer(
    row: Mapping[str, Any], keys: Sequence[str], versions: Mapping[str, int], reason: str = ""
) -> dict[str, Any]:
    def number(value: Any) -> float | None:
        return None if value is None or value != value else float(value)  # NaN -> null

    out = {k: row[k] for k in keys}
    out |= {
        "prediction_id": row["prediction_id"],
        "prediction": number(row["prediction"]),
        "score": number(row["score"]),
        "model": row["model"],
        "feature_versions": dict(versions),
        "role": row["role"],
        "fallback": bool(row["fallback"]),
    }
    if reason:
        out["reason"] = reason
    return out
