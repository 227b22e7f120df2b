"""Which analysis a strategy gets, and the shape every analysis result has.

Each strategy's spec (:mod:`arbiter.strategies`) names its analysis: the two-arm comparison
(:func:`~arbiter.analysis.analyze.compare_arms`: shadow, A/B), k arms (A/B/n: chi-square,
Marascuilo, Holm), interleaved rankings (credit per impression, sign test clustered by user) or
bandits (allocation over time; adaptively collected data). Each returns an object satisfying
:class:`Analysis`, :mod:`arbiter.report` renders (terminal, HTML,
Markdown) by its type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import duckdb

from arbiter.config import ModelConfig
from arbiter.events.query import Scope
from arbiter.strategies import SPECS
from arbiter.strategies.base import SeveralChallengers


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


def analysis_for(strategy: str | None) -> Analyzer | None:
    """The analysis the spec of ``strategy`` declares, imported; None when there is none.

    A strategy that is not registered (a name in an old event log) has no analysis either.
    Called as ``fn(con, model, experiment, model_config=..., policy=...)``.
    """
    spec = SPECS.get(strategy or "")
    return None if spec is None else spec.hook("analysis")


def logged_shape(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str
) -> tuple[str | None, int]:
    """``(strategy, number of served arms)`` of an experiment as logged (forced rows left out)."""
    scope = Scope(model, experiment)
    # Grouped by (arm, role) first, then counted: a handful of groups. A DISTINCT aggregate
    # over every row took 2-3x the CPU (10 M rows: 0.5 against 0.2 s), and an A/B analysis
    # asks twice (the dispatch here, then analyze_ab).
    row = con.execute(
        "SELECT any_value(strategy), count(arm) FILTER (WHERE role = 'served') FROM ("
        "SELECT arm, role, any_value(strategy) AS strategy "
        f"FROM unforced WHERE {scope.where()} GROUP BY arm, role) AS shapes",
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
        and isinstance(config.experiment, SeveralChallengers)
        and bool(config.experiment.challengers)
    )


__all__ = [
    "Analysis",
    "Analyzer",
    "analysis_for",
    "configured_arms",
    "has_challenger_list",
    "logged_shape",
]
