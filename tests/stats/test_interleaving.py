"""Interleaving tests: Δ and its variance vs statsmodels OLS (i.i.d. and clustered by user)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from arbiter.errors import InvalidInputError
from arbiter.stats.interleaving import clustered_interleaving_test, interleaving_test

DECIMALS = 9
RTOL = 1e-9


def impression_outcomes(wins_a, wins_b, ties) -> tuple[np.ndarray, np.ndarray]:
    """Expand per-user counts into per-impression outcomes (+1, −1, 0) and user ids."""
    outcomes, groups = [], []
    for user, (wa, wb, t) in enumerate(zip(wins_a, wins_b, ties, strict=True)):
        outcomes += [1.0] * wa + [-1.0] * wb + [0.0] * t
        groups += [user] * (wa + wb + t)
    return np.array(outcomes), np.array(groups)


@settings(max_examples=50, deadline=None)
@given(wins_a=st.integers(0, 3000), wins_b=st.integers(0, 3000), ties=st.integers(0, 3000))
def test_unclustered_matches_ols_and_binomtest(wins_a: int, wins_b: int, ties: int) -> None:
    res = interleaving_test(wins_a, wins_b, ties)
    n = wins_a + wins_b + ties
    assert res.sign_test_p_value == pytest.approx(
        sps.binomtest(wins_a, wins_a + wins_b).pvalue if wins_a + wins_b else 1.0, rel=RTOL
    )
    if n < 2 or res.status == "zero_variance":
        return
    o, _ = impression_outcomes([wins_a], [wins_b], [ties])
    fit = sm.OLS(o, np.ones_like(o)).fit()
    assert res.delta == pytest.approx(fit.params[0], rel=RTOL, abs=1e-15)
    assert res.standard_error == pytest.approx(fit.bse[0], rel=RTOL)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(fit.tvalues[0])), rel=1e-8, abs=1e-300)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), users=st.integers(2, 60))
def test_clustered_matches_statsmodels_cluster_robust_ols(seed: int, users: int) -> None:
    rng = np.random.default_rng(seed)
    taste = rng.uniform(0.1, 0.9, users)  # per-user preference for A: correlated impressions
    sizes = rng.integers(1, 30, users)
    wa = rng.binomial(sizes, taste * 0.6)
    wb = rng.binomial(sizes - wa, 0.5)
    t = sizes - wa - wb
    res = clustered_interleaving_test(wa, wb, t)
    o, g = impression_outcomes(wa, wb, t)
    if res.status == "zero_variance":
        # Every user has the same per-impression mean: the cluster-robust variance is 0.
        np.testing.assert_allclose((wa - wb) / sizes, res.delta, rtol=1e-12)
        return
    fit = sm.OLS(o, np.ones_like(o)).fit(cov_type="cluster", cov_kwds={"groups": g})
    assert res.delta == pytest.approx(fit.params[0], rel=RTOL, abs=1e-15)
    assert res.standard_error == pytest.approx(fit.bse[0], rel=RTOL)
    assert res.n_clusters == users and res.n_impressions == int(sizes.sum())
    prefs_a, prefs_b = int(np.sum(wa > wb)), int(np.sum(wb > wa))
    expected_sign = sps.binomtest(prefs_a, prefs_a + prefs_b).pvalue if prefs_a + prefs_b else 1.0
    assert res.sign_test_p_value == pytest.approx(expected_sign, rel=RTOL)


def test_one_impression_per_user_reduces_to_unclustered() -> None:
    wa = np.array([1] * 30 + [0] * 20 + [0] * 50)
    wb = np.array([0] * 30 + [1] * 20 + [0] * 50)
    t = 1 - wa - wb
    clustered = clustered_interleaving_test(wa, wb, t)
    plain = interleaving_test(30, 20, 50)
    assert clustered.delta == pytest.approx(plain.delta, rel=RTOL)
    assert clustered.standard_error == pytest.approx(plain.standard_error, rel=RTOL)


def test_clustering_widens_the_interval_for_heavy_users() -> None:
    # Two heavy users drive most wins: per-impression analysis is overconfident.
    wa, wb, t = [200, 5, 5, 5], [0, 5, 5, 5], [10, 5, 5, 5]
    clustered = clustered_interleaving_test(wa, wb, t)
    naive = interleaving_test(sum(wa), sum(wb), sum(t))
    assert clustered.delta == pytest.approx(naive.delta)
    assert clustered.standard_error > 3 * naive.standard_error
    assert naive.p_value < 1e-10 < clustered.p_value


def test_interleaving_golden() -> None:
    # Δ = (60 − 40)/200 = 0.1; s² = (100 − 200·0.01)/199; se = sqrt(s²/200)
    res = interleaving_test(60, 40, 100)
    assert round(res.delta, DECIMALS) == 0.1
    assert round(res.standard_error, DECIMALS) == round(math.sqrt(98 / 199 / 200), DECIMALS)
    assert round(res.sign_test_p_value, DECIMALS) == round(sps.binomtest(60, 100).pvalue, DECIMALS)


def test_interleaving_statuses_and_errors() -> None:
    assert interleaving_test(1, 0, 0).status == "insufficient_data"
    assert interleaving_test(0, 0, 0).status == "insufficient_data"
    all_a = interleaving_test(10, 0, 0)
    assert all_a.status == "zero_variance" and all_a.delta == 1.0
    assert all_a.sign_test_p_value == pytest.approx(2 * 0.5**10)
    assert clustered_interleaving_test([3, 0], [1, 0], [0, 0]).status == "insufficient_data"
    # Both users prefer B at the same rate (−4/12 = −3/9): zero cluster-robust variance.
    assert clustered_interleaving_test([2, 1], [6, 4], [4, 4]).status == "zero_variance"
    with pytest.raises(InvalidInputError):
        interleaving_test(-1, 2, 3)
    with pytest.raises(InvalidInputError):
        clustered_interleaving_test([1, 2], [1], [0, 0])
    with pytest.raises(InvalidInputError):
        clustered_interleaving_test([1.5, 2], [1, 1], [0, 0])
    with pytest.raises(InvalidInputError):
        interleaving_test(1, 1, 1, alpha=2.0)
