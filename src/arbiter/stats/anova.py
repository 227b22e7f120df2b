"""Welch's one-way ANOVA: are k means equal when the arms' variances may differ?

The omnibus test of an A/B/n experiment on a continuous metric (a regressor's per-row loss).
Classic one-way ANOVA assumes equal variances, which two models' losses rarely have; Welch's
(1951) weighted F test does not, and needs only each arm's ``(n, sum, sum of squares)``, so it
runs on the :class:`~arbiter.stats.sufficient.SampleMeanStatistic` that SQL computes. A rank
test (Kruskal–Wallis) would need the raw rows. The test itself is statsmodels'
(``anova_generic`` on summary statistics); this module adapts the inputs and the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.oneway import anova_generic

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_ZERO_VARIANCE,
    _AsDict,
)
from arbiter.stats.sufficient import SampleMeanStatistic


@dataclass(frozen=True, slots=True)
class WelchAnovaResult(_AsDict):
    """Welch's F test that k means are equal (``df_num = k − 1``, fractional ``df_denom``)."""

    statistic: float
    p_value: float
    df_num: float
    df_denom: float
    means: tuple[float, ...]
    method: str
    status: str = STATUS_OK


def welch_anova(arms: Sequence[SampleMeanStatistic]) -> WelchAnovaResult:
    """Welch's heteroscedastic one-way ANOVA on per-arm sufficient statistics.

    Parameters
    ----------
    arms : sequence of SampleMeanStatistic
        At least two arms.

    Returns
    -------
    WelchAnovaResult
        ``status`` is ``"insufficient_data"`` when an arm has fewer than 2 observations and
        ``"zero_variance"`` when an arm's variance is 0 (its weight would be infinite); the
        statistic and p-value are then nan.

    Notes
    -----
    Computed by ``statsmodels.stats.oneway.anova_generic(..., use_var="unequal")`` from each
    arm's mean, variance and size (Welch 1951, *Biometrika* 38:330–336: weights
    ``w_i = n_i / s_i²``, ``F = A / (1 + 2 (k − 2) λ / (k² − 1))``,
    ``df = (k − 1, (k² − 1) / (3 λ))``); the same as ``anova_oneway(..., use_var="unequal")``
    on the rows. This function only adapts the sufficient statistics and turns degenerate
    arms into a status.
    """
    arms = list(arms)
    if len(arms) < 2:
        raise InvalidInputError(f"need at least two arms, got {len(arms)}", field="arms")
    for i, arm in enumerate(arms):
        if not isinstance(arm, SampleMeanStatistic) or arm.n < 0:
            raise InvalidInputError(
                f"arms[{i}] must be a SampleMeanStatistic with n >= 0", field=f"arms[{i}]"
            )
    method = "Welch heteroscedastic one-way ANOVA (Welch 1951)"
    k = len(arms)
    means = tuple(float(arm.mean) for arm in arms)
    if any(arm.n < 2 for arm in arms):
        return WelchAnovaResult(NAN, NAN, k - 1, NAN, means, method, STATUS_INSUFFICIENT_DATA)
    n = np.array([arm.n for arm in arms], dtype=float)
    var = np.array([arm.variance for arm in arms])
    if np.any(var <= 0.0):
        return WelchAnovaResult(NAN, NAN, k - 1, NAN, means, method, STATUS_ZERO_VARIANCE)
    r = anova_generic(np.asarray(means), var, n, use_var="unequal")
    statistic, df_denom = float(r.statistic), float(r.df[1])
    p_value = float(r.pvalue)
    return WelchAnovaResult(statistic, p_value, k - 1, df_denom, means, method)


__all__ = ["WelchAnovaResult", "welch_anova"]
