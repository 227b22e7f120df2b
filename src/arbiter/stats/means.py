"""Two-sample tests on means and ratio metrics, from sufficient statistics.

* :func:`welch_test` — Welch's unequal-variance t-test on two :class:`SampleMeanStatistic`.
* :func:`ratio_test` — difference of two ratio metrics ``sum(m)/sum(d)`` (e.g. clicks per
  impression with users as the randomisation unit) using the delta method for each arm's
  variance (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD).

Both report the absolute difference ``b - a`` and the relative lift ``b / a - 1`` whose CI is
also from the delta method. This module also holds the small shared helpers for p-values and
intervals that the sibling test modules use.
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_ZERO_BASELINE,
    STATUS_ZERO_VARIANCE,
    MeansResult,
)
from arbiter.stats.sufficient import RatioStatistic, SampleMeanStatistic

Alternative = Literal["two-sided", "larger", "smaller"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "larger", "smaller")
NAN = float("nan")
INF = float("inf")


# --------------------------------------------------------------------------- shared helpers


def check_alpha(alpha: float, field: str = "alpha") -> float:
    """Validate a significance level in (0, 1) and return it as float."""
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InvalidInputError(f"{field} must be in (0, 1), got {alpha!r}", field=field)
    return float(alpha)


def check_alternative(alternative: str) -> str:
    """Validate the alternative hypothesis name."""
    if alternative not in ALTERNATIVES:
        raise InvalidInputError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}",
            field="alternative",
        )
    return alternative


def p_value_from_statistic(statistic: float, alternative: str, dof: float = INF) -> float:
    """P-value of a z (``dof=inf``) or t statistic for ``b - a`` under ``alternative``.

    ``"larger"`` tests ``b > a`` (upper tail), ``"smaller"`` tests ``b < a``.
    """
    dist = _st.norm if math.isinf(dof) else _st.t(dof)
    if alternative == "larger":
        return float(dist.sf(statistic))
    if alternative == "smaller":
        return float(dist.cdf(statistic))
    return float(min(1.0, 2.0 * dist.sf(abs(statistic))))


def interval(
    estimate: float, standard_error: float, alpha: float, alternative: str, dof: float = INF
) -> tuple[float, float]:
    """Confidence interval matching the test: two-sided, or one-sided bound(s) with ``inf``.

    The one-sided interval is the set of values the one-sided test would not reject, so the
    interval and the p-value always agree.
    """
    dist = _st.norm if math.isinf(dof) else _st.t(dof)
    if alternative == "two-sided":
        q = float(dist.ppf(1.0 - alpha / 2.0))
        return estimate - q * standard_error, estimate + q * standard_error
    q = float(dist.ppf(1.0 - alpha))
    if alternative == "larger":
        return estimate - q * standard_error, INF
    return -INF, estimate + q * standard_error


def relative_lift(
    mean_a: float, mean_b: float, var_mean_a: float, var_mean_b: float
) -> tuple[float, float]:
    """Relative lift ``b/a - 1`` and its delta-method variance.

    ``var_mean_*`` are the variances of the two (independent) arm estimates. First-order delta
    method for a ratio of independent estimates:
    ``Var(b/a) ≈ Var(b)/a² + b²·Var(a)/a⁴`` (the ratio case of the delta method in Deng,
    Knoblich & Lu 2018, with zero covariance because the arms are independent; gbstats uses
    the same relative variance).
    """
    if mean_a == 0.0:
        return NAN, NAN
    lift = mean_b / mean_a - 1.0
    var = var_mean_b / mean_a**2 + mean_b**2 * var_mean_a / mean_a**4
    return lift, var


def negligible_variance(var: float, scale: float) -> bool:
    """Whether a variance computed from sums is zero up to rounding.

    ``Σx² − (Σx)²/n`` loses about ``eps·mean²`` to cancellation, so constant data can leave a
    spurious ~1e-18 variance and an astronomically large t. ``scale`` is the size of that
    error term (e.g. ``mean²/n``); anything below ``1e-12·scale`` is treated as zero.
    """
    return var <= 1e-12 * scale


# --------------------------------------------------------------------------- Welch


def _check_mean_stat(stat: SampleMeanStatistic, field: str) -> None:
    if not isinstance(stat, SampleMeanStatistic):
        raise InvalidInputError(f"{field} must be a SampleMeanStatistic", field=field)
    if stat.n < 0 or not all(math.isfinite(v) for v in (stat.sum, stat.sum_squares)):
        raise InvalidInputError(
            f"{field} must have n >= 0 and finite sums; got {stat!r}", field=field
        )


def welch_test(
    a: SampleMeanStatistic,
    b: SampleMeanStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> MeansResult:
    """Welch's t-test of ``mean(b) - mean(a)`` with CIs for the difference and relative lift.

    Parameters
    ----------
    a, b : SampleMeanStatistic
        Baseline (control) and challenger arms.
    alpha : float, default 0.05
        Significance level; intervals have coverage ``1 - alpha``.
    alternative : {"two-sided", "larger", "smaller"}
        ``"larger"`` tests ``mean(b) > mean(a)``. One-sided tests get one-sided intervals.

    Returns
    -------
    MeansResult
        ``status`` is ``"insufficient_data"`` when an arm has fewer than two observations,
        ``"zero_variance"`` when both sample variances are zero (up to rounding, see
        :func:`negligible_variance`), ``"zero_baseline"`` when the
        relative lift is undefined (``mean(a) == 0``), else ``"ok"``.

    Notes
    -----
    Standard error ``sqrt(s_a²/n_a + s_b²/n_b)`` and Welch–Satterthwaite degrees of freedom
    ``(s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``
    (Welch 1947, Biometrika 34:28–35). The relative-lift interval is normal-theory, from the
    delta method (see :func:`relative_lift`).
    """
    _check_mean_stat(a, "a")
    _check_mean_stat(b, "b")
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    method = "Welch two-sample t-test; relative lift by delta method"
    mean_a, mean_b = a.mean, b.mean
    diff = mean_b - mean_a
    if a.n < 2 or b.n < 2:
        return MeansResult(
            NAN, NAN, NAN, mean_a, mean_b, diff, NAN, NAN, NAN, NAN, NAN, NAN,
            alpha, alternative, method, STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    lift, lift_var = relative_lift(mean_a, mean_b, va, vb)
    if negligible_variance(va + vb, mean_a**2 / a.n + mean_b**2 / b.n):
        return MeansResult(
            NAN, NAN, NAN, mean_a, mean_b, diff, 0.0, diff, diff, lift, lift, lift,
            alpha, alternative, method, STATUS_ZERO_VARIANCE,
        )  # fmt: skip
    dof = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t = diff / se
    p = p_value_from_statistic(t, alternative, dof)
    lo, hi = interval(diff, se, alpha, alternative, dof)
    status = STATUS_OK
    if math.isnan(lift):
        rlo = rhi = NAN
        status = STATUS_ZERO_BASELINE
    else:
        rlo, rhi = interval(lift, math.sqrt(lift_var), alpha, alternative)
    return MeansResult(
        t, p, dof, mean_a, mean_b, diff, se, lo, hi, lift, rlo, rhi, alpha, alternative, method,
        status,
    )  # fmt: skip


# --------------------------------------------------------------------------- ratio metrics


def _check_ratio_stat(stat: RatioStatistic, field: str) -> None:
    if not isinstance(stat, RatioStatistic):
        raise InvalidInputError(f"{field} must be a RatioStatistic", field=field)
    values = (stat.m_sum, stat.m_sum_squares, stat.d_sum, stat.d_sum_squares, stat.m_d_sum_product)
    if stat.n < 0 or not all(math.isfinite(v) for v in values):
        raise InvalidInputError(
            f"{field} must have n >= 0 and finite sums; got {stat!r}", field=field
        )


def ratio_mean_and_variance(stat: RatioStatistic) -> tuple[float, float]:
    """Ratio ``R = sum(m)/sum(d)`` and the delta-method variance of its estimate.

    ``Var(R) ≈ (1/n)·(s_m²/μ_d² − 2·μ_m·s_md/μ_d³ + μ_m²·s_d²/μ_d⁴)`` with unbiased sample
    (co)variances of the per-unit ``m`` and ``d`` (delta method for a ratio of means, Deng,
    Knoblich & Lu 2018).
    Returns ``(nan, nan)`` when ``n < 2`` or ``sum(d) == 0``.
    """
    if stat.n < 2 or stat.d_sum == 0.0:
        return NAN, NAN
    return stat.mean, stat.variance / stat.n


def ratio_test(
    a: RatioStatistic,
    b: RatioStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> MeansResult:
    """Z-test of the difference of two ratio metrics, each with a delta-method variance.

    Parameters
    ----------
    a, b : RatioStatistic
        Baseline and challenger arms; one row per randomisation unit (e.g. user), with the
        numerator ``m`` and denominator ``d`` summed per unit.
    alpha : float, default 0.05
        Significance level.
    alternative : {"two-sided", "larger", "smaller"}
        ``"larger"`` tests ``R_b > R_a``.

    Returns
    -------
    MeansResult
        ``dof`` is ``inf`` (normal theory). ``status`` is ``"insufficient_data"`` when an arm
        has ``n < 2`` or a zero denominator sum, ``"zero_variance"`` when both variances are
        zero, ``"zero_baseline"`` when ``R_a == 0`` (relative lift undefined).

    Notes
    -----
    The per-arm variance is :func:`ratio_mean_and_variance`; arms are independent, so the
    variance of the difference is the sum. Treating the ratio's units as independent is what
    makes this correct when the analysis unit (impression) differs from the randomisation
    unit (user).
    """
    _check_ratio_stat(a, "a")
    _check_ratio_stat(b, "b")
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    method = "z-test of ratio metrics, delta-method variance (Deng, Knoblich & Lu 2018)"
    ra, va = ratio_mean_and_variance(a)
    rb, vb = ratio_mean_and_variance(b)
    if math.isnan(ra) or math.isnan(rb):
        return MeansResult(
            NAN, NAN, INF, a.mean, b.mean, b.mean - a.mean, NAN, NAN, NAN, NAN, NAN, NAN,
            alpha, alternative, method, STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    diff = rb - ra
    se = math.sqrt(va + vb)
    lift, lift_var = relative_lift(ra, rb, va, vb)
    if negligible_variance(va + vb, ra**2 / a.n + rb**2 / b.n):
        return MeansResult(
            NAN, NAN, INF, ra, rb, diff, 0.0, diff, diff, lift, lift, lift,
            alpha, alternative, method, STATUS_ZERO_VARIANCE,
        )  # fmt: skip
    z = diff / se
    p = p_value_from_statistic(z, alternative)
    lo, hi = interval(diff, se, alpha, alternative)
    status = STATUS_OK
    if math.isnan(lift):
        rlo = rhi = NAN
        status = STATUS_ZERO_BASELINE
    else:
        rlo, rhi = interval(lift, math.sqrt(lift_var), alpha, alternative)
    return MeansResult(
        z, p, INF, ra, rb, diff, se, lo, hi, lift, rlo, rhi, alpha, alternative, method, status
    )


__all__ = ["ratio_mean_and_variance", "ratio_test", "welch_test"]
