"""Distribution distances and tests, written once: drift, skew and contract rules call these.

Two kinds of input:

- *samples* (array-likes of values; NaN ignored, callers drop nulls first): `psi`,
  `psi_categorical`, `ks_2samp`, `ks_statistic`, `wasserstein`;
- *aligned counts* (two vectors of counts over the same bins or categories): `psi_from_counts`,
  `js_divergence`, `chi_square`. Stored statistics give counts, so these need no data.

`DEFAULT_THRESHOLDS` is the one table of default warn/alert levels, each with its source.
KS, chi-square and Wasserstein call scipy (DESIGN.md: "numpy, scipy.stats"); PSI and
Jensen-Shannon are a few lines of numpy, tested against scipy and hand computations.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Status = Literal["ok", "warn", "alert", "n/a"]
#: how bad each status is; `worst` picks the maximum ("n/a": not computable, e.g. no values)
STATUS_RANK: dict[str, int] = {"n/a": 0, "ok": 1, "warn": 2, "alert": 3}

#: proportions are floored at this value so that an empty bin gives a large, finite PSI
#: (at most 2 ln(1/1e-4) ~ 18.4 per pair of bins). 1e-4 is the value Evidently substitutes
#: for empty bins (``get_binned_data(..., feel_zeroes=True)``); we floor every proportion
#: at it rather than replace only exact zeros, so one rare bin cannot dominate either.
PSI_EPSILON = 1e-4


# -- thresholds ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    """Warn and alert levels of one metric value.

    ``higher_is_worse``: a value >= the level breaches it (PSI, JS, distances); else a value
    < the level does (p-values, match rates). ``decisive``: whether the metric decides a
    feature's overall drift status, or is shown for information only.
    """

    warn: float | None = None
    alert: float | None = None
    higher_is_worse: bool = True
    decisive: bool = True
    source: str = ""

    def status(self, value: float | None) -> Status:
        if value is None or math.isnan(value):
            return "n/a"
        if self.alert is not None and self._breaches(value, self.alert):
            return "alert"
        if self.warn is not None and self._breaches(value, self.warn):
            return "warn"
        return "ok"

    def _breaches(self, value: float, level: float) -> bool:
        return value >= level if self.higher_is_worse else value < level

    def describe(self) -> str:
        """``>= 0.1 warn, >= 0.25 alert`` or ``< 0.05 warn``."""
        op = ">=" if self.higher_is_worse else "<"
        parts = [
            f"{op} {v:g} {k}"
            for k, v in (("warn", self.warn), ("alert", self.alert))
            if v is not None
        ]
        return ", ".join(parts) or "no threshold"

    def to_dict(self) -> dict[str, Any]:
        return {
            "warn": self.warn,
            "alert": self.alert,
            "higher_is_worse": self.higher_is_worse,
            "decisive": self.decisive,
        }


_EVIDENTLY = "Evidently AI data drift defaults (evidently.calculations.stattests)"
#: the default levels, one place. The number each metric is judged on is named in `METRICS`.
DEFAULT_THRESHOLDS: Mapping[str, Threshold] = {
    "psi": Threshold(
        0.1,
        0.25,
        source="credit-scoring rule of thumb: < 0.1 stable, 0.1-0.25 moderate "
        "shift, > 0.25 major shift (Siddiqi, Credit Risk Scorecards, 2006; Yurdakul 2018)",
    ),
    "js": Threshold(
        0.02,
        0.05,
        source="the PSI levels carried over: for small shifts JS ~ PSI / (8 ln 2) "
        "bits, so 0.1 / 0.25 PSI ~ 0.018 / 0.045 bits (Evidently's 0.1 on the JS *distance* "
        "in nats is 0.0144 bits)",
    ),
    "ks": Threshold(
        0.05,
        0.01,
        higher_is_worse=False,
        decisive=False,
        source="conventional significance levels (Fisher's 0.05, stricter 0.01); "
        "Evidently's default for n <= 1000. Informative only: with large samples any "
        "negligible shift gives p ~ 0",
    ),
    "chi2": Threshold(
        0.05,
        0.01,
        higher_is_worse=False,
        decisive=False,
        source="conventional significance levels, as for KS; informative only",
    ),
    "wasserstein": Threshold(
        0.1,
        0.25,
        decisive=False,
        source=f"normed by the reference std: {_EVIDENTLY} use 0.1; "
        "0.25 (a quarter of a standard deviation) is featureledger's alert level",
    ),
    "null_fraction": Threshold(
        0.05,
        0.2,
        source="featureledger's choice (no external standard): 5 / 20 percentage "
        "points more or fewer missing values; tune per feature",
    ),
    "match_rate": Threshold(
        1.0,
        0.99,
        higher_is_worse=False,
        source="featureledger's choice: any served value "
        "that differs from its offline value beyond the tolerance is worth a warning; "
        "more than 1% of rows is an alert",
    ),
}

#: what number each metric is judged on (the ``value`` of a `MetricResult`)
METRICS: Mapping[str, str] = {
    "psi": "population stability index over reference-decile bins (numeric) or categories",
    "js": "Jensen-Shannon divergence, base 2, in [0, 1], over the same bins as PSI",
    "ks": "p-value of the two-sample Kolmogorov-Smirnov test (statistic in detail)",
    "chi2": "p-value of the chi-square test of homogeneity (statistic, dof in detail)",
    "wasserstein": "Wasserstein-1 distance divided by the reference standard deviation",
    "null_fraction": "absolute difference of the missing (null or non-finite) fractions",
    "match_rate": "fraction of joined rows whose served value equals the offline value",
}


def worst(statuses: Any) -> Status:
    """The most severe of ``statuses`` ("n/a" for none)."""
    out: Status = "n/a"
    for s in statuses:
        if STATUS_RANK[s] > STATUS_RANK[out]:
            out = s
    return out


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KSResult:
    statistic: float
    pvalue: float


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    dof: int
    pvalue: float


# -- PSI ------------------------------------------------------------------------------------------
def psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``, numeric samples.

    Bins are the ``bins`` quantiles of the reference (repeated edges merged; the outer bins
    are open, so every value lands in one), a value on an edge goes to the upper bin, and
    the counts go to `psi_from_counts`. Returns NaN when either sample is empty.
    """
    a = _clean(reference)
    b = _clean(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(a, qs))
    ref_counts = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
    return psi_from_counts(ref_counts, cur_counts)


