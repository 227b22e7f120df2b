"""CUPED: variance reduction with a pre-experiment covariate.

Deng, Xu, Kohavi, Walker (2013), "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data", WSDM. Each unit's metric ``y`` is replaced by
``y - theta (x - mean(x))`` where ``x`` is a covariate unaffected by the treatment (the same
metric before the experiment). The estimate stays unbiased because ``E[x]`` is equal in both
arms; the variance shrinks by the factor ``1 - corr(x, y)^2`` (paper, eq. 4).

``theta`` is the *pooled within-arm* regression slope::

    theta = (S_xy,C + S_xy,T) / (S_xx,C + S_xx,T),     S_xy,g = sum_g (x - xbar_g)(y - ybar_g)

(paper, eq. 3: ``theta = cov(Y, X) / var(X)``, here estimated with the arm means removed so
that a treatment effect on ``y`` does not leak into ``theta``). With this ``theta`` the
effect estimate equals the coefficient on the treatment indicator in the OLS regression
``y ~ 1 + treatment + (x - mean(x))`` (the test suite checks this against statsmodels).

Adjusted arm ``g``::

    mean_adj_g = ybar_g - theta (xbar_g - xbar)          (xbar = mean of x over both arms)
    var_adj_g  = var(y)_g - 2 theta cov(x, y)_g + theta^2 var(x)_g

and the effect is tested with Welch's t-test on the adjusted means and variances (``theta``
treated as known, as in the paper; its estimation error is O(1/n)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy import stats

from arbiter.errors import InvalidInputError
from arbiter.stats.sufficient import RegressionAdjustmentStatistic, SampleMeanStatistic

Alternative = Literal["two-sided", "larger", "smaller"]
CupedStatus = Literal["ok", "insufficient_data", "zero_variance", "zero_covariate_variance"]

_ALTERNATIVES: tuple[str, ...] = ("two-sided", "larger", "smaller")


@dataclass(frozen=True, slots=True)
class CupedResult:
    """CUPED-adjusted comparison of two arms (difference = treatment - control).

    Attributes
    ----------
    estimate : float
        Adjusted difference in means.
    ci_low, ci_high : float
        Welch confidence interval of ``estimate`` (infinite on the untested side of a
        one-sided test; ``(-inf, inf)`` when degenerate).
    p_value : float
        Welch t-test p-value on the adjusted metric.
    significant : bool
        ``p_value < alpha``.
    theta : float
        Pooled within-arm regression slope of ``y`` on ``x``.
    control_mean, treatment_mean : float
        Adjusted arm means.
    control_variance, treatment_variance : float
        Per-unit variances of the adjusted metric.
    std_error : float
        Standard error of ``estimate``.
    df : float
        Welch–Satterthwaite degrees of freedom.
    unadjusted_estimate : float
        Plain difference of ``y`` means.
    unadjusted_std_error : float
        Standard error of the plain difference.
    variance_reduction : float
        ``1 - std_error^2 / unadjusted_std_error^2`` (0.3 = 30 % less variance).
    method : str
        ``"cuped_welch"``.
    status : str
        ``"ok"``; ``"zero_covariate_variance"`` (x constant: no adjustment, theta = 0, but
        the Welch test still ran); ``"insufficient_data"`` (an arm has n < 2) or
        ``"zero_variance"`` (adjusted variance is 0) — then ``p_value = 1``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    theta: float
    control_mean: float
    treatment_mean: float
    control_variance: float
    treatment_variance: float
    std_error: float
    df: float
    unadjusted_estimate: float
    unadjusted_std_error: float
    variance_reduction: float
    method: str
    status: CupedStatus

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values (nested dataclasses too)."""
        return asdict(self)


def cuped_theta(
    control: RegressionAdjustmentStatistic, treatment: RegressionAdjustmentStatistic
) -> float:
    """Pooled within-arm slope ``theta = (S_xy,C + S_xy,T) / (S_xx,C + S_xx,T)``.

    Parameters
    ----------
    control, treatment : RegressionAdjustmentStatistic
        Per-arm sums of ``y``, ``x``, their squares and cross-products.

    Returns
    -------
    float
        ``theta``; 0.0 when ``x`` has no within-arm variation.
    """
    _check(control, "control")
    _check(treatment, "treatment")
    sxy = _centered_cross(control) + _centered_cross(treatment)
    sxx = _centered_xx(control) + _centered_xx(treatment)
    return sxy / sxx if sxx > 0.0 else 0.0


def cuped_test(
    control: RegressionAdjustmentStatistic,
    treatment: RegressionAdjustmentStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> CupedResult:
    """Welch test of the CUPED-adjusted difference in means.

    Parameters
    ----------
    control, treatment : RegressionAdjustmentStatistic
        Per-arm sufficient statistics of the metric ``y`` and the pre-period covariate ``x``.
    alpha : float, default=0.05
        Level of the interval and of ``significant``.
    alternative : {"two-sided", "larger", "smaller"}, default="two-sided"
        ``"larger"`` tests treatment > control.

    Returns
    -------
    CupedResult

    Examples
    --------
    >>> from arbiter.stats.sufficient import RegressionAdjustmentStatistic as R
    >>> c = R(n=4, y_sum=10, y_sum_squares=30, x_sum=10, x_sum_squares=30, xy_sum_product=30)
    >>> round(cuped_theta(c, c), 6)
    1.0
    """
    if alternative not in _ALTERNATIVES:
        raise InvalidInputError(
            f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}",
            field="alternative",
        )
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha!r}", field="alpha")
    theta = cuped_theta(control, treatment)
    n_c, n_t = control.n, treatment.n
    unadjusted = (treatment.y_sum / n_t if n_t else 0.0) - (control.y_sum / n_c if n_c else 0.0)
    if min(n_c, n_t) < 2:
        return _degenerate(theta, unadjusted, "insufficient_data", control, treatment)

    xbar = (control.x_sum + treatment.x_sum) / (n_c + n_t)
    mean_c = control.y.mean - theta * (control.x.mean - xbar)
    mean_t = treatment.y.mean - theta * (treatment.x.mean - xbar)
    var_c = _adjusted_variance(control, theta)
    var_t = _adjusted_variance(treatment, theta)
    estimate = mean_t - mean_c
    se2 = var_t / n_t + var_c / n_c
    se2_raw = treatment.y.variance / n_t + control.y.variance / n_c
    se_raw = math.sqrt(se2_raw)
    if not se2 > 0.0:
        return _degenerate(theta, unadjusted, "zero_variance", control, treatment)

    se = math.sqrt(se2)
    # Welch–Satterthwaite degrees of freedom.
    df = se2 * se2 / ((var_t / n_t) ** 2 / (n_t - 1) + (var_c / n_c) ** 2 / (n_c - 1))
    t_stat = estimate / se
    if alternative == "two-sided":
        p_value = float(2.0 * stats.t.sf(abs(t_stat), df))
        half = float(stats.t.ppf(1.0 - alpha / 2.0, df)) * se
        low, high = estimate - half, estimate + half
    elif alternative == "larger":
        p_value = float(stats.t.sf(t_stat, df))
        low, high = estimate - float(stats.t.ppf(1.0 - alpha, df)) * se, math.inf
    else:
        p_value = float(stats.t.cdf(t_stat, df))
        low, high = -math.inf, estimate + float(stats.t.ppf(1.0 - alpha, df)) * se
    has_x_variation = _centered_xx(control) + _centered_xx(treatment) > 0.0
    return CupedResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_value=min(p_value, 1.0),
        significant=p_value < alpha,
        theta=theta,
        control_mean=mean_c,
        treatment_mean=mean_t,
        control_variance=var_c,
        treatment_variance=var_t,
        std_error=se,
        df=df,
        unadjusted_estimate=unadjusted,
        unadjusted_std_error=se_raw,
        variance_reduction=1.0 - se2 / se2_raw if se2_raw > 0.0 else 0.0,
        method="cuped_welch",
        status="ok" if has_x_variation else "zero_covariate_variance",
    )


def cuped_adjusted(
    control: RegressionAdjustmentStatistic, treatment: RegressionAdjustmentStatistic
) -> tuple[SampleMeanStatistic, SampleMeanStatistic, float]:
    """The arms' CUPED-adjusted metric as plain :class:`SampleMeanStatistic` s, and ``theta``.

    Each arm's statistic has the adjusted mean ``ybar_g - theta (xbar_g - xbar)`` and the
    adjusted per-unit variance ``var(y) - 2 theta cov(x, y) + theta^2 var(x)`` of
    :func:`cuped_test` (its ``n``, ``sum`` and ``sum_squares`` are chosen to reproduce both),
    so every test that takes sample means (Welch, the confidence sequence of
    :mod:`arbiter.stats.sequential`, :func:`arbiter.stats.verdict.decide`) runs on the
    adjusted metric unchanged: Welch on them is exactly :func:`cuped_test`.

    Parameters
    ----------
    control, treatment : RegressionAdjustmentStatistic
        Per-arm sums of the metric ``y`` and its pre-period covariate ``x``.

    Returns
    -------
    (SampleMeanStatistic, SampleMeanStatistic, float)
        Adjusted control, adjusted treatment, ``theta``.
    """
    theta = cuped_theta(control, treatment)
    total = control.n + treatment.n
    xbar = (control.x_sum + treatment.x_sum) / total if total else 0.0

    def adjusted(s: RegressionAdjustmentStatistic) -> SampleMeanStatistic:
        if s.n == 0:
            return SampleMeanStatistic(0, 0.0, 0.0)
        mean = s.y.mean - theta * (s.x.mean - xbar)
        var = _adjusted_variance(s, theta) if s.n > 1 else 0.0
        return SampleMeanStatistic(s.n, mean * s.n, (s.n - 1) * var + s.n * mean * mean)

    return adjusted(control), adjusted(treatment), theta


# --- private helpers ---------------------------------------------------------------------


def _check(stat: object, name: str) -> None:
    if not isinstance(stat, RegressionAdjustmentStatistic):
        raise InvalidInputError(
            f"{name} must be a RegressionAdjustmentStatistic, got {type(stat).__name__}",
            field=name,
        )
    if stat.n < 0:
        raise InvalidInputError(f"{name}.n must be >= 0, got {stat.n}", field=f"{name}.n")


def _centered_cross(s: RegressionAdjustmentStatistic) -> float:
    return s.xy_sum_product - s.x_sum * s.y_sum / s.n if s.n > 0 else 0.0


def _centered_xx(s: RegressionAdjustmentStatistic) -> float:
    return max(s.x_sum_squares - s.x_sum * s.x_sum / s.n, 0.0) if s.n > 0 else 0.0


def _adjusted_variance(s: RegressionAdjustmentStatistic, theta: float) -> float:
    # Var(y - theta x) = Var(y) - 2 theta Cov(x, y) + theta^2 Var(x)  (paper, eq. 4 setting).
    v = s.y.variance - 2.0 * theta * s.covariance + theta * theta * s.x.variance
    return max(v, 0.0)


def _degenerate(
    theta: float,
    unadjusted: float,
    status: CupedStatus,
    control: RegressionAdjustmentStatistic,
    treatment: RegressionAdjustmentStatistic,
) -> CupedResult:
    xbar_n = control.n + treatment.n
    xbar = (control.x_sum + treatment.x_sum) / xbar_n if xbar_n else 0.0
    mean_c = control.y.mean - theta * (control.x.mean - xbar) if control.n else 0.0
    mean_t = treatment.y.mean - theta * (treatment.x.mean - xbar) if treatment.n else 0.0
    return CupedResult(
        estimate=mean_t - mean_c,
        ci_low=-math.inf,
        ci_high=math.inf,
        p_value=1.0,
        significant=False,
        theta=theta,
        control_mean=mean_c,
        treatment_mean=mean_t,
        control_variance=_adjusted_variance(control, theta),
        treatment_variance=_adjusted_variance(treatment, theta),
        std_error=0.0,
        df=0.0,
        unadjusted_estimate=unadjusted,
        unadjusted_std_error=0.0,
        variance_reduction=0.0,
        method="cuped_welch",
        status=status,
    )


__all__ = ["CupedResult", "cuped_adjusted", "cuped_test", "cuped_theta"]
