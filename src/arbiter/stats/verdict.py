"""The decision policy: turn the evidence of a model test into promote / keep / continue / rollback.

:func:`decide` is a pure function of the per-arm sufficient statistics of the primary metric
(champion = control, challenger = treatment), the guardrail observations, and a frozen
:class:`DecisionPolicy`. It returns a :class:`Verdict` that lists every criterion it
checked, so a report can show *why*.

Rules, applied in this order (the first that fires decides; in ``canary`` mode 2b is
checked after the ``min_sample`` criterion is recorded but before it can stop the verdict):

1. **Guardrails.** A breached guardrail → ``rollback`` when the challenger serves users
   (``mode`` ``"ab"`` or ``"canary"``), ``keep_champion`` when it does not (``"shadow"``,
   ``"offline"``: nothing to roll back, the challenger is simply not promoted). Guardrail
   values are compared as given; pass a conservative statistic (e.g. an upper confidence
   bound of the error rate) when noise matters. Harm first: a guardrail breach wins even
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

:func:`decide_shadow_classic` is the simpler heuristic some teams use for shadow
deployments (challenger more accurate, discrepancy < 30 %, challenger more confident on
> 50 % of disagreements). It compares point estimates with no error control, so it is an
opt-in preset; the default for shadow traffic is a paired test passed to :func:`decide`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy import optimize, stats

from arbiter.errors import InvalidInputError
from arbiter.stats.means import ratio_test, welch_test
from arbiter.stats.proportions import two_proportion_test
from arbiter.stats.sequential import (
    SequentialConfig,
    confidence_sequence,
    cs_halfwidth,
    sequential_rho,
)
from arbiter.stats.srm import srm_test
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic

Decision = Literal["promote", "keep_champion", "continue", "rollback"]
MetricKind = Literal["proportion", "mean"]
Mode = Literal["ab", "canary", "shadow", "offline"]
# RatioStatistic: the metric analysed per randomisation unit when units repeat (delta method).
ArmStatistic = ProportionStatistic | SampleMeanStatistic | RatioStatistic

_SERVING_MODES: tuple[str, ...] = ("ab", "canary")


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A limit the challenger must respect, whatever the primary metric says.

    Parameters
    ----------
    name : str
        Identifier matched against :class:`GuardrailObservation` names (e.g.
        ``"error_rate"``, ``"latency_p99_ms"``, ``"shadow_discrepancy_rate"``, ``"psi"``).
    threshold : float
        Absolute limit, or with ``relative_to_champion`` the allowed relative degradation
        versus the champion (0.1 = 10 % worse).
    comparison : {"max", "min"}
        ``"max"``: the challenger must stay at or below the limit (error rate, latency);
        ``"min"``: at or above it (throughput, accuracy).
    relative_to_champion : bool, default=False
        Limit is ``champion + threshold * |champion|`` for ``"max"`` and
        ``champion - threshold * |champion|`` for ``"min"``.
    """

    name: str
    threshold: float
    comparison: Literal["max", "min"] = "max"
    relative_to_champion: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInputError("Guardrail.name must be non-empty", field="name")
        if self.comparison not in ("max", "min"):
            raise InvalidInputError(
                f"Guardrail {self.name!r}: comparison must be 'max' or 'min', "
                f"got {self.comparison!r}",
                field="comparison",
            )
        if not math.isfinite(self.threshold):
            raise InvalidInputError(
                f"Guardrail {self.name!r}: threshold must be finite, got {self.threshold!r}",
                field="threshold",
            )
        if self.relative_to_champion and self.threshold < 0:
            raise InvalidInputError(
                f"Guardrail {self.name!r}: a relative threshold is an allowed degradation "
                f"and must be >= 0, got {self.threshold!r}",
                field="threshold",
            )


@dataclass(frozen=True, slots=True)
class GuardrailObservation:
    """Observed guardrail value for the challenger (and the champion, for relative limits)."""

    name: str
    challenger: float
    champion: float | None = None


