"""Distribution distances used by `Distribution` rules, in plain numpy.

Written once here; the monitoring package (drift, skew) is meant to import these rather
than re-derive them. Both functions ignore NaN; callers drop nulls first.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: proportions are floored at this value so that an empty bin gives a large, finite PSI
PSI_EPSILON = 1e-4


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic D = sup_x |F_ref(x) - F_cur(x)|.

    F are the empirical CDFs (right-continuous, ties counted together), evaluated at every
    observed value, which is where the supremum is reached; equals
    ``scipy.stats.ks_2samp(reference, current).statistic``. O((n + m) log(n + m)).
    Returns NaN when either sample is empty.
    """
    a = _clean(reference)
    b = _clean(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    a.sort()
    b.sort()
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``, numeric values.

    Bins are the ``bins`` quantiles of the reference (repeated edges merged; the outer bins
    are open, so every value lands in one), a value on an edge goes to the upper bin, and
    PSI = sum over bins of (c - r) * ln(c / r) with r, c the reference and current
    proportions floored at `PSI_EPSILON`. 0 means identical binned distributions; common
    readings: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    Returns NaN when either sample is empty.
    """
    a = _clean(reference)
    b = _clean(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(a, qs))
    ref_counts = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
    return _psi_from_counts(ref_counts, cur_counts)


def psi_categorical(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index over category frequencies (strings, booleans, ...):
    one bin per value seen in either sample, proportions floored as in `psi`."""
    a = np.asarray(reference, dtype=object)
    b = np.asarray(current, dtype=object)
    if a.size == 0 or b.size == 0:
        return float("nan")
    cats, codes = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    ref_counts = np.bincount(codes[: a.size], minlength=cats.size)
    cur_counts = np.bincount(codes[a.size :], minlength=cats.size)
    return _psi_from_counts(ref_counts, cur_counts)


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    c = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _clean(values: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel().copy()
    return arr[~np.isnan(arr)]
