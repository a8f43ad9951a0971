"""Monitoring a registered model from prediction-log rows: the estimator fitted at
registration and kept content-hashed, estimates, drift, monitors that block a deploy, the
features read point-in-time when the log holds none, and a crash while storing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import DataError, IntegrityError, MonitorBlockError, NotFoundError
from featureledger.monitoring import Monitor

T0 = datetime(2025, 1, 1, tzinfo=UTC)
N = 1500


def population(n: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, spread), z ~ N(0, 1); P(y=1) = sigmoid(2x - z): narrowing x moves rows
    towards the decision boundary (a covariate shift under which the model is worse)."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(0, spread, n), rng.normal(0, 1, n)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(float)
    return x, y


@pytest.fixture(scope="module")
def clf() -> LogisticRegression:
    return LogisticRegression().fit(*population(3000, 1.5, seed=1))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    """Users 0..N-1 with features x and z at T0, a view over them; closed after the test
    (also when it fails: no connection is left to the garbage collector)."""
    s = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    g = FeatureGroup("u", user, features=[Field("x", "float64"), Field("z", "float64")])
    s.apply([user, g, FeatureView("risk", [g])])
    x, _ = population(N, 1.5, seed=2)
    s.ingest(
        "u",
        {"user_id": list(range(N)), "event_timestamp": [T0] * N, "x": x[:, 0], "z": x[:, 1]},
    )
    try:
        yield s
    finally:
        s.close()


def labelled_frame(clf: LogisticRegression, spread: float, seed: int, n: int = N) -> pa.Table:
    x, y = population(n, spread, seed)
    s = clf.predict_proba(x)[:, 1]
    return pa.table(
        {"x": x[:, 0], "z": x[:, 1], "score": s, "prediction": (s >= 0.5) * 1.0, "label": y}
    )


def prediction_log(
    clf: LogisticRegression,
    model: str,
    spread: float,
    seed: int,
    *,
    n: int = 2000,
    features: bool = True,
) -> tuple[pa.Table, pa.Table]:
    """Rows as featureledger logs them (docs: the prediction log) and their delayed labels."""
    x, y = population(n, spread, seed)
    s = clf.predict_proba(x)[:, 1]
    ids = [uuid.uuid4().hex for _ in range(n)]
    ts = pa.array([T0 + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", "UTC"))
    cols = {
        "prediction_id": ids,
        "predicted_at": ts,
        "deployment": ["risk"] * n,
        "model": [model] * n,
        "role": ["primary"] * n,
        "fallback": [False] * n,
        "user_id": list(range(n)),
        "event_timestamp": ts,
        "prediction": (s >= 0.5) * 1.0,
        "score": s,
        "feature_versions": ['{"feature_group/u@v1": 1}'] * n,
    }
    if features:
        cols |= {"x": x[:, 0], "z": x[:, 1]}
    return pa.table(cols), pa.table({"prediction_id": ids, "label": y})


def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(16))
    return path


def test_register_model_fits_the_estimator_and_estimates_from_the_log(
    store: FeatureStore, clf: LogisticRegression, tmp_path: Path
) -> None:
    rec = store.register_model(
        "risk",
        artifact(tmp_path),
        estimator_reference=labelled_frame(clf, 1.5, seed=3),
        estimator_options={"chunk_size": 500},
    )
    ident = str(rec.identity)
    kept = store._svc.model_monitoring.estimator_record(ident)
    assert kept.task == "binary" and kept.features == ("x", "z")
    assert kept.sha256 in kept.uri  # content-addressed
    assert "fit-estimator" in [e.action for e in store.audit_log(ident)]

    steady, steady_labels = prediction_log(clf, ident, 1.5, seed=4)
    other, _ = prediction_log(clf, "model/other/1", 0.2, seed=5, n=300)
    logged = pa.concat_tables([steady, other])  # the log holds every model's rows
    report = store.estimate_performance("risk", logged, labels=steady_labels)
    auc = report.series("roc_auc")
    assert sum(r.rows for r in auc) == 2000  # only this model's rows
    for r in auc:
        assert r.lower <= r.realized <= r.upper and not r.alert

    shifted, _ = prediction_log(clf, ident, 0.3, seed=6)
    drop = store.estimate_performance(ident, shifted)
    assert all(r.alert for r in drop.series("roc_auc"))
    drift = store.model_drift(ident, shifted)
    assert drift.prediction.features["score"].status == "alert"


def test_a_blocking_model_monitor_stops_deploy_until_it_no_longer_breaches(
    store: FeatureStore, clf: LogisticRegression, tmp_path: Path
) -> None:
    rec = store.register_model("risk", artifact(tmp_path))
    store.fit_performance_estimator("risk", labelled_frame(clf, 1.5, seed=7), chunk_size=500)
    monitors = [
        Monitor("risk_auc", "model/risk", "estimated_drop", action="block"),
        Monitor("risk_psi", "model/risk", "psi"),
        Monitor("risk_pca", "model/risk", "multivariate_drift"),
    ]
    shifted, _ = prediction_log(clf, str(rec.identity), 0.3, seed=8)
    found = {f.monitor: f for f in store.run_model_monitors(monitors, shifted)}
    assert found["risk_auc"].blocking and found["risk_auc"].target == "model/risk/1"
    assert "retrain with recent data" in found["risk_auc"].message
    assert "investigate the cause first" in found["risk_psi"].message
    # two independent features: 65 % of the variance needs both components, so nothing is
    # lost in reconstruction and a narrowed x cannot show (docs/monitoring.md: PCA sees a
    # changed correlation, tests/monitoring/test_performance.py)
    assert found["risk_pca"].status == "ok"
    with pytest.raises(MonitorBlockError, match="risk_auc"):
        store.deploy("risk", "risk", 1)
    # the page shows the open finding beside the shifted chunks
    page = store.model_report("risk", shifted, tmp_path / "risk.html").read_text()
    assert "risk_auc" in page and "retrain with recent data" in page
    assert page.count('class="plot"') == 3
    steady, _ = prediction_log(clf, str(rec.identity), 1.5, seed=9)
    again = {f.monitor: f for f in store.run_model_monitors(monitors, steady)}
    assert again["risk_auc"].status == "ok"
    store.deploy("risk", "risk", 1)  # the finding was superseded
    # model monitors in monitors.yaml are left to run_model_monitors
    with pytest.raises(Exception, match="run_model_monitors"):
        store.run_monitors([monitors[0]])


def test_features_missing_from_the_log_are_read_point_in_time(
    store: FeatureStore, clf: LogisticRegression, tmp_path: Path
) -> None:
    # the training set's entity rows carry the label: reference = the view's features
    # scored by the model, as a test split would be
    _, y = population(N, 1.5, seed=2)  # the ingested features
    entities = pa.table(
        {"user_id": list(range(N)), "event_timestamp": [T0 + timedelta(hours=1)] * N, "label": y}
    )
    td = store.training_data("risk", entities)
    rec = store.register_model(
        "risk",
        artifact(tmp_path),
        training_dataset=td,
        estimator_reference=td,
        estimator_options={"predictor": clf, "features": ["x", "z"], "chunk_size": 500},
    )
    kept = store._svc.model_monitoring.estimator_record(rec.identity)
    assert kept.fitted_on == str(td.identity)
    logged, _ = prediction_log(clf, str(rec.identity), 1.5, seed=2, n=N, features=False)
    logged = logged.set_column(
        logged.column_names.index("event_timestamp"),
        "event_timestamp",
        pa.array([T0 + timedelta(hours=1)] * N, pa.timestamp("us", "UTC")),
    )
    drift = store.model_drift(rec.identity, logged)
    # the same rows as the reference: within the band
    assert drift.multivariate and not any(c.alert for c in drift.multivariate)
    # one feature logged, the other read: the logged one is not taken for an entity key
    half = logged.append_column("x", pa.array(population(N, 1.5, seed=2)[0][:, 0]))
    assert store.model_drift(rec.identity, half).multivariate == drift.multivariate
    no_time = logged.drop_columns(["event_timestamp"])
    with pytest.raises(DataError, match="point-in-time"):
        store.model_drift(rec.identity, no_time)


def test_a_reference_that_cannot_be_used_registers_nothing(
    store: FeatureStore, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="label"):
        store.register_model(
            "risk", artifact(tmp_path), estimator_reference=pa.table({"prediction": [1.0] * 30})
        )
    assert store.models("risk") == []
    store.register_model("risk", artifact(tmp_path))
    with pytest.raises(NotFoundError, match="fit_performance_estimator"):
        store.estimate_performance("risk", pa.table({"score": [0.5]}))


def test_a_tampered_estimator_is_refused(
    store: FeatureStore, clf: LogisticRegression, tmp_path: Path
) -> None:
    store.register_model("risk", artifact(tmp_path))
    kept = store.fit_performance_estimator("risk", labelled_frame(clf, 1.5, seed=10))
    Path(kept.uri).write_bytes(Path(kept.uri).read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match="fit it again"):
        store.estimate_performance("risk", labelled_frame(clf, 1.5, seed=11))


@pytest.mark.subprocess
def test_kill_9_while_storing_a_new_estimator_keeps_the_previous_one(
    store: FeatureStore, clf: LogisticRegression, tmp_path: Path
) -> None:
    store.register_model("risk", artifact(tmp_path))
    first = store.fit_performance_estimator("risk", labelled_frame(clf, 1.5, seed=12))
    reference = tmp_path / "ref.parquet"
    import pyarrow.parquet as pq

    pq.write_table(labelled_frame(clf, 1.0, seed=13), reference)
    # a second fit killed (SIGKILL) while it copies its artifact: after the run is started,
    # before it is finished
    script = textwrap.dedent(
        f"""
        import os, signal
        import pyarrow.parquet as pq
        from featureledger import FeatureStore
        from featureledger.store import _files

        def die(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)

        _files.StoreFiles.put = die
        store = FeatureStore({str(store.repo)!r})
        store.fit_performance_estimator("risk", pq.read_table({str(reference)!r}))
        """
    )
    store.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
    assert done.returncode == -9
    again = FeatureStore(store.repo)
    try:
        assert again._svc.model_monitoring.estimator_record("risk").sha256 == first.sha256
        report = again.estimate_performance("risk", labelled_frame(clf, 1.5, seed=14))
        assert report.rows  # the previous estimator still serves
        # the next call repairs: a new fit stores and takes over
        second = again.fit_performance_estimator("risk", pq.read_table(reference))
        assert again._svc.model_monitoring.estimator_record("risk").sha256 == second.sha256
        assert second.sha256 != first.sha256
    finally:
        again.close()
