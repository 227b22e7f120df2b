"""The online test of one candidate, for that version only: shadow, A/B test or canary.

An experiment keeps its name while the ``challenger`` alias moves from version to version, so
the log of ``fraud-shadow`` may hold several challengers. The loop judges the candidate it put
under test on its own rows, and on the champion version it was compared against:
:func:`scoped_connection` opens the event log with a ``predictions`` view restricted to those
rows (:func:`arbiter.events.query.restrict_predictions`: ``served``, ``shadowed``, ``labeled``
and the other views follow, as they read ``predictions`` by name), and
:func:`evaluate_candidate` runs :func:`arbiter.analysis.analyze_experiment` on it unchanged:

``shadow``
    the requests the candidate shadowed and the champion's served rows of those requests;
``ab``
    the challenger arm's rows served by the candidate and the champion arm's rows served by
    the champion version, both since the candidate was staged; the analysis decides on
    ``decision.primary_metric`` when one is set (a business metric such as conversion,
    attributed to units after their first exposure), else on model quality.

A canary decides by itself (the gateway's checkpoints promote it or roll it back):
:func:`canary_outcome` only reads where the canary of the candidate stands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from arbiter.analysis import ExperimentAnalysis, analyze_experiment
from arbiter.config import ModelConfig
from arbiter.errors import NotFoundError
from arbiter.events import EventStore
from arbiter.events.query import Scope, restrict_predictions
from arbiter.experiments.split_store import attach_experiment_changes
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


# A/B: the candidate's served rows in the challenger arm, the champion version's in the other,
# both since the candidate was staged (earlier challengers and their exposures stay out).
_AB_SCOPE_SQL = """
NOT ({scope})
   OR (ts >= $since AND role = 'served' AND (
        (arm = 'challenger' AND version = $candidate)
        OR (arm <> 'challenger' AND ($champion IS NULL OR version = $champion))))
"""

OnlineMode = Literal["shadow", "ab", "canary"]


def scoped_connection(
    store: EventStore,
    model: str,
    experiment: str,
    candidate: str,
    champion: str | None = None,
    *,
    mode: OnlineMode = "shadow",
    since: datetime | None = None,
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
    mode : {"shadow", "ab"}
        Which rows are the candidate's test (see the module docstring).
    since : datetime, optional
        A/B: when the candidate was staged (rows before it are left out).
    """
    con = store.connect()
    try:
        scope = Scope(model, experiment)
        params = {**scope.params, "candidate": candidate, "champion": champion}
        if mode == "ab":
            sql = _AB_SCOPE_SQL
            params["since"] = since or datetime(1970, 1, 1, tzinfo=UTC)
        else:
            sql = _SCOPE_SQL
        restrict_predictions(con, sql.format(scope=scope.where()), params)
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
        "metric": getattr(analysis, "decided_on", analysis.metric),
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
    mode: OnlineMode = "shadow",
    since: datetime | None = None,
    registry: Any = None,
) -> dict[str, Any]:
    """The online verdict on ``candidate`` so far, as decision-record evidence.

    Parameters
    ----------
    mode : {"shadow", "ab"}
        The online test; ``since`` is when an A/B test of the candidate began.
    registry : optional
        The model registry: an A/B test reads its recorded split changes from it, so SRM is
        tested per split period as ``arbiter analyze`` does (:mod:`arbiter.analysis.periods`).

    Returns a dict with ``decision`` (``promote``, ``keep_champion``, ``rollback`` or
    ``continue``), ``mode``, the ``metric`` decided on, the labelled rows per side, the
    primary test and every criterion checked. No request of the candidate yet is not an
    error: the decision is ``continue``.
    """
    primary_metric = model_config.decision.primary_metric if model_config else None
    base = {"mode": mode, "experiment": experiment, "checked_at": iso(now)}
    with scoped_connection(
        store, model, experiment, candidate, champion, mode=mode, since=since
    ) as con:
        if registry is not None and mode == "ab":
            attach_experiment_changes(con, registry, model)
        try:
            analysis = analyze_experiment(con, model, experiment, model_config=model_config)
        except NotFoundError:
            what = "shadowed by" if mode == "shadow" else "served by"
            return {
                **base,
                "decision": "continue",
                "metric": primary_metric,
                "summary": f"no request {what} v{candidate} in {experiment!r} yet",
            }
    out = {**summarize_analysis(analysis), **base}
    out["metric_kind"] = "model_quality"
    metrics = getattr(analysis, "metrics", None)
    result = None if metrics is None or primary_metric is None else metrics.result(primary_metric)
    if result is not None:
        # analyze_experiment decided on the primary metric (per unit); the model-quality test
        # stays in the record as ``quality``.
        out["quality"] = {"metric": analysis.metric, "primary": out["primary"]}
        out["metric_kind"] = "business"
        out["units"] = {arm: int(v["units"]) for arm, v in result.arms.items()}
        out["crossed_units"] = metrics.crossed_units
        out["primary"] = {
            "method": result.method,
            "estimate": finite_or_none(result.estimate),
            "ci_low": finite_or_none(result.ci_low),
            "ci_high": finite_or_none(result.ci_high),
            "p_value": finite_or_none(result.p_value),
            "relative_lift": finite_or_none(result.relative_lift),
        }
    labelled = out["labelled"]
    if result is not None:
        count = f"{out['units'].get('challenger', 0)} units of v{candidate}"
    elif mode == "shadow":
        count = f"{labelled.get('challenger', 0)} labelled shadow rows of v{candidate}"
    else:
        count = f"{labelled.get('challenger', 0)} labelled rows of v{candidate}"
    out["summary"] = f"{out['decision']} on {out['metric']} after {count}"
    return out


def canary_outcome(registry: Any, model: str, candidate: str, *, now: datetime) -> dict[str, Any]:
    """Where the gateway's canary of ``candidate`` stands, as decision-record evidence.

    The canary decides by itself: its checkpoints (model quality and the guardrail metrics of
    ``decision.guardrail_metrics``) ramp the candidate up and promote it, or roll it back. The
    decision is ``promote`` once it promoted, ``rollback`` when it was rolled back, aborted or
    superseded, else ``continue`` (running, paused, or not started yet).
    """
    from arbiter.canary.store import read_snapshot

    stored = read_snapshot(registry, model).stored
    base: dict[str, Any] = {"mode": "canary", "checked_at": iso(now), "metric": "canary"}
    if stored is None or stored.challenger_version != candidate:
        return {
            **base,
            "decision": "continue",
            "summary": f"no canary of v{candidate} started yet (the gateway starts it)",
        }
    state = stored.state
    last = state.history[-1] if state.history else None
    reasons = list(last.reasons) if last is not None else []
    decision = {"promoted": "promote", "running": "continue", "paused": "continue"}.get(
        state.status, "rollback"
    )
    return {
        **base,
        "decision": decision,
        "canary_status": state.status,
        "stage": state.stage,
        "champion_version": stored.champion_version,
        "reasons": reasons[:20],
        "summary": f"canary of v{candidate} {state.status} at stage {state.stage}"
        + (f": {'; '.join(reasons)[:300]}" if reasons and decision != "continue" else ""),
    }


__all__ = [
    "OnlineMode",
    "canary_outcome",
    "evaluate_candidate",
    "scoped_connection",
    "summarize_analysis",
]