@dataclass(frozen=True, slots=True)
class PrimarySummary:
    """The primary test in a common shape (estimate = challenger − champion)."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class ArmObservations:
    """Everything :func:`decide` looks at.

    Parameters
    ----------
    champion, challenger : ProportionStatistic or SampleMeanStatistic
        Primary-metric sufficient statistics per arm (of ``policy.metric_kind``).
    guardrails : tuple of GuardrailObservation, default=()
        One per configured guardrail.
    primary_result : object or Mapping, optional
        A primary test computed elsewhere (e.g. a paired test for shadow traffic). Needs
        ``estimate`` (or ``difference``) and ``p_value`` plus ``ci_low``/``ci_high`` or
        ``ci`` (a pair), as attributes or mapping keys; optional ``method`` and ``status``
        (anything but ``"ok"`` counts as not significant). Its estimate must be
        challenger − champion. When given, ``decide`` does not run its own test.
    assignment_counts : tuple of int, optional
        ``(champion, challenger)`` units assigned, for the SRM check; defaults to the
        statistics' ``n``.
    """

    champion: ArmStatistic
    challenger: ArmStatistic
    guardrails: tuple[GuardrailObservation, ...] = ()
    primary_result: object | None = None
    assignment_counts: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """How evidence becomes a decision (see the module docstring for the rules).

    Parameters
    ----------
    metric_kind : {"proportion", "mean"}, default="proportion"
        Kind of the primary metric's statistics.
    higher_is_better : bool, default=True
        Direction of the primary metric.
    alpha : float, default=0.05
        Two-sided level of the primary test.
    sequential : bool or None, default=None
        Always-valid confidence sequence (safe to look at any time) versus a fixed-horizon
        test. ``None``: sequential for online modes (``ab``, ``canary``, ``shadow``),
        fixed-horizon for ``offline``. ``False`` is refused in ``canary`` mode: a canary
        looks at its data at every checkpoint, which a fixed-horizon test does not survive.
    sequential_config : SequentialConfig or None, default=None
        ``None``: tuned for ``2 * max_sample_per_arm`` total observations when that is set,
        else :class:`SequentialConfig` defaults.
    min_sample_per_arm : int, default=1000
        No decision from the primary metric below this.
    max_sample_per_arm : int or None, default=None
        Planned horizon: reached without significance → ``keep_champion``.
    min_detectable_effect : float or None, default=None
        Smallest absolute difference worth detecting (metric units); drives the remaining
        sample estimate and sequential futility.
    power : float, default=0.8
        Power used for the remaining sample estimate.
    guardrails : tuple of Guardrail, default=()
        Limits on the challenger.
    traffic_weights : tuple of float, default=(0.5, 0.5)
        Configured (champion, challenger) split, for the SRM check.
    srm_threshold : float, default=0.001
        SRM alarm when the chi-square p-value is below this.
    check_srm : bool, default=True
        Run the SRM check. ``False`` when no split can be checked at this look (e.g. a canary
        stage at 100 %, or too few units since the stage's grace window); the verdict then
        has no ``srm`` criterion.
    on_srm : {"continue", "rollback"}, default="continue"
        Decision when SRM is detected (never promote either way).
    mode : {"ab", "canary", "shadow", "offline"}, default="ab"
        Whether the challenger serves users (``ab``, ``canary``), which makes harm a
        ``rollback`` rather than ``keep_champion``.
    """

    metric_kind: MetricKind = "proportion"
    higher_is_better: bool = True
    alpha: float = 0.05
    sequential: bool | None = None
    sequential_config: SequentialConfig | None = None
    min_sample_per_arm: int = 1000
    max_sample_per_arm: int | None = None
    min_detectable_effect: float | None = None
    power: float = 0.8
    guardrails: tuple[Guardrail, ...] = ()
    traffic_weights: tuple[float, float] = (0.5, 0.5)
    srm_threshold: float = 0.001
    on_srm: Literal["continue", "rollback"] = "continue"
    mode: Mode = "ab"
    check_srm: bool = True

    def __post_init__(self) -> None:
        if self.metric_kind not in ("proportion", "mean"):
            raise InvalidInputError(
                f"metric_kind must be 'proportion' or 'mean', got {self.metric_kind!r}",
                field="metric_kind",
            )
        if not (0.0 < self.alpha < 1.0):
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha!r}", field="alpha")
        if not (0.0 < self.power < 1.0):
            raise InvalidInputError(f"power must be in (0, 1), got {self.power!r}", field="power")
        if not (isinstance(self.min_sample_per_arm, int) and self.min_sample_per_arm >= 0):
            raise InvalidInputError(
                f"min_sample_per_arm must be an int >= 0, got {self.min_sample_per_arm!r}",
                field="min_sample_per_arm",
            )
        if self.max_sample_per_arm is not None and not (
            isinstance(self.max_sample_per_arm, int)
            and self.max_sample_per_arm >= max(self.min_sample_per_arm, 1)
        ):
            raise InvalidInputError(
                "max_sample_per_arm must be an int >= min_sample_per_arm (and >= 1), got "
                f"{self.max_sample_per_arm!r}",
                field="max_sample_per_arm",
            )
        mde = self.min_detectable_effect
        if mde is not None and not (math.isfinite(mde) and mde > 0):
            raise InvalidInputError(
                f"min_detectable_effect must be a positive absolute difference, got {mde!r}",
                field="min_detectable_effect",
            )
        weights = self.traffic_weights
        if len(weights) != 2 or not all(math.isfinite(w) and w > 0 for w in weights):
            raise InvalidInputError(
                f"traffic_weights must be two positive numbers, got {weights!r}",
                field="traffic_weights",
            )
        if not (0.0 < self.srm_threshold < 1.0):
            raise InvalidInputError(
                f"srm_threshold must be in (0, 1), got {self.srm_threshold!r}",
                field="srm_threshold",
            )
        if self.on_srm not in ("continue", "rollback"):
            raise InvalidInputError(
                f"on_srm must be 'continue' or 'rollback', got {self.on_srm!r}", field="on_srm"
            )
        if self.mode not in ("ab", "canary", "shadow", "offline"):
            raise InvalidInputError(
                f"mode must be one of 'ab', 'canary', 'shadow', 'offline', got {self.mode!r}",
                field="mode",
            )
        if self.mode == "canary" and self.sequential is False:
            raise InvalidInputError(
                "a canary looks at its data at every checkpoint, so its tests must be "
                "sequential; leave sequential=None (or True) in mode 'canary'",
                field="sequential",
            )
        names = [g.name for g in self.guardrails]
        if len(set(names)) != len(names):
            raise InvalidInputError(
                f"guardrail names must be unique, got {names}", field="guardrails"
            )

    @property
    def uses_sequential(self) -> bool:
        """Whether the primary test is the always-valid confidence sequence (always in
        ``canary`` mode)."""
        if self.mode == "canary":
            return True
        return self.sequential if self.sequential is not None else self.mode != "offline"

    @property
    def serving(self) -> bool:
        """Whether the challenger's outputs reach users in this mode."""
        return self.mode in _SERVING_MODES


@dataclass(frozen=True, slots=True)
class Criterion:
    """One check behind a verdict. ``met`` is True when the check passes (is satisfied)."""

    name: str
    met: bool
    observed: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision and its reasons.

    Attributes
    ----------
    decision : {"promote", "keep_champion", "continue", "rollback"}
    reasons : tuple of Criterion
        Every criterion evaluated, in rule order.
    estimated_remaining_sample : int or None
        Additional observations per arm expected to be needed (only when continuing).
    primary : PrimarySummary or None
        The primary test (None when a rule before it decided).
    srm_p_value : float or None
        Chi-square SRM p-value.
    """

    decision: Decision
    reasons: tuple[Criterion, ...]
    estimated_remaining_sample: int | None = None
    primary: PrimarySummary | None = None
    srm_p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values (nested dataclasses too)."""
        return asdict(self)


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

    Examples
    --------
    >>> arms = ArmObservations(ProportionStatistic(20000, 2000), ProportionStatistic(20000, 2300))
    >>> decide(arms, DecisionPolicy()).decision
    'promote'
    """
    _check_arms(arms, policy)
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
        harm_test = _canary_harm(arms.champion, arms.challenger, policy)
        harmed = harm_test.status == "ok" and harm_test.p_value < policy.alpha
        reasons.append(
            Criterion(
                "primary_no_harm",
                not harmed,
                harm_test.p_value,
                policy.alpha,
                f"one-sided {_describe(harm_test)}: "
                + ("challenger significantly worse" if harmed else "no significant harm"),
            )
        )
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


@dataclass(frozen=True, slots=True)
class ShadowClassicPolicy:
    """Thresholds of the classic shadow-deployment heuristic.

    Parameters
    ----------
    max_discrepancy : float, default=0.30
        Challenger and champion must disagree on fewer than this share of requests.
    min_confident_share : float, default=0.50
        On disagreements, the challenger must be the more confident model more often than
        this share.
    min_labelled : int, default=1000
        Labelled requests per model needed before judging accuracy.
    """

    max_discrepancy: float = 0.30
    min_confident_share: float = 0.50
    min_labelled: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_discrepancy", "min_confident_share"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise InvalidInputError(f"{name} must be in [0, 1], got {v!r}", field=name)
        if not (isinstance(self.min_labelled, int) and self.min_labelled >= 0):
            raise InvalidInputError(
                f"min_labelled must be an int >= 0, got {self.min_labelled!r}",
                field="min_labelled",
            )


@dataclass(frozen=True, slots=True)
class ShadowObservations:
    """Counts for :func:`decide_shadow_classic`.

    Parameters
    ----------
    champion_accuracy, challenger_accuracy : ProportionStatistic
        Correct predictions out of labelled requests.
    discrepancy : ProportionStatistic
        Disagreements out of compared requests.
    challenger_more_confident : ProportionStatistic
        Disagreements on which the challenger was more confident, out of disagreements.
    """

    champion_accuracy: ProportionStatistic
    challenger_accuracy: ProportionStatistic
    discrepancy: ProportionStatistic
    challenger_more_confident: ProportionStatistic


def decide_shadow_classic(
    observations: ShadowObservations, policy: ShadowClassicPolicy | None = None
) -> Verdict:
    """The classic shadow preset: promote when three point-estimate criteria hold.

    Challenger accuracy > champion accuracy, discrepancy rate < ``max_discrepancy``, and
    challenger more confident on > ``min_confident_share`` of disagreements → ``promote``;
    fewer than ``min_labelled`` labelled requests → ``continue``; otherwise
    ``keep_champion``. A shadow challenger serves nobody, so this never rolls back. No
    error control: prefer :func:`decide` with a paired test.

    Parameters
    ----------
    observations : ShadowObservations
        The four counts.
    policy : ShadowClassicPolicy, optional
        Thresholds (defaults 30 % / 50 %).

    Returns
    -------
    Verdict
    """
    policy = policy or ShadowClassicPolicy()
    for name in (
        "champion_accuracy",
        "challenger_accuracy",
        "discrepancy",
        "challenger_more_confident",
    ):
        stat = getattr(observations, name)
        if not isinstance(stat, ProportionStatistic) or not (0 <= stat.successes <= stat.n):
            raise InvalidInputError(
                f"{name} must be a ProportionStatistic with 0 <= successes <= n", field=name
            )
    o = observations
    n_labelled = min(o.champion_accuracy.n, o.challenger_accuracy.n)
    enough = n_labelled >= policy.min_labelled and o.discrepancy.n > 0
    reasons = [
        Criterion(
            "min_labelled",
            enough,
            float(n_labelled),
            float(policy.min_labelled),
            f"{n_labelled} labelled requests per model, {o.discrepancy.n} compared",
        )
    ]
    if not enough:
        return Verdict("continue", tuple(reasons), policy.min_labelled - n_labelled)
    acc_c, acc_t = o.champion_accuracy.mean, o.challenger_accuracy.mean
    disc = o.discrepancy.mean
    # With no disagreements there is nothing to be more confident about: criterion holds.
    conf = o.challenger_more_confident.mean if o.challenger_more_confident.n else 1.0
    reasons += [
        Criterion(
            "challenger_more_accurate",
            acc_t > acc_c,
            acc_t,
            acc_c,
            f"accuracy {acc_t:.4f} vs champion {acc_c:.4f}",
        ),
        Criterion(
            "discrepancy",
            disc < policy.max_discrepancy,
            disc,
            policy.max_discrepancy,
            f"models disagree on {disc:.1%} of requests",
        ),
        Criterion(
            "challenger_more_confident",
            conf > policy.min_confident_share,
            conf,
            policy.min_confident_share,
            f"challenger more confident on {conf:.1%} of "
            f"{o.challenger_more_confident.n} disagreements",
        ),
    ]
    decision: Decision = "promote" if all(c.met for c in reasons) else "keep_champion"
    return Verdict(decision, tuple(reasons))


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


def _sequential_config(policy: DecisionPolicy) -> SequentialConfig:
    if policy.sequential_config is not None:
        return policy.sequential_config
    if policy.max_sample_per_arm is not None:
        return SequentialConfig(target_sample_size=2.0 * policy.max_sample_per_arm)
    return SequentialConfig()


def _primary_test(
    champion: ArmStatistic, challenger: ArmStatistic, policy: DecisionPolicy
) -> PrimarySummary:
    if policy.uses_sequential:
        r = confidence_sequence(
            champion, challenger, alpha=policy.alpha, config=_sequential_config(policy)
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
        config=_sequential_config(policy),
    )
    return PrimarySummary(r.estimate, r.ci_low, r.ci_high, r.p_value, r.method, r.status)


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
    z_power = float(stats.norm.ppf(policy.power))
    if not policy.uses_sequential:
        z_alpha = float(stats.norm.ppf(1.0 - policy.alpha / 2.0))
        return math.ceil((z_alpha + z_power) ** 2 * v / mde**2)
    cfg = _sequential_config(policy)
    rho = cfg.rho or sequential_rho(policy.alpha, cfg.target_sample_size)

    def gap(n: float) -> float:
        se = math.sqrt(v / n)
        return float(cs_halfwidth(se, 2.0 * n, rho, policy.alpha)) + z_power * se - mde

    hi = 1e13
    if gap(hi) > 0:
        return None
    if gap(1.0) <= 0:
        return 1
    return math.ceil(optimize.brentq(gap, 1.0, hi, rtol=1e-10))


__all__ = [
    "ArmObservations",
    "Criterion",
    "Decision",
    "DecisionPolicy",
    "Guardrail",
    "GuardrailObservation",
    "PrimarySummary",
    "ShadowClassicPolicy",
    "ShadowObservations",
    "Verdict",
    "decide",
    "decide_shadow_classic",
]
