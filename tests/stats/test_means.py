"""Welch t-test and delta-method ratio metrics, cross-checked against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats._delta_method import NonlinearDeltaCov

from arbiter.errors import InvalidInputError
from arbiter.stats.means import ratio_mean_and_variance, ratio_test, welch_test
from arbiter.stats.sufficient import RatioStatistic, SampleMeanStatistic

DECIMALS = 9
RTOL = 1e-9
ALTERNATIVES = ["two-sided", "larger", "smaller"]
SCIPY_ALT = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}


def mean_stat(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(int(x.size), float(x.sum()), float((x * x).sum()))


def ratio_stat(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
    return RatioStatistic(
        int(m.size), float(m.sum()), float((m * m).sum()), float(d.sum()), float((d * d).sum()),
        float((m * d).sum()),
    )  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_a=st.integers(2, 400),
    n_b=st.integers(2, 400),
    mu=st.floats(-5, 5),
    shift=st.floats(-1, 1),
    sd_a=st.floats(0.1, 5),
    sd_b=st.floats(0.1, 5),
    alternative=st.sampled_from(ALTERNATIVES),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_welch_matches_scipy(
    seed: int, n_a: int, n_b: int, mu: float, shift: float, sd_a: float, sd_b: float,
    alternative: str, alpha: float,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(mu, sd_a, n_a), rng.normal(mu + shift, sd_b, n_b)
    res = welch_test(mean_stat(xa), mean_stat(xb), alpha=alpha, alternative=alternative)
    ref = sps.ttest_ind(xb, xa, equal_var=False, alternative=SCIPY_ALT[alternative])
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL, abs=1e-300)
    assert res.dof == pytest.approx(ref.df, rel=RTOL)
    assert res.ci_low == pytest.approx(ci.low, rel=RTOL, abs=1e-12)
    assert res.ci_high == pytest.approx(ci.high, rel=RTOL, abs=1e-12)
    assert res.difference == pytest.approx(xb.mean() - xa.mean(), rel=RTOL, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(5, 300),
    mu=st.floats(1, 20),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_welch_relative_lift_matches_independent_delta_method(
    seed: int, n: int, mu: float, alternative: str
) -> None:
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(mu, 1.0, n), rng.normal(mu * 1.05, 1.5, n + 3)
    res = welch_test(mean_stat(xa), mean_stat(xb), alternative=alternative)
    cov = np.diag([xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size])
    nl = NonlinearDeltaCov(
        lambda p: np.atleast_1d(p[1] / p[0] - 1.0), np.array([xa.mean(), xb.mean()]), cov
    )
    se = float(nl.se_vectorized()[0])
    q = sps.norm.ppf(0.975 if alternative == "two-sided" else 0.95)
    assert res.relative_lift == pytest.approx(xb.mean() / xa.mean() - 1, rel=RTOL)
    if alternative != "smaller":
        assert res.relative_ci_low == pytest.approx(res.relative_lift - q * se, rel=1e-6)
    if alternative != "larger":
        assert res.relative_ci_high == pytest.approx(res.relative_lift + q * se, rel=1e-6)


def test_welch_golden() -> None:
    # Hand computation: means 1 and 2, variances 1 and 4, n = 10 and 20.
    a = SampleMeanStatistic(10, 10.0, 10 * (1.0 + 1.0) - 1.0)  # Σx² = (n−1)s² + n·mean²
    b = SampleMeanStatistic(20, 40.0, 19 * 4.0 + 20 * 4.0)
    res = welch_test(a, b)
    se = math.sqrt(1 / 10 + 4 / 20)
    dof = (0.3**2) / ((0.1**2) / 9 + (0.2**2) / 19)
    assert round(res.statistic, DECIMALS) == round(1.0 / se, DECIMALS)
    assert round(res.dof, DECIMALS) == round(dof, DECIMALS)
    assert round(res.p_value, DECIMALS) == round(2 * sps.t.sf(1.0 / se, dof), DECIMALS)


def test_welch_degenerate_statuses() -> None:
    one = welch_test(SampleMeanStatistic(1, 1.0, 1.0), SampleMeanStatistic(5, 5.0, 6.0))
    assert one.status == "insufficient_data" and math.isnan(one.p_value)
    flat = welch_test(SampleMeanStatistic(3, 3.0, 3.0), SampleMeanStatistic(3, 6.0, 12.0))
    assert flat.status == "zero_variance" and flat.difference == 1.0 and math.isnan(flat.p_value)
    zero = welch_test(SampleMeanStatistic(3, 0.0, 2.0), SampleMeanStatistic(3, 3.0, 5.0))
    assert zero.status == "zero_baseline" and math.isnan(zero.relative_lift)
    assert not math.isnan(zero.p_value)


@pytest.mark.parametrize("value", [0.1, 0.7, 1e3 / 3, 123.456])
def test_constant_data_is_zero_variance_despite_rounding(value: float) -> None:
    # Σx² − (Σx)²/n of constant data can come out as ~1e-18 instead of 0.
    a, b = mean_stat(np.full(7, value)), mean_stat(np.full(5, value * 1.1))
    res = welch_test(a, b)
    assert res.status == "zero_variance" and math.isnan(res.statistic)
    d = np.ones(7)
    const = ratio_stat(np.full(7, value), d)
    assert ratio_test(const, ratio_stat(np.full(7, value * 1.1), d)).status == "zero_variance"


def test_welch_rejects_bad_input() -> None:
    good = SampleMeanStatistic(3, 3.0, 5.0)
    with pytest.raises(InvalidInputError):
        welch_test(good, SampleMeanStatistic(3, math.nan, 5.0))
    with pytest.raises(InvalidInputError):
        welch_test(good, good, alpha=0.0)
    with pytest.raises(InvalidInputError):
        welch_test(good, (3, 3.0, 5.0))  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 500), rate=st.floats(0.05, 0.8))
def test_ratio_variance_matches_independent_implementations(seed: int, n: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    d = rng.poisson(5, n) + 1.0  # impressions per user
    m = rng.binomial(d.astype(int), rate).astype(float)  # clicks per user
    ratio, var = ratio_mean_and_variance(ratio_stat(m, d))
    assert ratio == pytest.approx(m.sum() / d.sum(), rel=RTOL)
    # Linearisation: Var(R) = Var(m − R·d) / (n·mean(d)²), exact algebraic equivalent.
    lin = np.var(m - ratio * d, ddof=1) / (n * d.mean() ** 2)
    assert var == pytest.approx(lin, rel=1e-8, abs=1e-15)
    # statsmodels' generic delta method with a numerical gradient.
    nl = NonlinearDeltaCov(
        lambda p: np.atleast_1d(p[0] / p[1]), np.array([m.mean(), d.mean()]), np.cov(m, d) / n
    )
    assert var == pytest.approx(float(nl.var()[0]), rel=1e-6, abs=1e-15)


def test_ratio_with_unit_denominators_is_the_mean_z_test() -> None:
    rng = np.random.default_rng(7)
    ma, mb = rng.normal(1.0, 1.0, 200), rng.normal(1.2, 1.0, 250)
    ra = ratio_stat(ma, np.ones_like(ma))
    rb = ratio_stat(mb, np.ones_like(mb))
    res = ratio_test(ra, rb)
    welch = welch_test(mean_stat(ma), mean_stat(mb))
    assert res.statistic == pytest.approx(welch.statistic, rel=RTOL)
    assert res.standard_error == pytest.approx(welch.standard_error, rel=RTOL)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(welch.statistic)), rel=RTOL)
    assert math.isinf(res.dof)


def test_ratio_degenerate_and_bad_input() -> None:
    empty = RatioStatistic(1, 1.0, 1.0, 1.0, 1.0, 1.0)
    ok = RatioStatistic(3, 3.0, 5.0, 6.0, 14.0, 8.0)
    assert ratio_test(empty, ok).status == "insufficient_data"
    zero_d = RatioStatistic(3, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert ratio_test(zero_d, ok).status == "insufficient_data"
    const = RatioStatistic(3, 3.0, 3.0, 3.0, 3.0, 3.0)  # m = d = 1 for every unit
    assert ratio_test(const, const).status == "zero_variance"
    with pytest.raises(InvalidInputError):
        ratio_test(ok, RatioStatistic(-1, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratio_variance_is_the_cluster_robust_variance_of_the_row_mean(seed: int) -> None:
    """Per-unit analysis of a row-level metric: statsmodels' CR0 cluster-robust variance.

    The ratio sum(m)/sum(d) is the row-level mean; its delta-method variance equals the
    cluster-robust (CR0, clusters = units) variance of an intercept-only OLS on the rows,
    times n/(n-1) (the delta method's sample covariances use n-1).
    """
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    n_units = 300
    rows_per_unit = rng.integers(1, 12, n_units)
    skill = rng.beta(4, 2, n_units)  # units differ: rows of one unit are correlated
    unit = np.repeat(np.arange(n_units), rows_per_unit)
    y = (rng.random(unit.size) < skill[unit]).astype(float)
    m = np.bincount(unit, weights=y)
    d = np.bincount(unit).astype(float)
    stat = ratio_stat(m, d)
    fit = sm.OLS(y, np.ones_like(y)).fit(
        cov_type="cluster", cov_kwds={"groups": unit, "use_correction": False}
    )
    assert stat.mean == pytest.approx(float(fit.params[0]), rel=RTOL)
    cr0 = float(fit.bse[0]) ** 2
    assert stat.variance / stat.n == pytest.approx(cr0 * n_units / (n_units - 1), rel=1e-9)
    # The naive row-level variance is far smaller: rows of a unit are not independent.
    assert y.var(ddof=1) / y.size < 0.6 * stat.variance / stat.n


def test_ratio_statistic_variance_degenerate() -> None:
    assert RatioStatistic(1, 1.0, 1.0, 2.0, 4.0, 2.0).variance == 0.0
    assert RatioStatistic(5, 0.0, 0.0, 0.0, 0.0, 0.0).variance == 0.0
