"""Tests for arbiter.stats.cuped, cross-checked against row-level statsmodels OLS and scipy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from arbiter.errors import InvalidInputError
from arbiter.stats.cuped import cuped_test, cuped_theta
from arbiter.stats.sufficient import RegressionAdjustmentStatistic


def _stat(y: np.ndarray, x: np.ndarray) -> RegressionAdjustmentStatistic:
    return RegressionAdjustmentStatistic(
        n=int(y.size),
        y_sum=float(y.sum()),
        y_sum_squares=float(np.dot(y, y)),
        x_sum=float(x.sum()),
        x_sum_squares=float(np.dot(x, x)),
        xy_sum_product=float(np.dot(x, y)),
    )


def _experiment(
    seed: int, n_c: int = 3000, n_t: int = 2500, effect: float = 0.15
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x_c, x_t = rng.gamma(2.0, 2.0, n_c), rng.gamma(2.0, 2.0, n_t)
    y_c = 1.0 + 0.8 * x_c + rng.normal(0, 1.5, n_c)
    y_t = 1.0 + effect + 0.8 * x_t + rng.normal(0, 1.5, n_t)
    return y_c, x_c, y_t, x_t


def _ols(y_c: np.ndarray, x_c: np.ndarray, y_t: np.ndarray, x_t: np.ndarray) -> Any:
    y = np.concatenate([y_c, y_t])
    x = np.concatenate([x_c, x_t])
    treat = np.concatenate([np.zeros(y_c.size), np.ones(y_t.size)])
    design = sm.add_constant(np.column_stack([treat, x - x.mean()]))
    return sm.OLS(y, design).fit()


def test_effect_and_theta_equal_ols_on_treatment_plus_centered_covariate() -> None:
    y_c, x_c, y_t, x_t = _experiment(1)
    r = cuped_test(_stat(y_c, x_c), _stat(y_t, x_t))
    fit = _ols(y_c, x_c, y_t, x_t)
    assert r.estimate == pytest.approx(fit.params[1], rel=1e-10)
    assert r.theta == pytest.approx(fit.params[2], rel=1e-10)
    # Adjusted control mean = OLS intercept (x centered at the pooled mean).
    assert r.control_mean == pytest.approx(fit.params[0], rel=1e-10)
    # Standard errors: Welch on adjusted values vs OLS HC2 robust SE agree to O(1/n).
    assert r.std_error == pytest.approx(fit.HC2_se[1], rel=0.01)
    assert r.status == "ok" and r.significant


def test_welch_on_row_level_adjusted_metric_matches_scipy() -> None:
    y_c, x_c, y_t, x_t = _experiment(2)
    r = cuped_test(_stat(y_c, x_c), _stat(y_t, x_t))
    xbar = np.concatenate([x_c, x_t]).mean()
    adj_c, adj_t = y_c - r.theta * (x_c - xbar), y_t - r.theta * (x_t - xbar)
    ref = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert r.estimate / r.std_error == pytest.approx(ref.statistic, rel=1e-10)
    assert r.df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r.control_variance == pytest.approx(adj_c.var(ddof=1), rel=1e-9)
    assert r.treatment_variance == pytest.approx(adj_t.var(ddof=1), rel=1e-9)


def test_variance_reduction_is_about_within_arm_correlation_squared() -> None:
    y_c, x_c, y_t, x_t = _experiment(3, n_c=20_000, n_t=20_000)
    r = cuped_test(_stat(y_c, x_c), _stat(y_t, x_t))
    rho = np.corrcoef(np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t - 0.15]))[0, 1]
    assert r.variance_reduction == pytest.approx(rho**2, abs=0.01)
    assert r.std_error < r.unadjusted_std_error
    assert r.unadjusted_estimate == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-12)


def test_one_sided_alternatives() -> None:
    y_c, x_c, y_t, x_t = _experiment(4)
    c, t = _stat(y_c, x_c), _stat(y_t, x_t)
    two = cuped_test(c, t)
    larger = cuped_test(c, t, alternative="larger")
    smaller = cuped_test(c, t, alternative="smaller")
    assert larger.p_value == pytest.approx(two.p_value / 2, rel=1e-9)
    assert smaller.p_value == pytest.approx(1 - two.p_value / 2, rel=1e-9)
    assert larger.ci_high == math.inf and smaller.ci_low == -math.inf


def test_statistics_merge_like_rows() -> None:
    y_c, x_c, y_t, x_t = _experiment(5)
    whole = cuped_test(_stat(y_c, x_c), _stat(y_t, x_t))
    merged = cuped_test(
        _stat(y_c[:1000], x_c[:1000]) + _stat(y_c[1000:], x_c[1000:]),
        _stat(y_t[:10], x_t[:10]) + _stat(y_t[10:], x_t[10:]),
    )
    assert merged.estimate == pytest.approx(whole.estimate, rel=1e-9)
    assert merged.p_value == pytest.approx(whole.p_value, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_c=st.integers(3, 200),
    n_t=st.integers(3, 200),
    slope=st.floats(-3, 3),
    effect=st.floats(-2, 2),
)
def test_effect_equals_ols_for_random_data(
    seed: int, n_c: int, n_t: int, slope: float, effect: float
) -> None:
    rng = np.random.default_rng(seed)
    x_c, x_t = rng.normal(5, 2, n_c), rng.normal(5, 2, n_t)
    y_c = slope * x_c + rng.normal(0, 1, n_c)
    y_t = effect + slope * x_t + rng.normal(0, 1, n_t)
    r = cuped_test(_stat(y_c, x_c), _stat(y_t, x_t))
    fit = _ols(y_c, x_c, y_t, x_t)
    assert r.estimate == pytest.approx(fit.params[1], rel=1e-7, abs=1e-9)
    assert r.theta == pytest.approx(fit.params[2], rel=1e-7, abs=1e-9)


def test_theta_is_pooled_within_arm_slope() -> None:
    y_c, x_c, y_t, x_t = _experiment(6, effect=5.0)
    theta = cuped_theta(_stat(y_c, x_c), _stat(y_t, x_t))
    sxy = np.sum((x_c - x_c.mean()) * (y_c - y_c.mean())) + np.sum(
        (x_t - x_t.mean()) * (y_t - y_t.mean())
    )
    sxx = np.sum((x_c - x_c.mean()) ** 2) + np.sum((x_t - x_t.mean()) ** 2)
    assert theta == pytest.approx(sxy / sxx, rel=1e-10)


def test_constant_covariate_means_no_adjustment() -> None:
    rng = np.random.default_rng(8)
    y_c, y_t = rng.normal(0, 1, 100), rng.normal(0.5, 1, 120)
    r = cuped_test(_stat(y_c, np.ones(100)), _stat(y_t, np.ones(120)))
    assert r.status == "zero_covariate_variance"
    assert r.theta == 0.0
    assert r.estimate == pytest.approx(y_t.mean() - y_c.mean())
    ref = stats.ttest_ind(y_t, y_c, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert r.variance_reduction == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("c", "t", "status"),
    [
        (_stat(np.array([1.0]), np.array([2.0])), _stat(np.ones(5), np.arange(5.0)),
         "insufficient_data"),
        (_stat(np.ones(4), np.ones(4)), _stat(np.ones(6) * 2, np.ones(6)), "zero_variance"),
        (RegressionAdjustmentStatistic(0, 0, 0, 0, 0, 0), _stat(np.ones(5), np.arange(5.0)),
         "insufficient_data"),
    ],
)  # fmt: skip
def test_degenerate_data_returns_status(
    c: RegressionAdjustmentStatistic, t: RegressionAdjustmentStatistic, status: str
) -> None:
    r = cuped_test(c, t)
    assert r.status == status
    assert r.p_value == 1.0 and not r.significant
    assert (r.ci_low, r.ci_high) == (-math.inf, math.inf)


def test_bad_input_raises() -> None:
    s = _stat(np.arange(5.0), np.arange(5.0))
    with pytest.raises(InvalidInputError) as exc:
        cuped_test(s, s, alpha=1.5)
    assert exc.value.field == "alpha"
    with pytest.raises(InvalidInputError) as exc:
        cuped_test(s, s, alternative="two_sided")  # type: ignore[arg-type]
    assert exc.value.field == "alternative"
    with pytest.raises(InvalidInputError) as exc:
        cuped_test(s, (1, 2, 3))  # type: ignore[arg-type]
    assert exc.value.field == "treatment"
    with pytest.raises(InvalidInputError):
        cuped_theta(RegressionAdjustmentStatistic(-1, 0, 0, 0, 0, 0), s)
