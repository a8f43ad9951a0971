"""Each metric against its reference implementation (scipy) or a hand computation, on known
inputs and the edge cases: empty bins, constants, no values, a single value, disjoint supports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from featureledger.monitoring.metrics import (
    DEFAULT_THRESHOLDS,
    METRICS,
    PSI_EPSILON,
    Threshold,
    chi_square,
    js_divergence,
    ks_2samp,
    ks_pvalue,
    ks_statistic,
    normed,
    psi_from_counts,
    wasserstein,
    worst,
)

rng = np.random.default_rng(7)


# -- PSI ------------------------------------------------------------------------------------------
def test_psi_from_counts_hand_computed():
    # proportions r = (0.5, 0.5), c = (0.2, 0.8)
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi_from_counts([5, 5], [2, 8]) == pytest.approx(expected)
    assert psi_from_counts([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-15)
    # symmetric: PSI is Jeffreys' divergence
    assert psi_from_counts([2, 8], [5, 5]) == pytest.approx(expected)


def test_psi_empty_bin_uses_the_documented_epsilon():
    # r = (1, 0) floored to (1, 1e-4); c = (0.5, 0.5)
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert psi_from_counts([10, 0], [5, 5]) == pytest.approx(expected)
    # disjoint supports: large but finite, bounded by 2 ln(1/eps) per pair of bins
    disjoint = psi_from_counts([10, 0], [0, 10])
    assert 10 < disjoint < 2 * 2 * math.log(1 / PSI_EPSILON)
    # bins empty on both sides contribute nothing
    assert psi_from_counts([5, 0, 5], [2, 0, 8]) == pytest.approx(psi_from_counts([5, 5], [2, 8]))


def test_psi_without_counts_is_nan_and_shape_mismatch_is_refused():
    assert math.isnan(psi_from_counts([0, 0], [1, 2]))
    with pytest.raises(ValueError, match="same bins"):
        psi_from_counts([1, 2], [1, 2, 3])


# -- Jensen-Shannon -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_js_matches_scipy(seed):
    g = np.random.default_rng(seed)
    p, q = g.integers(0, 50, 12), g.integers(0, 50, 12)
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


def test_js_edge_cases():
    assert js_divergence([3, 0, 7], [3, 0, 7]) == 0.0  # identical, with an empty bin
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the upper bound
    assert js_divergence([5], [9]) == 0.0  # one bin (a constant on both sides)
    # half the mass moved to a new bin: JS = 1 - (3/4) log2(4/3) - ... computed by hand
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    m = (p + q) / 2
    hand = 0.5 * (1 * math.log2(1 / m[0])) + 0.5 * (
        0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])
    )
    assert js_divergence(p, q) == pytest.approx(hand)
    assert math.isnan(js_divergence([0, 0], [1, 1]))


# -- chi-square -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_chi_square_matches_scipy_contingency(seed):
    g = np.random.default_rng(seed)
    r, c = g.integers(1, 100, 6), g.integers(1, 100, 6)
    ref = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    got = chi_square(r, c)
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.dof == ref.dof == 5
    assert got.pvalue == pytest.approx(ref.pvalue)


def test_chi_square_hand_computed_2x2():
    # table [[30, 10], [20, 20]]: expected [[25, 15], [25, 15]]
    hand = 25 / 25 + 25 / 15 + 25 / 25 + 25 / 15
    got = chi_square([30, 10], [20, 20])
    assert got.statistic == pytest.approx(hand)
    assert got.dof == 1
    assert got.pvalue == pytest.approx(stats.chi2.sf(hand, 1))


def test_chi_square_edge_cases():
    # categories empty on both sides are dropped (scipy would refuse a zero expected count)
    assert chi_square([5, 0, 5], [2, 0, 8]) == chi_square([5, 5], [2, 8])
    # one category: nothing to test
    assert chi_square([7], [3]) == chi_square([7, 0], [3, 0])
    assert (chi_square([7], [3]).statistic, chi_square([7], [3]).pvalue) == (0.0, 1.0)
    disjoint = chi_square([50, 0], [0, 50])
    assert disjoint.statistic == pytest.approx(100.0) and disjoint.pvalue < 1e-20
    assert math.isnan(chi_square([0, 0], [1, 2]).pvalue)


# -- KS -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "m", "shift"), [(30, 40, 0.0), (200, 150, 0.3), (3000, 5000, 0.1)])
def test_ks_matches_scipy(n, m, shift):
    a, b = rng.normal(size=n), rng.normal(size=m) + shift
    ref = stats.ks_2samp(a, b)
    got = ks_2samp(a, b)
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.pvalue == pytest.approx(ref.pvalue)
    assert ks_statistic(a, b) == got.statistic


def test_ks_edge_cases():
    same = ks_2samp([4.0] * 5, [4.0] * 7)  # constant, equal
    assert (same.statistic, same.pvalue) == (0.0, 1.0)
    apart = ks_2samp([1.0, 2.0, 3.0], [10.0, 11.0])  # disjoint supports
    assert apart.statistic == 1.0
    assert apart.pvalue == pytest.approx(stats.ks_2samp([1, 2, 3], [10, 11]).pvalue)
    single = ks_2samp([1.0], [2.0])
    assert single.statistic == 1.0 and single.pvalue == pytest.approx(1.0)
    assert ks_2samp([1.0, float("nan")], [1.0]).statistic == 0.0  # NaN ignored
    assert math.isnan(ks_2samp([], [1.0]).statistic)
    assert math.isnan(ks_2samp([float("nan")], [1.0]).pvalue)  # all missing


def test_ks_pvalue_from_a_statistic_matches_scipy_asymptotic():
    a, b = rng.normal(size=400), rng.normal(size=700) + 0.15
    ref = stats.ks_2samp(a, b, method="asymp")
    assert ks_pvalue(ref.statistic, 400, 700) == pytest.approx(ref.pvalue)
    assert math.isnan(ks_pvalue(0.5, 0, 10))


# -- Wasserstein ----------------------------------------------------------------------------------
def test_wasserstein_matches_scipy_and_hand_values():
    a, b = rng.exponential(size=300), rng.exponential(size=200) * 1.5
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b))
    assert wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)  # every unit moves by 1
    assert wasserstein([3.0] * 4, [5.0] * 2) == pytest.approx(2.0)  # constants
    assert wasserstein([3.0], [3.0]) == 0.0  # a single value
    assert wasserstein([0.0], [10.0, 20.0]) == pytest.approx(15.0)  # disjoint supports
    assert math.isnan(wasserstein([], [1.0]))


def test_normed_wasserstein_follows_evidently():
    assert normed(0.5, 2.0) == 0.25
    assert normed(0.5, 0.0) == 500.0  # std floored at 0.001
    assert normed(0.5, None) == 500.0


# -- thresholds -----------------------------------------------------------------------------------
def test_threshold_levels_fire_at_and_beyond():
    t = Threshold(0.1, 0.25)
    assert [t.status(v) for v in (0.0999, 0.1, 0.2499, 0.25, 3)] == [
        "ok",
        "warn",
        "warn",
        "alert",
        "alert",
    ]
    p = Threshold(0.05, 0.01, higher_is_worse=False)
    assert [p.status(v) for v in (0.5, 0.05, 0.049, 0.01, 0.0099)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "alert",
    ]
    assert t.status(float("nan")) == "n/a"
    assert Threshold(warn=0.1).status(9) == "warn"


def test_defaults_are_documented_in_one_place():
    assert (DEFAULT_THRESHOLDS["psi"].warn, DEFAULT_THRESHOLDS["psi"].alert) == (0.1, 0.25)
    assert DEFAULT_THRESHOLDS["ks"].warn == 0.05 and not DEFAULT_THRESHOLDS["ks"].higher_is_worse
    for name, t in DEFAULT_THRESHOLDS.items():
        assert t.source, name
        assert name in METRICS


def test_worst_status():
    assert worst(["ok", "n/a", "warn"]) == "warn"
    assert worst([]) == "n/a"
    assert worst(["alert", "warn"]) == "alert"
