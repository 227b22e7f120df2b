"""Per-experiment summaries of the event log, computed in SQL where the events live.

Every number here is an aggregate DuckDB computes over the Parquet segments; Python only
arranges the rows into dicts. Forced requests (a tester chose the arm) are left out: the
queries read the ``unforced``, ``served``, ``shadowed`` and ``labeled`` views of
:mod:`arbiter.events.query`, narrowed by a :class:`~arbiter.events.query.Scope`.
"""

from __future__ import annotations

from typing import Any

import duckdb

from arbiter.analysis.shadow_detail import shadow_detail
from arbiter.config import DecisionConfig
from arbiter.errors import NotFoundError
from arbiter.events.exact_quantiles import sorted_quantiles, uses_sorted_quantiles
from arbiter.events.query import Scope
from arbiter.report.shadow import recommend
from arbiter.strategies import SPECS

# The classic shadow-test criteria (e.g. Sato, Wider & Windheuser's "Continuous Delivery for
# Machine Learning" and common MLOps practice): the challenger should rarely disagree with the
# champion, and when it does it should be the more confident one. The discrepancy limit is the
# model's ``decision.guardrails.max_shadow_discrepancy``; this is its default.
SHADOW_MAX_DISCREPANCY = 0.30
SHADOW_MIN_MORE_CONFIDENT = 0.50


