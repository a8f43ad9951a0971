"""Monitoring on the command line against served features: drift with a served window,
the skew command, deploy refused by a blocking finding, and `model check` release gates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.cli.main import app
from featureledger.monitoring import Monitor

runner = CliRunner()
N = 500
USER = Entity("user", join_keys=["user_id"])
G = FeatureGroup("g", USER, features=[Field("x", "float64")], ttl=timedelta(days=1), online=True)
# served windows end at the real current time here, as they do for a user
NOW = datetime.now(UTC)


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def batch(shift: float, seed: int, at: datetime) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {"user_id": np.arange(N), "event_timestamp": [at] * N, "x": rng.normal(shift, 1.0, N)}
    )


def serve(store: FeatureStore) -> None:
    store.get_online_features("v", {"user_id": list(range(N))}, log=True)
    store.flush_feature_logs()


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, G, FeatureView("v", [G])])
    s.ingest("g", batch(0.0, 1, NOW - timedelta(hours=2)))
    td = s.training_data(
        "v", pa.table({"user_id": np.arange(N), "event_timestamp": [NOW - timedelta(hours=1)] * N})
    )
    weights = tmp_path / "m.bin"
    weights.write_text("w")
    s.register_model("m", weights, training_dataset=td, metrics={"auc": [0.9, 0.92]})
    s.materialize()
    return s


def test_drift_against_a_served_window(store: FeatureStore) -> None:
    serve(store)
    same = invoke("drift", "training_dataset/v@v1/1", "served/v:1d", "--json", "--repo", store.repo)
    assert same.exit_code == 0, same.output
    report = json.loads(same.output)
    assert (
        report["current"].startswith("served/v:1d [") and report["features"]["x"]["status"] == "ok"
    )
    store.ingest("g", batch(3.0, 2, NOW - timedelta(hours=2)), mode="overwrite")
    store.materialize()
    serve(store)
    moved = invoke("drift", "training_dataset/v@v1/1", "served/v:1d", "--repo", store.repo)
    assert moved.exit_code == 1 and "alert" in moved.output


def test_skew_command_prints_match_rates_and_causes(store: FeatureStore) -> None:
    serve(store)
    clean = invoke("skew", "v", "--window", "1h", "--repo", store.repo)
    assert clean.exit_code == 0, clean.output
    assert "match rate" in clean.output
    # a correction lands offline but is not materialized: online serves stale values
    store.ingest("g", batch(1.0, 3, NOW - timedelta(hours=1, minutes=30)))
    serve(store)
    stale = invoke("skew", "v", "--window", "1h", "--repo", store.repo)
    assert stale.exit_code == 1 and "stale online value" in stale.output
    as_json = json.loads(invoke("skew", "v", "--json", "--repo", store.repo).output)
    assert as_json["skewed"] == ["x"]
    assert as_json["features"]["x"]["cause"] == "stale online value"


def test_deploy_exits_1_while_a_blocking_finding_is_open(store: FeatureStore) -> None:
    store.ingest("g", batch(3.0, 2, NOW - timedelta(hours=2)), mode="overwrite")
    store.run_monitors([Monitor("g_psi", "feature_group/g", "psi", action="block")])
    refused = invoke("deploy", "prod", "m", "--repo", store.repo)
    assert refused.exit_code == 1
    assert "g_psi" in refused.output and "featureledger monitor resolve" in refused.output
    invoke("monitor", "resolve", "g_psi", "--reason", "expected", "--repo", store.repo)
    assert invoke("deploy", "prod", "m", "--repo", store.repo).exit_code == 0


def test_model_check_runs_release_gates(store: FeatureStore) -> None:
    ok = invoke(
        "model", "check", "m", "--metric", "latency_p99_ms=1.2,1.3",
        "--gate", "latency_p99_ms<=20", "--repo", store.repo,
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "skipped" in ok.output  # nothing served yet: skew not measured
    slow = invoke(
        "model", "check", "m", "--metric", "latency_p99_ms=30", "--metric", "latency_p99_ms=31",
        "--gate", "latency_p99_ms<=20", "--json", "--repo", store.repo,
    )  # fmt: skip
    assert slow.exit_code == 1
    result = json.loads(slow.output)
    gate = next(g for g in result["gates"] if g["gate"] == "latency_p99_ms <= 20.0")
    assert not gate["passed"] and gate["observed"]["candidate"]["mean"] == 30.5
    assert gate["observed"]["candidate"]["n"] == 2
    # the failure is kept as a blocking finding: deploy refuses that version
    assert "release:m/1" in invoke("monitor", "list", "--repo", store.repo).output
    assert invoke("deploy", "prod", "m", "--repo", store.repo).exit_code == 1
    bad = invoke("model", "check", "m", "--metric", "latency=fast", "--repo", store.repo)
    assert bad.exit_code == 2
