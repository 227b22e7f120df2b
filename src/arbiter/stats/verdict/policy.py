"""The inputs of the two-arm decision rules: the evidence and the policy that judges it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from arbiter.errors import InvalidInputError
from arbiter.stats.guardrails import Guardrail, GuardrailObservation
from arbiter.stats.sequential import SequentialConfig
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic

MetricKind = Literal["proportion", "mean"]
Mode = Literal["ab", "canary", "shadow", "offline"]
# RatioStatistic: the metric analysed per randomisation unit when units repeat (delta method).
ArmStatistic = ProportionStatistic | SampleMeanStatistic | RatioStatistic

_SERVING_MODES: tuple[str, ...] = ("ab", "canary")


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
    strata : tuple of (RatioStatistic, RatioStatistic), optional
        ``mode="canary"`` only: the primary metric per stratum (a stage of constant split),
        ``(champion, challenger)``, units summed within the stratum. When given, the harm test
        compares concurrent rows only (:mod:`arbiter.stats.stratified`) with a fixed-``tau``
        mixture; when ``None`` it tests the pooled ``champion``/``challenger`` as before.
    strata_influence : (float, int), optional
        With ``strata``: ``(sum of squared unit influences, units)`` for the cluster-robust
        variance across strata and arms (:func:`arbiter.stats.stratified.influence_coefficients`).
    """

    champion: ArmStatistic
    challenger: ArmStatistic
    guardrails: tuple[GuardrailObservation, ...] = ()
    primary_result: object | None = None
    assignment_counts: tuple[int, int] | None = None
    strata: tuple[tuple[RatioStatistic, RatioStatistic], ...] | None = None
    strata_influence: tuple[float, int] | None = None


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
    max_harm : float or None, default=None
        ``mode="canary"`` with ``ArmObservations.strata`` only: non-inferiority margin
        (absolute, metric units). When set, a ``non_inferiority`` criterion is met only once
        the always-valid bound of challenger − champion excludes a harm of ``max_harm``, and
        a canary promotes only then ("shown not worse than the margin" instead of "no harm
        detected").
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
    max_harm: float | None = None

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
        if self.max_harm is not None and not (math.isfinite(self.max_harm) and self.max_harm > 0):
            raise InvalidInputError(
                f"max_harm must be a positive number or None, got {self.max_harm!r}",
                field="max_harm",
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

    @property
    def sequential_config_or_default(self) -> SequentialConfig:
        """The confidence sequence's tuning: ``sequential_config`` when set, else tuned for
        ``2 * max_sample_per_arm`` total observations when a horizon is planned, else the
        :class:`SequentialConfig` defaults."""
        if self.sequential_config is not None:
            return self.sequential_config
        if self.max_sample_per_arm is not None:
            return SequentialConfig(target_sample_size=2.0 * self.max_sample_per_arm)
        return SequentialConfig()


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


__all__ = [
    "ArmObservations",
    "ArmStatistic",
    "DecisionPolicy",
    "MetricKind",
    "Mode",
    "ShadowClassicPolicy",
    "ShadowObservations",
]
