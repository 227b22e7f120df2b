"""Sequential tests that stay valid under continuous monitoring.

A fixed-horizon test looked at after every batch rejects a true null far more often than
``alpha`` (peeking). The two methods here control the type-I error *uniformly over time*:
the experiment may be inspected after every event and stopped at any data-dependent time.

``confidence_sequence``
    The asymptotic confidence sequence (CS) of Waudby-Smith, Arnold, Wu, Wang, Ramdas
    (2023), "Time-uniform central limit theory and asymptotic confidence sequences",
    arXiv:2103.06476 (v7), eq. (9) — the normal-mixture boundary GrowthBook's gbstats uses.
    For a stream of ``t`` i.i.d. observations with sample mean ``mu_hat_t`` and standard
    deviation ``sigma_hat_t``::

        C_t = mu_hat_t ± sigma_hat_t * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2)
                                              * log( sqrt(t rho^2 + 1) / alpha ) )

    For the difference of two arms, ``t = n_control + n_treatment`` and the per-observation
    variance is ``sigma^2 = t * SE^2`` with ``SE^2 = v_T / n_T + v_C / n_C`` (the variance of
    the difference in means; exactly the IPW pseudo-outcome variance when the allocation is
    fixed and the arms have the paper's common-mean structure, and asymptotically equivalent
    in general). The always-valid p-value is ``1 / M_t`` where ``M_t`` is the mixture
    e-process whose level-``alpha`` crossing the CS inverts.

``msprt``
    The mixture sequential probability ratio test of Johari, Koomen, Pekelis, Walsh,
    "Always valid inference: continuous monitoring of A/B tests", Operations Research 70(3),
    2022 (KDD 2017 "Peeking at A/B tests"): a normal mixture ``theta ~ N(theta_0, tau^2)``
    over the effect on the *effect scale*, and the running-minimum p-value
    ``p_n = min(p_{n-1}, 1 / Lambda_n)``.

The two are the same e-value under the substitution ``tau^2 = rho^2 sigma^2`` (shown in
:func:`msprt`), so they differ only in where the mixture scale is specified: ``rho`` per
observation (chosen from a target sample size), ``tau`` in metric units (chosen from the
effects one expects).

Choosing ``rho``. The CS half-width at ``t`` depends on ``u = t rho^2`` through
``(u + 1) / u * log(sqrt(u + 1) / alpha)``. Setting its derivative to zero gives
``u - log(u + 1) = -2 log(alpha)``, whose solution is ``u* = -W_{-1}(-alpha^2 / e) - 1``
(``W_{-1}`` the lower branch of Lambert's W). So the CS is tightest at ``t*`` when::

    rho = sqrt( (-W_{-1}(-alpha^2 / e) - 1) / t* )

GrowthBook (gbstats, citing eq. 161 of arXiv:2103.06476v7) uses one fixed-point step of the
same equation, ``u* ≈ -2 log(alpha) + log(-2 log(alpha) + 1)``; its ``rho`` is 1.7 % below
the exact minimiser at ``alpha = 0.05`` (0.5 % at 0.001, 3.6 % at 0.2), and the width at
``t*`` differs by far less since the width is flat at its minimum. For one-sided tests
``alpha`` is replaced by ``2 alpha`` (the one-sided boundary is close to the two-sided one
at twice the level).

Both methods are *asymptotic*: they plug in the sample variance and rely on the
time-uniform CLT, so they are reliable once each arm has a few hundred observations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from arbiter.errors import InvalidInputError
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic

Alternative = Literal["two-sided", "larger", "smaller"]
SequentialStatus = Literal["ok", "no_data", "insufficient_data", "zero_variance"]
# A RatioStatistic is a row-level metric analysed per randomisation unit (delta method).
ArmStatistic = ProportionStatistic | SampleMeanStatistic | RatioStatistic

_ALTERNATIVES: tuple[str, ...] = ("two-sided", "larger", "smaller")


@dataclass(frozen=True, slots=True)
class SequentialConfig:
    """Tuning of the sequential tests.

    Parameters
    ----------
    target_sample_size : float, default=5000
        Total observations (both arms together) at which the confidence sequence should be
        tightest; sets ``rho`` (module docstring). Use the planned total sample size.
    rho : float or None, default=None
        Explicit mixing parameter; overrides ``target_sample_size``.
    tau : float or None, default=None
        mSPRT mixture standard deviation on the effect scale (metric units). ``None`` uses
        ``tau = rho * sigma_hat``, which makes :func:`msprt` coincide with the CS e-value.
    null_value : float, default=0.0
        Difference (treatment - control) under the null hypothesis.
    """

    target_sample_size: float = 5000.0
    rho: float | None = None
    tau: float | None = None
    null_value: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_sample_size) and self.target_sample_size > 0):
            raise InvalidInputError(
                f"target_sample_size must be a positive number, got {self.target_sample_size!r}",
                field="target_sample_size",
            )
        if self.rho is not None and not (math.isfinite(self.rho) and self.rho > 0):
            raise InvalidInputError(
                f"rho must be a positive number or None, got {self.rho!r}", field="rho"
            )
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau > 0):
            raise InvalidInputError(
                f"tau must be a positive number or None, got {self.tau!r}", field="tau"
            )
        if not math.isfinite(self.null_value):
            raise InvalidInputError(
                f"null_value must be finite, got {self.null_value!r}", field="null_value"
            )


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """Outcome of a sequential two-sample test (difference = treatment - control).

    Attributes
    ----------
    estimate : float
        Difference in means (or proportions), treatment minus control.
    ci_low, ci_high : float
        Confidence-sequence bounds at the current time; infinite on the untested side of a
        one-sided test, and ``(-inf, inf)`` when the data are degenerate.
    p_value : float
        Always-valid p-value (valid at any stopping time).
    significant : bool
        ``p_value < alpha``.
    method : str
        ``"asymptotic_cs"`` or ``"msprt"``.
    status : str
        ``"ok"``, or why the test could not be computed: ``"no_data"`` (an arm has n=0),
        ``"insufficient_data"`` (an arm of a continuous metric has n<2),
        ``"zero_variance"`` (the difference has zero estimated variance).
    std_error : float
        Standard error of ``estimate``.
    rho : float
        Mixing parameter used (per-observation scale).
    n : int
        Total observations (both arms).
    alpha : float
        Level the bounds and ``significant`` refer to.
    alternative : str
        ``"two-sided"``, ``"larger"`` (treatment > control) or ``"smaller"``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    method: str
    status: SequentialStatus
    std_error: float
    rho: float
    n: int
    alpha: float
    alternative: Alternative

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values (nested dataclasses too)."""
        return asdict(self)


def sequential_rho(
    alpha: float, target_sample_size: float, alternative: Alternative = "two-sided"
) -> float:
    """Mixing parameter ``rho`` that makes the confidence sequence tightest at a sample size.

    ``rho = sqrt((-W_{-1}(-alpha'^2 / e) - 1) / target_sample_size)`` with ``alpha' = alpha``
    (two-sided) or ``2 alpha`` (one-sided); see the module docstring for the derivation.

    Parameters
    ----------
    alpha : float
        Significance level in (0, 1) (below 0.5 for one-sided tests).
    target_sample_size : float
        Total observations at which the width should be minimal.
    alternative : {"two-sided", "larger", "smaller"}
        Sidedness of the test.

    Returns
    -------
    float
        ``rho > 0``.
    """
    _check_alpha(alpha, alternative)
    if not (math.isfinite(target_sample_size) and target_sample_size > 0):
        raise InvalidInputError(
            f"target_sample_size must be positive, got {target_sample_size!r}",
            field="target_sample_size",
        )
    a = alpha if alternative == "two-sided" else 2.0 * alpha
    # Stationary point of the eq. (9) half-width in u = t rho^2: u - log(u+1) = -2 log(alpha).
    u = -float(np.real(special.lambertw(-(a * a) / math.e, k=-1))) - 1.0
    return math.sqrt(u / target_sample_size)


def cs_halfwidth(
    std_error: npt.ArrayLike, n: npt.ArrayLike, rho: float, alpha: float
) -> npt.NDArray[np.float64]:
    """Half-width of the two-sided asymptotic confidence sequence, eq. (9).

    Parameters
    ----------
    std_error : array_like
        Standard error of the estimate (``sigma_hat / sqrt(n)``).
    n : array_like
        Total observations ``t``.
    rho : float
        Mixing parameter.
    alpha : float
        Level.

    Returns
    -------
    ndarray
        ``sigma_hat * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha))``,
        written with ``sigma_hat = std_error * sqrt(t)``.
    """
    se = np.asarray(std_error, dtype=np.float64)
    u = np.asarray(n, dtype=np.float64) * rho * rho
    # eq. (9) of arXiv:2103.06476v7, with sigma^2 / t = SE^2:
    #   sigma * sqrt(2(u+1)/(t u) * log(sqrt(u+1)/alpha)) = SE * sqrt(2(u+1)/u * log(...))
    return se * np.sqrt(2.0 * (u + 1.0) / u * (0.5 * np.log1p(u) - math.log(alpha)))


def normal_mixture_log_evalue(
    z: npt.ArrayLike, n: npt.ArrayLike, rho: float, alternative: Alternative = "two-sided"
) -> npt.NDArray[np.float64]:
    """Log of the normal-mixture e-process behind the confidence sequence.

    With ``u = n rho^2`` and ``S = sqrt(n) z`` the standardized sum,
    the two-sided mixture (``lambda ~ N(0, rho^2)``) is::

        M_t = exp( u z^2 / (2 (u + 1)) ) / sqrt(u + 1)

    (eq. 155 of arXiv:2103.06476v7 as used by gbstats; its crossing of ``1/alpha`` is
    exactly the eq. (9) boundary). The one-sided version mixes over the half-normal
    ``lambda > 0`` (density ``2 N(0, rho^2)``), which integrates in closed form to::

        M_t^+ = 2 exp( u z^2 / (2 (u + 1)) ) Phi( z sqrt(u / (u + 1)) ) / sqrt(u + 1)

    Both start at 1 and are nonnegative supermartingales under the null (asymptotically),
    so ``P(sup_t M_t >= 1/alpha) <= alpha`` by Ville's inequality.

    Parameters
    ----------
    z : array_like
        ``(estimate - null_value) / std_error``.
    n : array_like
        Total observations.
    rho : float
        Mixing parameter.
    alternative : {"two-sided", "larger", "smaller"}
        ``"smaller"`` uses ``-z`` in the one-sided form.

    Returns
    -------
    ndarray
        ``log M_t``.
    """
    zz = np.asarray(z, dtype=np.float64)
    u = np.asarray(n, dtype=np.float64) * rho * rho
    base = u * zz * zz / (2.0 * (u + 1.0)) - 0.5 * np.log1p(u)
    if alternative == "two-sided":
        return base
    signed = zz if alternative == "larger" else -zz
    return base + math.log(2.0) + special.log_ndtr(signed * np.sqrt(u / (u + 1.0)))


def always_valid_p_value(
    z: npt.ArrayLike, n: npt.ArrayLike, rho: float, alternative: Alternative = "two-sided"
) -> npt.NDArray[np.float64]:
    """Always-valid p-value ``min(1, 1 / M_t)`` of the normal-mixture e-process.

    Vectorised: ``z`` and ``n`` broadcast, so a whole simulation of runs × looks is one call.

    Parameters
    ----------
    z, n, rho, alternative
        As in :func:`normal_mixture_log_evalue`.

    Returns
    -------
    ndarray
        p-values in (0, 1].
    """
    log_m = normal_mixture_log_evalue(z, n, rho, alternative)
    return np.exp(-np.maximum(log_m, 0.0))


def _one_sided_critical_z(n: float, rho: float, alpha: float) -> float:
    """Smallest ``z`` at which the one-sided mixture reaches ``1/alpha``."""
    target = -math.log(alpha)

    def gap(z: float) -> float:
        return float(normal_mixture_log_evalue(z, n, rho, "larger")) - target

    # For z >= 0, Phi(.) >= 1/2 so M+ >= M (two-sided): the two-sided root bounds it above.
    u = n * rho * rho
    upper = math.sqrt(2.0 * (u + 1.0) / u * (0.5 * math.log1p(u) + target)) + 1.0
    return float(optimize.brentq(gap, 0.0, upper, xtol=1e-12, rtol=1e-12))


def confidence_sequence(
    control: ArmStatistic,
    treatment: ArmStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    config: SequentialConfig | None = None,
) -> SequentialResult:
    """Asymptotic confidence sequence and always-valid p-value for a difference of two arms.

    Parameters
    ----------
    control, treatment : ProportionStatistic, SampleMeanStatistic or RatioStatistic
        Sufficient statistics of each arm (both of the same kind).
    alpha : float, default=0.05
        Level; the CS covers the true difference at all times with probability ``1 - alpha``.
    alternative : {"two-sided", "larger", "smaller"}, default="two-sided"
        ``"larger"`` tests treatment > control.
    config : SequentialConfig, optional
        ``rho`` / target sample size and null value.

    Returns
    -------
    SequentialResult
        ``method="asymptotic_cs"``.

    Examples
    --------
    >>> from arbiter.stats.sufficient import ProportionStatistic
    >>> r = confidence_sequence(ProportionStatistic(5000, 500), ProportionStatistic(5000, 600))
    >>> round(r.estimate, 3), r.significant
    (0.02, True)
    """
    cfg = config or SequentialConfig()
    _check_alpha(alpha, alternative)
    _check_pair(control, treatment)
    rho = cfg.rho or sequential_rho(alpha, cfg.target_sample_size, alternative)
    estimate, se, n, status = _difference(control, treatment)
    if status != "ok":
        return _degenerate(estimate, se, rho, n, alpha, alternative, "asymptotic_cs", status)

    z = (estimate - cfg.null_value) / se
    p_value = float(always_valid_p_value(z, n, rho, alternative))
    low, high = _interval(estimate, se, n, rho, alpha, alternative)
    return SequentialResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        significant=p_value < alpha,
        method="asymptotic_cs",
        status="ok",
        std_error=se,
        rho=rho,
        n=n,
        alpha=alpha,
        alternative=alternative,
    )


def msprt_log_likelihood_ratio(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau: npt.ArrayLike, null_value: float = 0.0
) -> npt.NDArray[np.float64]:
    """Log of the two-sample normal mSPRT mixture likelihood ratio.

    Johari et al. (2022), two-sample normal mSPRT with mixing ``H = N(theta_0, tau^2)``::

        Lambda_n = sqrt( V / (V + n tau^2) )
                   * exp( n^2 tau^2 (Ybar_n - Xbar_n - theta_0)^2 / (2 V (V + n tau^2)) )

    where ``V = sigma_A^2 + sigma_B^2`` and ``n`` pairs. With ``s^2 = V / n`` the variance
    of the difference this is ``sqrt(s^2/(s^2+tau^2)) exp(tau^2 d^2 / (2 s^2 (s^2+tau^2)))``,
    which is the form used here so unequal arm sizes are allowed (``s^2 = v_T/n_T + v_C/n_C``).

    Parameters
    ----------
    estimate : array_like
        Observed difference ``d``.
    variance : array_like
        Variance ``s^2`` of the difference.
    tau : array_like
        Mixture standard deviation on the effect scale.
    null_value : float, default=0.0
        ``theta_0``.

    Returns
    -------
    ndarray
        ``log Lambda_n``.
    """
    d = np.asarray(estimate, dtype=np.float64) - null_value
    s2 = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    return 0.5 * np.log(s2 / (s2 + t2)) + t2 * d * d / (2.0 * s2 * (s2 + t2))


def msprt(
    control: ArmStatistic,
    treatment: ArmStatistic,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    config: SequentialConfig | None = None,
    previous_p_value: float | None = None,
) -> SequentialResult:
    """Mixture SPRT always-valid p-value and confidence interval (Johari et al. 2022).

    The p-value is ``p_n = min(p_{n-1}, 1 / Lambda_n)``; pass the p-value of the previous
    look as ``previous_p_value`` to carry the running minimum (sufficient statistics hold
    only the current snapshot). The interval is the always-valid CI
    ``{theta : Lambda_n(theta) < 1/alpha}`` at this look (not intersected with earlier ones).

    With ``tau = rho * sigma_hat`` (the default when ``config.tau`` is None) and
    ``s^2 = sigma_hat^2 / t``: ``tau^2 / s^2 = t rho^2 = u``, so
    ``Lambda = (u+1)^{-1/2} exp(u z^2 / (2(u+1)))`` — identical to the CS e-value.

    One-sided alternatives are not part of the mSPRT as published; they are rejected.

    Parameters
    ----------
    control, treatment : ProportionStatistic, SampleMeanStatistic or RatioStatistic
        Sufficient statistics of each arm.
    alpha : float, default=0.05
        Level.
    alternative : {"two-sided"}, default="two-sided"
        Only two-sided is supported.
    config : SequentialConfig, optional
        ``tau`` (or ``rho`` / ``target_sample_size`` to derive it) and null value.
    previous_p_value : float, optional
        Always-valid p-value of the previous look.

    Returns
    -------
    SequentialResult
        ``method="msprt"``.
    """
    cfg = config or SequentialConfig()
    _check_alpha(alpha, alternative)
    if alternative != "two-sided":
        raise InvalidInputError(
            f"msprt supports alternative='two-sided' only, got {alternative!r}; "
            "use confidence_sequence for one-sided tests",
            field="alternative",
        )
    if previous_p_value is not None and not (0.0 <= previous_p_value <= 1.0):
        raise InvalidInputError(
            f"previous_p_value must be in [0, 1], got {previous_p_value!r}",
            field="previous_p_value",
        )
    _check_pair(control, treatment)
    rho = cfg.rho or sequential_rho(alpha, cfg.target_sample_size, alternative)
    estimate, se, n, status = _difference(control, treatment)
    if status != "ok":
        result = _degenerate(estimate, se, rho, n, alpha, alternative, "msprt", status)
        if previous_p_value is None:
            return result
        p = min(result.p_value, previous_p_value)
        return _replace_p(result, p, alpha)

    tau = cfg.tau if cfg.tau is not None else rho * se * math.sqrt(n)
    s2 = se * se
    log_lr = float(msprt_log_likelihood_ratio(estimate, s2, tau, cfg.null_value))
    p_value = math.exp(-max(log_lr, 0.0))
    if previous_p_value is not None:
        p_value = min(p_value, previous_p_value)
    # Invert Lambda(theta) = 1/alpha for the CI: d^2 = 2 s^2 (s^2+tau^2)/tau^2 * (log(1/alpha)
    #   + 0.5 log((s^2+tau^2)/s^2)).
    t2 = tau * tau
    half = math.sqrt(2.0 * s2 * (s2 + t2) / t2 * (-math.log(alpha) + 0.5 * math.log1p(t2 / s2)))
    return SequentialResult(
        estimate=estimate,
        ci_low=estimate - half,
        ci_high=estimate + half,
        p_value=p_value,
        significant=p_value < alpha,
        method="msprt",
        status="ok",
        std_error=se,
        rho=rho,
        n=n,
        alpha=alpha,
        alternative=alternative,
    )


def fixed_mixture_tau(
    unit_variance: float,
    *,
    alpha: float,
    target_sample_size: float,
    alternative: Alternative = "two-sided",
    allocation: float = 0.5,
    rho: float | None = None,
) -> float:
    """Mixing standard deviation ``tau`` on the effect scale, fixed whatever the split.

    ``tau^2 = rho^2 sigma^2 / (w (1 - w))`` with ``rho`` from :func:`sequential_rho` and
    ``w`` a fixed *planned* allocation. At a fixed split ``w`` with equal arm variances
    ``sigma^2`` this is exactly the mixture of :func:`confidence_sequence`
    (``tau^2 / SE^2 = n rho^2``); unlike it, ``tau`` does not follow the current split, so
    the mixture stays one fixed Gaussian prior on the effect while the allocation moves
    (:func:`mixture_test`).

    Parameters
    ----------
    unit_variance : float
        Per-observation (per-unit) variance ``sigma^2`` of the metric, > 0.
    alpha : float
        Level.
    target_sample_size : float
        Total observations at which the test should be most sensitive.
    alternative : {"two-sided", "larger", "smaller"}, default="two-sided"
        Sidedness (one-sided tunes ``rho`` at ``2 alpha``).
    allocation : float, default=0.5
        Planned challenger share ``w`` in (0, 1).
    rho : float, optional
        Explicit ``rho`` (:attr:`SequentialConfig.rho`), instead of the one tuned for
        ``target_sample_size``.

    Returns
    -------
    float
        ``tau > 0``.
    """
    if not (math.isfinite(unit_variance) and unit_variance > 0):
        raise InvalidInputError(
            f"unit_variance must be a positive number, got {unit_variance!r}",
            field="unit_variance",
        )
    if not 0.0 < allocation < 1.0:
        raise InvalidInputError(
            f"allocation must be in (0, 1), got {allocation!r}", field="allocation"
        )
    rho = rho or sequential_rho(alpha, target_sample_size, alternative)
    return math.sqrt(rho * rho * unit_variance / (allocation * (1.0 - allocation)))


def mixture_test(
    estimate: float,
    variance: float,
    *,
    tau: float,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null_value: float = 0.0,
    n: int = 0,
) -> SequentialResult:
    """Normal-mixture e-process of an estimate in information time, with a fixed ``tau``.

    For an asymptotically normal estimate ``d`` of ``theta`` with variance ``V`` (any
    estimator: a stratified difference, a regression coefficient), the score ``S = d / V``
    is a Brownian motion in the information ``I = 1 / V`` under ``theta = null_value``.
    Mixing its likelihood ratio ``exp(theta S - theta^2 I / 2)`` over ``theta ~ N(0, tau^2)``
    with ``tau`` fixed gives the martingale::

        M = (1 + u)^{-1/2} exp( u z^2 / (2 (1 + u)) ),   u = tau^2 / V,  z = d / sqrt(V)

    (the two-sample mSPRT of Johari et al. 2022 written in ``V``). Because ``tau`` does not
    depend on how the information accrued, ``P(sup M >= 1/alpha) <= alpha`` (Ville) holds
    whatever the allocation path. One-sided alternatives mix over the half-normal, as in
    :func:`normal_mixture_log_evalue` (the same function with ``n rho^2 = u``).

    Parameters
    ----------
    estimate, variance : float
        The estimate and its variance.
    tau : float
        Mixing standard deviation on the effect scale, fixed for the whole test
        (:func:`fixed_mixture_tau`).
    alpha : float, default=0.05
        Level of the bounds.
    alternative : {"two-sided", "larger", "smaller"}, default="two-sided"
        Direction of the alternative.
    null_value : float, default=0.0
        ``theta`` under the null (``-margin`` for a non-inferiority test).
    n : int, default=0
        Observations behind the estimate, reported only.

    Returns
    -------
    SequentialResult
        ``method="msprt_fixed_tau"``, ``rho`` = ``tau`` (effect scale); the bound on the
        tested side only for one-sided alternatives.
    """
    _check_alpha(alpha, alternative)
    if not (math.isfinite(tau) and tau > 0):
        raise InvalidInputError(f"tau must be a positive number, got {tau!r}", field="tau")
    if not (math.isfinite(estimate) and math.isfinite(variance)):
        return _degenerate(
            estimate, math.nan, tau, n, alpha, alternative, "msprt_fixed_tau", "no_data"
        )
    if not variance > 0.0:
        return _degenerate(
            estimate, 0.0, tau, n, alpha, alternative, "msprt_fixed_tau", "zero_variance"
        )
    se = math.sqrt(variance)
    u = tau * tau / variance
    z = (estimate - null_value) / se
    p_value = float(always_valid_p_value(z, u, 1.0, alternative))
    low, high = _interval(estimate, se, u, 1.0, alpha, alternative)
    return SequentialResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        significant=p_value < alpha,
        method="msprt_fixed_tau",
        status="ok",
        std_error=se,
        rho=tau,
        n=n,
        alpha=alpha,
        alternative=alternative,
    )


# --- private helpers ---------------------------------------------------------------------


def _interval(
    estimate: float, se: float, n: float, rho: float, alpha: float, alternative: str
) -> tuple[float, float]:
    """The confidence sequence at ``u = n rho^2``: eq. (9) two-sided; one-sided, the inverted
    half-normal mixture (no closed form, a 1-D root)."""
    if alternative == "two-sided":
        half = float(cs_halfwidth(se, n, rho, alpha))
        return estimate - half, estimate + half
    half = se * _one_sided_critical_z(n, rho, alpha)
    return (estimate - half, math.inf) if alternative == "larger" else (-math.inf, estimate + half)


def _check_alpha(alpha: float, alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise InvalidInputError(
            f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}",
            field="alternative",
        )
    upper = 1.0 if alternative == "two-sided" else 0.5
    if not (isinstance(alpha, int | float) and 0.0 < alpha < upper):
        raise InvalidInputError(
            f"alpha must be in (0, {upper}) for alternative={alternative!r}, got {alpha!r}",
            field="alpha",
        )


def _check_pair(control: object, treatment: object) -> None:
    for name, stat in (("control", control), ("treatment", treatment)):
        if not isinstance(stat, ProportionStatistic | SampleMeanStatistic | RatioStatistic):
            raise InvalidInputError(
                f"{name} must be a ProportionStatistic, SampleMeanStatistic or RatioStatistic, "
                f"got {type(stat).__name__}",
                field=name,
            )
        if stat.n < 0:
            raise InvalidInputError(f"{name}.n must be >= 0, got {stat.n}", field=f"{name}.n")
        if isinstance(stat, ProportionStatistic) and not (0 <= stat.successes <= stat.n):
            raise InvalidInputError(
                f"{name}.successes must be in [0, n={stat.n}], got {stat.successes}",
                field=f"{name}.successes",
            )
    if type(control) is not type(treatment):
        raise InvalidInputError(
            "control and treatment must be the same kind of statistic, got "
            f"{type(control).__name__} and {type(treatment).__name__}",
            field="treatment",
        )


def _difference(control: ArmStatistic, treatment: ArmStatistic) -> tuple[float, float, int, str]:
    """Return (estimate, standard error, total n, status) for treatment - control."""
    n = int(control.n + treatment.n)
    estimate = float(treatment.mean - control.mean)
    if control.n == 0 or treatment.n == 0:
        return estimate, 0.0, n, "no_data"
    if (
        isinstance(control, SampleMeanStatistic | RatioStatistic)
        and min(control.n, treatment.n) < 2
    ):
        return estimate, 0.0, n, "insufficient_data"
    ratios = isinstance(treatment, RatioStatistic) and isinstance(control, RatioStatistic)
    if ratios and 0.0 in (control.d_sum, treatment.d_sum):  # type: ignore[union-attr]
        return estimate, 0.0, n, "insufficient_data"
    var = treatment.variance / treatment.n + control.variance / control.n
    if not var > 0.0:
        return estimate, 0.0, n, "zero_variance"
    return estimate, math.sqrt(var), n, "ok"


def _degenerate(
    estimate: float,
    se: float,
    rho: float,
    n: int,
    alpha: float,
    alternative: Alternative,
    method: str,
    status: str,
) -> SequentialResult:
    return SequentialResult(
        estimate=estimate,
        ci_low=-math.inf,
        ci_high=math.inf,
        p_value=1.0,
        significant=False,
        method=method,
        status=status,  # type: ignore[arg-type]
        std_error=se,
        rho=rho,
        n=n,
        alpha=alpha,
        alternative=alternative,
    )


def _replace_p(result: SequentialResult, p_value: float, alpha: float) -> SequentialResult:
    return replace(result, p_value=p_value, significant=p_value < alpha)


__all__ = [
    "Alternative",
    "SequentialConfig",
    "SequentialResult",
    "always_valid_p_value",
    "confidence_sequence",
    "cs_halfwidth",
    "fixed_mixture_tau",
    "mixture_test",
    "msprt",
    "msprt_log_likelihood_ratio",
    "normal_mixture_log_evalue",
    "sequential_rho",
]
