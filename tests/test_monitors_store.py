"""Monitors through the store: findings kept, the block action stopping training and model
registration, freshness SLOs, rollback suggestions, and monitors.yaml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import DataError, MonitorBlockError
from featureledger.monitoring import Monitor, monitors_to_yaml

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup("g", USER, features=[Field("x", "float64")], ttl=timedelta(days=1))
DRIFT = Monitor("x_psi", "feature_group/g", "psi", action="block")


def rows(shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": np.arange(3000),
            "event_timestamp": [T0] * 3000,
            "x": rng.normal(shift, 1.0, 3000),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, GROUP, FeatureView("v", [GROUP])])
    s.ingest("g", rows(0.0, 1))
    return s


ENTITIES = pa.table({"user_id": [1, 2], "event_timestamp": [T0, T0]})


def test_block_action_stops_training_and_registration_until_resolved(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", ENTITIES)
    assert not store.run_monitors([DRIFT])[0].breached  # one version: nothing to compare
    store.ingest("g", rows(3.0, 2), mode="overwrite")
    finding = store.run_monitors([DRIFT])[0]
    assert finding.status == "alert" and finding.blocking
    assert finding.evidence  # metric value, threshold, versions compared
    with pytest.raises(MonitorBlockError, match="x_psi"):
        store.training_data("v", ENTITIES)
    weights = tmp_path / "m.bin"
    weights.write_text("w")
    with pytest.raises(MonitorBlockError):
        store.register_model("m", weights, training_dataset=td)
    with pytest.raises(DataError, match="reason"):
        store.resolve_monitor("x_psi", reason=" ")
    assert store.resolve_monitor("x_psi", reason="new pricing, expected") == 1
    assert store.training_data("v", ENTITIES).record.rows == 2
    assert any(e.action == "resolve-finding" for e in store.audit_log("monitor/x_psi"))


def test_findings_are_superseded_by_the_next_run(store: FeatureStore) -> None:
    store.ingest("g", rows(3.0, 2), mode="overwrite")
    store.run_monitors([DRIFT])
    assert len(store.open_findings()) == 1
    store.ingest("g", rows(3.0, 3), mode="overwrite")  # same distribution as the previous one
    assert not store.run_monitors([DRIFT])[0].breached
    assert store.open_findings() == []


def test_warn_monitors_do_not_block(store: FeatureStore) -> None:
    store.ingest("g", rows(3.0, 2), mode="overwrite")
    finding = store.run_monitors([Monitor("x_psi_warn", "feature_group/g", "psi")])[0]
    assert finding.breached and not finding.blocking
    assert store.training_data("v", ENTITIES).record.rows == 2


def test_suggest_rollback_names_the_last_good_version(store: FeatureStore) -> None:
    store.ingest("g", rows(3.0, 2), mode="overwrite")
    monitor = Monitor("x_rb", "feature_group/g", "psi", action="suggest_rollback")
    finding = store.run_monitors([monitor])[0]
    assert finding.rollback_to == "feature_group/g@v1#1"


def test_freshness_slo(store: FeatureStore) -> None:
    monitor = Monitor("fresh", "feature_group/g", "event_age", warn="30m", alert="1h")
    assert store.run_monitors([monitor], now=T0 + timedelta(minutes=10))[0].status == "ok"
    assert store.run_monitors([monitor], now=T0 + timedelta(minutes=45))[0].status == "warn"
    assert store.run_monitors([monitor], now=T0 + timedelta(hours=2))[0].status == "alert"


def test_monitors_yaml_in_the_repository(store: FeatureStore) -> None:
    (store.repo / "monitors.yaml").write_text(monitors_to_yaml([DRIFT]))
    assert [m.name for m in store.monitors()] == ["x_psi"]
    assert [f.monitor for f in store.run_monitors()] == ["x_psi"]
