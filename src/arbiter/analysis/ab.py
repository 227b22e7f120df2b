"""The ab strategy's analysis: two arms compared, or k arms when it is an A/B/n test."""

from __future__ import annotations

from dataclasses import replace

import duckdb

from arbiter.analysis.analyze import OVER_TIME_LOOKS, ExperimentAnalysis, compare_arms
from arbiter.analysis.kinds import configured_arms, has_challenger_list, logged_shape
from arbiter.analysis.metrics import analyze_metrics
from arbiter.analysis.multiarm import MultiArmAnalysis, analyze_multiarm
from arbiter.config import DecisionConfig, ModelConfig
from arbiter.events.query import Scope


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
            notes = result.notes + metrics.notes
            if (policy or model_config.decision).primary_metric is not None:
                notes += ("A/B/n: the verdict stays on model quality; metrics are reported",)
            result = replace(result, metrics=metrics, notes=notes)
        return result
    return compare_arms(con, model, experiment, "ab", policy, model_config=model_config)


__all__ = ["analyze_ab"]
