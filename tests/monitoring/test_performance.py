"""Label-free performance estimation (CBPE, DLE), multivariate and prediction drift, with
plain reference implementations of the expected confusion matrix and the expected AUC."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from featureledger.errors import DataError
from featureledger.monitoring import Monitor
from featureledger.monitoring.model_monitors import evaluate_model_monitor, recommendation
from featureledger.monitoring.performance import (
    PerformanceEstimator,
    classification_metrics,
    confusion,
    sha256,
    weighted_auc,
)
from featureledger.monitoring.predictions import chunks, join_labels

T0 = datetime(2025, 1, 1, tzinfo=UTC)


# -- plain references -----------------------------------------------------------------------------
def reference_confusion(p: list[float], yhat: list[float]) -> tuple[float, float, float, float]:
    """CBPE's expected confusion matrix, one row at a time: a row predicted positive is a
    true positive with probability p and a false positive otherwise, and so on."""
    tp = fp = fn = tn = 0.0
    for prob, pred in zip(p, yhat, strict=True):
        if pred == 1:
            tp += prob
            fp += 1 - prob
        else:
            fn += prob
            tn += 1 - prob
    return tp, fp, fn, tn


def reference_auc(score: list[float], p: list[float]) -> float:
    """Expected AUC as the probability that a positive outranks a negative: every ordered
    pair of rows (i as the positive, j as the negative, i == j included) weighted
    p_i * (1 - p_j), ties counting half."""
    num = den = 0.0
    for si, pi in zip(score, p, strict=True):
        for sj, pj in zip(score, p, strict=True):
            w = pi * (1 - pj)
            den += w
            num += w * (1.0 if si > sj else 0.5 if si == sj else 0.0)
    return num / den if den > 0 else math.nan


probs = st.floats(0, 1, allow_nan=False, allow_subnormal=False)
rows = st.lists(
    st.tuples(st.sampled_from([0.0, 0.1, 0.5, 0.7, 1.0]) | probs, probs, st.integers(0, 1)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(rows)
def test_expected_confusion_matrix_matches_the_plain_reference(data) -> None:
    score, p, yhat = (np.array(c, dtype=float) for c in zip(*data, strict=True))
    assert confusion(p, yhat) == pytest.approx(reference_confusion(list(p), list(yhat)))
    assert weighted_auc(score, p) == pytest.approx(
        reference_auc(list(score), list(p)), nan_ok=True, abs=1e-9
    )


@settings(max_examples=50, deadline=None)
@given(rows)
def test_with_real_labels_the_metrics_are_sklearns(data) -> None:
    score, _, yhat = (np.array(c, dtype=float) for c in zip(*data, strict=True))
    y = (score > 0.5).astype(float)
    y[0] = 1.0 - y[-1] if len(y) > 1 else y[0]
    got = classification_metrics(score, y, yhat)
    if len(set(y)) == 2:
        assert got["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, yhat))
    if (yhat == 1).any() or (y == 1).any():
        assert got["f1"] == pytest.approx(f1_score(y, yhat, zero_division=np.nan), nan_ok=True)


# -- synthetic data with a known covariate shift --------------------------------------------------
def classification(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x1 ~ N(0, 1.5 / (1 + shift)), x2 ~ N(0, 1); P(y=1) = sigmoid(2 x1 - x2). A shift
    narrows x1, moving rows towards the decision boundary: a covariate shift with the same
    P(y | x), so CBPE's assumption holds, and ROC AUC and accuracy drop."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(0, 1.5 / (1 + shift), n), rng.normal(0, 1, n)])
    logit = 2 * x[:, 0] - x[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    x, y = classification(4000, 0.0, seed=1)
    return LogisticRegression().fit(x, y)


def scored(model, x, y, *, start: datetime = T0) -> pa.Table:
    s = model.predict_proba(x)[:, 1]
    n = len(y)
    return pa.table(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "predicted_at": pa.array(
                [start + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "score": s,
            "prediction": (s >= 0.5).astype(float),
            "label": y,
        }
    )


def test_cbpe_tracks_realized_performance_under_covariate_shift(classifier) -> None:
    est = PerformanceEstimator.fit(scored(classifier, *classification(4000, 0.0, seed=2)))
    assert est.task == "binary"
    steady = est.estimate(scored(classifier, *classification(3000, 0.0, seed=3)), chunk_size=1000)
    shifted = est.estimate(scored(classifier, *classification(3000, 1.5, seed=4)), chunk_size=1000)
    for report in (steady, shifted):
        for r in report.series("roc_auc") + report.series("accuracy"):
            # the realized value lies within the estimate's band
            assert r.lower <= r.realized <= r.upper, r
    # what a user notices: the shifted chunks are estimated worse, and flagged, before labels
    auc_steady = [r.estimated for r in steady.series("roc_auc")]
    auc_shifted = [r.estimated for r in shifted.series("roc_auc")]
    assert max(auc_shifted) < min(auc_steady) - 0.05
    assert not any(r.alert for r in steady.series("roc_auc"))
    assert all(r.alert for r in shifted.series("roc_auc"))
    assert shifted.drops()["roc_auc"] > 0.05


def regression(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """y = 2 x1 + x2 + noise whose spread grows with |x1|: moving x1 raises the error of
    the same model without changing y | x."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(shift, 1, n), rng.normal(0, 1, n)])
    y = 2 * x[:, 0] + x[:, 1] + rng.normal(0, 0.3 + np.abs(x[:, 0]), n)
    return x, y


