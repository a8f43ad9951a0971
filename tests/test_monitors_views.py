"""Monitors on feature views (served-feature drift, skew, freshness), drift against served
windows, the block action on deploy, and release checks of model candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import (
    DataError,
    DefinitionError,
    IdentityParseError,
    MonitorBlockError,
)
from featureledger.monitoring import DEFAULT_RELEASE_GATES, Monitor, ServedWindow
from featureledger.store._training import TrainingData

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
N = 1000
USER = Entity("user", join_keys=["user_id"])
G = FeatureGroup("g", USER, features=[Field("x", "float64")], ttl=timedelta(days=1), online=True)
VIEW = FeatureView("v", [G])


def batch(shift: float, seed: int, at: datetime = T0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {"user_id": np.arange(N), "event_timestamp": [at] * N, "x": rng.normal(shift, 1.0, N)}
    )


def entities(at: datetime) -> pa.Table:
    return pa.table({"user_id": np.arange(N), "event_timestamp": [at] * N})


def serve(store: FeatureStore, at: datetime) -> None:
    store.get_online_features("v", {"user_id": list(range(N))}, now=at, log=True)


def register(store: FeatureStore, tmp_path: Path, td: TrainingData, name: str = "m") -> int:
    weights = tmp_path / f"{name}.bin"
    weights.write_text(name)
    record = store.register_model(
        name, weights, training_dataset=td, metrics={"auc": [0.90, 0.91, 0.92]}
    )
    return record.version


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, G, VIEW])
    s.ingest("g", batch(0.0, 1))
    return s


# -- served windows ---------------------------------------------------------------------------
def test_served_window_identities_parse_and_print() -> None:
    w = ServedWindow.parse("served/fraud@v2:1d12h")
    assert (w.view, w.major, w.window) == ("fraud", 2, timedelta(days=1, hours=12))
    assert str(w) == "served/fraud@v2:1d12h"
    assert ServedWindow.parse("served/fraud").window is None
    assert w.bounds(T0) == (T0 - timedelta(days=1, hours=12), T0)
    for bad in ("served/", "served/fraud:soon", "served/fraud:-1h"):
        with pytest.raises(IdentityParseError):
            ServedWindow.parse(bad)


def test_drift_between_a_training_set_and_served_features(store: FeatureStore) -> None:
    td = store.training_data("v", entities(T0 + H))
    store.materialize()
    serve(store, T0 + 2 * H)
    same = store.drift(str(td.identity), "served/v:1h", now=T0 + 2.5 * H)
    assert same.features["x"].status == "ok"
    assert same.current.startswith("served/v:1h [2025-01-01T01:30:00+00:00, ")
    store.ingest("g", batch(3.0, 2), mode="overwrite")
    store.materialize()
    serve(store, T0 + 3 * H)
    moved = store.drift(str(td.identity), "served/v:1h", now=T0 + 3.5 * H)
    assert moved.features["x"].status == "alert"
    # the served side is counted with the training set's bins, which are the group's
    psi = moved.features["x"].metric("psi")
    assert psi is not None and not psi.approximate
    assert moved.current_stats["x"].histogram.edges == moved.reference_stats["x"].histogram.edges  # type: ignore[union-attr]
    with pytest.raises(DataError, match="no served rows"):
        store.drift(str(td.identity), "served/v:1h", now=T0 + 10 * H)


# -- monitors on views ------------------------------------------------------------------------
def test_served_drift_monitor_uses_the_deployed_models_training_set(
    store: FeatureStore, tmp_path: Path
) -> None:
    old = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, old)
    store.ingest("g", batch(3.0, 2), mode="overwrite")
    new = store.training_data("v", entities(T0 + H))
    store.materialize()
    serve(store, T0 + 2 * H)
    monitor = Monitor(
        "served_psi", "feature_view/v", "psi", window="1h", reference="training", action="block"
    )
    # nothing deployed: the view's latest training set, which matches what is served
    finding = store.run_monitors([monitor], now=T0 + 2.5 * H)[0]
    assert finding.status == "ok" and finding.evidence["reference"] == str(new.identity)
    store.deploy("prod", "m")  # trained on the old distribution
    finding = store.run_monitors([monitor], now=T0 + 2.5 * H)[0]
    assert finding.status == "alert" and finding.blocking
    ev = finding.evidence
    assert ev["reference"] == str(old.identity)
    assert ev["current"].startswith("served/v@v1:1h [2025-01-01T01:30:00+00:00")
    assert (ev["window_start"], ev["window_end"], ev["served_rows"]) == (
        "2025-01-01T01:30:00+00:00",
        "2025-01-01T02:30:00+00:00",
        N,
    )
    assert ev["features"]["x"] > 0.25
    assert [f["monitor"] for f in store.open_findings()] == ["served_psi"]


def test_served_drift_against_the_previous_window(store: FeatureStore) -> None:
    store.materialize()
    serve(store, T0 + 2 * H)
    store.ingest("g", batch(3.0, 2), mode="overwrite")
    store.materialize()
    serve(store, T0 + 3 * H)
    monitor = Monitor("served_psi", "feature_view/v", "psi", window="1h")
    finding = store.run_monitors([monitor], now=T0 + 3.5 * H)[0]
    assert finding.status == "alert"
    assert finding.evidence["reference"].startswith("served/v@v1:1h [2025-01-01T01:30:00")
    with pytest.raises(DefinitionError, match="give a window"):
        store.run_monitors([Monitor("no_window", "feature_view/v", "psi")])


def test_a_window_without_served_rows_is_not_a_breach(store: FeatureStore) -> None:
    store.training_data("v", entities(T0 + H))
    monitor = Monitor("served_psi", "feature_view/v", "psi", window="1h", reference="training")
    finding = store.run_monitors([monitor], now=T0 + 2 * H)[0]
    assert finding.status == "n/a" and not finding.breached
    assert "no served rows" in finding.message
    assert store.open_findings() == []


def test_skew_monitor_names_the_cause_and_blocks_deploy(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    store.materialize()
    monitor = Monitor("served_match", "feature_view/v", "match_rate", window="30m", action="block")
    serve(store, T0 + 2 * H)
    assert (
        store.run_monitors([monitor], now=T0 + 2 * H + 10 * timedelta(minutes=1))[0].status == "ok"
    )
    # a correction lands offline but is not materialized: online serves stale values
    store.ingest("g", batch(1.0, 3, at=T0 + H))
    serve(store, T0 + 3 * H)
    finding = store.run_monitors([monitor], now=T0 + 3 * H + 10 * timedelta(minutes=1))[0]
    assert finding.status == "alert" and finding.blocking
    assert finding.evidence["causes"] == {"x": "stale online value"}
    assert finding.evidence["served_rows"] == N
    with pytest.raises(MonitorBlockError, match="served_match") as refused:
        store.deploy("prod", "m")
    assert "featureledger monitor resolve" in str(refused.value)
    assert store.deployments() == []
    store.resolve_monitor("served_match", reason="materialization catches up tonight")
    assert store.deploy("prod", "m").model_version == 1


def test_skew_metrics_need_a_view_target(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="feature_view"):
        store.run_monitors([Monitor("m", "feature_group/g", "match_rate")])


def test_view_freshness_is_that_of_its_stalest_group(tmp_path: Path) -> None:
    store = FeatureStore.init(tmp_path / "repo")
    fresh = FeatureGroup("fresh", USER, features=[Field("y", "float64")])
    static = FeatureGroup("profile", USER, event_time=None, features=[Field("city", "string")])
    store.apply([USER, G, fresh, static, FeatureView("w", [G, fresh, static])])
    store.ingest("g", batch(0.0, 1))  # events at T0
    store.ingest("fresh", {"user_id": [1], "event_timestamp": [T0 + 2 * H], "y": [1.0]})
    store.ingest("profile", {"user_id": [1], "city": ["Oslo"]})
    monitor = Monitor("w_fresh", "feature_view/w", "event_age", warn="1h", alert="2h")
    finding = store.run_monitors([monitor], now=T0 + 150 * timedelta(minutes=1))[0]
    assert finding.status == "alert" and finding.target == "feature_view/w"
    assert finding.evidence["group"] == "g"
    assert finding.evidence["groups"] == {"g": 9000.0, "fresh": 1800.0}  # static: no events
    assert "feature_group/g" in finding.message


# -- the block action on deploy ---------------------------------------------------------------
def test_a_blocking_finding_on_a_pinned_group_refuses_deploy(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    store.ingest("g", batch(3.0, 2), mode="overwrite")
    store.run_monitors([Monitor("g_psi", "feature_group/g", "psi", action="block")])
    with pytest.raises(MonitorBlockError, match="deploy of model/m/1 to deployment/prod"):
        store.deploy("prod", "m")
    # a finding on another group, or on a view named like this group, does not block
    store.resolve_monitor("g_psi", reason="expected")
    finding = {"monitor": "other", "target": "feature_view/g", "message": "served drift"}
    store.registry.add_finding("other", "feature_view/g", "alert", True, finding)
    assert store.deploy("prod", "m").model_version == 1


# -- release checks ---------------------------------------------------------------------------
GATES = [*DEFAULT_RELEASE_GATES, "latency_p99_ms<=20", "auc>=0.85"]


def test_release_check_passes_and_records_uncertainty(store: FeatureStore, tmp_path: Path) -> None:
    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    result = store.release_check(
        "m", gates=GATES, metrics={"latency_p99_ms": [1.2, 1.3]}, now=T0 + 2 * H
    )
    assert result.passed and result.model == "model/m/1"
    latency = result.metrics["latency_p99_ms"]
    assert latency.mean == pytest.approx(1.25) and latency.std_error == pytest.approx(0.05)
    assert result.metrics["auc"].n == 3  # the quality metrics recorded at registration
    assert result.metrics["drift.max_psi"].mean == 0.0
    # nothing served yet: skew cannot be measured and says so rather than passing silently
    assert list(result.skipped) == ["skew.min_match_rate >= 0.99"]
    assert store.open_findings() == []


def test_a_failed_release_check_blocks_deploy_until_a_later_check_passes(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    store.materialize()
    serve(store, T0 + 2 * H)
    store.ingest("g", batch(3.0, 2), mode="overwrite")  # the data moved since training
    result = store.release_check(
        "m", gates=GATES, metrics={"latency_p99_ms": [30, 31]}, now=T0 + 2.5 * H
    )
    failed = {r.gate for r in result.failed}
    # served values no longer match the rewritten offline rows either
    assert failed == {
        "drift.max_psi <= 0.25",
        "skew.min_match_rate >= 0.99",
        "latency_p99_ms <= 20.0",
    }
    assert result.skew is not None and result.served_drift is not None
    assert {f["monitor"] for f in store.open_findings()} == {"release:m/1"}
    with pytest.raises(MonitorBlockError, match="release:m/1"):
        store.deploy("prod", "m")
    store.rollback("g", to=1)
    again = store.release_check(
        "m", gates=GATES, metrics={"latency_p99_ms": [1.2, 1.3]}, now=T0 + 2.5 * H
    )
    assert again.passed
    assert store.open_findings() == []
    assert store.deploy("prod", "m").model_version == 1


def test_better_than_current_compares_with_the_deployed_version(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    store.deploy("prod", "m")
    weights = tmp_path / "m2.bin"
    weights.write_text("m2")
    store.register_model("m", weights, training_dataset=td, metrics={"auc": [0.80, 0.81]})
    result = store.release_check("m", gates=["auc>+0.0"])
    assert not result.passed and "over the current 0.91" in result.results[0].detail


def test_release_check_counts_freshness_monitors_on_the_inputs(
    store: FeatureStore, tmp_path: Path
) -> None:
    from featureledger.monitoring import monitors_to_yaml

    td = store.training_data("v", entities(T0 + H))
    register(store, tmp_path, td)
    fresh = Monitor("g_fresh", "feature_group/g", "event_age", alert="6h")
    elsewhere = Monitor("other_fresh", "feature_group/other", "event_age", alert="1s")
    (store.repo / "monitors.yaml").write_text(monitors_to_yaml([fresh, elsewhere]))
    on_time = store.release_check("m", now=T0 + 2 * H)
    assert on_time.metrics["freshness.breaches"].mean == 0
    late = store.release_check("m", now=T0 + 7 * H)
    assert [r.gate for r in late.failed] == ["freshness.breaches <= 0.0"]
    assert late.metrics["freshness.max_age_s"].mean == 7 * 3600


def test_release_check_of_a_model_without_training_set_skips_monitoring_gates(
    store: FeatureStore, tmp_path: Path
) -> None:
    weights = tmp_path / "w.bin"
    weights.write_text("w")
    store.register_model("bare", weights, metrics={"auc": 0.9})
    result = store.release_check("bare", gates=[*DEFAULT_RELEASE_GATES, "auc>=0.95"])
    assert sorted(result.skipped) == sorted(
        ["drift.max_psi <= 0.25", "freshness.breaches <= 0.0", "skew.min_match_rate >= 0.99"]
    )
    assert [r.gate for r in result.failed] == ["auc >= 0.95"]


def test_report_shows_the_findings_and_the_skew_of_a_served_window(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", entities(T0 + H))
    store.materialize()
    store.ingest("g", batch(1.0, 3, at=T0 + H))  # offline only: online serves stale values
    serve(store, T0 + 3 * H)
    now = T0 + 3 * H + timedelta(minutes=10)
    monitor = Monitor("served_match", "feature_view/v", "match_rate", window="30m")
    assert store.run_monitors([monitor], now=now)[0].status == "alert"
    page = store.report(str(td.identity), "served/v:30m", tmp_path / "r.html", now=now)
    html = page.read_text()
    assert '<section id="skew">' in html and "stale online value" in html
    findings = html[html.index('<section id="findings">') :]
    assert "served_match" in findings[: findings.index("</section>")]
    # a report on another group's versions does not list this view's findings
    other = FeatureGroup("other", USER, features=[Field("y", "float64")])
    store.apply([other])
    store.ingest("other", {"user_id": [1], "event_timestamp": [T0], "y": [1.0]})
    store.ingest("other", {"user_id": [1], "event_timestamp": [T0 + H], "y": [2.0]})
    quiet = store.report(
        "feature_group/other@v1#1", "feature_group/other@v1#2", tmp_path / "q.html"
    ).read_text()
    assert "served_match" not in quiet and '<section id="skew">' not in quiet


def test_served_windows_and_skew_name_a_major_version(store: FeatureStore) -> None:
    from featureledger.offline.logs import VIEW_VERSION

    store.materialize()
    serve(store, T0 + 2 * H)  # logged for v@v1
    store.apply([FeatureView("v", [G], version=2)])
    serve(store, T0 + 3 * H)  # a bare name now means v@v2
    old, new = store.feature_log("v", major=1), store.feature_log("v")
    assert old.num_rows == new.num_rows == N
    assert set(old.column(VIEW_VERSION).to_pylist()) == {"feature_view/v@v1"}
    assert set(new.column(VIEW_VERSION).to_pylist()) == {"feature_view/v@v2"}
    same = store.drift("served/v@v1", "served/v", now=T0 + 4 * H)
    assert same.reference.startswith("served/v@v1") and same.features["x"].status == "ok"
    assert store.skew("v", major=1).features["x"].match_rate == 1.0
