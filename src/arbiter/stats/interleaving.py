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

Few or unequal clusters
-----------------------
CR1 with Student's t on ``G − 1`` df is right when users are many and alike. Under heavy
activity skew (a few users with most impressions, e.g. Pareto(1.2) activity) the variance
rests on a handful of users, CR1 is biased down, and the t-test over-rejects: 12.4 % of A/A
runs at ``alpha = 0.05`` in ``benchmarks/validity.py``. So the default
(``small_sample="cr2"``) is the **CR2** variance with **Bell–McCaffrey** degrees of freedom
(Bell & McCaffrey 2002; Imbens & Kolesár 2016, *REStat* 98(4); Pustejovsky & Tipton 2018),
which for this intercept-only model have closed forms in the users' shares
``p_g = n_g / N``:

    Var_CR2(Δ) = Σ_g e_g² / (1 − p_g) / N²,    e_g = y_g − Δ·n_g
    df_BM = 1 / [Σ p_g² + (Σ q_g)² − Σ q_g²],  q_g = p_g² / (1 − p_g)

(the CR2 adjustment ``(I − H_gg)^(-1/2)`` maps a user's residual sum to ``e_g / sqrt(1 − p_g)``;
df_BM is ``(tr B)² / tr(B²)`` of the Bell–McCaffrey matrix, whose trace is 1 here). With equal
activity df_BM = G − 1 and CR2 ≈ CR1, so nothing changes; under skew df_BM falls towards the
**effective number of clusters** ``1 / Σ p_g²`` and the test widens accordingly (5.3 % in the
same benchmark). ``small_sample="cr1"`` gives the plain CR1 test with ``G − 1`` df (what
Stata and statsmodels' ``cov_type="cluster"`` with ``use_t`` do). Both are reported in the
result (``dof``, ``effective_clusters``), and :data:`FEW_CLUSTERS` is the df below which the
analyses warn.

:func:`interleaving_confidence_sequence` turns the clustered result into an always-valid
interval and p-value (the asymptotic confidence sequence of
:func:`arbiter.stats.sequential.cs_halfwidth` with one observation per user), for an
experiment that is looked at repeatedly and stopped at the first decisive look. Its
statistic is first calibrated to the Bell–McCaffrey t distribution (the t statistic is
mapped to the normal quantile of the same tail probability), so the same small-cluster
correction carries over; without it the sequence rejected 20 % of Pareto(1.2) A/A runs over
30 looks, with it about 2.5 % (``docs/benchmarks_stats_validity.md``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special as _sp

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN, check_alpha, interval, p_value_from_statistic
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_ZERO_VARIANCE,
    InterleavingResult,
)
from arbiter.stats.sequential import always_valid_p_value, cs_halfwidth

#: Bell–McCaffrey degrees of freedom below which a clustered result counts as resting on few
#: effective clusters (the analyses warn; Cameron & Miller 2015 put "few" at 20–50).
FEW_CLUSTERS = 30.0


def _sign_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact binomial test of wins vs losses, ties excluded (Dixon & Mood 1946).

    At p = 1/2 the distribution is symmetric, so the two-sided p-value (scipy's
    ``binomtest``, which the tests compare against) is twice the smaller tail, computed here
    with the binomial CDF directly (a hundred times faster, for the validity simulations).
    """
    n = wins_a + wins_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * _sp.bdtr(min(wins_a, wins_b), n, 0.5)))


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
    effective: float = NAN,
) -> InterleavingResult:
    total = wins_a + wins_b + ties
    if var <= 0.0:
        return InterleavingResult(
            delta, 0.0, delta, delta, NAN, NAN, sign_p, wins_a, wins_b, ties, total,
            n_clusters, alpha, method, STATUS_ZERO_VARIANCE, dof, effective,
        )  # fmt: skip
    se = math.sqrt(var)
    z = delta / se
    if math.isinf(dof):
        lo, hi = interval(delta, se, alpha, "two-sided", dof)
        p = p_value_from_statistic(z, "two-sided", dof)
    else:  # Student's t through scipy.special: a non-integer df freezes slowly in scipy.stats
        q = float(_sp.stdtrit(dof, 1.0 - alpha / 2.0))
        lo, hi = delta - q * se, delta + q * se
        p = float(min(1.0, 2.0 * _sp.stdtr(dof, -abs(z))))
    return InterleavingResult(
        delta, se, lo, hi, z, p, sign_p,
        wins_a, wins_b, ties, total, n_clusters, alpha, method, STATUS_OK, dof, effective,
    )  # fmt: skip


def bell_mccaffrey_dof(sizes: ArrayLike) -> float:
    """Bell–McCaffrey degrees of freedom of a clustered mean with cluster sizes ``sizes``.

    ``1 / [Σ p² + (Σ q)² − Σ q²]`` with ``p = n_g / N`` and ``q = p² / (1 − p)`` (module
    docstring): ``G − 1`` for equal sizes, towards ``1 / Σ p²`` under skew. NaN below two
    clusters.
    """
    n = np.asarray(sizes, dtype=float)
    n = n[n > 0]
    if n.size < 2:
        return NAN
    p = n / n.sum()
    q = p * p / (1.0 - p)
    return float(1.0 / (np.sum(p * p) + q.sum() ** 2 - np.sum(q * q)))


def effective_clusters(sizes: ArrayLike) -> float:
    """Effective number of clusters ``(Σ n_g)² / Σ n_g²`` (``G`` when sizes are equal)."""
    n = np.asarray(sizes, dtype=float)
    total = float(n.sum())
    return total * total / float(np.sum(n * n)) if total > 0 else NAN


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
    wins_a: ArrayLike,
    wins_b: ArrayLike,
    ties: ArrayLike,
    *,
    alpha: float = 0.05,
    small_sample: Literal["cr2", "cr1"] = "cr2",
) -> InterleavingResult:
    """Interleaving test with per-user counts and a cluster-robust variance.

    Parameters
    ----------
    wins_a, wins_b, ties : array-like of int, shape (n_users,)
        Per-user counts of impressions won by A, won by B and tied. Users with no impressions
        are dropped (they carry no information and would inflate ``G``).
    alpha : float, default 0.05
        Interval coverage ``1 − alpha``.
    small_sample : {"cr2", "cr1"}, default "cr2"
        ``"cr2"``: CR2 variance with Bell–McCaffrey degrees of freedom, right also when a few
        users carry most impressions; ``"cr1"``: CR1 with ``G − 1`` df (module docstring).

    Returns
    -------
    InterleavingResult
        ``delta`` over all impressions, its cluster-robust standard error (module docstring),
        and the CI and test from Student's t with ``dof`` degrees of freedom (``statistic``
        is the t statistic); ``effective_clusters`` is ``1 / Σ p_g²``.
        ``sign_test_p_value`` is the sign test at the user level: a user votes for A if they
        gave A more wins than B, and users without a preference are excluded, so correlated
        impressions count once. ``status`` is ``"insufficient_data"``
        with fewer than two users.
    """
    wa, wb, t = _counts(wins_a, "wins_a"), _counts(wins_b, "wins_b"), _counts(ties, "ties")
    if not wa.shape == wb.shape == t.shape:
        raise InvalidInputError(
            f"wins_a, wins_b and ties need one entry per user; got {wa.size}, {wb.size}, {t.size}",
            field="wins_a",
        )
    alpha = check_alpha(alpha)
    if small_sample not in ("cr2", "cr1"):
        raise InvalidInputError(
            f"small_sample must be 'cr2' or 'cr1', got {small_sample!r}", field="small_sample"
        )
    method = (
        "interleaving delta, cluster-robust (CR2, by user) t-test with Bell-McCaffrey df; "
        if small_sample == "cr2"
        else "interleaving delta, cluster-robust (CR1, by user) t-test with G-1 df; "
    ) + "exact sign test on per-user preferences"
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
            method, STATUS_INSUFFICIENT_DATA, math.inf, effective_clusters(n_u),
        )  # fmt: skip
    delta = float(y.sum()) / total
    share = n_u / float(total)
    # Zero exactly when every user has the same per-impression mean, y_u/n_u = Σy/Σn; checked
    # in integers so that rounding cannot turn it into a spuriously tiny standard error.
    if np.all((wa - wb) * total == int(y.sum()) * n_u):
        var = 0.0
    else:
        resid = y - delta * n_u
        if small_sample == "cr2":
            var = float(np.sum(resid**2 / (1.0 - share))) / float(total) ** 2
        else:
            var = g / (g - 1) * float(np.sum(resid**2)) / float(total) ** 2
    dof = bell_mccaffrey_dof(n_u) if small_sample == "cr2" else float(g - 1)
    return _result(
        delta, var, alpha, sign_p, sum_a, sum_b, sum_t, g, method, dof, effective_clusters(n_u)
    )


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
        sequence excludes 0. With a finite ``result.dof`` the t statistic is first mapped to
        the normal quantile of its tail probability under Student's t with ``dof`` df, and
        the half-width is the matching t quantile times SE (module docstring): a
        small-sample calibration, not a theorem, measured in the validity benchmark. Unlike
        the t-test these hold simultaneously over every look, so the experiment may be
        checked after each batch and stopped when decisive. NaN when the result has no
        standard error (``status`` not ``"ok"``).
    """
    if result.status != STATUS_OK:
        return NAN, NAN, NAN
    g = result.n_clusters
    se = result.standard_error
    t_stat = result.delta / se
    z_crit = float(cs_halfwidth(1.0, g, rho, result.alpha))
    if math.isfinite(result.dof):
        # Same tail probability under t(dof) and N(0, 1): z = Φ⁻¹(F_t(|t|)), sign kept.
        z = math.copysign(-float(_sp.ndtri(_sp.stdtr(result.dof, -abs(t_stat)))), t_stat)
        crit = float(_sp.stdtrit(result.dof, _sp.ndtr(z_crit)))
    else:
        z, crit = t_stat, z_crit
    p = float(always_valid_p_value(z, g, rho))
    return result.delta - crit * se, result.delta + crit * se, p


__all__ = [
    "FEW_CLUSTERS",
    "bell_mccaffrey_dof",
    "clustered_interleaving_test",
    "effective_clusters",
    "interleaving_confidence_sequence",
    "interleaving_test",
]
