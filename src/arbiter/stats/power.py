"""Power analysis for two-arm tests with equal allocation: sample size, power, MDE, progress.

All formulas are the large-sample normal approximation for the difference ``b − a`` of two
independent arm estimates. With ``z_α = Φ⁻¹(1 − α/2)`` (two-sided) or ``Φ⁻¹(1 − α)``
(one-sided) and ``z_β = Φ⁻¹(power)``:

* proportions, unpooled variance (default):
  ``n = (z_α + z_β)² · (p_a(1 − p_a) + p_b(1 − p_b)) / (p_b − p_a)²``
  (Chow, Shao & Wang 2008, *Sample Size Calculations in Clinical Research*, 2nd ed., §4.2,
  two-sample parallel design, test for equality);
* proportions, arcsine (``variance="arcsine"``): ``n = 2(z_α + z_β)² / h²`` with Cohen's
  ``h = 2·asin√p_b − 2·asin√p_a`` (Cohen 1988, *Statistical Power Analysis*, ch. 6); this is
  exactly ``statsmodels`` ``NormalIndPower`` fed with ``proportion_effectsize``;
* means: ``n = 2σ²(z_α + z_β)² / δ²`` (Chow, Shao & Wang 2008, §3.2, with σ known).

How this relates to ``statsmodels.stats.power.NormalIndPower``: with the standardised effect
``d = δ / sqrt((p_a(1−p_a) + p_b(1−p_b))/2)`` (proportions) or ``d = δ/σ`` (means),
:func:`power_proportions`/:func:`power_means` equal ``NormalIndPower().power(d, n, alpha)``
exactly, including the small probability of rejecting in the wrong tail of a two-sided test.
The sample-size and MDE formulas above are the usual closed forms, which neglect that
wrong-tail term; ``NormalIndPower().solve_power`` keeps it and so returns a marginally smaller
n for two-sided tests (for power ≥ 0.5 the term is below ``Φ(−2·z_α)``, about 4e-5 at
α = 0.05, and rounding up to an integer hides it). For one-sided tests the two agree exactly.

``statsmodels``' ``proportion_effectsize`` is Cohen's h, an arcsine-transformed effect; with
the default ``variance="unpooled"`` the results differ from ``NormalIndPower`` +
``proportion_effectsize`` because the variance approximation differs (they agree to within a
few percent for moderate p). Pass ``variance="arcsine"`` to reproduce them.

Effect direction: for two-sided tests the effect keeps its sign; for one-sided tests the
magnitude ``|mde|`` is used in the direction of the alternative (``"larger"`` → ``b > a``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

from scipy import optimize
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN, Alternative, check_alpha, check_alternative
from arbiter.stats.results import (
    STATUS_COMPLETE,
    STATUS_OK,
    STATUS_RUNNING,
    MDEResult,
    PowerResult,
    RemainingSampleResult,
    SampleSizeResult,
)
from arbiter.stats.sequential import cs_halfwidth

ProportionVariance = Literal["unpooled", "arcsine"]

_METHOD_UNPOOLED = (
    "normal approximation, unpooled variance (Chow, Shao & Wang 2008, §4.2 two-sample "
    "test for equality)"
)
_METHOD_ARCSINE = "normal approximation, arcsine transform / Cohen's h (Cohen 1988, ch. 6)"
_METHOD_MEANS = "normal approximation, known common sigma (Chow, Shao & Wang 2008, §3.2)"
_STATUS_UNREACHABLE = "unreachable"


# --------------------------------------------------------------------------- validation


def _check_common(alpha: float, power: float | None, alternative: str) -> float:
    """Validate alpha/power/alternative; return the critical z for the design."""
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    if power is not None and (not isinstance(power, int | float) or not 0.0 < power < 1.0):
        raise InvalidInputError(f"power must be in (0, 1), got {power!r}", field="power")
    tail = alpha / 2.0 if alternative == "two-sided" else alpha
    if power is not None and power <= tail:
        raise InvalidInputError(
            f"power ({power}) must exceed the false-positive rate of one tail ({tail})",
            field="power",
        )
    return float(_st.norm.isf(tail))


def _check_baseline_proportion(baseline: float) -> float:
    if not isinstance(baseline, int | float) or not 0.0 < baseline < 1.0:
        raise InvalidInputError(
            f"baseline proportion must be in (0, 1), got {baseline!r}", field="baseline"
        )
    return float(baseline)


def _check_positive(value: float, field: str) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{field} must be positive and finite, got {value!r}", field=field)
    return float(value)


def _signed_effect(
    mde: float, baseline: float | None, relative: bool, alternative: str
) -> tuple[float, float]:
    """Absolute signed effect and the same effect relative to the baseline."""
    if not isinstance(mde, int | float) or not math.isfinite(mde) or mde == 0:
        raise InvalidInputError(f"mde must be a non-zero finite number, got {mde!r}", field="mde")
    if relative:
        if baseline is None or baseline == 0:
            raise InvalidInputError("a relative mde needs a non-zero baseline", field="baseline")
        effect = baseline * mde
    else:
        effect = float(mde)
    if alternative == "larger":
        effect = abs(effect)
    elif alternative == "smaller":
        effect = -abs(effect)
    rel = effect / baseline if baseline else NAN
    return effect, rel


def _treatment_proportion(baseline: float, effect: float) -> float:
    p_b = baseline + effect
    if not 0.0 < p_b < 1.0:
        raise InvalidInputError(
            f"baseline {baseline} plus effect {effect} gives {p_b}, outside (0, 1); "
            "use a smaller mde",
            field="mde",
        )
    return p_b


def _cohens_h(p_a: float, p_b: float) -> float:
    return 2.0 * math.asin(math.sqrt(p_b)) - 2.0 * math.asin(math.sqrt(p_a))


def _proportion_scale(p_a: float, p_b: float, variance: str) -> tuple[float, float]:
    """Effect on the test's scale and the per-unit variance of that effect's estimate."""
    if variance == "arcsine":
        # Var(2·asin√p̂) ≈ 1/n per arm (variance-stabilising transform).
        return _cohens_h(p_a, p_b), 2.0
    if variance == "unpooled":
        return p_b - p_a, p_a * (1 - p_a) + p_b * (1 - p_b)
    raise InvalidInputError(
        f"variance must be 'unpooled' or 'arcsine', got {variance!r}", field="variance"
    )


def _power(effect: float, unit_var: float, n: float, alpha: float, alternative: str) -> float:
    """Power of a z-test whose statistic has mean ``effect / sqrt(unit_var / n)``."""
    shift = effect / math.sqrt(unit_var / n)
    if alternative == "larger":
        return float(_st.norm.sf(_st.norm.isf(alpha) - shift))
    if alternative == "smaller":
        return float(_st.norm.cdf(-_st.norm.isf(alpha) - shift))
    crit = float(_st.norm.isf(alpha / 2.0))
    # Both rejection regions, so this is exact under the normal approximation.
    return float(_st.norm.sf(crit - shift) + _st.norm.cdf(-crit - shift))


def _size_result(
    n_exact: float,
    baseline: float,
    effect: float,
    rel: float,
    alpha: float,
    power: float,
    alternative: str,
    metric: str,
    method: str,
) -> SampleSizeResult:
    # Guard against 63.000000000001 from floating point turning into 64.
    n = max(1, math.ceil(n_exact - 1e-9))
    return SampleSizeResult(
        n, 2 * n, n_exact, baseline, effect, rel, alpha, power, alternative, metric, method
    )


# --------------------------------------------------------------------------- proportions


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    variance: ProportionVariance = "unpooled",
) -> SampleSizeResult:
    """Units per arm needed to detect a change of ``mde`` in a proportion.

    Parameters
    ----------
    baseline : float
        Control proportion ``p_a`` in (0, 1).
    mde : float
        Minimum detectable effect: absolute (``p_b − p_a``) or, with ``relative=True``,
        relative (``p_b/p_a − 1``).
    relative : bool, default False
        Interpret ``mde`` relative to ``baseline``.
    alpha : float, default 0.05
        Significance level.
    power : float, default 0.8
        Target probability of detecting the effect.
    alternative : {"two-sided", "larger", "smaller"}
        Test the design will be analysed with.
    variance : {"unpooled", "arcsine"}, default "unpooled"
        Variance approximation; see the module docstring.

    Returns
    -------
    SampleSizeResult
        ``n_per_arm`` rounded up and the formula named in ``method``.
    """
    crit = _check_common(alpha, power, alternative)
    p_a = _check_baseline_proportion(baseline)
    effect, rel = _signed_effect(mde, p_a, relative, alternative)
    p_b = _treatment_proportion(p_a, effect)
    scaled, unit_var = _proportion_scale(p_a, p_b, variance)
    z_beta = float(_st.norm.ppf(power))
    n_exact = (crit + z_beta) ** 2 * unit_var / scaled**2
    method = _METHOD_ARCSINE if variance == "arcsine" else _METHOD_UNPOOLED
    return _size_result(n_exact, p_a, effect, rel, alpha, power, alternative, "proportion", method)


def power_proportions(
    baseline: float,
    mde: float,
    n_per_arm: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    variance: ProportionVariance = "unpooled",
) -> PowerResult:
    """Power to detect ``mde`` in a proportion with ``n_per_arm`` units per arm.

    Parameters are as in :func:`sample_size_proportions`. For two-sided tests both rejection
    regions are counted, matching ``NormalIndPower.power``.
    """
    _check_common(alpha, None, alternative)
    p_a = _check_baseline_proportion(baseline)
    n = _check_positive(n_per_arm, "n_per_arm")
    effect, rel = _signed_effect(mde, p_a, relative, alternative)
    p_b = _treatment_proportion(p_a, effect)
    scaled, unit_var = _proportion_scale(p_a, p_b, variance)
    method = _METHOD_ARCSINE if variance == "arcsine" else _METHOD_UNPOOLED
    return PowerResult(
        _power(scaled, unit_var, n, alpha, alternative),
        n, p_a, effect, rel, alpha, alternative, "proportion", method,
    )  # fmt: skip


def mde_proportions(
    baseline: float,
    n_per_arm: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    variance: ProportionVariance = "unpooled",
) -> MDEResult:
    """Smallest change in a proportion detectable with ``n_per_arm`` units per arm.

    The inverse of :func:`sample_size_proportions`: ``sample_size(baseline, mde(n)) == n``.
    The MDE is positive (an increase) for ``"two-sided"`` and ``"larger"`` and negative for
    ``"smaller"``.

    Returns
    -------
    MDEResult
        ``status`` is ``"unreachable"`` (mde nan) when no proportion in (0, 1) is detectable
        at this n, i.e. the sample is too small.

    Notes
    -----
    With ``K = (z_α + z_β)²/n`` the unpooled equation ``n·δ² = (z_α + z_β)²(p_a q_a +
    (p_a + δ)(1 − p_a − δ))`` is the quadratic ``(1 + K)δ² − K(1 − 2p_a)δ − 2K·p_a q_a = 0``,
    solved in closed form. For the arcsine variance ``h = (z_α + z_β)·sqrt(2/n)`` and
    ``p_b = sin²(asin√p_a ± h/2)``.
    """
    crit = _check_common(alpha, power, alternative)
    p_a = _check_baseline_proportion(baseline)
    n = _check_positive(n_per_arm, "n_per_arm")
    _proportion_scale(p_a, p_a, variance)  # validates ``variance``
    sign = -1.0 if alternative == "smaller" else 1.0
    zsum = crit + float(_st.norm.ppf(power))
    if variance == "arcsine":
        angle = math.asin(math.sqrt(p_a)) + sign * zsum * math.sqrt(2.0 / n) / 2.0
        p_b = math.sin(angle) ** 2 if 0.0 < angle < math.pi / 2 else NAN
        method = _METHOD_ARCSINE
    else:
        k = zsum**2 / n
        b = k * (1.0 - 2.0 * p_a)
        disc = b * b + 8.0 * (1.0 + k) * k * p_a * (1.0 - p_a)
        delta = (b + sign * math.sqrt(disc)) / (2.0 * (1.0 + k))
        p_b = p_a + delta
        method = _METHOD_UNPOOLED
    status = STATUS_OK
    if math.isnan(p_b) or not 0.0 < p_b < 1.0:
        p_b, status = NAN, _STATUS_UNREACHABLE
    mde = p_b - p_a
    return MDEResult(
        mde, mde / p_a, n, p_a, alpha, power, alternative, "proportion", method, status
    )


# --------------------------------------------------------------------------- means


def sample_size_means(
    mde: float,
    std: float,
    *,
    baseline: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> SampleSizeResult:
    """Units per arm needed to detect a change of ``mde`` in a mean.

    Parameters
    ----------
    mde : float
        Minimum detectable effect, absolute or (``relative=True``) relative to ``baseline``.
    std : float
        Per-unit standard deviation of the metric, assumed equal in both arms.
    baseline : float, optional
        Control mean; required when ``relative=True``, reported otherwise.
    relative, alpha, power, alternative
        As in :func:`sample_size_proportions`.

    Returns
    -------
    SampleSizeResult
    """
    crit = _check_common(alpha, power, alternative)
    sigma = _check_positive(std, "std")
    effect, rel = _signed_effect(mde, baseline, relative, alternative)
    z_beta = float(_st.norm.ppf(power))
    n_exact = 2.0 * sigma**2 * (crit + z_beta) ** 2 / effect**2
    base = NAN if baseline is None else float(baseline)
    return _size_result(
        n_exact, base, effect, rel, alpha, power, alternative, "mean", _METHOD_MEANS
    )


def power_means(
    mde: float,
    std: float,
    n_per_arm: float,
    *,
    baseline: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> PowerResult:
    """Power to detect ``mde`` in a mean with ``n_per_arm`` units per arm (normal theory)."""
    _check_common(alpha, None, alternative)
    sigma = _check_positive(std, "std")
    n = _check_positive(n_per_arm, "n_per_arm")
    effect, rel = _signed_effect(mde, baseline, relative, alternative)
    base = NAN if baseline is None else float(baseline)
    return PowerResult(
        _power(effect, 2.0 * sigma**2, n, alpha, alternative),
        n, base, effect, rel, alpha, alternative, "mean", _METHOD_MEANS,
    )  # fmt: skip


def mde_means(
    std: float,
    n_per_arm: float,
    *,
    baseline: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> MDEResult:
    """Smallest change in a mean detectable with ``n_per_arm`` units per arm.

    ``δ = (z_α + z_β)·σ·sqrt(2/n)``, the inverse of :func:`sample_size_means`; negative for
    ``"smaller"``. ``relative_mde`` is ``δ/baseline`` (nan without a non-zero baseline).
    """
    crit = _check_common(alpha, power, alternative)
    sigma = _check_positive(std, "std")
    n = _check_positive(n_per_arm, "n_per_arm")
    sign = -1.0 if alternative == "smaller" else 1.0
    mde = sign * (crit + float(_st.norm.ppf(power))) * sigma * math.sqrt(2.0 / n)
    base = NAN if baseline is None else float(baseline)
    rel = mde / base if baseline else NAN
    return MDEResult(mde, rel, n, base, alpha, power, alternative, "mean", _METHOD_MEANS)


# --------------------------------------------------------------------------- running tests


def remaining_sample_size(
    required: SampleSizeResult | int, current_n: Sequence[int]
) -> RemainingSampleResult:
    """Units each arm of a running test still needs to reach the planned sample size.

    Parameters
    ----------
    required : SampleSizeResult or int
        The plan: a result of ``sample_size_*`` or a per-arm count.
    current_n : sequence of int
        Units observed so far in each arm.

    Returns
    -------
    RemainingSampleResult
        ``fraction_complete`` is that of the slowest arm (the test can only be read when every
        arm is complete); ``status`` is ``"complete"`` or ``"running"``.

    Notes
    -----
    This is the fixed-horizon plan. Re-estimating the plan from interim variance, or reading
    the result early, needs a sequential test (see ``arbiter.stats.sequential``).
    """
    target = required.n_per_arm if isinstance(required, SampleSizeResult) else required
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target <= 0:
        raise InvalidInputError(
            f"required sample size must be a positive integer, got {target!r}", field="required"
        )
    target = int(target)
    current = tuple(current_n)
    if not current:
        raise InvalidInputError("current_n needs one count per arm", field="current_n")
    for i, c in enumerate(current):
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 0:
            raise InvalidInputError(
                f"current_n[{i}] must be a non-negative integer, got {c!r}",
                field=f"current_n[{i}]",
            )
    current = tuple(int(c) for c in current)
    remaining = tuple(max(0, target - c) for c in current)
    fraction = min(1.0, min(current) / target)
    status = STATUS_COMPLETE if not any(remaining) else STATUS_RUNNING
    return RemainingSampleResult(target, current, remaining, sum(remaining), fraction, status)


#: Largest per-arm size the sequential solver searches; beyond it the MDE is "not reachable".
SEQUENTIAL_MAX_N = 1e13


def sequential_sample_size(
    variance: float, mde: float, *, alpha: float, power: float, rho: float
) -> int | None:
    """Observations per arm at which an always-valid test would detect ``mde`` with ``power``.

    The confidence sequence of :func:`arbiter.stats.sequential.confidence_sequence` is wider
    than a fixed-horizon interval, so the fixed-horizon formula underestimates what a
    sequential test needs. This solves, for the per-arm size ``n`` (``2 n`` observations in
    total, which is what the sequence's half-width is computed on)::

        cs_halfwidth(SE(n), 2 n, rho, alpha) + z_power * SE(n) = mde,   SE(n) = sqrt(variance / n)

    i.e. the size at which an effect of exactly ``mde`` lies ``z_power`` standard errors beyond
    the sequence's bound (power ``power`` at that look, the normal approximation the fixed
    plan uses too). The left side decreases in ``n``, so the root is unique (Brent's method).
    Used for the two-arm remaining sample (:func:`arbiter.stats.verdict.decide`) and for a
    pair of A/B/n arms at the Bonferroni level (:func:`arbiter.stats.verdict.decide_multiarm`).

    Parameters
    ----------
    variance : float
        Sum of the two arms' per-observation variances (the worst pair's, for A/B/n).
    mde : float
        Absolute effect to detect (metric units), > 0.
    alpha : float
        Level of the sequence (two-sided).
    power : float
        Target power, in (0, 1).
    rho : float
        Mixing parameter of the sequence (:func:`arbiter.stats.sequential.sequential_rho`).

    Returns
    -------
    int or None
        The smallest such ``n`` (at least 1); ``None`` when ``variance`` is not positive or
        the MDE is not reached below :data:`SEQUENTIAL_MAX_N` per arm.

    Examples
    --------
    >>> from arbiter.stats.sequential import sequential_rho
    >>> sequential_sample_size(0.5, 0.05, alpha=0.05, power=0.8, rho=sequential_rho(0.05, 5000))
    3010
    """
    check_alpha(alpha)
    if not (0.0 < power < 1.0):
        raise InvalidInputError(f"power must be in (0, 1), got {power!r}", field="power")
    if not (math.isfinite(mde) and mde > 0.0):
        raise InvalidInputError(f"mde must be a positive number, got {mde!r}", field="mde")
    if not variance > 0.0:
        return None
    z_power = float(_st.norm.ppf(power))

    def gap(n: float) -> float:
        se = math.sqrt(variance / n)
        return float(cs_halfwidth(se, 2.0 * n, rho, alpha)) + z_power * se - mde

    if gap(SEQUENTIAL_MAX_N) > 0:
        return None
    if gap(1.0) <= 0:
        return 1
    return math.ceil(optimize.brentq(gap, 1.0, SEQUENTIAL_MAX_N, rtol=1e-10))


__all__ = [
    "SEQUENTIAL_MAX_N",
    "mde_means",
    "mde_proportions",
    "power_means",
    "power_proportions",
    "remaining_sample_size",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_sample_size",
]
