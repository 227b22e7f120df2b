"""Every decision of arbiter: pure functions that turn evidence into one :class:`Verdict`.

One function per kind of experiment, each returning a :class:`Verdict` that lists every
criterion it checked (so a report can say *why*) and the numbers behind the decision:

* :func:`decide`: two arms (A/B, canary, shadow with a paired test, offline), rules in
  :mod:`arbiter.stats.verdict.two_arm`;
* :func:`decide_shadow_classic`: the classic point-estimate shadow heuristic (opt-in);
* :func:`decide_multiarm`: A/B/n over a :func:`pairwise_comparisons` family;
* :func:`decide_interleaving`: a ranker comparison by interleaved clicks;
* :func:`decide_bandit`: which arm a bandit found (``confirm_with_ab``, never ``promote``).

Guardrails are judged by :mod:`arbiter.stats.guardrails`, the same rule everywhere.
"""

from __future__ import annotations

from arbiter.stats.guardrails import Guardrail, GuardrailObservation
from arbiter.stats.verdict.bandit import P_BEST_THRESHOLD, decide_bandit
from arbiter.stats.verdict.interleaving import decide_interleaving, interleaving_decision_p_value
from arbiter.stats.verdict.metric_guardrails import (
    apply_metric_guardrails,
    apply_metric_guardrails_multiarm,
    non_inferiority_criterion,
)
from arbiter.stats.verdict.multiarm import (
    PairwiseComparison,
    PairwiseFamily,
    decide_multiarm,
    pairwise_comparisons,
)
from arbiter.stats.verdict.policy import (
    ArmObservations,
    ArmStatistic,
    DecisionPolicy,
    MetricKind,
    Mode,
    ShadowClassicPolicy,
    ShadowObservations,
)
from arbiter.stats.verdict.shadow import decide_shadow_classic
from arbiter.stats.verdict.two_arm import CANARY_HARM_MIN_MEAN_N, decide
from arbiter.stats.verdict.types import Criterion, Decision, PrimarySummary, Verdict

__all__ = [
    "CANARY_HARM_MIN_MEAN_N",
    "P_BEST_THRESHOLD",
    "ArmObservations",
    "ArmStatistic",
    "Criterion",
    "Decision",
    "DecisionPolicy",
    "Guardrail",
    "GuardrailObservation",
    "MetricKind",
    "Mode",
    "PairwiseComparison",
    "PairwiseFamily",
    "PrimarySummary",
    "ShadowClassicPolicy",
    "ShadowObservations",
    "Verdict",
    "apply_metric_guardrails",
    "apply_metric_guardrails_multiarm",
    "decide",
    "decide_bandit",
    "decide_interleaving",
    "decide_multiarm",
    "decide_shadow_classic",
    "interleaving_decision_p_value",
    "non_inferiority_criterion",
    "pairwise_comparisons",
]
