"""Drift from tables and from stored statistics: the same numbers where binned, bounded
approximations for KS and Wasserstein, and statuses that follow the thresholds."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from featureledger.monitoring import Threshold, bins_of, compute_stats, drift
from featureledger.monitoring.metrics import chi_square

rng = np.random.default_rng(3)
N = 4000


@pytest.fixture(scope="module")
def pair() -> tuple[pa.Table, pa.Table]:
    ref = pa.table(
        {
            "amount": rng.lognormal(3.0, 1.0, N),
            "score": rng.normal(size=N),
            "country": rng.choice(["DE", "FR", "US", "GB"], N, p=[0.4, 0.3, 0.2, 0.1]),
            "when": pa.array(np.arange(N), pa.timestamp("s", tz="UTC")),
        }
    )
    cur = pa.table(
        {
            "amount": rng.lognormal(3.6, 1.0, N // 2),  # shifted
            "score": rng.normal(size=N // 2),  # stable
            "country": rng.choice(["DE", "FR", "US", "GB", "IT"], N // 2),  # new category
            "when": pa.array(np.arange(N // 2), pa.timestamp("s", tz="UTC")),
        }
    )
    return ref, cur


def test_tables_drift_and_stable_features_are_told_apart(pair):
    report = drift(*pair, reference_id="feature_group/tx@v1#3", current_id="feature_group/tx@v1#4")
    assert set(report.features) == {"amount", "score", "country"}  # temporal skipped
    assert report.features["amount"].status == "alert"
    assert report.features["score"].status == "ok"
    assert report.features["country"].status == "alert"
    assert report.drifted == ["amount", "country"]
    assert report.status == "alert" and report.from_samples
    assert [m.metric for m in report.features["amount"].metrics] == [
        "null_fraction",
        "psi",
        "js",
        "ks",
        "wasserstein",
    ]
    assert [m.metric for m in report.features["country"].metrics] == [
        "null_fraction",
        "psi",
        "js",
        "chi2",
    ]
    json.dumps(report.to_dict())  # storable as is


def test_sample_metrics_are_exact(pair):
    ref, cur = pair
    report = drift(ref, cur)
    a, b = ref.column("amount").to_numpy(), cur.column("amount").to_numpy()
    ks = report.features["amount"].metric("ks")
    exact = stats.ks_2samp(a, b)
    assert ks.detail["statistic"] == pytest.approx(exact.statistic)
    assert ks.value == pytest.approx(exact.pvalue) and not ks.approximate
    w = report.features["amount"].metric("wasserstein")
    assert w.detail["distance"] == pytest.approx(stats.wasserstein_distance(a, b))
    assert w.value == pytest.approx(w.detail["distance"] / np.std(a, ddof=1))
    # categorical: exact counts over every category, chi-square as scipy's contingency test
    r = dict(
        zip(
            *np.unique(ref.column("country").to_numpy(zero_copy_only=False), return_counts=True),
            strict=True,
        )
    )
    c = dict(
        zip(
            *np.unique(cur.column("country").to_numpy(zero_copy_only=False), return_counts=True),
            strict=True,
        )
    )
    cats = sorted(set(r) | set(c))
    table = np.array([[r.get(k, 0) for k in cats], [c.get(k, 0) for k in cats]])
    chi = report.features["country"].metric("chi2")
    ref_chi = stats.chi2_contingency(table, correction=False)
    assert chi.detail["statistic"] == pytest.approx(ref_chi.statistic)
    assert chi.detail["dof"] == ref_chi.dof == 4


def test_stored_stats_give_the_same_binned_metrics(pair):
    ref, cur = pair
    rs = compute_stats(ref)
    cs = compute_stats(cur, reference_bins=bins_of(rs))
    # JSON round trip: drift needs nothing but the stored objects
    from featureledger.monitoring import stats_from_json, stats_to_json

    stored = drift(stats_from_json(stats_to_json(rs)), stats_from_json(stats_to_json(cs)))
    tables = drift(ref, cur)
    for feature in ("amount", "score"):
        for metric in ("psi", "js", "null_fraction"):
            assert stored.features[feature].metric(metric).value == pytest.approx(
                tables.features[feature].metric(metric).value, abs=1e-12
            )
    assert stored.features["amount"].status == tables.features["amount"].status
    assert not stored.from_samples


@pytest.mark.parametrize("seed", range(3))
def test_histogram_ks_and_wasserstein_stay_within_their_error_bounds(seed):
    g = np.random.default_rng(seed)
    a, b = g.gamma(2.0, 2.0, 3000), g.gamma(2.2, 2.0, 2000) + 0.3
    rs = compute_stats(pa.table({"x": a}))
    for cs in (
        compute_stats(pa.table({"x": b}), reference_bins=bins_of(rs)),
        compute_stats(pa.table({"x": b})),
    ):  # aligned, then re-binned
        f = drift(rs, cs).features["x"]
        ks, w = f.metric("ks"), f.metric("wasserstein")
        assert ks.approximate and w.approximate
        exact_d = stats.ks_2samp(a, b).statistic
        assert abs(ks.detail["statistic"] - exact_d) <= ks.detail["error_bound"]
        exact_w = stats.wasserstein_distance(a, b)
        assert abs(w.detail["distance"] - exact_w) <= w.detail["error_bound"]
        assert abs(w.detail["distance"] - exact_w) < 0.05 * exact_w  # in practice much closer


def test_rebinned_current_is_marked_approximate(pair):
    ref, cur = pair
    f = drift(compute_stats(ref), compute_stats(cur)).features["amount"]
    assert f.metric("psi").approximate
    assert f.metric("psi").value == pytest.approx(
        drift(ref, cur).features["amount"].metric("psi").value, rel=0.25
    )


def test_one_side_stored_the_other_a_table(pair):
    ref, cur = pair
    rs = compute_stats(ref)
    a = drift(rs, cur)  # e.g. training stats vs a window of served features
    b = drift(ref, compute_stats(cur, reference_bins=bins_of(rs)))
    exact = drift(ref, cur)
    for report in (a, b):
        assert report.features["amount"].metric("psi").value == pytest.approx(
            exact.features["amount"].metric("psi").value
        )
        assert not report.features["amount"].metric("psi").approximate


def test_decisive_metrics_decide_and_thresholds_can_be_overridden():
    # many rows, a tiny shift: KS p-value is small but PSI says stable
    a, b = rng.normal(size=20000), rng.normal(size=20000) + 0.05
    report = drift(pa.table({"x": a}), pa.table({"x": b}))
    f = report.features["x"]
    assert f.metric("ks").status == "alert" and not f.metric("ks").threshold.decisive
    assert f.metric("psi").status == "ok"
    assert f.status == "ok"
    strict = drift(
        pa.table({"x": a}),
        pa.table({"x": b}),
        thresholds={
            "psi": Threshold(0.001, 0.002, source="test"),
            "ks": Threshold(0.05, 0.01, higher_is_worse=False, decisive=True),
        },
    )
    assert strict.features["x"].status == "alert"


def test_psi_statuses_around_the_levels():
    # two-bin categorical: PSI of (0.5, 0.5) -> (p, 1 - p) crosses 0.1 and 0.25
    def psi_for(p: float) -> tuple[float, str]:
        ref = pa.table({"s": ["a"] * 500 + ["b"] * 500})
        k = int(p * 1000)
        cur = pa.table({"s": ["a"] * k + ["b"] * (1000 - k)})
        m = drift(ref, cur).features["s"].metric("psi")
        return m.value, m.status

    hand = 0.05 * math.log(0.55 / 0.5) + 0.05 * math.log(0.5 / 0.45)
    assert psi_for(0.55) == (pytest.approx(hand), "ok")
    v, s = psi_for(0.66)
    assert 0.1 <= v < 0.25 and s == "warn"
    v, s = psi_for(0.75)
    assert v >= 0.25 and s == "alert"


def test_constant_columns():
    same = drift(pa.table({"k": np.zeros(100)}), pa.table({"k": np.zeros(50)})).features["k"]
    assert same.status == "ok"
    assert same.metric("psi").value == 0.0 and same.metric("ks").detail["statistic"] == 0.0
    moved = drift(pa.table({"k": np.zeros(100)}), pa.table({"k": np.ones(50)})).features["k"]
    assert moved.status == "alert" and moved.metric("js").value == pytest.approx(1.0)
    stored = drift(
        compute_stats(pa.table({"k": np.zeros(100)})),
        compute_stats(pa.table({"k": np.ones(50)}), reference_bins={"k": [0.0, 0.0]}),
    )
    assert stored.features["k"].metric("ks").detail["statistic"] == 1.0
    assert stored.features["k"].metric("wasserstein").detail["distance"] == pytest.approx(1.0)


def test_all_null_side_alerts_on_missing_values_only():
    ref = pa.table({"x": rng.normal(size=100), "s": ["a", "b"] * 50})
    cur = pa.table(
        {"x": pa.array([None] * 40, pa.float64()), "s": pa.array([None] * 40, pa.string())}
    )
    report = drift(ref, cur)
    for name in ("x", "s"):
        f = report.features[name]
        assert f.metric("null_fraction").value == 1.0 and f.status == "alert"
        assert f.metric("psi").status == "n/a"
        assert "no non-null values in the current" in f.note


def test_disjoint_categories_and_single_values():
    f = drift(pa.table({"s": ["a"] * 10}), pa.table({"s": ["b"] * 10})).features["s"]
    assert f.metric("js").value == pytest.approx(1.0) and f.status == "alert"
    assert f.metric("chi2").detail["statistic"] == pytest.approx(
        chi_square([10, 0], [0, 10]).statistic
    )
    one = drift(pa.table({"x": [1.0]}), pa.table({"x": [1.0]})).features["x"]
    assert one.status == "ok" and one.metric("psi").value == 0.0


def test_stored_categorical_stats_merge_unknown_categories_into_other():
    ref = pa.table({"s": [f"c{i % 15}" for i in range(1500)]})
    cur = pa.table({"s": [f"c{i % 15}" for i in range(1000)] + ["new"] * 200})
    rs = compute_stats(ref, top_k=5)
    f = drift(rs, compute_stats(cur, reference_bins=bins_of(rs))).features["s"]
    exact = drift(ref, cur).features["s"]
    assert f.metric("psi").approximate and not exact.metric("psi").approximate
    assert f.metric("psi").detail["bins"] == 6  # 5 known categories + other
    assert f.metric("psi").value <= exact.metric("psi").value  # merging only hides drift


def test_missing_columns_and_kind_mismatches_are_reported_not_raised():
    ref = pa.table({"x": [1.0, 2.0], "y": ["a", "b"]})
    cur = pa.table({"x": ["1", "2"], "z": [1, 2]})
    report = drift(ref, cur, features=["x", "y", "z"])
    assert (
        report.features["y"].status == "n/a" and "not in the current" in report.features["y"].note
    )
    assert "not in the reference" in report.features["z"].note
    assert "kinds differ" in report.features["x"].note
    assert report.values("psi") == {}
