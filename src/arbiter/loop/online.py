"""The online test of one candidate: the shadow experiment's analysis, for that version only.

A shadow experiment keeps its name while the ``challenger`` alias moves from version to
version, so the log of ``fraud-shadow`` may hold several challengers. The loop judges the
candidate it put under test on the requests that candidate shadowed, and on the champion
version it was compared against: :func:`scoped_connection` opens the event log with a
``predictions`` view restricted to those rows (:func:`arbiter.events.query.restrict_predictions`:
``served``, ``shadowed``, ``labeled`` and the other views follow, as they read ``predictions``
by name), and :func:`evaluate_candidate` runs
:func:`arbiter.analysis.analyze_experiment` on it unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from arbiter.analysis import ExperimentAnalysis, analyze_experiment
from arbiter.config import ModelConfig
from arbiter.errors import NotFoundError
from arbiter.events import EventStore
from arbiter.events.query import Scope, restrict_predictions
from arbiter.loop.record import iso
from arbiter.stats import finite_or_none

# Rows of other models and experiments pass; rows of this experiment pass when they belong to
# a request the candidate shadowed: its own shadow row and the champion's served row.
_SCOPE_SQL = """
NOT ({scope})
   OR (role = 'shadow' AND version = $candidate)
   OR (role <> 'shadow' AND ($champion IS NULL OR version = $champion) AND request_id IN (
        SELECT request_id FROM _all_predictions
        WHERE {scope} AND role = 'shadow' AND version = $candidate))
"""


def scoped_connection(
    store: EventStore,
    model: str,
    experiment: str,
    candidate: str,
    champion: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection like :meth:`EventStore.connect`, but seeing only ``candidate``'s test.

    Parameters
    ----------
    store : EventStore
        The home's event log.
    model, experiment : str
        The shadow experiment.
    candidate : str
        The challenger version under test: only requests it shadowed are kept.
    champion : str, optional
        Keep the served rows of this champion version only.
    """
    con = store.connect()
    try:
        scope = Scope(model, experiment)
        restrict_predictions(
            con,
            _SCOPE_SQL.format(scope=scope.where()),
            {**scope.params, "candidate": candidate, "champion": champion},
        )
    except Exception:
        con.close()
        raise
    return con


def summarize_analysis(analysis: ExperimentAnalysis) -> dict[str, Any]:
    """The part of an analysis worth keeping in a decision record (JSON-safe)."""
    primary = analysis.primary
    return {
        "decision": analysis.decision,
        "experiment": analysis.experiment,
        "metric": analysis.metric,
        "labelled": {side: int(arm["labelled"]) for side, arm in analysis.arms.items()},
        "requests": {side: int(arm["requests"]) for side, arm in analysis.arms.items()},
        "primary": {
            "method": primary.get("name"),
            "estimate": finite_or_none(primary.get("estimate")),
            "ci_low": finite_or_none(primary.get("ci_low")),
            "ci_high": finite_or_none(primary.get("ci_high")),
            "p_value": finite_or_none(primary.get("p_value")),
        },
        "criteria": [
            {"name": c.name, "met": bool(c.met), "detail": c.detail} for c in analysis.criteria
        ],
        "estimated_remaining_sample": analysis.verdict.estimated_remaining_sample,
    }


def evaluate_candidate(
    store: EventStore,
    model: str,
    experiment: str,
    candidate: str,
    *,
    champion: str | None,
    model_config: ModelConfig | None,
    now: datetime,
) -> dict[str, Any]:
    """The online verdict on ``candidate`` so far, as decision-record evidence.

    Returns a dict with ``decision`` (``promote``, ``keep_champion``, ``rollback`` or
    ``continue``), the labelled rows per side, the primary test and every criterion checked.
    No shadowed request yet is not an error: the decision is ``continue``.
    """
    with scoped_connection(store, model, experiment, candidate, champion) as con:
        try:
            analysis = analyze_experiment(con, model, experiment, model_config=model_config)
        except NotFoundError:
            return {
                "decision": "continue",
                "experiment": experiment,
                "checked_at": iso(now),
                "summary": f"no request shadowed by v{candidate} in {experiment!r} yet",
            }
    out = summarize_analysis(analysis)
    labelled = out["labelled"]
    out["checked_at"] = iso(now)
    out["summary"] = (
        f"{analysis.decision} after {labelled.get('challenger', 0)} labelled shadow rows "
        f"of v{candidate}"
    )
    return out


__all__ = ["evaluate_candidate", "scoped_connection", "summarize_analysis"]
