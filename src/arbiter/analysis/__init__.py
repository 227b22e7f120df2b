"""Analysis of logged experiments: SQL aggregates in, statistical verdicts and reports out.

The shell side of the statistics core: :mod:`~arbiter.analysis.aggregate` computes per-arm
sufficient statistics in DuckDB, :mod:`~arbiter.analysis.analyze` runs the tests of
:mod:`arbiter.stats` on them and decides. Rendering (terminal, HTML, Markdown) is
:mod:`arbiter.report`'s. See ``docs/analysis.md``.
"""

from __future__ import annotations

from arbiter.analysis.aggregate import ExperimentAggregates, aggregate_experiment
from arbiter.analysis.analyze import ExperimentAnalysis, analyze_experiment, analyze_model
from arbiter.analysis.policy import to_decision_policy

__all__ = [
    "ExperimentAggregates",
    "ExperimentAnalysis",
    "aggregate_experiment",
    "analyze_experiment",
    "analyze_model",
    "to_decision_policy",
]
