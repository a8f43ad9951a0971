"""Batch inference: point-in-time features, the model's own answers, versioned prediction
tables with lineage, the prediction-log contract, and kill -9 in the middle of a write."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featureledger import FeatureStore
from featureledger.errors import DataError, IntegrityError
from predicting import Models, N, make_store

TS = pa.timestamp("us", tz="UTC")

#: the prediction-log contract shared with model monitoring (docs/serving.md)
CONTRACT = [
    ("prediction_id", pa.string()),
    ("predicted_at", TS),
    ("deployment", pa.string()),
    ("model", pa.string()),
    ("role", pa.string()),
    ("fallback", pa.bool_()),
    ("user_id", pa.int64()),
    ("event_timestamp", TS),
    ("prediction", pa.float64()),
    ("score", pa.float64()),
    ("feature_versions", pa.string()),
]


@pytest.fixture
def models(tmp_path: Path) -> Models:
    return make_store(tmp_path)


def test_batch_predict_reads_point_in_time_and_scores_like_the_model(models: Models) -> None:
    store, t0 = models.store, models.t0
    later = t0 + timedelta(hours=1)
    # a newer value for every user: rows asked before it must not see it
    store.ingest(
        "g", {"user_id": [0, 1], "event_timestamp": [later] * 2, "x": [9.0, -9.0], "y": [0.0, 0.0]}
    )
    frame = pa.table(
        {
            "user_id": [0, 1, 0, 1, 7],
            "event_timestamp": [t0 + timedelta(minutes=5)] * 2
            + [later + timedelta(minutes=5)] * 2
            + [t0 - timedelta(days=1)],  # before any feature: no prediction
        }
    )
    got = store.batch_predict("clf", frame)  # a bare name: the latest version, 2
    assert got.identity == "predictions/clf/1" and got.model == "model/clf/2"
    got = store.batch_predict("model/clf/1", frame, output="clf")
    assert got.identity == "predictions/clf/2"
    rows = store.predictions("clf").to_pylist()
    assert [r["user_id"] for r in rows] == [0, 1, 0, 1, 7]  # order and count kept
    features = store.training_data("v", frame).to_pandas()
    x = features[["x", "y"]].iloc[:4]
    expected = models.clf.predict_proba(x)[:, 1]
    assert [r["score"] for r in rows[:4]] == pytest.approx(expected.tolist())
    assert [r["prediction"] for r in rows[:4]] == models.clf.predict(x).astype(float).tolist()
    assert rows[2]["score"] > 0.99 and rows[3]["score"] < 0.01  # the newer values, later
    assert rows[4]["prediction"] is None and rows[4]["score"] is None
    # the first version stays readable as it was
    assert store.predictions("clf", 1).column("model").to_pylist() == ["model/clf/2"] * 5


def test_predictions_have_lineage_back_to_model_training_set_and_feature_versions(
    models: Models,
) -> None:
    store = models.store
    got = store.batch_predict("model/clf/1", models.frame)
    graph = store.lineage_graph(include_runs=False)
    for source in ("model/clf/1", "training_dataset/v@v1/1", "feature_group/g@v1#1"):
        assert graph.edge(source, got.identity) is not None, source
    assert got.feature_versions == {"feature_group/g@v1": 1}
    upstream = store.lineage(got.identity, include_runs=False)
    assert "model/clf/1" in upstream and "feature_group/g@v1#1" in upstream


def test_batch_rows_follow_the_prediction_log_contract(models: Models) -> None:
    store = models.store
    got = store.batch_predict("model/reg/1", models.frame)
    assert [(f.name, f.type) for f in got.table.schema] == CONTRACT
    log = store.prediction_log("model/reg/1")
    assert [(f.name, f.type) for f in log.schema] == CONTRACT
    assert log.num_rows == N and set(log.column("role").to_pylist()) == {"batch"}
    assert log.column("deployment").null_count == N
    assert log.column("score").null_count == N  # a regressor gives values, no score
    assert len(set(log.column("prediction_id").to_pylist())) == N
    x = store.training_data("v", models.frame).to_pandas()[["x", "y"]]
    assert log.column("prediction").to_pylist() == pytest.approx(models.reg.predict(x).tolist())
    assert store.prediction_log("model/clf").num_rows == 0


def test_latest_reads_the_features_current_now(models: Models) -> None:
    store, t0 = models.store, models.t0
    store.ingest(
        "g", {"user_id": [3], "event_timestamp": [t0 + timedelta(hours=2)], "x": [50.0], "y": [0.0]}
    )
    got = store.batch_predict("model/clf/1", {"user_id": [3]}, as_of="latest")
    assert got.table.column("score")[0].as_py() > 0.99
    assert got.feature_versions == {"feature_group/g@v1": 2}
    with pytest.raises(DataError, match="event_timestamp"):
        store.batch_predict("model/clf/1", {"user_id": [3]})


def test_a_tampered_artifact_is_refused(models: Models) -> None:
    record = models.store.models("reg")[0]
    Path(record.artifact_path).write_bytes(b"not the model")
    with FeatureStore(models.store.repo) as fresh, pytest.raises(IntegrityError, match="SHA-256"):
        fresh.batch_predict("reg", models.frame)


CHILD = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from datetime import timedelta
    from featureledger import FeatureStore
    store = FeatureStore(sys.argv[1])
    frame = pa.ipc.open_file(sys.argv[2]).read_all()
    print("ready", flush=True)
    while True:
        store.batch_predict("model/clf/1", frame)
""")


@pytest.mark.subprocess
@pytest.mark.slow
def test_kill_9_during_batch_predict_leaves_the_previous_version_readable(
    models: Models, tmp_path: Path
) -> None:
    store = models.store
    users = np.arange(20_000) % N
    frame = pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array([models.t0 + timedelta(minutes=1)] * len(users), TS),
        }
    )
    with pa.ipc.new_file(tmp_path / "frame.arrow", frame.schema) as w:
        w.write_table(frame)
    (tmp_path / "child.py").write_text(CHILD)
    started = time.monotonic()
    store.batch_predict("model/clf/1", frame)
    budget = time.monotonic() - started
    rng = np.random.default_rng(7)
    for _round in range(4):
        child = subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "child.py"),
                str(store.repo),
                str(tmp_path / "frame.arrow"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr
        time.sleep(rng.uniform(0.0, budget * 2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        # whatever the kill interrupted, the latest version is whole and readable
        latest = store.predictions("clf")
        assert latest.num_rows == len(users)
        assert latest.column("user_id").to_pylist() == users.tolist()
    after = store.batch_predict("model/clf/1", frame)
    assert store.predictions("clf").num_rows == len(users)
    # every version written, killed writers' included, is in the log, and only once
    log = store.prediction_log("model/clf/1")
    ids = log.column("prediction_id").to_pylist()
    assert len(ids) == len(set(ids)) == after.version * len(users)
    # and each version's run is recorded with its output (the lineage edge)
    graph = store.lineage_graph(include_runs=False)
    for version in range(1, after.version + 1):
        assert graph.edge("model/clf/1", f"predictions/clf/{version}") is not None, version
