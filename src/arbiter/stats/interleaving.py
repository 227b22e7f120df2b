"""Interleaving tests for rankers: which of A and B do users prefer when their results are mixed?

Each interleaved impression yields a win for A, a win for B or a tie (by credited clicks,
e.g. team-draft interleaving). The outcome statistic is

    Δ = (wins_A − wins_B) / (wins_A + wins_B + ties)

(Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale validation and analysis of
interleaved search evaluation", *ACM TOIS* 30(1)), positive when A is preferred.

Impressions from one user are correlated (the same tastes, repeated queries), so treating
them as independent understates the variance and overstates significance.
:func:`clustered_interleaving_test` takes per-user counts and uses the cluster-robust variance
of the ratio estimator Δ = Σy_u / Σn_u (``y_u = wins_A,u − wins_B,u``, ``n_u`` impressions):

    Var(Δ) = G/(G − 1) · Σ_u (y_u − Δ·n_u)² / (Σ_u n_u)²

with G users: the CR1 sandwich of an intercept-only regression clustered by user (Liang &
Zeger 1986; Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust Inference",
*J. Human Resources* 50(2)), equal to the delta-method variance of a ratio of means (Deng,
Knoblich & Lu 2018). With one impression per user it reduces to the i.i.d. variance.
The CI and p-value use Student's t with ``G − 1`` degrees of freedom, as Cameron & Miller
(2015, §VI.C) recommend for CR1 with few clusters (it is also what Stata and statsmodels'
``cov_type="cluster"`` with ``use_t`` do); with many users it equals the normal test.

:func:`interleaving_confidence_sequence` turns the clustered result into an always-valid
interval and p-value (the asymptotic confidence sequence of
:func:`arbiter.stats.sequential.cs_halfwidth` with one observation per user), for an
experiment that is looked at repeatedly and stopped at the first decisive look.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN, check_alpha, interval, p_value_from_statistic
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_ZERO_VARIANCE,
    InterleavingResult,
)
from arbiter.stats.sequential import always_valid_p_value, cs_halfwidth


def _sign_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact binomial test of wins vs losses, ties excluded (Dixon & Mood 1946)."""
    if wins_a + wins_b == 0:
        return 1.0
    return float(_st.binomtest(wins_a, wins_a + wins_b, 0.5).pvalue)


