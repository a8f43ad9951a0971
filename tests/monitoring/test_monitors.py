"""Monitors fire and stay quiet around their levels, take their actions, read and write
YAML; freshness SLOs; release gates over monitoring results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from featureledger.contracts.gates import MetricGate, evaluate_gates, parse_gate, summarize
from featureledger.errors import DefinitionError, TimestampError
from featureledger.monitoring import (
    DEFAULT_RELEASE_GATES,
    Monitor,
    MonitorContext,
    blocking,
    check_freshness,
    drift,
    evaluate_monitor,
    gate_findings,
    load_monitors,
    monitors_from_yaml,
    monitors_to_yaml,
    newest_time,
    release_metrics,
    skew,
)

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
CTX = MonitorContext(
    reference="training_dataset/fraud@v1/3",
    current="feature_group/tx@v1#9",
    last_good="feature_group/tx@v1#8",
    now=NOW,
)


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "ok"), (0.0999, "ok"), (0.1, "warn"), (0.2499, "warn"), (0.25, "alert")],
)
def test_psi_monitor_around_the_default_levels(value, status):
    m = Monitor("spend_psi", "feature_group/tx", "psi", action="block")
    f = evaluate_monitor(m, value, CTX)
    assert f.status == status
    assert f.blocking == (status == "alert")
    assert f.evidence["value"] == value
    assert f.evidence["threshold"] == {
        "warn": 0.1,
        "alert": 0.25,
        "higher_is_worse": True,
        "decisive": True,
    }
    assert (f.evidence["reference"], f.evidence["current"]) == (CTX.reference, CTX.current)
    assert f.observed_at == NOW


@pytest.mark.parametrize(
    ("value", "status"), [(0.2, "ok"), (0.05, "ok"), (0.049, "warn"), (0.009, "alert")]
)
def test_lower_is_worse_metrics(value, status):
    m = Monitor("ks_p", "feature_view/fraud", "ks")  # p-value: breaches below the level
    assert evaluate_monitor(m, value, CTX).status == status


def test_custom_levels_and_custom_metrics():
    m = Monitor("lat", "feature_view/fraud", "latency_p99_ms", warn=20, alert=50, owner="serving")
    assert evaluate_monitor(m, 19.9).status == "ok"
    assert evaluate_monitor(m, 20).status == "warn"
    f = evaluate_monitor(m, 80)
    assert f.status == "alert" and not f.blocking and f.owner == "serving"
    rate = Monitor("match", "feature_view/fraud", "match_rate", warn=0.999, alert=0.99)
    assert rate.threshold.higher_is_worse is False
    assert evaluate_monitor(rate, 0.995).status == "warn"


def test_per_feature_values_report_the_worst_and_every_breach():
    m = Monitor("drift", "feature_group/tx", "psi", features=("a", "b", "c"))
    f = evaluate_monitor(m, {"a": 0.05, "b": 0.3, "c": 0.12, "ignored": 9.0}, CTX)
    assert f.status == "alert"
    assert f.evidence["feature"] == "b" and f.evidence["value"] == 0.3
    assert f.evidence["features"] == {"b": 0.3, "c": 0.12}
    assert "feature b" in f.message


def test_suggest_rollback_names_the_last_good_version():
    m = Monitor("rb", "feature_group/tx", "psi", action="suggest_rollback")
    f = evaluate_monitor(m, 0.4, CTX)
    assert f.rollback_to == "feature_group/tx@v1#8" and not f.blocking
    assert "roll" in f.message and "feature_group/tx@v1#8" in f.message
    quiet = evaluate_monitor(m, 0.15, CTX)  # warn only: no action
    assert quiet.status == "warn" and quiet.rollback_to is None
    unknown = evaluate_monitor(m, 0.4, MonitorContext())
    assert unknown.rollback_to is None and "no earlier good version" in unknown.message


def test_drift_and_skew_reports_as_values():
    rng = np.random.default_rng(1)
    ref = pa.table({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    cur = pa.table({"a": rng.normal(size=2000) + 1.0, "b": rng.normal(size=2000)})
    report = drift(
        ref, cur, reference_id="feature_group/tx@v1#1", current_id="feature_group/tx@v1#2"
    )
    m = Monitor("psi_all", "feature_group/tx", "psi", action="block")
    f = evaluate_monitor(m, report)
    assert f.blocking and f.evidence["feature"] == "a" and list(f.evidence["features"]) == ["a"]
    assert f.evidence["reference"] == "feature_group/tx@v1#1"
    only_b = evaluate_monitor(Monitor("psi_b", "feature_group/tx", "psi", features=("b",)), report)
    assert only_b.status == "ok"

    keys = pa.table({"k": np.arange(50), "x": np.arange(50, dtype=float)})
    online = keys.set_column(1, "x", pa.array(np.arange(50, dtype=float) * 2))
    sk = skew(keys, online, ["k"], ["x"])
    f = evaluate_monitor(Monitor("skew", "feature_view/fraud", "match_rate", action="block"), sk)
    assert f.status == "alert" and f.blocking and f.evidence["value"] == pytest.approx(0.02)
    served = evaluate_monitor(Monitor("served_psi", "feature_view/fraud", "psi"), sk)
    assert served.status == "alert"  # served vs training distributions, from the skew report


def test_no_value_is_not_a_breach():
    f = evaluate_monitor(Monitor("m", "feature_group/tx", "psi", action="block"), None)
    assert f.status == "n/a" and not f.blocking and not f.breached


# -- freshness ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("age", "status"),
    [
        (timedelta(hours=1), "ok"),
        (timedelta(hours=2), "warn"),
        (timedelta(hours=23), "warn"),
        (timedelta(days=2), "alert"),
    ],
)
def test_event_age_slo(age, status):
    m = Monitor("fresh", "feature_group/tx", "event_age", warn="2h", alert="1d", action="block")
    f = check_freshness(m, newest_event_time=NOW - age, now=NOW)
    assert f.status == status and f.blocking == (status == "alert")
    assert f.evidence["value"] == age.total_seconds()
    assert f.evidence["timestamp"] == (NOW - age).isoformat()


def test_ingest_age_missing_times_and_naive_times():
    m = Monitor("ingest", "feature_group/tx", "ingest_age", alert=timedelta(hours=6))
    assert check_freshness(m, last_ingest=NOW - timedelta(hours=1), now=NOW).status == "ok"
    never = check_freshness(m, now=NOW)
    assert never.status == "alert" and "none recorded" in never.message
    assert never.evidence["value"] is None
    with pytest.raises(TimestampError, match="time zone"):
        check_freshness(m, last_ingest=datetime(2024, 1, 1), now=NOW)
    with pytest.raises(ValueError, match="freshness"):
        check_freshness(Monitor("p", "feature_group/tx", "psi"), now=NOW)


def test_newest_time_reads_stored_stats():
    assert newest_time("2024-06-01T10:00:00+00:00") == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert newest_time("2024-06-01T10:00:00") == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert newest_time(None) is None


# -- declaration ----------------------------------------------------------------------------------
YAML = """
monitors:
  - name: spend_drift
    target: feature_group/user_stats
    metric: psi
    features: [spend_7d, txn_count]
    warn: 0.1
    alert: 0.3
    window: 1d
    reference: training
    severity: critical
    owner: risk-team
    action: block
  - name: user_stats_fresh
    target: feature_group/user_stats
    metric: event_age
    alert: 6h
    action: suggest_rollback