def test_dle_tracks_realized_mae_and_rmse_under_covariate_shift() -> None:
    x, y = regression(3000, 0.0, seed=5)
    model = LinearRegression().fit(x, y)

    def table(x: np.ndarray, y: np.ndarray) -> pa.Table:
        return pa.table({"x1": x[:, 0], "x2": x[:, 1], "prediction": model.predict(x), "label": y})

    est = PerformanceEstimator.fit(table(*regression(3000, 0.0, seed=6)))
    assert est.task == "regression" and est.features == ["x1", "x2"]
    steady = est.estimate(table(*regression(2000, 0.0, seed=7)), chunk_size=1000)
    shifted = est.estimate(table(*regression(2000, 2.0, seed=8)), chunk_size=1000)
    for r in steady.rows:
        assert r.lower <= r.realized <= r.upper, r
    for r in shifted.series("mae"):
        # the error nearly doubles; the estimate follows it to within 15 %
        assert r.realized > 1.5 * r.reference
        assert r.estimated == pytest.approx(r.realized, rel=0.15)
        assert r.alert
    assert shifted.drops()["mae"] > 0.5


def test_pca_drift_sees_a_broken_correlation_that_marginals_do_not(classifier) -> None:
    rng = np.random.default_rng(9)
    n = 3000
    a = rng.normal(0, 1, n)
    correlated = pa.table({"x1": a, "x2": a + rng.normal(0, 0.3, n), "score": rng.random(n)})
    # the same marginals, the correlation gone
    b = rng.normal(0, 1, n)
    broken = pa.table(
        {
            "x1": b,
            "x2": rng.permutation(b + rng.normal(0, 0.3, n)),
            "score": rng.random(n),
        }
    )
    ref = correlated.append_column("prediction", pa.array((rng.random(n) > 0.5) * 1.0))
    ref = ref.append_column("label", pa.array((rng.random(n) > 0.5) * 1.0))
    est = PerformanceEstimator.fit(ref, features=["x1", "x2"], chunk_size=500)
    same = est.drift(correlated.slice(0, 1500), chunk_size=500)
    moved = est.drift(broken, chunk_size=500)
    assert all(not c.alert for c in same.multivariate)
    assert all(c.alert and c.z > 3 for c in moved.multivariate)
    # each feature alone has not drifted
    from featureledger.monitoring import drift

    marginal = drift(correlated, broken, features=["x1", "x2"])
    assert all(f.status == "ok" for f in marginal.features.values())


def test_prediction_drift_reuses_psi_on_scores_and_classes(classifier) -> None:
    est = PerformanceEstimator.fit(scored(classifier, *classification(3000, 0.0, seed=10)))
    steady = est.drift(scored(classifier, *classification(2000, 0.0, seed=11)))
    moved = est.drift(scored(classifier, *classification(2000, 1.5, seed=12)))
    assert steady.prediction.status == "ok"
    assert moved.prediction.features["score"].status == "alert"
    assert moved.prediction.features["prediction"].kind == "categorical"
    monitor = Monitor("pred_psi", "model/fraud", "psi")
    finding = evaluate_model_monitor(monitor, None, moved)
    assert finding.status == "alert"
    assert "investigate the cause first" in finding.message
    assert finding.evidence["recommendation"] == recommendation("psi", "alert")
    assert "retrain with recent data" in recommendation("psi", "warn")


