"""Model registration with release gates, content-addressed artifacts, deployments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.contracts.gates import BetterThanCurrent, MetricGate, parse_gate
from featureledger.errors import GateError, NotFoundError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    g = FeatureGroup("g", user, features=[Field("x", "float64")])
    s.apply([user, g, FeatureView("v", [g])])
    s.ingest("g", {"user_id": [1], "event_timestamp": [T0], "x": [1.0]})
    return s


@pytest.fixture
def td(store: FeatureStore) -> object:
    return store.training_data("v", pa.table({"user_id": [1], "event_timestamp": [T0]}))


def artifact(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.bin"
    path.write_text(text)
    return path


def test_register_stores_artifact_by_content_and_links_training_set(
    store: FeatureStore, td: object, tmp_path: Path
) -> None:
    rec = store.register_model(
        "fraud",
        artifact(tmp_path, "weights-1"),
        training_dataset=td,
        metrics={"auc": [0.90, 0.92, 0.91]},
    )
    assert str(rec.identity) == "model/fraud/1"
    assert rec.training_dataset == "training_dataset/v@v1/1"
    assert Path(rec.artifact_path).read_text() == "weights-1"
    assert rec.artifact_hash in rec.artifact_path
    summary = rec.metrics["summary"]["auc"]
    assert summary["n"] == 3 and abs(summary["mean"] - 0.91) < 1e-12
    assert summary["std_error"] == pytest.approx(0.01 / 3**0.5)
    # the stored copy survives changes to the original
    artifact(tmp_path, "changed")
    assert Path(rec.artifact_path).read_text() == "weights-1"


def test_threshold_gate_refuses_registration(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(GateError, match=r"auc >= 0\.95"):
        store.register_model(
            "fraud",
            artifact(tmp_path, "w"),
            metrics={"auc": 0.9},
            gates=[MetricGate("auc", min=0.95)],
        )
    assert store.models("fraud") == []
    with pytest.raises(GateError, match="was not given"):
        store.register_model(
            "fraud", artifact(tmp_path, "w"), metrics={}, gates=[MetricGate("auc", min=0.5)]
        )


def test_candidate_must_beat_deployed_model_by_margin(store: FeatureStore, tmp_path: Path) -> None:
    store.register_model("fraud", artifact(tmp_path, "a"), metrics={"auc": 0.90})
    store.deploy("fraud_api", "fraud")
    gate = BetterThanCurrent("auc", margin=0.01)
    with pytest.raises(GateError, match="gain"):
        store.register_model("fraud", artifact(tmp_path, "b"), metrics={"auc": 0.905}, gates=[gate])
    rec = store.register_model(
        "fraud", artifact(tmp_path, "c"), metrics={"auc": [0.92, 0.93]}, gates=[gate]
    )
    assert rec.version == 2
    observed = rec.gates[0]["observed"]
    assert observed["gain"] == pytest.approx(0.025)
    assert observed["gain_std_error"] > 0


def test_deploy_and_rollback_keep_history(store: FeatureStore, tmp_path: Path) -> None:
    store.register_model("fraud", artifact(tmp_path, "a"))
    store.register_model("fraud", artifact(tmp_path, "b"))
    store.deploy("api", "fraud", 1)
    store.deploy("api", "fraud")  # latest = 2
    assert store.current_deployment("api").model_version == 2
    back = store.rollback_deployment("api", reason="latency regression")
    assert back.model_version == 1 and back.action == "rollback"
    assert [d.model_version for d in store.deployments("api")] == [1, 2, 1]
    assert any(e.action == "rollback" for e in store.audit_log("deployment/api"))
    with pytest.raises(NotFoundError):
        store.deploy("api", "fraud", 7)
    with pytest.raises(NotFoundError):
        store.rollback_deployment("nothing")


def test_parse_gate_forms() -> None:
    assert parse_gate("auc>=0.9") == MetricGate("auc", min=0.9)
    assert parse_gate("latency_ms<=20") == MetricGate("latency_ms", max=20.0)
    assert parse_gate("auc>+0.01") == BetterThanCurrent("auc", 0.01, "higher")
    assert parse_gate("logloss<-0.02") == BetterThanCurrent("logloss", 0.02, "lower")
    with pytest.raises(ValueError, match="not understood"):
        parse_gate("auc = 1")


def test_registration_tags_the_active_mlflow_run(
    store: FeatureStore, td: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    with mlflow.start_run() as run:
        rec = store.register_model("fraud", artifact(tmp_path, "w"), training_dataset=td)
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["featureledger.model"] == str(rec.identity)
    assert tags["featureledger.training_dataset"] == "training_dataset/v@v1/1"
    assert tags["featureledger.training_dataset.content_hash"] == str(td.record.content)
    assert tags["featureledger.pin.g"].startswith("feature_group/g@v1#1 flh1:")
    # outside an MLflow run nothing is logged and nothing fails
    store.register_model("fraud", artifact(tmp_path, "v"))