"""


def test_yaml_round_trip(tmp_path):
    monitors = monitors_from_yaml(YAML)
    a, b = monitors
    assert a.features == ("spend_7d", "txn_count") and a.window == timedelta(days=1)
    assert (a.warn, a.alert, a.severity, a.action) == (0.1, 0.3, "critical", "block")
    assert b.alert == 6 * 3600
    assert monitors_from_yaml(monitors_to_yaml(monitors)) == monitors
    path = tmp_path / "monitors.yaml"
    path.write_text(YAML)
    assert load_monitors(path) == monitors
    assert "alert: 6h" in monitors_to_yaml(monitors)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # a model target is watched through its logged predictions (run_model_monitors)
        ({"target": "training_dataset/fraud"}, "model/NAME"),
        ({"target": "not an identity"}, "not an identity"),
        ({"metric": "latency_ms"}, "no default levels"),
        ({"action": "page"}, "action"),
        ({"severity": "huge"}, "severity"),
        ({"warn": "high"}, "number"),
        ({"action": "block", "warn": 0.1, "metric": "custom"}, "alert level"),
        ({"name": "bad-name"}, "not allowed"),
    ],
)
def test_bad_monitors_are_refused(fields, message):
    spec = {"name": "m", "target": "feature_group/tx", "metric": "psi", **fields}
    with pytest.raises(DefinitionError, match=message):
        Monitor.from_dict(spec)


def test_bad_yaml_is_refused():
    with pytest.raises(DefinitionError, match="unknown key"):
        monitors_from_yaml("- {name: m, target: feature_group/tx, metric: psi, treshold: 1}")
    with pytest.raises(DefinitionError, match="twice"):
        monitors_from_yaml("- {name: m, target: feature_group/tx, metric: psi}\n" * 2)
    with pytest.raises(DefinitionError, match="list"):
        monitors_from_yaml("monitors: 3")


# -- release gates --------------------------------------------------------------------------------
def test_release_gates_combine_quality_with_monitoring_and_keep_uncertainty():
    rng = np.random.default_rng(2)
    ref = pa.table({"a": rng.normal(size=1000)})
    windows = [drift(ref, pa.table({"a": rng.normal(size=500) + s})) for s in (0.0, 0.05, 0.1)]
    fresh = [
        check_freshness(
            Monitor("f", "feature_group/tx", "event_age", alert="1d"),
            newest_event_time=NOW - timedelta(hours=3),
            now=NOW,
        )
    ]
    metrics = release_metrics(drift=windows, freshness=fresh)
    assert len(metrics["drift.max_psi"]) == 3 and metrics["freshness.breaches"] == [0.0]
    gates = [parse_gate(g) for g in DEFAULT_RELEASE_GATES[:2]] + [MetricGate("auc", min=0.8)]
    summaries = summarize({"auc": [0.86, 0.88, 0.87], **metrics})
    results = evaluate_gates(gates, summaries, None)
    assert all(r.passed for r in results), [r.detail for r in results]
    psi_result = next(r for r in results if r.gate.startswith("drift.max_psi"))
    assert psi_result.observed["candidate"]["n"] == 3
    assert psi_result.observed["candidate"]["std_error"] > 0  # an uncertainty, not a point

    drifted = release_metrics(drift=drift(ref, pa.table({"a": rng.normal(size=500) + 2})))
    failed = evaluate_gates([parse_gate("drift.max_psi<=0.25")], summarize(drifted), None)
    findings = gate_findings(failed, target="model/fraud_xgb", context=CTX)
    assert [f.blocking for f in findings] == [True]
    assert blocking(findings) == findings and "failed" in findings[0].message
