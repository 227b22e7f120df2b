"""Two ratio metrics measured on the same units (a shadow test), compared by the delta method.

In a shadow test both models score every row, so a unit contributes to both ratios
``R_a = Σm_a/Σd_a`` and ``R_b = Σm_b/Σd_b`` (recall, log loss... of the champion and the
challenger). The two are strongly correlated; testing them as independent arms
(:func:`arbiter.stats.ratio_test`) would waste that. Linearising each ratio around its estimate
gives one number per unit,

``z_u = (m_b,u − R_b·d_b,u)/d̄_b − (m_a,u − R_a·d_a,u)/d̄_a``,

whose mean is ~0 and whose variance over units, divided by the number of units, is the
delta-method variance of ``R_b − R_a`` with the covariance of the two models included (Deng,
Knoblich & Lu 2018, applied to a difference of two correlated ratios).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN, check_alpha
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_ZERO_VARIANCE,
    PairedTestResult,
)


def paired_ratio_test(
    m_a: ArrayLike,
    d_a: ArrayLike,
    m_b: ArrayLike,
    d_b: ArrayLike,
    *,
    alpha: float = 0.05,
) -> PairedTestResult:
    """Z-test of ``R_b − R_a`` for two ratios summed over the same units.

    Parameters
    ----------
    m_a, d_a : array-like of float
        Per unit, the champion's numerator and denominator sums (e.g. true positives and
        positives for recall).
    m_b, d_b : array-like of float
        The challenger's sums for the same units, in the same order.
    alpha : float, default 0.05
        CI coverage ``1 − alpha``.

    Returns
    -------
    PairedTestResult
        ``estimate_a``/``estimate_b`` are the ratios, ``statistic`` the z statistic, ``n`` the
        number of units. ``status`` is ``"insufficient_data"`` with fewer than two units or a
        zero denominator sum, ``"zero_variance"`` when every unit's linearised difference is
        the same (e.g. identical models).

    Notes
    -----
    See the module docstring. With one arm's sums alone, ``var(z)/n`` reduces to
    :attr:`arbiter.stats.sufficient.RatioStatistic.variance` ``/ n``.
    """
    alpha = check_alpha(alpha)
    arrays = [np.asarray(x, dtype=float) for x in (m_a, d_a, m_b, d_b)]
    n = arrays[0].size
    for name, arr in zip(("m_a", "d_a", "m_b", "d_b"), arrays, strict=True):
        if arr.ndim != 1 or arr.size != n:
            raise InvalidInputError(
                f"{name} must be one-dimensional with one value per unit ({n})", field=name
            )
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"{name} contains NaN or infinite values", field=name)
    ma, da, mb, db = arrays
    method = "paired delta-method z-test of two ratios over the same units"
    sum_da, sum_db = float(da.sum()), float(db.sum())
    est_a = float(ma.sum()) / sum_da if sum_da else NAN
    est_b = float(mb.sum()) / sum_db if sum_db else NAN
    diff = est_b - est_a
    if n < 2 or not sum_da or not sum_db:
        return PairedTestResult(
            NAN, NAN, est_a, est_b, diff, NAN, NAN, n, alpha, method, STATUS_INSUFFICIENT_DATA
        )
    z_u = (mb - est_b * db) / (sum_db / n) - (ma - est_a * da) / (sum_da / n)
    se = math.sqrt(float(np.var(z_u, ddof=1)) / n)
    if se == 0.0:
        return PairedTestResult(
            NAN, NAN, est_a, est_b, diff, diff, diff, n, alpha, method, STATUS_ZERO_VARIANCE
        )
    z = float(_st.norm.ppf(1.0 - alpha / 2.0))
    statistic = diff / se
    p_value = float(2.0 * _st.norm.sf(abs(statistic)))
    return PairedTestResult(
        statistic, p_value, est_a, est_b, diff, diff - z * se, diff + z * se, n, alpha, method
    )


__all__ = ["paired_ratio_test"]
