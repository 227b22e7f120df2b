"""Tests on binary metrics (conversion, accuracy, click-through) from :class:`ProportionStatistic`.

* :func:`two_proportion_test` — pooled z-test, unpooled Wald CI for ``p_b - p_a`` and the
  relative lift ``p_b / p_a - 1`` with a delta-method CI.
* :func:`k_proportion_test` — chi-square test of independence on the 2×k table, then all
  pairwise differences by the Marascuilo procedure (NIST/SEMATECH e-Handbook of Statistical
  Methods, §7.4.7.4).

The test and the interval deliberately use different variances: under H0 the arms share one
proportion, so the test pools them (the score test, identical to Pearson's chi-square for
2×2); the interval is about the difference itself, so each arm keeps its own variance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import (
    NAN,
    Alternative,
    check_alpha,
    check_alternative,
    interval,
    p_value_from_statistic,
    relative_lift,
)
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_ZERO_BASELINE,
    STATUS_ZERO_VARIANCE,
    KProportionResult,
    MarascuiloPair,
    TwoProportionResult,
)
from arbiter.stats.sufficient import ProportionStatistic


def _check_proportion(stat: ProportionStatistic, field: str) -> None:
    if not isinstance(stat, ProportionStatistic):
        raise InvalidInputError(f"{field} must be a ProportionStatistic", field=field)
    if stat.n < 0 or not 0 <= stat.successes <= stat.n:
        raise InvalidInputError(
            f"{field} needs 0 <= successes <= n; got successes={stat.successes}, n={stat.n}",
            field=field,
        )


def two_proportion_test(
    a: ProportionStatistic,
    b: ProportionStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> TwoProportionResult:
    """Pooled two-proportion z-test of ``p_b - p_a`` with Wald and relative-lift intervals.

    Parameters
    ----------
    a, b : ProportionStatistic
        Baseline (control) and challenger arms.
    alpha : float, default 0.05
        Significance level; intervals have coverage ``1 - alpha``.
    alternative : {"two-sided", "larger", "smaller"}
        ``"larger"`` tests ``p_b > p_a``. One-sided tests get one-sided intervals.

    Returns
    -------
    TwoProportionResult
        ``status`` is ``"insufficient_data"`` when an arm is empty, ``"zero_variance"`` when
        the pooled proportion is 0 or 1 (no test possible), ``"zero_baseline"`` when
        ``p_a == 0`` (relative lift undefined), else ``"ok"``.

    Notes
    -----
    * Test statistic ``z = (p_b − p_a) / sqrt(p̄(1−p̄)(1/n_a + 1/n_b))`` with the pooled
      ``p̄ = (x_a + x_b)/(n_a + n_b)``: the score test for two binomials (Agresti,
      *Categorical Data Analysis*); equals ``statsmodels...proportions_ztest``.
    * CI ``(p_b − p_a) ± z·sqrt(p_a(1−p_a)/n_a + p_b(1−p_b)/n_b)`` (unpooled Wald; equals
      ``confint_proportions_2indep(method="wald")``).
    * Relative lift ``p_b/p_a − 1`` with the delta-method variance of
      :func:`arbiter.stats.means.relative_lift`.
    """
    _check_proportion(a, "a")
    _check_proportion(b, "b")
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    method = "pooled two-proportion z-test; unpooled Wald CI; delta-method relative lift"
    pa, pb = a.mean, b.mean
    diff = pb - pa
    if a.n == 0 or b.n == 0:
        return TwoProportionResult(
            NAN, NAN, pa, pb, diff, NAN, NAN, NAN, NAN, NAN,
            alpha, alternative, method, STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    var_a, var_b = a.variance / a.n, b.variance / b.n
    lift, lift_var = relative_lift(pa, pb, var_a, var_b)
    lo, hi = interval(diff, math.sqrt(var_a + var_b), alpha, alternative)
    if math.isnan(lift):
        rlo = rhi = NAN
    else:
        rlo, rhi = interval(lift, math.sqrt(lift_var), alpha, alternative)
    pooled = (a.successes + b.successes) / (a.n + b.n)
    pooled_se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / a.n + 1.0 / b.n))
    if pooled_se == 0.0:
        return TwoProportionResult(
            NAN, NAN, pa, pb, diff, lo, hi, lift, rlo, rhi,
            alpha, alternative, method, STATUS_ZERO_VARIANCE,
        )  # fmt: skip
    z = diff / pooled_se
    p = p_value_from_statistic(z, alternative)
    status = STATUS_ZERO_BASELINE if math.isnan(lift) else STATUS_OK
    return TwoProportionResult(
        z, p, pa, pb, diff, lo, hi, lift, rlo, rhi, alpha, alternative, method, status
    )


def k_proportion_test(
    arms: Sequence[ProportionStatistic], *, alpha: float = 0.05
) -> KProportionResult:
    """Chi-square test that k proportions are equal, with Marascuilo pairwise comparisons.

    Parameters
    ----------
    arms : sequence of ProportionStatistic
        At least two arms. Pairs refer to arms by their 0-based position.
    alpha : float, default 0.05
        Family-wise significance level of the simultaneous pairwise comparisons.

    Returns
    -------
    KProportionResult
        ``chi2``/``p_value``/``dof`` of Pearson's test of independence on the 2×k table
        (no continuity correction), and one :class:`MarascuiloPair` per ``i < j`` with
        ``difference = p_j − p_i``. ``status`` is ``"insufficient_data"`` if an arm is empty and
        ``"zero_variance"`` if every arm is all successes or all failures. A pair whose two
        arms both have zero variance (each at p = 0 or 1) is not testable: its
        ``critical_value`` is nan and it is never significant.

    Notes
    -----
    Pearson's ``χ² = Σ (O − E)²/E`` with ``E = row total × column total / N`` and ``k − 1``
    degrees of freedom. The Marascuilo procedure (Marascuilo 1966, *Psychological Bulletin*
    65:280–290; NIST/SEMATECH e-Handbook §7.4.7.4) declares a pair different when
    ``|p_i − p_j| > sqrt(χ²_{1−α, k−1}) · sqrt(p_i(1−p_i)/n_i + p_j(1−p_j)/n_j)``; the
    Scheffé-type critical value makes the k(k−1)/2 comparisons simultaneous at level α.
    """
    arms = list(arms)
    if len(arms) < 2:
        raise InvalidInputError(f"need at least two arms, got {len(arms)}", field="arms")
    for i, arm in enumerate(arms):
        _check_proportion(arm, f"arms[{i}]")
    alpha = check_alpha(alpha)
    method = "Pearson chi-square test of independence; Marascuilo pairwise procedure"
    k = len(arms)
    dof = k - 1
    n = np.array([arm.n for arm in arms], dtype=float)
    x = np.array([arm.successes for arm in arms], dtype=float)
    props = tuple(arm.mean for arm in arms)

    if np.any(n == 0):
        return KProportionResult(NAN, NAN, dof, props, (), alpha, method, STATUS_INSUFFICIENT_DATA)
    pooled = x.sum() / n.sum()
    if pooled in (0.0, 1.0):
        chi2_stat, p_value, status = NAN, NAN, STATUS_ZERO_VARIANCE
    else:
        observed = np.vstack([x, n - x])
        expected = np.outer([pooled, 1.0 - pooled], n)
        chi2_stat = float(np.sum((observed - expected) ** 2 / expected))
        p_value = float(_st.chi2.sf(chi2_stat, dof))
        status = STATUS_OK

    # One critical constant for the whole family (Scheffé projection of the k-1 df chi-square).
    scale = math.sqrt(float(_st.chi2.ppf(1.0 - alpha, dof)))
    var = np.array([arm.variance for arm in arms]) / n
    pairs = []
    for i, j in itertools.combinations(range(k), 2):
        diff = props[j] - props[i]
        pair_var = var[i] + var[j]
        if pair_var == 0.0:
            # Both arms all successes or all failures: the Wald-type range would be 0 and any
            # difference (0/5 against 5/5) would count as significant. Not testable.
            pairs.append(MarascuiloPair(i, j, diff, NAN, False))
            continue
        critical = scale * math.sqrt(pair_var)
        pairs.append(MarascuiloPair(i, j, diff, critical, bool(abs(diff) > critical)))
    return KProportionResult(chi2_stat, p_value, dof, props, tuple(pairs), alpha, method, status)


__all__ = ["k_proportion_test", "two_proportion_test"]
