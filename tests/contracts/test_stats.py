"""PSI and KS, checked against direct definitions and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featureledger.contracts.stats import PSI_EPSILON, ks_statistic, psi, psi_categorical


def brute_ks(a: list[float], b: list[float]) -> float:
    """sup_x |F_a(x) - F_b(x)| straight from the definition."""
    xa, xb = np.asarray(a), np.asarray(b)
    return max(abs(np.mean(xa <= x) - np.mean(xb <= x)) for x in [*a, *b])


samples = st.lists(st.integers(-20, 20).map(float), min_size=1, max_size=40)


@given(samples, samples)
def test_ks_matches_the_definition(a, b):
    assert ks_statistic(a, b) == pytest.approx(brute_ks(a, b), abs=1e-12)


def test_ks_extremes_nan_and_empty():
    assert ks_statistic([1, 2, 3], [3, 2, 1]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11]) == 1.0
    assert ks_statistic([1, 2, float("nan")], [1, 2]) == 0.0
    assert math.isnan(ks_statistic([], [1.0]))


def test_ks_reference_value():
    # F_a - F_b reaches its largest gap 0.5 at x = 2: F_a(2) = 2/4, F_b(2) = 0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5


def test_psi_hand_computed():
    # reference quartiles give one edge (the median, 1.5) for bins=2: counts [2, 2];
    # current lands [3, 1]: PSI = 0.25 ln 1.5 + 0.25 ln 2
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2)
    assert psi([0, 1, 2, 3], [0, 0, 0, 3], bins=2) == pytest.approx(expected)


def test_psi_is_zero_for_identical_samples_and_finite_for_empty_bins():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    shifted = psi(x, x + 3)
    assert 1.0 < shifted < 1 / PSI_EPSILON
    assert psi(x, rng.normal(size=5000)) < 0.1
    assert math.isnan(psi([], [1.0]))


def test_psi_constant_reference_and_value_on_edge_goes_up():
    # one edge at 5: [<5] and [>=5]; the reference is all in the upper bin
    assert psi([5, 5, 5], [5, 5, 5], bins=4) == 0.0
    assert psi([5, 5, 5], [4, 4, 4], bins=4) > 1


def test_psi_categorical_hand_computed():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi_categorical(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(expected)
    assert psi_categorical(["a", "b"], ["b", "a"]) == 0.0
