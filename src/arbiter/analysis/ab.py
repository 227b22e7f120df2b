"""The ab strategy's analysis: two arms compared, or k arms when it is an A/B/n test."""

from __future__ import annotations

from dataclasses import replace

import duckdb

from arbiter.analysis.analyze import OVER_TIME_LOOKS, ExperimentAnalysis, compare_arms
from arbiter.analysis.kinds import configured_arms, has_challenger_list, logged_shape
from arbiter.analysis.metrics import MetricsAnalysis, analyze_metrics
from arbiter.analysis.multiarm import MultiArmAnalysis, analyze_multiarm
from arbiter.config import DecisionConfig, ModelConfig
from arbiter.events.query import Scope
from arbiter.stats.guardrails import GuardrailCheck
from arbiter.stats.sufficient import RegressionAdjustmentStatistic
from arbiter.stats.verdict import (
    Verdict,
    apply_metric_guardrails_multiarm,
    decide_multiarm,
    pairwise_comparisons,
)


def analyze_ab(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: DecisionConfig | None = None,
) -> ExperimentAnalysis | MultiArmAnalysis:
    """Analyse an A/B test (two arms) or an A/B/n test (more served or configured).

    A home config that lists ``experiment.challengers`` gets the k-arm analysis even for one
    challenger, since its arms are named after their aliases. Both carry the model's metrics
    (``metrics:`` in ``arbiter.yaml``) for every challenger; the two-arm verdict decides on
    ``decision.primary_metric`` when set (:func:`arbiter.analysis.analyze.compare_arms`).
    """
    _strategy, n_arms = logged_shape(con, model, experiment)
    n_arms = max(n_arms, configured_arms(model_config, model, experiment))
    if n_arms > 2 or has_challenger_list(model_config, model, experiment):
        result = analyze_multiarm(con, model, experiment, model_config=model_config, policy=policy)
        if model_config is not None and model_config.metrics:
            metrics = analyze_metrics(
                con,
                Scope(model, experiment),
                model_config,
                decision=policy,
                champion=result.arms[0],
                challengers=result.arms[1:],
                sequential_config=result.policy.sequential_config,
                over_time=OVER_TIME_LOOKS,
            )
            decision = policy or model_config.decision
            verdict, notes = result.verdict, result.notes + metrics.notes
            if decision.primary_metric in metrics.data:
                verdict = _multiarm_metric_verdict(result, metrics, decision.primary_metric)
                notes += (
                    f"verdict on primary metric {decision.primary_metric!r} (per unit, "
                    "pairwise family); the pairwise table above is model quality",
                )
            criteria = {arm: metrics.guardrail_criteria(arm) for arm in result.arms[1:]}
            verdict = apply_metric_guardrails_multiarm(
                verdict, criteria, serving=result.policy.serving
            )
            result = replace(result, metrics=metrics, notes=notes, verdict=verdict)
        return result
    return compare_arms(con, model, experiment, "ab", policy, model_config=model_config)


def _multiarm_metric_verdict(
    result: MultiArmAnalysis, metrics: MetricsAnalysis, primary: str
) -> Verdict:
    """The A/B/n rules (:func:`arbiter.stats.verdict.decide_multiarm`) on a business metric.

    The per-unit statistics of ``primary`` (unadjusted: CUPED's ``theta`` is pairwise, the
    family needs one statistic per arm) replace model quality; SRM and the operational
    guardrails are those of the quality analysis.
    """
    data = metrics.data[primary]
    stats = {
        arm: s.y if isinstance(s, RegressionAdjustmentStatistic) else s
        for arm, s in data.stats.items()
    }
    pol = replace(result.policy, metric_kind="mean", higher_is_better=data.direction == "increase")
    family = pairwise_comparisons(stats, result.arms, pol)  # type: ignore[arg-type]
    checks = {
        arm: tuple(GuardrailCheck(**row) for row in rows) for arm, rows in result.guardrails.items()
    }
    return decide_multiarm(result.arms, stats, family, checks, pol, srm=result.srm)  # type: ignore[arg-type]


__all__ = ["analyze_ab"]