def _counts(values: ArrayLike, field: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(
            f"{field} must be one-dimensional, got shape {arr.shape}", field=field
        )
    if arr.size and (
        not np.issubdtype(arr.dtype, np.number) or np.any(arr < 0) or np.any(arr != np.floor(arr))
    ):
        raise InvalidInputError(f"{field} must hold non-negative integer counts", field=field)
    return arr.astype(np.int64)


def _result(
    delta: float,
    var: float,
    alpha: float,
    sign_p: float,
    wins_a: int,
    wins_b: int,
    ties: int,
    n_clusters: int,
    method: str,
    dof: float = math.inf,
) -> InterleavingResult:
    total = wins_a + wins_b + ties
    if var <= 0.0:
        return InterleavingResult(
            delta, 0.0, delta, delta, NAN, NAN, sign_p, wins_a, wins_b, ties, total,
            n_clusters, alpha, method, STATUS_ZERO_VARIANCE,
        )  # fmt: skip
    se = math.sqrt(var)
    z = delta / se
    lo, hi = interval(delta, se, alpha, "two-sided", dof)
    return InterleavingResult(
        delta, se, lo, hi, z, p_value_from_statistic(z, "two-sided", dof), sign_p,
        wins_a, wins_b, ties, total, n_clusters, alpha, method, STATUS_OK,
    )  # fmt: skip


def interleaving_test(
    wins_a: int, wins_b: int, ties: int, *, alpha: float = 0.05
) -> InterleavingResult:
    """Interleaving test treating impressions as independent.

    Parameters
    ----------
    wins_a, wins_b, ties : int
        Impressions won by A, won by B, and tied (including impressions without clicks, if
        the analysis counts them).
    alpha : float, default 0.05
        Interval coverage ``1 − alpha``.

    Returns
    -------
    InterleavingResult
        ``delta`` with a normal CI and z-test using the sample variance of the per-impression
        outcome ``o ∈ {+1, −1, 0}``: ``Var(Δ) = s²/N``,
        ``s² = (wins_A + wins_B − N·Δ²)/(N − 1)``; and the sign test of wins against losses.
        ``status`` is ``"insufficient_data"`` below two impressions and ``"zero_variance"``
        when every impression has the same outcome.

    Notes
    -----
    Only valid if each user contributes about one impression; otherwise use
    :func:`clustered_interleaving_test`.
    """
    wa, wb, t = (int(x) for x in _counts([wins_a, wins_b, ties], "counts"))
    alpha = check_alpha(alpha)
    method = "interleaving delta, per-impression z-test; exact sign test on wins vs losses"
    n = wa + wb + t
    sign_p = _sign_test(wa, wb)
    if n < 2:
        delta = (wa - wb) / n if n else NAN
        return InterleavingResult(
            delta, NAN, NAN, NAN, NAN, NAN, sign_p, wa, wb, t, n, n, alpha, method,
            STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    delta = (wa - wb) / n
    # Decided in integers: the variance is zero exactly when every impression has one outcome.
    s2 = 0.0 if max(wa, wb, t) == n else ((wa + wb) - n * delta**2) / (n - 1)
    return _result(delta, s2 / n, alpha, sign_p, wa, wb, t, n, method)


def clustered_interleaving_test(
    wins_a: ArrayLike, wins_b: ArrayLike, ties: ArrayLike, *, alpha: float = 0.05
) -> InterleavingResult:
    """Interleaving test with per-user counts and a cluster-robust variance.

    Parameters
    ----------
    wins_a, wins_b, ties : array-like of int, shape (n_users,)
        Per-user counts of impressions won by A, won by B and tied. Users with no impressions
        are dropped (they carry no information and would inflate ``G``).
    alpha : float, default 0.05
        Interval coverage ``1 − alpha``.

    Returns
    -------
    InterleavingResult
        ``delta`` over all impressions, its cluster-robust standard error (module docstring),
        and the CI and test from Student's t with ``G − 1`` degrees of freedom (``statistic``
        is the t statistic). ``sign_test_p_value`` is the sign test at the user level: a user
        votes for A if they gave A more wins than B, and users without a preference are
        excluded, so correlated impressions count once. ``status`` is ``"insufficient_data"``
        with fewer than two users.
    """
    wa, wb, t = _counts(wins_a, "wins_a"), _counts(wins_b, "wins_b"), _counts(ties, "ties")
    if not wa.shape == wb.shape == t.shape:
        raise InvalidInputError(
            f"wins_a, wins_b and ties need one entry per user; got {wa.size}, {wb.size}, {t.size}",
            field="wins_a",
        )
    alpha = check_alpha(alpha)
    method = (
        "interleaving delta, cluster-robust (CR1, by user) t-test with G-1 df; "
        "exact sign test on per-user preferences"
    )
    n_u = wa + wb + t
    keep = n_u > 0
    wa, wb, t, n_u = wa[keep], wb[keep], t[keep], n_u[keep]
    y = (wa - wb).astype(float)
    g = int(n_u.size)
    total = int(n_u.sum())
    sum_a, sum_b, sum_t = int(wa.sum()), int(wb.sum()), int(t.sum())
    sign_p = _sign_test(int(np.sum(y > 0)), int(np.sum(y < 0)))
    if g < 2:
        delta = float(y.sum()) / total if total else NAN
        return InterleavingResult(
            delta, NAN, NAN, NAN, NAN, NAN, sign_p, sum_a, sum_b, sum_t, total, g, alpha,
            method, STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    delta = float(y.sum()) / total
    # Zero exactly when every user has the same per-impression mean, y_u/n_u = Σy/Σn; checked
    # in integers so that rounding cannot turn it into a spuriously tiny standard error.
    if np.all((wa - wb) * total == int(y.sum()) * n_u):
        var = 0.0
    else:
        resid = y - delta * n_u
        var = g / (g - 1) * float(np.sum(resid**2)) / float(total) ** 2
    return _result(delta, var, alpha, sign_p, sum_a, sum_b, sum_t, g, method, g - 1)


def interleaving_confidence_sequence(
    result: InterleavingResult, *, rho: float
) -> tuple[float, float, float]:
    """Always-valid ``(ci_low, ci_high, p_value)`` for Δ of a clustered interleaving result.

    Parameters
    ----------
    result : InterleavingResult
        From :func:`clustered_interleaving_test`.
    rho : float
        Mixing parameter of the confidence sequence
        (:func:`arbiter.stats.sequential.sequential_rho` of the number of users at which it
        should be tightest).

    Returns
    -------
    tuple of float
        The asymptotic confidence sequence of Waudby-Smith et al. (2023, eq. 9) around Δ with
        ``t = G`` users as the observations and ``SE²`` the cluster-robust variance (users
        are independent; their impressions are not), and the always-valid p-value
        ``1 / M_t`` of the same normal-mixture e-process, so ``p < alpha`` exactly when the
        sequence excludes 0. Unlike the t-test these hold simultaneously over every look,
        so the experiment may be checked after each batch and stopped when decisive. NaN
        when the result has no standard error (``status`` not ``"ok"``).
    """
    if result.status != STATUS_OK:
        return NAN, NAN, NAN
    g = result.n_clusters
    half = float(cs_halfwidth(result.standard_error, g, rho, result.alpha))
    p = float(always_valid_p_value(result.delta / result.standard_error, g, rho))
    return result.delta - half, result.delta + half, p


__all__ = ["clustered_interleaving_test", "interleaving_confidence_sequence", "interleaving_test"]