def psi_categorical(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index over category frequencies (strings, booleans, ...):
    one bin per value seen in either sample, proportions floored as in `psi_from_counts`."""
    a = np.asarray(reference, dtype=object)
    b = np.asarray(current, dtype=object)
    if a.size == 0 or b.size == 0:
        return float("nan")
    cats, codes = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    ref_counts = np.bincount(codes[: a.size], minlength=cats.size)
    cur_counts = np.bincount(codes[a.size :], minlength=cats.size)
    return psi_from_counts(ref_counts, cur_counts)


def psi_from_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """PSI = sum over bins of (c - r) ln(c / r), r and c the reference and current
    proportions floored at `PSI_EPSILON`. Symmetric; 0 for identical proportions; NaN when
    either side has no counts. (PSI is Jeffreys' divergence KL(r||c) + KL(c||r).)"""
    r, c = _proportions(reference, current)
    if r is None or c is None:
        return float("nan")
    r = np.maximum(r, PSI_EPSILON)
    c = np.maximum(c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


# -- Jensen-Shannon -------------------------------------------------------------------------------
def js_divergence(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon divergence of two count (or probability) vectors over the same bins,
    base 2: JS = KL(p||m)/2 + KL(q||m)/2 with m = (p + q)/2, in [0, 1] (1 for disjoint
    supports). Empty bins need no epsilon (0 log 0 = 0). Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``. NaN when a side is empty.
    """
    p, q = _proportions(reference, current)
    if p is None or q is None:
        return float("nan")
    m = (p + q) / 2
    return float(min(max((_kl(p, m) + _kl(q, m)) / 2, 0.0), 1.0))


def _kl(p: np.ndarray, m: np.ndarray) -> float:
    nz = p > 0  # m > 0 wherever p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))


# -- chi-square -----------------------------------------------------------------------------------
def chi_square(reference: npt.ArrayLike, current: npt.ArrayLike) -> ChiSquareResult:
    """Chi-square test of homogeneity: do two samples of category counts come from one
    distribution? The 2 x K contingency table of the categories seen on either side
    (``scipy.stats.chi2_contingency`` without Yates' correction), dof = K - 1. One category
    (or none) gives statistic 0, dof 0, p 1; an empty side gives NaN.
    """
    from scipy.stats import chi2_contingency

    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(current, dtype=np.float64).ravel()
    if r.sum() <= 0 or c.sum() <= 0:
        return ChiSquareResult(float("nan"), 0, float("nan"))
    seen = (r + c) > 0
    table = np.vstack([r[seen], c[seen]])
    if table.shape[1] < 2:
        return ChiSquareResult(0.0, 0, 1.0)
    res = chi2_contingency(table, correction=False)
    return ChiSquareResult(float(res.statistic), int(res.dof), float(res.pvalue))


# -- Kolmogorov-Smirnov ---------------------------------------------------------------------------
def ks_2samp(reference: npt.ArrayLike, current: npt.ArrayLike) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test: D = sup_x |F_ref(x) - F_cur(x)| over the
    empirical CDFs and its two-sided p-value, from ``scipy.stats.ks_2samp`` (exact for small
    samples, asymptotic otherwise). NaN when either sample is empty."""
    from scipy import stats

    a = _clean(reference)
    b = _clean(current)
    if a.size == 0 or b.size == 0:
        return KSResult(float("nan"), float("nan"))
    with warnings.catch_warnings():
        # "exact calculation unsuccessful, switching to asymp" is expected for large samples
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ks_2samp(a, b)
    return KSResult(float(res.statistic), float(res.pvalue))


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The statistic D of `ks_2samp` alone (what contract `Distribution` rules check)."""
    return ks_2samp(reference, current).statistic


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a KS statistic for sample sizes n and m from the distribution of
    D for one sample of size round(nm / (n + m)) -- what ``ks_2samp(method="asymp")`` uses.
    For statistics computed from stored histograms, where no samples are left."""
    from scipy.stats import kstwo

    if n <= 0 or m <= 0 or math.isnan(statistic):
        return float("nan")
    en = max(round(n * m / (n + m)), 1)
    return float(np.clip(kstwo.sf(statistic, en), 0.0, 1.0))


# -- Wasserstein ----------------------------------------------------------------------------------
def wasserstein(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples: the integral of
    |F_ref - F_cur|, in the unit of the values (``scipy.stats.wasserstein_distance``).
    NaN when either sample is empty."""
    from scipy.stats import wasserstein_distance

    a = _clean(reference)
    b = _clean(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(wasserstein_distance(a, b))


def normed(distance: float, reference_std: float | None) -> float:
    """A Wasserstein distance in reference standard deviations (Evidently's norm: a std below
    0.001 counts as 0.001, so a constant reference still gives a finite value)."""
    if reference_std is None or math.isnan(reference_std):
        reference_std = 0.0
    return distance / max(reference_std, 0.001)


# -- helpers --------------------------------------------------------------------------------------
def _proportions(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[np.ndarray | None, np.ndarray | None]:
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(current, dtype=np.float64).ravel()
    if r.shape != c.shape:
        raise ValueError(
            f"counts must be over the same bins: {r.size} reference vs {c.size} current bins"
        )
    rs, cs = r.sum(), c.sum()
    return (r / rs if rs > 0 else None), (c / cs if cs > 0 else None)


def _clean(values: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel().copy()
    return arr[~np.isnan(arr)]