# The latency percentiles of arm_stats: level, column name.
_LATENCY_COLUMNS = ((0.50, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms"))


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def experiments(con: duckdb.DuckDBPyConnection, model: str) -> list[dict[str, Any]]:
    """The experiments a model has logged, oldest first."""
    scope = Scope(model)
    return _rows(
        con,
        f"""
        SELECT experiment, any_value(strategy) AS strategy,
               min(ts) AS first_ts, max(ts) AS last_ts, count(DISTINCT request_id) AS requests
        FROM unforced WHERE {scope.where()}
        GROUP BY experiment ORDER BY first_ts, experiment
        """,
        scope.params,
    )


def _task(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> str:
    """``classification`` when the model reports probabilities or few distinct labels."""
    scope = Scope(model, experiment)
    row = con.execute(
        f"""
        SELECT count(confidence) AS with_proba,
               count(DISTINCT prediction) AS distinct_predictions,
               count(prediction_num) FILTER (WHERE prediction_num <> round(prediction_num))
                   AS fractional
        FROM unforced WHERE {scope.where()} AND error IS NULL
        """,
        scope.params,
    ).fetchone()
    assert row is not None
    with_proba, distinct, fractional = row
    if with_proba or (not fractional and distinct <= 50):
        return "classification"
    return "regression"


def arm_stats(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> list[dict[str, Any]]:
    """Requests, errors, mean latency and its percentiles per (role, arm, alias, version).

    On Spark the percentiles come from a sort
    (:func:`~arbiter.events.exact_quantiles.sorted_quantiles`): its exact ``percentile`` holds
    every distinct latency in memory and cannot spill.
    """
    scope = Scope(model, experiment)
    sorted_on_engine = uses_sorted_quantiles(con)
    per_request = f"""
        SELECT role, arm, alias, version, request_id,
               any_value(latency_ms) AS latency_ms,
               bool_or(error IS NOT NULL) AS failed,
               count(*) AS rows
        FROM unforced
        WHERE {scope.where()}
        GROUP BY ALL
    """
    percentiles = ", ".join(
        f"NULL AS {name}"
        if sorted_on_engine
        else f"quantile_cont(latency_ms, {q}) FILTER (WHERE NOT failed) AS {name}"
        for q, name in _LATENCY_COLUMNS
    )
    rows = _rows(
        con,
        f"""
        WITH per_request AS ({per_request})
        SELECT role, arm, alias, version,
               count(*) AS requests, sum(rows)::BIGINT AS rows,
               count(*) FILTER (WHERE failed) AS errors,
               avg(failed::INT) AS error_rate,
               avg(latency_ms) FILTER (WHERE NOT failed) AS latency_mean_ms,
               {percentiles}
        FROM per_request
        GROUP BY ALL ORDER BY role DESC, arm, version
        """,
        scope.params,
    )
    if sorted_on_engine:
        keys = ("role", "arm", "alias", "version")
        by_key = sorted_quantiles(
            con,
            f"SELECT {', '.join(keys)}, latency_ms FROM ({per_request}) AS per_request "
            "WHERE NOT failed",
            keys,
            "latency_ms",
            [q for q, _ in _LATENCY_COLUMNS],
            scope.params,
        )
        for row in rows:
            values = by_key.get(tuple(row[k] for k in keys)) or (None,) * len(_LATENCY_COLUMNS)
            row.update(zip((name for _, name in _LATENCY_COLUMNS), values, strict=True))
    return rows


def model_quality(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str, task: str
) -> list[dict[str, Any]]:
    """Accuracy (classification) or MAE/RMSE (regression) of each model on labelled rows."""
    # One of two fixed SQL fragments (as ``quality`` below); values go in as parameters.
    metric = (
        "avg((prediction = label)::INT) AS accuracy"
        if task == "classification"
        else "avg(abs(prediction_num - label_num)) AS mae, "
        "sqrt(avg((prediction_num - label_num) ^ 2)) AS rmse"
    )
    scope = Scope(model, experiment)
    return _rows(
        con,
        f"""
        SELECT role, arm, alias, version, count(*) AS labeled_rows, {metric}
        FROM labeled
        WHERE {scope.where()} AND error IS NULL AND label IS NOT NULL
        GROUP BY ALL ORDER BY role DESC, arm, version
        """,
        scope.params,
    )


def shadow_comparison(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str, task: str
) -> dict[str, Any]:
    """Champion vs shadow on the same rows: agreement, confidence, and accuracy with labels."""
    quality = (
        """
        count(*) FILTER (WHERE s.label IS NOT NULL) AS labeled_rows,
        avg((s.prediction = s.label)::INT) FILTER (WHERE s.label IS NOT NULL)
            AS champion_accuracy,
        avg((c.prediction = s.label)::INT) FILTER (WHERE s.label IS NOT NULL)
            AS challenger_accuracy,
        count(*) FILTER (WHERE s.label IS NOT NULL AND s.prediction = s.label
                         AND c.prediction <> s.label) AS only_champion_correct,
        count(*) FILTER (WHERE s.label IS NOT NULL AND s.prediction <> s.label
                         AND c.prediction = s.label) AS only_challenger_correct
        """
        if task == "classification"
        else """
        count(*) FILTER (WHERE s.label IS NOT NULL) AS labeled_rows,
        avg(abs(s.prediction_num - s.label_num)) AS champion_mae,
        avg(abs(c.prediction_num - s.label_num)) AS challenger_mae,
        sqrt(avg((s.prediction_num - s.label_num) ^ 2)) AS champion_rmse,
        sqrt(avg((c.prediction_num - s.label_num) ^ 2)) AS challenger_rmse
        """
    )
    scope = Scope(model, experiment)
    rows = _rows(
        con,
        f"""
        WITH s AS (SELECT * FROM labeled WHERE {scope.where()} AND role = 'served'
                   AND error IS NULL),
             c AS (SELECT * FROM shadowed WHERE {scope.where()} AND error IS NULL)
        SELECT count(*) AS paired_rows,
               any_value(s.version) AS champion_version,
               any_value(c.version) AS challenger_version,
               avg((s.prediction <> c.prediction)::INT) AS discrepancy_rate,
               count(*) FILTER (WHERE s.prediction <> c.prediction) AS disagreements,
               avg(s.confidence) AS champion_mean_confidence,
               avg(c.confidence) AS challenger_mean_confidence,
               avg((c.confidence > s.confidence)::INT) FILTER (WHERE s.prediction <> c.prediction)
                   AS challenger_more_confident_on_disagreements,
               {quality}
        FROM s JOIN c USING (request_id, row_index)
        """,
        scope.params,
    )
    out = rows[0]
    shadow_total = con.execute(
        "SELECT count(*) FILTER (WHERE error IS NOT NULL), count(*) FROM shadowed "
        f"WHERE {scope.where()}",
        scope.params,
    ).fetchone()
    assert shadow_total is not None
    out["shadow_error_rows"], out["shadow_rows"] = shadow_total
    return out


def classic_shadow_criteria(
    comparison: dict[str, Any],
    task: str,
    *,
    max_discrepancy: float = SHADOW_MAX_DISCREPANCY,
    min_more_confident: float = SHADOW_MIN_MORE_CONFIDENT,
) -> list[dict[str, Any]]:
    """The classic shadow checks, each met/unmet with its number and a sentence.

    ``max_discrepancy`` is the model's ``decision.guardrails.max_shadow_discrepancy``
    (:func:`summarize` passes it), the same limit ``arbiter analyze`` applies.
    """
    criteria: list[dict[str, Any]] = []
    discrepancy = comparison.get("discrepancy_rate")
    criteria.append(
        {
            "name": "discrepancy_rate",
            "observed": discrepancy,
            "threshold": f"< {max_discrepancy}",
            "met": discrepancy is not None and discrepancy < max_discrepancy,
            "detail": "share of paired rows where the two models disagree",
        }
    )
    more = comparison.get("challenger_more_confident_on_disagreements")
    criteria.append(
        {
            "name": "challenger_more_confident_on_disagreements",
            "observed": more,
            "threshold": f"> {min_more_confident}",
            "met": more is not None and more > min_more_confident,
            "detail": "share of disagreements where the challenger is the more confident model",
        }
    )
    if task == "classification":
        a, b = comparison.get("champion_accuracy"), comparison.get("challenger_accuracy")
        criteria.append(
            {
                "name": "challenger_more_accurate",
                "observed": None if a is None or b is None else b - a,
                "threshold": "> 0",
                "met": a is not None and b is not None and b > a,
                "detail": "challenger accuracy − champion accuracy on labelled rows",
            }
        )
    else:
        a, b = comparison.get("champion_mae"), comparison.get("challenger_mae")
        criteria.append(
            {
                "name": "challenger_lower_mae",
                "observed": None if a is None or b is None else b - a,
                "threshold": "< 0",
                "met": a is not None and b is not None and b < a,
                "detail": "challenger MAE − champion MAE on labelled rows",
            }
        )
    return criteria


def shadow_section(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    task: str,
    *,
    decision: DecisionConfig | None = None,
) -> dict[str, Any]:
    """The shadow strategy's report keys: the comparison on the same rows, the classic
    criteria (their discrepancy limit from ``decision.guardrails``) and their verdict; each
    model's prediction distribution and the directions of disagreement (``shadow_detail``),
    and the verdict's ``recommendation``."""
    limit = (decision or DecisionConfig()).guardrails.max_shadow_discrepancy
    max_discrepancy = SHADOW_MAX_DISCREPANCY if limit is None else limit
    comparison = shadow_comparison(con, model, experiment, task)
    criteria = classic_shadow_criteria(comparison, task, max_discrepancy=max_discrepancy)
    verdict = classic_shadow_verdict(comparison, criteria)
    versions = {
        side: [str(v)] if v is not None else []
        for side, v in (
            ("champion", comparison.get("champion_version")),
            ("challenger", comparison.get("challenger_version")),
        )
    }
    return {
        "shadow": comparison,
        "shadow_criteria": criteria,
        "verdict": verdict,
        "shadow_detail": shadow_detail(con, model, experiment, task).to_dict(),
        "recommendation": recommend(
            verdict["decision"],
            criteria,
            versions=versions,
            why=None if comparison.get("labeled_rows") else "no labelled rows yet (POST /feedback)",
        ).to_dict(),
    }


def classic_shadow_verdict(
    comparison: dict[str, Any], criteria: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report's verdict on a shadow experiment from the classic criteria.

    The rule of :func:`arbiter.stats.verdict.decide_shadow_classic` on the summary's rates:
    ``continue`` until labelled rows arrive, then ``promote`` when every criterion holds,
    else ``keep_champion`` (a shadow challenger serves nobody, so never ``rollback``). A
    point-estimate heuristic without error control: ``arbiter analyze`` has the tests.
    """
    if not comparison.get("labeled_rows"):
        decision = "continue"
    else:
        decision = "promote" if all(c["met"] for c in criteria) else "keep_champion"
    return {"decision": decision, "criteria": criteria}


def summarize(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str | None = None,
    *,
    decision: DecisionConfig | None = None,
) -> dict[str, Any]:
    """Everything ``arbiter report`` shows for one model (one or every experiment).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model : str
        The model (endpoint) as logged.
    experiment : str, optional
        Only this experiment (default: every one, oldest first).
    decision : DecisionConfig, optional
        The model's ``decision:`` section; its ``guardrails.max_shadow_discrepancy`` is the
        shadow discrepancy limit (default 0.30 when absent or disabled).

    Returns
    -------
    dict
        ``model`` and one section per experiment; a shadow experiment's section has the
        ``shadow`` comparison, its ``shadow_criteria`` and their ``verdict``.
    """
    found = experiments(con, model)
    if not found:
        raise NotFoundError(f"no events logged for model {model!r}")
    if experiment is not None:
        found = [e for e in found if e["experiment"] == experiment]
        if not found:
            raise NotFoundError(f"model {model!r} has no experiment {experiment!r}")
    sections = []
    for exp in found:
        name = exp["experiment"]
        task = _task(con, model, name)
        section: dict[str, Any] = {
            "experiment": name,
            "strategy": exp["strategy"],
            "task": task,
            "first_event": exp["first_ts"].isoformat() if exp["first_ts"] else None,
            "last_event": exp["last_ts"].isoformat() if exp["last_ts"] else None,
            "requests": exp["requests"],
            "arms": arm_stats(con, model, name),
        }
        # What the strategy's spec adds; a strategy no longer registered gets the defaults.
        spec = SPECS.get(exp["strategy"])
        scored = spec is None or spec.labels_score_models
        section["quality"] = model_quality(con, model, name, task) if scored else []
        extra = None if spec is None else spec.hook("report")
        if extra is not None:
            section.update(extra(con, model, name, task, decision=decision))
        sections.append(section)
    return {"model": model, "experiments": sections}


__all__ = [
    "SHADOW_MAX_DISCREPANCY",
    "SHADOW_MIN_MORE_CONFIDENT",
    "arm_stats",
    "classic_shadow_criteria",
    "classic_shadow_verdict",
    "experiments",
    "model_quality",
    "shadow_comparison",
    "shadow_section",
    "summarize",
]
