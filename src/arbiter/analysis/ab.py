"""The ab strategy's analysis: two arms compared, or k arms when it is an A/B/n test."""

from __future__ import annotations

import duckdb

from arbiter.analysis.analyze import ExperimentAnalysis, compare_arms
from arbiter.analysis.kinds import configured_arms, has_challenger_list, logged_shape
from arbiter.analysis.multiarm import MultiArmAnalysis, analyze_multiarm
from arbiter.config import DecisionConfig, ModelConfig


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
    challenger, since its arms are named after their aliases.
    """
    _strategy, n_arms = logged_shape(con, model, experiment)
    n_arms = max(n_arms, configured_arms(model_config, model, experiment))
    if n_arms > 2 or has_challenger_list(model_config, model, experiment):
        return analyze_multiarm(con, model, experiment, model_config=model_config, policy=policy)
    return compare_arms(con, model, experiment, "ab", policy, model_config=model_config)


__all__ = ["analyze_ab"]
