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
from arbiter.stats.interleaving import (
    bell_mccaffrey_dof,
    clustered_interleaving_test,
    effective_clusters,
    interleaving_confidence_sequence,
    interleaving_test,
)
from arbiter.stats.sequential import always_valid_p_value, cs_halfwidth, sequential_rho
from arbiter.stats.verdict import decide_interleaving

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
    res = clustered_interleaving_test(wa, wb, t, small_sample="cr1")
    o, g = impression_outcomes(wa, wb, t)
    if res.status == "zero_variance":
        # Every user has the same per-impression mean: the cluster-robust variance is 0.
        np.testing.assert_allclose((wa - wb) / sizes, res.delta, rtol=1e-12)
        return
    fit = sm.OLS(o, np.ones_like(o)).fit(cov_type="cluster", cov_kwds={"groups": g})
    assert res.delta == pytest.approx(fit.params[0], rel=RTOL, abs=1e-15)
    assert res.standard_error == pytest.approx(fit.bse[0], rel=RTOL)
    assert res.dof == users - 1
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


def _cr2_by_matrices(o: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """CR2 variance and Bell-McCaffrey df of the intercept-only OLS, from the textbook matrices.

    V = (X'X)^-1 Σ_g X_g' A_g e_g e_g' A_g X_g (X'X)^-1 with A_g = (I - H_gg)^(-1/2), and
    df = (tr B)^2 / tr(B^2), B = G'G, G's column g = (I - H)_g' A_g X_g (X'X)^-1 (Bell &
    McCaffrey 2002; Imbens & Kolesar 2016, eq. 9): an independent reference for the closed
    forms of :func:`clustered_interleaving_test`.
    """
    n = o.size
    x = np.ones((n, 1))
    xtx_inv = np.linalg.inv(x.T @ x)
    h = x @ xtx_inv @ x.T
    e = o - x @ (xtx_inv @ x.T @ o)
    meat = np.zeros((1, 1))
    cols = []
    for c in np.unique(g):
        idx = np.flatnonzero(g == c)
        w, v = np.linalg.eigh(np.eye(idx.size) - h[np.ix_(idx, idx)])
        a = v @ np.diag(1.0 / np.sqrt(w)) @ v.T
        u = x[idx].T @ a @ e[idx]
        meat += np.outer(u, u)
        cols.append((np.eye(n) - h)[:, idx] @ a @ x[idx] @ xtx_inv)
    var = float((xtx_inv @ meat @ xtx_inv)[0, 0])
    big = np.hstack(cols)
    b = big.T @ big
    return var, float(np.trace(b) ** 2 / np.trace(b @ b))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), users=st.integers(2, 25))
def test_cr2_and_bell_mccaffrey_match_the_matrix_formulas(seed: int, users: int) -> None:
    rng = np.random.default_rng(seed)
    # Skewed sizes, capped so the N x N reference matrices stay small.
    sizes = np.clip(np.floor(rng.pareto(1.2, users) * 3), 1, 40).astype(int)
    taste = rng.uniform(0.1, 0.9, users)
    wa = rng.binomial(sizes, taste * 0.6)
    wb = rng.binomial(sizes - wa, 0.5)
    t = sizes - wa - wb
    res = clustered_interleaving_test(wa, wb, t)
    o, g = impression_outcomes(wa, wb, t)
    var, dof = _cr2_by_matrices(o, g)
    assert res.dof == pytest.approx(dof, rel=1e-7)
    assert bell_mccaffrey_dof(sizes) == pytest.approx(dof, rel=1e-7)
    if res.status == "ok":
        assert res.standard_error**2 == pytest.approx(var, rel=1e-7)
        assert res.p_value == pytest.approx(
            2 * sps.t.sf(abs(res.delta) / math.sqrt(var), dof), rel=1e-6
        )
    assert res.effective_clusters == pytest.approx(sizes.sum() ** 2 / np.sum(sizes**2))


def test_equal_activity_gives_g_minus_one_df_and_skew_fewer() -> None:
    assert bell_mccaffrey_dof([4] * 50) == pytest.approx(49)
    assert effective_clusters([4] * 50) == pytest.approx(50)
    skewed = [1000] + [1] * 99
    assert bell_mccaffrey_dof(skewed) < 3 and effective_clusters(skewed) < 2


def test_confidence_sequence_is_the_normal_mixture_with_infinite_dof() -> None:
    rng = np.random.default_rng(4)
    counts = np.array([rng.multinomial(3, [0.4, 0.45, 0.15]) for _ in range(300)])
    res = clustered_interleaving_test(*counts.T, small_sample="cr1")
    rho = sequential_rho(0.05, 200)
    z_only = res.__class__(**{**res.to_dict(), "dof": math.inf})
    lo, hi, p = interleaving_confidence_sequence(z_only, rho=rho)
    half = float(cs_halfwidth(res.standard_error, 300, rho, 0.05))
    assert (lo, hi) == pytest.approx((res.delta - half, res.delta + half), rel=1e-12)
    assert p == pytest.approx(float(always_valid_p_value(res.statistic, 300, rho)), rel=1e-12)
    # With a finite dof the sequence is wider and the p-value larger, and p < alpha exactly
    # when the sequence excludes 0.
    lo_t, hi_t, p_t = interleaving_confidence_sequence(res, rho=rho)
    assert hi_t - lo_t > hi - lo and p_t >= p
    assert (p_t < 0.05) == (not lo_t <= 0.0 <= hi_t)


def test_verdict_reports_effective_users_and_warns_when_few() -> None:
    # One user with most impressions among 60: few effective clusters.
    wa = np.array([300] + [2] * 59)
    wb = np.array([250] + [1] * 59)
    t = np.array([50] + [1] * 59)
    res = clustered_interleaving_test(wa, wb, t)
    assert res.dof < 5 and res.effective_clusters < 3
    v = decide_interleaving(res, int((wa + wb + t).sum()), alpha=0.05, min_sample=10)
    detail = next(c for c in v.reasons if c.name == "test").detail
    assert "60 users" in detail and "effective" in detail and "warning: few effective" in detail
    even = clustered_interleaving_test([2] * 60, [1] * 60, [1] * 60)
    v_even = decide_interleaving(even, 240, alpha=0.05, min_sample=10)
    assert "warning" not in next(c for c in v_even.reasons if c.name == "test").detail


@pytest.mark.parametrize("seed", range(3))
def test_always_valid_p_is_never_below_the_fixed_horizon_p(seed: int) -> None:
    """Issue 17 item 9: the report seemed to show an always-valid p below the fixed-horizon
    one. It cannot be: 1/M_t >= the t-test's p at every z (the mixture pays for peeking),
    and the interval is wider. The printed ``1.151e-12`` beside ``4.083e-16`` only read as
    smaller; both now print as ``< 0.0001`` (arbiter.report.format.format_p_value)."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        users = int(rng.integers(5, 400))
        n = rng.integers(1, 20, size=users)
        wins_b = rng.binomial(n, rng.uniform(0.2, 0.8))
        ties = rng.integers(0, 3, size=users)
        res = clustered_interleaving_test(n - wins_b, wins_b, ties, alpha=0.05)
        if res.status != "ok":
            continue
        for target in (2, 50, 200, 1000):
            lo, hi, p = interleaving_confidence_sequence(res, rho=sequential_rho(0.05, target))
            assert p >= res.p_value * (1 - 1e-9)
            assert hi - lo >= (res.ci_high - res.ci_low) * (1 - 1e-9)
