"""The two-arm decision (A/B, canary, shadow, offline): promote / keep / continue / rollback.

:func:`decide` is a pure function of the per-arm sufficient statistics of the primary metric
(champion = control, challenger = treatment), the guardrail observations, and a frozen
:class:`DecisionPolicy`. It returns a :class:`Verdict` that lists every criterion it
checked, so a report can show *why*.

Rules, applied in this order (the first that fires decides; in ``canary`` mode 2b is
checked after the ``min_sample`` criterion is recorded but before it can stop the verdict):

1. **Guardrails.** A breached guardrail → ``rollback`` when the challenger serves users
   (``mode`` ``"ab"`` or ``"canary"``), ``keep_champion`` when it does not (``"shadow"``,
   ``"offline"``: nothing to roll back, the challenger is simply not promoted). Guardrail
   values are compared as given; when noise matters pass only conclusive observations, as
   :attr:`arbiter.stats.guardrails.GuardrailCheck.observation` does (the one peeking-safe
   breach rule of :mod:`arbiter.stats.guardrails`). Harm first: a guardrail breach wins even
   over an SRM alarm, because rolling back is always safe.
2. **Sample-ratio mismatch** (unless ``check_srm`` is off). Pearson's chi-square goodness of
   fit of the arm counts to ``traffic_weights`` (:func:`arbiter.stats.srm.srm_test`).
   ``p < srm_threshold`` (0.001) means the assignment is broken and no comparison can be
   trusted: never promote. The decision is ``continue`` with the SRM criterion failed (an
   alarm for a human), or ``rollback`` when ``on_srm="rollback"``.
2b. **Harm at every look** (``mode="canary"`` only, without an external ``primary_result``):
   a one-sided always-valid confidence sequence of challenger − champion in the harmful
   direction at level ``alpha``, whatever the sample size → ``rollback`` when significant.
   A canary exposes users from its first request, so harm must stop it at 1 % traffic, long
   before ``min_sample_per_arm`` labelled rows exist; the sequence is valid at every look
   (see :func:`_canary_harm`). The two-sided primary test below then only judges
   improvement, so harm is tested once, at level ``alpha``.
3. **Minimum sample.** Either arm below ``min_sample_per_arm`` → ``continue``, with an
   estimate of the remaining sample.
4. **Primary metric** (two-sided test of challenger − champion at level ``alpha``): an
   always-valid confidence sequence when ``sequential`` (always in ``canary`` mode: a canary
   peeks at every checkpoint), else the fixed-horizon pooled
   two-proportion z-test or Welch t-test of :mod:`arbiter.stats.proportions` /
   :mod:`arbiter.stats.means`; or a test result computed elsewhere, e.g. a paired
   McNemar/DeLong test for shadow traffic, passed as ``ArmObservations.primary_result``.

   a. significantly better → ``promote`` (only if every guardrail has an observation);
   b. significantly worse → harm detected: ``rollback`` when serving, ``keep_champion`` in
      shadow/offline mode. A significantly worse challenger that serves traffic is hurting
      users now, so the safe action is to stop serving it; in shadow mode no user sees it,
      so keeping the champion is the whole remedy;
   c. futility (sequential only, needs ``min_detectable_effect``): the confidence sequence
      excludes every improvement of at least the MDE → ``keep_champion``. Sound at any
      time because the sequence is time-uniform;
   d. ``max_sample_per_arm`` reached (the planned horizon) without significance →
      ``keep_champion``;
   e. otherwise → ``continue``, with the estimated remaining sample.

A configured guardrail with no observation is not a breach but blocks promotion
(``continue``). Estimated remaining sample: additional observations *per arm* until a
test with the policy's ``power`` would detect ``min_detectable_effect`` (for the
sequential test: the ``n`` at which ``CS half-width + z_power * SE = MDE``), using the
current per-arm variances, at least up to ``min_sample_per_arm`` and capped at
``max_sample_per_arm``; ``None`` when it cannot be estimated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from scipy import stats

from arbiter.errors import InvalidInputError
from arbiter.stats.guardrails import Guardrail, GuardrailObservation
from arbiter.stats.means import ratio_test, welch_test
from arbiter.stats.power import sequential_sample_size
from arbiter.stats.proportions import two_proportion_test
from arbiter.stats.sequential import (
    confidence_sequence,
    fixed_mixture_tau,
    mixture_test,
    sequential_rho,
)
from arbiter.stats.srm import srm_test
from arbiter.stats.stratified import stratified_difference
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from arbiter.stats.verdict.policy import ArmObservations, ArmStatistic, DecisionPolicy
from arbiter.stats.verdict.types import Criterion, Decision, PrimarySummary, Verdict


def decide(arms: ArmObservations, policy: DecisionPolicy) -> Verdict:
    """Decide what to do with a challenger (see the module docstring for the rules).

    Parameters
    ----------
    arms : ArmObservations
        Primary-metric statistics per arm, guardrail observations, optional primary result.
    policy : DecisionPolicy
        The rules' parameters.

    Returns
    -------
    Verdict
        ``winner`` is ``"challenger"`` with ``promote``; ``rolled_back`` is
        ``("challenger",)`` with ``rollback``.

    Examples
    --------
    >>> arms = ArmObservations(ProportionStatistic(20000, 2000), ProportionStatistic(20000, 2300))
    >>> decide(arms, DecisionPolicy()).decision
    'promote'
    """
    _check_arms(arms, policy)
    verdict = _decide(arms, policy)
    if verdict.decision == "promote":
        return replace(verdict, winner="challenger")
    if verdict.decision == "rollback":
        return replace(verdict, rolled_back=("challenger",))
    return verdict


def _decide(arms: ArmObservations, policy: DecisionPolicy) -> Verdict:
    reasons: list[Criterion] = []
    harm: Decision = "rollback" if policy.serving else "keep_champion"

    # 1. Guardrails.
    observed = {g.name: g for g in arms.guardrails}
    breached, missing = False, False
    for rail in policy.guardrails:
        crit = _guardrail_criterion(rail, observed.get(rail.name))
        reasons.append(crit)
        if crit.observed is None:
            missing = True
        elif not crit.met:
            breached = True
    if breached:
        return Verdict(harm, tuple(reasons))

    # 2. Sample-ratio mismatch.
    srm_p: float | None = None
    if policy.check_srm:
        counts = arms.assignment_counts or (int(arms.champion.n), int(arms.challenger.n))
        srm = srm_test(counts, policy.traffic_weights, threshold=policy.srm_threshold)
        srm_p = 1.0 if math.isnan(srm.p_value) else srm.p_value  # nan: no units yet
        srm_ok = not srm.mismatch
        reasons.append(
            Criterion(
                "srm",
                srm_ok,
                srm_p,
                policy.srm_threshold,
                f"chi-square p={srm_p:.3g} for counts {counts} vs weights "
                f"{policy.traffic_weights}"
                + ("" if srm_ok else ": assignment is broken, results cannot be trusted"),
            )
        )
        if not srm_ok:
            return Verdict(policy.on_srm, tuple(reasons), srm_p_value=srm_p)

    # 3. Minimum sample (listed before the canary's harm test, which does not wait for it,
    # so a rollback's evidence still says whether the sample had been reached).
    n_min = min(arms.champion.n, arms.challenger.n)
    enough = n_min >= policy.min_sample_per_arm
    reasons.append(
        Criterion(
            "min_sample",
            enough,
            float(n_min),
            float(policy.min_sample_per_arm),
            f"smallest arm has {n_min} of the {policy.min_sample_per_arm} required",
        )
    )

    # 2b. Canary: harm at every look, whatever the sample.
    early_harm = policy.mode == "canary" and arms.primary_result is None
    harm_test: PrimarySummary | None = None
    if early_harm:
        if arms.strata is not None:
            harm_test, non_inferior, scope = _stratified_canary_harm(arms, policy)
        else:
            harm_test, non_inferior = _canary_harm(arms.champion, arms.challenger, policy), None
            scope = "all rows pooled since the canary started"
        harmed = harm_test.status == "ok" and harm_test.p_value < policy.alpha
        reasons.append(
            Criterion(
                "primary_no_harm",
                not harmed,
                harm_test.p_value,
                policy.alpha,
                f"one-sided {_describe(harm_test)} ({scope}): "
                + ("challenger significantly worse" if harmed else "no significant harm"),
            )
        )
        if non_inferior is not None:
            reasons.append(non_inferior)
        if harmed:
            return Verdict(harm, tuple(reasons), primary=harm_test, srm_p_value=srm_p)

    if not enough:
        remaining = _remaining_sample(arms, policy)
        return Verdict("continue", tuple(reasons), remaining, primary=harm_test, srm_p_value=srm_p)

    # 4. Primary metric.
    primary = (
        _coerce_primary(arms.primary_result)
        if arms.primary_result is not None
        else _primary_test(arms.champion, arms.challenger, policy)
    )
    usable = primary.status == "ok" and math.isfinite(primary.p_value)
    significant = usable and primary.p_value < policy.alpha
    sign = 1.0 if policy.higher_is_better else -1.0
    better = significant and sign * primary.estimate > 0
    worse = significant and sign * primary.estimate < 0
    label = _describe(primary)
    reasons.append(Criterion("primary_improvement", better, primary.p_value, policy.alpha, label))
    if early_harm:
        worse = False  # harm was tested at step 2b, one-sided at level alpha
    else:
        reasons.append(
            Criterion(
                "primary_no_harm",
                not worse,
                primary.p_value,
                policy.alpha,
                "challenger significantly worse" if worse else "no significant harm",
            )
        )
    verdict = _primary_verdict(arms, policy, primary, better, worse, missing, harm, reasons)
    return Verdict(verdict[0], tuple(reasons), verdict[1], primary=primary, srm_p_value=srm_p)


# --- private helpers ---------------------------------------------------------------------


def _check_arms(arms: ArmObservations, policy: DecisionPolicy) -> None:
    if not isinstance(arms, ArmObservations):
        raise InvalidInputError(
            f"arms must be an ArmObservations, got {type(arms).__name__}", field="arms"
        )
    if not isinstance(policy, DecisionPolicy):
        raise InvalidInputError(
            f"policy must be a DecisionPolicy, got {type(policy).__name__}", field="policy"
        )
    kind = ProportionStatistic if policy.metric_kind == "proportion" else SampleMeanStatistic
    if type(arms.champion) is not type(arms.challenger):
        raise InvalidInputError(
            "arms.champion and arms.challenger must be the same kind of statistic, got "
            f"{type(arms.champion).__name__} and {type(arms.challenger).__name__}",
            field="arms.challenger",
        )
    for name in ("champion", "challenger"):
        stat = getattr(arms, name)
        # A RatioStatistic is either kind of metric, analysed per randomisation unit.
        if not isinstance(stat, kind | RatioStatistic):
            raise InvalidInputError(
                f"arms.{name} must be a {kind.__name__} (or a RatioStatistic per unit) for "
                f"metric_kind={policy.metric_kind!r}, got {type(stat).__name__}",
                field=f"arms.{name}",
            )
        if stat.n < 0 or (
            isinstance(stat, ProportionStatistic) and not 0 <= stat.successes <= stat.n
        ):
            raise InvalidInputError(f"arms.{name} has invalid counts: {stat}", field=f"arms.{name}")
    configured = {g.name for g in policy.guardrails}
    for obs in arms.guardrails:
        if obs.name not in configured:
            raise InvalidInputError(
                f"guardrail observation {obs.name!r} matches no configured guardrail "
                f"({sorted(configured)}); fix the name or add the guardrail to the policy",
                field="arms.guardrails",
            )
    if arms.assignment_counts is not None and (
        len(arms.assignment_counts) != 2 or min(arms.assignment_counts) < 0
    ):
        raise InvalidInputError(
            f"assignment_counts must be two counts >= 0, got {arms.assignment_counts!r}",
            field="arms.assignment_counts",
        )


def _guardrail_criterion(rail: Guardrail, obs: GuardrailObservation | None) -> Criterion:
    name = f"guardrail:{rail.name}"
    if obs is None:
        return Criterion(name, False, None, rail.threshold, "no observation yet")
    if rail.relative_to_champion:
        if obs.champion is None:
            raise InvalidInputError(
                f"guardrail {rail.name!r} is relative to the champion; "
                "its observation needs a champion value",
                field=f"arms.guardrails.{rail.name}.champion",
            )
        step = rail.threshold * abs(obs.champion)
        limit = obs.champion + step if rail.comparison == "max" else obs.champion - step
    else:
        limit = rail.threshold
    met = obs.challenger <= limit if rail.comparison == "max" else obs.challenger >= limit
    word = "at most" if rail.comparison == "max" else "at least"
    detail = f"challenger {obs.challenger:.4g}, must be {word} {limit:.4g}"
    if rail.relative_to_champion:
        detail += f" (champion {obs.champion:.4g} ± {rail.threshold:.1%})"
    return Criterion(name, bool(met), float(obs.challenger), float(limit), detail)


def _primary_test(
    champion: ArmStatistic, challenger: ArmStatistic, policy: DecisionPolicy
) -> PrimarySummary:
    if policy.uses_sequential:
        r = confidence_sequence(
            champion, challenger, alpha=policy.alpha, config=policy.sequential_config_or_default
        )
        return PrimarySummary(r.estimate, r.ci_low, r.ci_high, r.p_value, r.method, r.status)
    return _fixed_horizon(champion, challenger, policy.alpha)


#: Labelled rows per arm before a mean metric's harm is tested in a canary (see _canary_harm).
CANARY_HARM_MIN_MEAN_N = 30


def _canary_harm(
    champion: ArmStatistic, challenger: ArmStatistic, policy: DecisionPolicy
) -> PrimarySummary:
    """One-sided always-valid test of harm (challenger worse than champion) at ``alpha``.

    The half-normal mixture e-process of :func:`arbiter.stats.sequential.confidence_sequence`
    with ``alternative`` toward harm ("smaller" when higher is better). It mixes only over
    harmful effects, so by Ville's inequality the probability that a challenger no worse
    than the champion *ever* crosses ``1/alpha`` (at any of the unlimited looks, whatever
    the sample size) is at most ``alpha`` (asymptotically, as for every CS here). This is
    the rigorous form of "the two-sided CS at level ``2 alpha`` gives a one-sided bound at
    ``alpha``": the two-sided mixture is the average of the two half-mixtures, so on the
    harmful side it crosses ``1/(2 alpha)`` almost exactly when the harmful half-mixture
    crosses ``1/alpha`` (the other half is negligible there), and ``rho`` is tuned at
    ``2 alpha`` (:func:`~arbiter.stats.sequential.sequential_rho`). A two-sided test at
    ``alpha`` would spend only ``alpha / 2`` on the one direction a canary acts on.

    Small samples. The sequence plugs in each arm's sample variance, which is 0 for a
    proportion arm with all rows right (or wrong): at a 1 % stage the challenger's first
    labelled row, if wrong, would be "significantly" worse than a 400-row champion (about
    2 % of identical canaries rolled back at their first look in a simulation). Proportions
    therefore get one pseudo-success and one pseudo-failure per arm (the Agresti–Caffo
    adjustment), which bounds the variance away from 0 and vanishes as ``n`` grows (identical
    arms: 2.2 % false rollbacks over 30 looks at ``alpha`` = 0.05, 1 % at 97 % accuracy);
    a mean metric (a regression loss, often skewed) is tested once both arms have
    :data:`CANARY_HARM_MIN_MEAN_N` rows (``status="insufficient_data"`` before).
    """
    if min(champion.n, challenger.n) == 0:
        return PrimarySummary(math.nan, -math.inf, math.inf, 1.0, "asymptotic_cs", "no_data")
    if isinstance(champion, ProportionStatistic) and isinstance(challenger, ProportionStatistic):
        champion = ProportionStatistic(champion.n + 2, champion.successes + 1)
        challenger = ProportionStatistic(challenger.n + 2, challenger.successes + 1)
    elif min(champion.n, challenger.n) < CANARY_HARM_MIN_MEAN_N:
        return PrimarySummary(
            challenger.mean - champion.mean,
            -math.inf,
            math.inf,
            1.0,
            "asymptotic_cs",
            "insufficient_data",
        )
    alternative: Literal["smaller", "larger"] = "smaller" if policy.higher_is_better else "larger"
    r = confidence_sequence(
        champion,
        challenger,
        alpha=policy.alpha,
        alternative=alternative,
        config=policy.sequential_config_or_default,
    )
    return PrimarySummary(r.estimate, r.ci_low, r.ci_high, r.p_value, r.method, r.status)


def _stratified_canary_harm(
    arms: ArmObservations, policy: DecisionPolicy
) -> tuple[PrimarySummary, Criterion | None, str]:
    """Harm (and non-inferiority) from concurrent strata, with a fixed-``tau`` mixture.

    The challenger − champion difference is estimated within each stratum of constant split
    and combined (:func:`arbiter.stats.stratified.stratified_difference`, per unit), so a
    metric drifting while the share ramps is not read as harm; strata with one arm only
    contribute nothing; with ``arms.strata_influence`` the variance also counts the
    covariance of a unit's rows across strata and arms (cluster-robust over units). It is
    tested with :func:`arbiter.stats.sequential.mixture_test`: a
    half-normal mixture toward harm over the effect, whose scale ``tau`` is fixed on the
    effect scale (``SequentialConfig.tau``, else :func:`fixed_mixture_tau` at a planned
    50/50 allocation, from the per-unit variance), so its level does not depend on the
    split path (``u = rho^2 (n_a + n_b)`` of the pooled sequence changes 25-fold between the
    1 % and 50 % stages). A proportion gets one pseudo-unit right and one wrong per arm in
    its variance (the Agresti–Caffo idea, as in :func:`_canary_harm`); a mean metric waits
    for :data:`CANARY_HARM_MIN_MEAN_N` concurrent units per arm.

    With ``policy.max_harm`` the second value is the ``non_inferiority`` criterion: the
    one-sided always-valid bound of the same mixture toward "better", centred on the margin,
    must exclude a harm of ``max_harm``.
    """
    assert arms.strata is not None
    est = stratified_difference(
        arms.strata,
        pseudo_units=policy.metric_kind == "proportion",
        clustered=arms.strata_influence,
    )
    scope = (
        f"{est.strata_used} of {est.strata} strata with concurrent champion rows, units "
        f"{est.units[0]}/{est.units[1]}"
    )
    ni_name = "non_inferiority"
    margin = policy.max_harm

    def _pending(status: str) -> tuple[PrimarySummary, Criterion | None, str]:
        summary = PrimarySummary(est.estimate, -math.inf, math.inf, 1.0, "msprt_fixed_tau", status)
        crit = None
        if margin is not None:
            crit = Criterion(ni_name, False, None, -margin, f"not yet shown ({status})")
        return summary, crit, scope

    if est.strata_used == 0:
        return _pending("no_data")
    if not (math.isfinite(est.variance) and math.isfinite(est.unit_variance)) or (
        policy.metric_kind == "mean" and min(est.units) < CANARY_HARM_MIN_MEAN_N
    ):
        return _pending("insufficient_data")
    if not (est.variance > 0 and est.unit_variance > 0):
        return _pending("zero_variance")
    cfg = policy.sequential_config_or_default
    harm_side: Literal["smaller", "larger"] = "smaller" if policy.higher_is_better else "larger"
    tau = cfg.tau or fixed_mixture_tau(
        est.unit_variance,
        alpha=policy.alpha,
        target_sample_size=cfg.target_sample_size,
        alternative=harm_side,
        rho=cfg.rho,
    )
    n = sum(est.units)
    r = mixture_test(
        est.estimate, est.variance, tau=tau, alpha=policy.alpha, alternative=harm_side, n=n
    )
    summary = PrimarySummary(r.estimate, r.ci_low, r.ci_high, r.p_value, r.method, r.status)
    if margin is None:
        return summary, None, scope
    better_side: Literal["smaller", "larger"] = "larger" if policy.higher_is_better else "smaller"
    null = -margin if policy.higher_is_better else margin
    ni = mixture_test(
        est.estimate,
        est.variance,
        tau=tau,
        alpha=policy.alpha,
        alternative=better_side,
        null_value=null,
        n=n,
    )
    bound = ni.ci_low if policy.higher_is_better else ni.ci_high
    shown = ni.p_value < policy.alpha
    word = "lower" if policy.higher_is_better else "upper"
    crit = Criterion(
        ni_name,
        shown,
        bound,
        null,
        f"always-valid {word} bound {bound:.4g} of challenger − champion "
        + ("excludes" if shown else "does not yet exclude")
        + f" a harm of max_harm={margin:g} (p={ni.p_value:.3g})",
    )
    return summary, crit, scope


def _describe(primary: PrimarySummary) -> str:
    label = f"{primary.method}: estimate={primary.estimate:.4g} "
    label += f"CI=[{primary.ci_low:.4g}, {primary.ci_high:.4g}] p={primary.p_value:.3g}"
    if primary.status != "ok":
        label += f" (status {primary.status})"
    return label


def _fixed_horizon(
    champion: ArmStatistic, challenger: ArmStatistic, alpha: float
) -> PrimarySummary:
    """Pooled two-proportion z-test, Welch t-test or delta-method ratio z-test (two-sided)."""
    if isinstance(champion, ProportionStatistic) and isinstance(challenger, ProportionStatistic):
        r: Any = two_proportion_test(champion, challenger, alpha=alpha)
    elif isinstance(champion, RatioStatistic) and isinstance(challenger, RatioStatistic):
        r = ratio_test(champion, challenger, alpha=alpha)
    else:
        r = welch_test(champion, challenger, alpha=alpha)  # type: ignore[arg-type]
    # "zero_baseline" only means the relative lift is undefined; the test itself is valid.
    status = "ok" if r.status in ("ok", "zero_baseline") else r.status
    return PrimarySummary(r.difference, r.ci_low, r.ci_high, r.p_value, r.method, status)


def _field(result: object, name: str) -> object:
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)


def _coerce_primary(result: object) -> PrimarySummary:
    """Read an externally computed test (object with attributes, or mapping)."""
    if isinstance(result, PrimarySummary):
        return result
    estimate, p_value = _field(result, "estimate"), _field(result, "p_value")
    if estimate is None:  # arbiter.stats.results.PairedTestResult calls it "difference"
        estimate = _field(result, "difference")
    low, high = _field(result, "ci_low"), _field(result, "ci_high")
    if low is None or high is None:
        ci = _field(result, "ci")
        if ci is not None:
            low, high = ci  # type: ignore[misc]
    try:
        values = [float(v) for v in (estimate, low, high, p_value)]  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            "primary_result needs numeric estimate, p_value and ci_low/ci_high (or ci), got "
            f"{result!r}",
            field="arms.primary_result",
        ) from exc
    if not 0.0 <= values[3] <= 1.0:
        raise InvalidInputError(
            f"primary_result.p_value must be in [0, 1], got {values[3]!r}",
            field="arms.primary_result.p_value",
        )
    method = _field(result, "method") or type(result).__name__
    status = _field(result, "status") or "ok"
    return PrimarySummary(values[0], values[1], values[2], values[3], str(method), str(status))


def _primary_verdict(
    arms: ArmObservations,
    policy: DecisionPolicy,
    primary: PrimarySummary,
    better: bool,
    worse: bool,
    missing_guardrail: bool,
    harm: Decision,
    reasons: list[Criterion],
) -> tuple[Decision, int | None]:
    if better:
        if missing_guardrail:
            return "continue", None
        return "promote", None
    if worse:
        return harm, None
    mde = policy.min_detectable_effect
    if policy.uses_sequential and mde is not None and arms.primary_result is None:
        # Best plausible improvement, in the "better" direction, from the CS bound.
        best = primary.ci_high if policy.higher_is_better else -primary.ci_low
        futile = math.isfinite(best) and best < mde
        reasons.append(
            Criterion(
                "futility",
                not futile,
                best,
                mde,
                "confidence sequence excludes an improvement of the MDE"
                if futile
                else "an improvement of the MDE is still plausible",
            )
        )
        if futile:
            return "keep_champion", None
    n_min = min(arms.champion.n, arms.challenger.n)
    if policy.max_sample_per_arm is not None:
        reached = n_min >= policy.max_sample_per_arm
        reasons.append(
            Criterion(
                "max_sample",
                not reached,
                float(n_min),
                float(policy.max_sample_per_arm),
                "planned sample reached without a significant difference"
                if reached
                else "planned sample not yet reached",
            )
        )
        if reached:
            return "keep_champion", None
    return "continue", _remaining_sample(arms, policy)


def _remaining_sample(arms: ArmObservations, policy: DecisionPolicy) -> int | None:
    """Additional observations per arm (see module docstring); None if not estimable."""
    n_min = min(arms.champion.n, arms.challenger.n)
    floor = max(policy.min_sample_per_arm - n_min, 0)
    required = _required_per_arm(arms, policy)
    if required is None:
        return floor if floor > 0 else None
    remaining = max(required - n_min, floor)
    if policy.max_sample_per_arm is not None:
        remaining = min(remaining, max(policy.max_sample_per_arm - n_min, 0))
    return int(remaining)


def _required_per_arm(arms: ArmObservations, policy: DecisionPolicy) -> int | None:
    mde = policy.min_detectable_effect
    if mde is None:
        return None
    v = arms.champion.variance + arms.challenger.variance  # per-observation, both arms
    if not v > 0.0:
        return None
    if not policy.uses_sequential:
        z_power = float(stats.norm.ppf(policy.power))
        z_alpha = float(stats.norm.ppf(1.0 - policy.alpha / 2.0))
        return math.ceil((z_alpha + z_power) ** 2 * v / mde**2)
    cfg = policy.sequential_config_or_default
    rho = cfg.rho or sequential_rho(policy.alpha, cfg.target_sample_size)
    return sequential_sample_size(v, mde, alpha=policy.alpha, power=policy.power, rho=rho)


__all__ = ["CANARY_HARM_MIN_MEAN_N", "decide"]