def test_estimated_drop_monitor_and_gate_levels(classifier) -> None:
    est = PerformanceEstimator.fit(scored(classifier, *classification(3000, 0.0, seed=13)))
    report = est.estimate(scored(classifier, *classification(2000, 1.5, seed=14)), chunk_size=1000)
    drop = evaluate_model_monitor(
        Monitor("auc_drop", "model/fraud/1", "estimated_drop"), report, None
    )
    assert drop.status == "alert" and drop.evidence["feature"] == "roc_auc"
    gate = Monitor("auc_gate", "model/fraud/1", "estimated_roc_auc", alert=0.85, action="block")
    assert gate.threshold.higher_is_worse is False  # an AUC breaches below its level
    found = evaluate_model_monitor(gate, report, None)
    assert found.blocking and "below the gate" in found.message
    # no labels: realized monitors have nothing to judge
    unlabelled = est.estimate(
        scored(classifier, *classification(500, 0.0, seed=15)).drop_columns(["label"])
    )
    assert (
        evaluate_model_monitor(
            Monitor("real", "model/fraud/1", "realized_drop"), unlabelled, None
        ).status
        == "n/a"
    )


def test_delayed_labels_join_by_id_or_keys_and_realized_uses_the_labelled_rows(classifier) -> None:
    table = scored(classifier, *classification(1000, 0.0, seed=16))
    labels = table.select(["prediction_id", "label"]).slice(0, 400)
    logged = table.drop_columns(["label"])
    joined = join_labels(logged, labels)
    assert joined.column("prediction_id").to_pylist() == logged.column("prediction_id").to_pylist()
    assert joined.column("label").null_count == 600
    est = PerformanceEstimator.fit(scored(classifier, *classification(2000, 0.0, seed=17)))
    report = est.estimate(joined, chunk_size=1000)
    (auc,) = report.series("roc_auc")
    assert auc.labelled == 400
    y, s = table.column("label").to_numpy()[:400], table.column("score").to_numpy()[:400]
    assert auc.realized == pytest.approx(roc_auc_score(y, s))
    # by entity keys + event time
    keyed = logged.append_column("user_id", pa.array(range(1000))).append_column(
        "event_timestamp", logged.column("predicted_at")
    )
    by_key = keyed.select(["user_id", "event_timestamp"]).append_column("label", table["label"])
    assert join_labels(keyed, by_key).column("label").to_pylist() == table["label"].to_pylist()
    twice = pa.concat_tables([labels, labels])
    with pytest.raises(DataError, match="more than one label"):
        join_labels(logged, twice)


def test_chunks_by_period_and_by_size() -> None:
    times = [T0 + timedelta(hours=h) for h in (0, 5, 23, 24, 50)]
    table = pa.table({"predicted_at": pa.array(times, pa.timestamp("us", "UTC"))})
    by_day = chunks(table, period="1d")
    assert [c.size for c in by_day] == [3, 1, 1]
    assert by_day[0].start == T0 and by_day[0].end == T0 + timedelta(days=1)
    assert [c.size for c in chunks(table, chunk_size=2)] == [2, 2, 1]


def test_estimator_artifact_round_trips_with_a_stable_hash(classifier) -> None:
    ref = scored(classifier, *classification(1000, 0.0, seed=18))
    a = PerformanceEstimator.fit(ref)
    b = PerformanceEstimator.fit(ref)
    assert sha256(a.to_bytes()) == sha256(b.to_bytes())
    back = PerformanceEstimator.from_bytes(a.to_bytes())
    cur = scored(classifier, *classification(500, 1.0, seed=19))
    assert back.estimate(cur).to_dict() == a.estimate(cur).to_dict()


def test_unusable_references_are_refused_with_what_to_do() -> None:
    with pytest.raises(DataError, match="no 'label' column"):
        PerformanceEstimator.fit(pa.table({"x": [1.0] * 50, "prediction": [1.0] * 50}))
    with pytest.raises(DataError, match="at least 20"):
        PerformanceEstimator.fit(pa.table({"prediction": [1.0] * 5, "label": [1.0] * 5}))
