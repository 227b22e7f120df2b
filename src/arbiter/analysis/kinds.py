"""Analyses other than the two-arm comparison: which strategy is analysed by which module.

:func:`~arbiter.analysis.analyze.analyze_experiment` compares champion and challenger (shadow,
A/B). Other experiment shapes need other statistics: k arms (A/B/n: chi-square, Marascuilo,
Holm), interleaved rankings (credit per impression, sign test clustered by user) and bandits
(allocation over time; adaptively collected data). Each lives in its own module and returns
an object satisfying :class:`Analysis`, which :mod:`arbiter.report` renders (terminal, HTML,
Markdown) by its type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import duckdb

from arbiter.config import ModelConfig
from arbiter.events.query import Scope


@runtime_checkable
class Analysis(Protocol):
    """What every analysis result offers its renderers."""

    model: str
    experiment: str
    strategy: str

    @property
    def decision(self) -> str: ...

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, including ``decision``."""
        ...


Analyzer = Callable[..., Analysis]


def analyzer_for(strategy: str, n_arms: int, *, challenger_list: bool = False) -> Analyzer | None:
    """The analysis function for an experiment that is not a two-arm comparison, else None.

    ``challenger_list``: the home config names the challengers in ``experiment.challengers``
    (arms named after their aliases), which only the k-arm analysis reads, even for one.
    Called as ``fn(con, model, experiment, model_config=..., policy=...)``.
    """
    if strategy == "ab" and (n_arms > 2 or challenger_list):
        from arbiter.analysis.multiarm import analyze_multiarm

        return analyze_multiarm
    if strategy == "interleave":
        from arbiter.analysis.interleave import analyze_interleave

        return analyze_interleave
    if strategy == "bandit":
        from arbiter.analysis.bandit import analyze_bandit

        return analyze_bandit
    return None


def logged_shape(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str
) -> tuple[str | None, int]:
    """``(strategy, number of served arms)`` of an experiment as logged (forced rows left out)."""
    scope = Scope(model, experiment)
    row = con.execute(
        "SELECT any_value(strategy), count(DISTINCT arm) FILTER (WHERE role = 'served') "
        f"FROM unforced WHERE {scope.where()}",
        scope.params,
    ).fetchone()
    if row is None or row[0] is None:
        return None, 0
    return row[0], int(row[1] or 0)


def configured_arms(config: ModelConfig | None, model: str, experiment: str) -> int:
    """Arms the home config gives this experiment (0 when the config is not this experiment's)."""
    if config is None or config.experiment_name(model) != experiment:
        return 0
    return len(config.arms())


def has_challenger_list(config: ModelConfig | None, model: str, experiment: str) -> bool:
    """Whether the home config gives this experiment an ``experiment.challengers`` list."""
    return (
        config is not None
        and config.experiment_name(model) == experiment
        and bool(config.experiment.challengers)
    )


__all__ = [
    "Analysis",
    "Analyzer",
    "analyzer_for",
    "configured_arms",
    "has_challenger_list",
    "logged_shape",
]
