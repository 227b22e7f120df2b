"""Numerics of each method: golden values worked by hand, and cross-checks against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from arbiter.drift import (
    ChiSquareDetector,
    JSDetector,
    KSDetector,
    PSIDetector,
    WassersteinDetector,
    build_profile,
)
from arbiter.drift.methods import psi, psi_test, sketch_cdf

DECIMALS = 10


@pytest.mark.parametrize("n_ref,n_cur", [(50, 40), (800, 1200), (20_000, 30_000)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ks_statistic_and_p_value_equal_scipy(n_ref: int, n_cur: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, n_ref)
    cur = rng.standard_t(5, n_cur) * 1.1 + 0.05
    expected = stats.ks_2samp(ref, cur)
    result = KSDetector().fit(ref).test(cur)
    assert result.statistic == expected.statistic
    assert result.p_value == expected.pvalue


def test_ks_with_ties_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 8, 500).astype(float)
    cur = rng.integers(0, 9, 700).astype(float)
    assert KSDetector().fit(ref).test(cur).statistic == stats.ks_2samp(ref, cur).statistic


def test_psi_hand_computed_example() -> None:
    # Reference 0..9 (10 values); 2 quantile bins: the median edge np.quantile(0..9, 0.5) = 4.5,
    # bins (-inf, 4.5] and (4.5, inf) -> reference counts 5 and 5, proportions r = (0.5, 0.5).
    # Current: 8 values <= 4.5 and 2 above -> proportions c = (0.8, 0.2).
    # PSI = (0.8 - 0.5)·ln(0.8/0.5) + (0.2 - 0.5)·ln(0.2/0.5)
    #     = 0.3·ln 1.6 + (-0.3)·ln 0.4 = 0.3·0.4700036 + 0.3·0.9162907 = 0.4158883
    ref = np.arange(10.0)
    cur = np.array([0, 1, 1, 2, 3, 3, 4, 4, 7, 9], dtype=float)
    result = PSIDetector(bins=2).fit(ref).test(cur)
    assert round(result.statistic, 7) == 0.4158883
    assert result.statistic == pytest.approx(0.3 * math.log(1.6) - 0.3 * math.log(0.4))
    # Null: PSI/(1/M + 1/N) = 0.4158883/0.2 = 2.0794 ~ χ²(1): p = 0.1493 (scipy.stats.chi2.sf).
    assert round(result.p_value, 4) == 0.1493
    # Threshold max(0.1, (1/10 + 1/10)·χ²_0.99(1) = 0.2·6.6349) = 1.32698: no drift at n = 10.
    assert round(result.threshold, 5) == 1.32698
    assert result.drifted is False


def test_psi_empty_bin_floor() -> None:
    # r = (0.5, 0.5), c = (1.0, 0.0): the empty bin gets 1e-4 (not renormalised):
    # (1 - 0.5)·ln(1/0.5) + (1e-4 - 0.5)·ln(1e-4/0.5)
    #   = 0.5·0.6931472 + (-0.4999)·(-8.5171932) = 0.3465736 + 4.2577449 = 4.6043185
    value = psi(np.array([0.5, 0.5]), np.array([1.0, 0.0]), floor=1e-4)
    expected = 0.5 * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert round(value, DECIMALS) == round(expected, DECIMALS)
    assert round(value, 6) == 4.604318


def _psi_false_positive_rate(m: int, n: int, reps: int, alpha: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        ref, cur = rng.normal(size=m), rng.normal(size=n)
        # min_psi=0: the pure sample-size-aware null quantile, as calibrated here.
        hits += PSIDetector(alpha=alpha, min_psi=0.0, histogram=False).fit(ref).test(cur).drifted
    return hits / reps


def test_psi_null_threshold_is_calibrated_quick() -> None:
    # 300 replications at alpha = 0.1: false-positive rate ± 3 binomial s.e. (0.052).
    rate = _psi_false_positive_rate(5_000, 5_000, 300, 0.1, seed=11)
    assert abs(rate - 0.1) < 3 * math.sqrt(0.1 * 0.9 / 300)


@pytest.mark.slow
def test_psi_null_threshold_is_calibrated_full() -> None:
    for alpha in (0.05, 0.01):
        rate = _psi_false_positive_rate(100_000, 50_000, 2_000, alpha, seed=12)
        assert abs(rate - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / 2_000)


def test_psi_threshold_shrinks_with_sample_size() -> None:
    counts = np.full(10, 100.0)
    small = psi_test(counts, counts, alpha=0.01, min_psi=0.0).threshold
    big = psi_test(counts * 1000, counts * 1000, alpha=0.01, min_psi=0.0).threshold
    # (1/M + 1/N)·χ²_0.99(9) with M = N = 1000 vs 1e6: 0.002·21.666 vs 2e-6·21.666.
    assert small == pytest.approx(0.002 * stats.chi2.isf(0.01, 9))
    assert big == pytest.approx(small / 1000)
    # The effect floor keeps huge samples from flagging negligible shifts.
    assert psi_test(counts * 1000, counts * 1000, alpha=0.01).threshold == 0.1


def test_chi_square_equals_scipy_contingency_with_unseen_category() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    cur = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 25 + ["new"] * 15)  # "new" unseen
    result = ChiSquareDetector().fit(ref).test(cur)
    table = np.array([[50, 30, 20, 0], [30, 30, 25, 15]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.threshold == pytest.approx(stats.chi2.isf(0.01, 3))
    assert result.drifted is True
    assert "new" in result.histogram.labels


def test_js_distance_equals_scipy_base_2() -> None:
    ref = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    cur = np.array(["a"] * 300 + ["b"] * 300 + ["c"] * 250 + ["d"] * 150)
    result = JSDetector().fit(ref).test(cur)
    expected = jensenshannon([0.5, 0.3, 0.2, 0.0], [0.3, 0.3, 0.25, 0.15], base=2)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= result.statistic <= 1.0
    # Disjoint supports are maximally far apart in base 2.
    disjoint = JSDetector().fit(np.array(["x"] * 10)).test(np.array(["y"] * 10))
    assert disjoint.statistic == pytest.approx(1.0)


def test_js_null_threshold_matches_its_chi_square_approximation() -> None:
    counts = np.full(5, 2000.0)
    from arbiter.drift.methods import js_test

    t = js_test(counts, counts, alpha=0.05, min_distance=0.0).threshold
    # d* = sqrt((1/M + 1/N)·χ²_0.95(4) / (8 ln 2)), M = N = 10_000
    assert t == pytest.approx(math.sqrt(2e-4 * stats.chi2.isf(0.05, 4) / (8 * math.log(2))))


def test_wasserstein_equals_scipy_divided_by_reference_std() -> None:
    rng = np.random.default_rng(5)
    ref = rng.gamma(2.0, 3.0, 4000)
    cur = rng.gamma(2.2, 3.0, 3000)
    result = WassersteinDetector().fit(ref).test(cur)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)  # population std (ddof 0)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value is None
    # Scale invariance: the normalised distance is unit-free.
    scaled = WassersteinDetector().fit(ref * 100).test(cur * 100)
    assert scaled.statistic == pytest.approx(result.statistic, rel=1e-9)


def test_wasserstein_zero_spread_reference_is_a_status() -> None:
    result = WassersteinDetector().fit(np.ones(50)).test(np.arange(50.0))
    assert result.status == "zero_reference_spread"
    assert result.drifted is False


def test_sketch_cdf_is_right_continuous_at_atoms() -> None:
    q = np.array([0.0, 1.0, 1.0, 1.0, 2.0])  # levels 0, .25, .5, .75, 1
    assert sketch_cdf(q, np.array([1.0]))[0] == 0.75
    assert sketch_cdf(q, np.array([0.5]))[0] == pytest.approx(0.125)
    assert sketch_cdf(q, np.array([-1.0, 3.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_profile_ks_is_close_to_exact(shift: float) -> None:
    rng = np.random.default_rng(7)
    ref = rng.lognormal(0, 1, 200_000)
    cur = rng.lognormal(shift, 1, 5_000)
    exact = KSDetector().fit(ref).test(cur)
    profile = build_profile({"x": ref}).column("x")  # sketch of 1,001 quantiles
    approx = KSDetector().fit(profile).test(cur)
    # Documented bound: within ~1/K (K = 1000) of the exact statistic.
    assert abs(approx.statistic - exact.statistic) <= 1.5e-3
    assert approx.drifted == exact.drifted


def test_profile_wasserstein_is_close_to_exact() -> None:
    rng = np.random.default_rng(8)
    ref = rng.normal(0, 2, 100_000)
    cur = rng.normal(0.5, 2, 20_000)
    exact = WassersteinDetector().fit(ref).test(cur).statistic
    approx = WassersteinDetector().fit(build_profile({"x": ref}).column("x")).test(cur).statistic
    assert approx == pytest.approx(exact, rel=0.02)


def test_profile_psi_with_other_bins_rebins_from_the_sketch() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=50_000), rng.normal(0.2, size=20_000)
    exact = PSIDetector(bins=20).fit(ref).test(cur).statistic
    profile = build_profile({"x": ref}, bins=10).column("x")
    approx = PSIDetector(bins=20).fit(profile).test(cur).statistic
    assert approx == pytest.approx(exact, rel=0.05)
