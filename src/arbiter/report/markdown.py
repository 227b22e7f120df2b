"""Markdown rendering: what ``arbiter report`` writes to a file, and analyses as Markdown.

:func:`render_markdown` renders a report summary (:func:`arbiter.report.summary.summarize`);
:func:`analysis_markdown` one analysis result, dispatching on its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatch
from typing import Any

from arbiter.analysis.analyze import ExperimentAnalysis
from arbiter.analysis.bandit import ADJUSTED_INFERENCE_WARNING, BanditAnalysis
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.report.format import (
    METRIC_COLUMNS,
    Style,
    detail_text,
    format_cells,
    format_number,
    format_timestamp,
    generic_view,
    interleaving_methods,
    metric_rows,
    reason_text,
)
from arbiter.report.shadow import (
    analysis_recommendation,
    analysis_shadow_view,
    summary_shadow_view,
)

ARM_COLUMNS = (
    "role",
    "arm",
    "alias",
    "version",
    "requests",
    "rows",
    "errors",
    "error_rate",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
CRITERIA_COLUMNS = ("name", "met", "observed", "threshold", "detail")


def cell(value: Any, style: Style = "fixed") -> str:
    """A table cell: the number formatter (fixed decimals by default), pipes escaped."""
    return format_number(value, style=style).replace("|", "\\|")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], style: Style = "fixed") -> str:
    """A Markdown table of ``rows`` (dicts) with the named columns; ``_none_`` when empty.

    Numbers as the terminal shows them (:func:`~arbiter.report.format.format_cells`): one
    number of decimals per column, p-values with two significant digits. ``style`` is kept
    for callers that pass it; the columns decide.
    """
    if not rows:
        return "_none_\n"
    head = "| " + " | ".join(c.replace("labeled", "labelled") for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    texts = format_cells(rows, columns)
    body = [
        "| " + " | ".join(texts[c][i].replace("|", "\\|") for c in columns) + " |"
        for i in range(len(rows))
    ]
    return "\n".join([head, rule, *body]) + "\n"


def _general(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return table(rows, columns, "general")


def _criteria(criteria: Sequence[Any]) -> str:
    rows = [{c: getattr(x, c) for c in CRITERIA_COLUMNS} for x in criteria]
    rows = [{**r, "detail": detail_text(r["detail"])} for r in rows]
    return _general(rows, CRITERIA_COLUMNS)


def shadow_markdown(view: dict[str, Any], *, latency: bool = False) -> list[str]:
    """The shadow view model (:func:`arbiter.report.shadow.shadow_view`) as Markdown
    sections: models compared, predictions per model, disagreements by direction."""
    out = ["### Models compared\n", table(view["models"], ["model", "version", "kind"])]
    if latency:
        out += ["### Latency per model (ms)\n",
                table(view["latency_rows"], ["model", "mean", "p50", "p95", "p99"])]  # fmt: skip
    if view["distribution_rows"]:
        out.append("### Predictions per model\n")
        out.append(table(view["distribution_rows"], ["model", "prediction", "count", "share"]))
    if view["value_rows"]:
        out.append(f"### {view['values'].capitalize()} per model (quantiles)\n")
        cols = ["model", "rows", "mean", "p05", "p25", "p50", "p75", "p95"]
        out.append(table(view["value_rows"], cols))
    if view["paired_rows"]:
        out.append("### Disagreements by direction\n")
        out.append(
            f"{format_number(view['disagreeing_rows'])} of {format_number(view['paired_rows'])} "
            "paired rows disagree. rate = share of all paired rows; right = matched the label "
            f"(regressors: strictly closer to it); {view['direction_note']}.\n"
        )
        cols = ["direction", "count", "rate", "labelled", "champion_right", "challenger_right",
                "neither_right"]  # fmt: skip
        out.append(table(view["direction_rows"], cols))
    return out


def render_markdown(summary: dict[str, Any]) -> str:
    """A report summary as Markdown: traffic, quality, shadow comparison and verdict."""
    out = [f"# arbiter report: model `{summary['model']}`\n"]
    for section in summary["experiments"]:
        out.append(
            f"## Experiment `{section['experiment']}` ({section['strategy']}, {section['task']})\n"
        )
        out.append(
            f"{format_number(section['requests'])} requests from "
            f"{format_timestamp(section['first_event'])} "
            f"to {format_timestamp(section['last_event'])}.\n"
        )
        out.append("### Traffic, errors and latency\n")
        out.append(table(section["arms"], ARM_COLUMNS))
        quality = section["quality"]
        if quality:
            out.append("### Model quality on labelled rows\n")
            cols = ["role", "arm", "alias", "version", "labeled_rows"]
            cols += ["accuracy"] if section["task"] == "classification" else ["mae", "rmse"]
            out.append(table(quality, cols))
        if "shadow" in section:
            out.append("### Shadow comparison (same rows, champion vs challenger)\n")
            shadow = section["shadow"]
            out.append(
                table(
                    [
                        {"metric": k.replace("labeled", "labelled"), "value": v}
                        for k, v in shadow.items()
                    ],
                    ["metric", "value"],
                )
            )
            out.append("### Classic shadow criteria\n")
            out.append(table(section["shadow_criteria"], ["name", "observed", "threshold", "met"]))
            out += shadow_markdown(summary_shadow_view(section))
        if "verdict" in section:
            verdict = section["verdict"]
            out.append(f"### Verdict: **{verdict['decision']}**\n")
            out.append(table(verdict["criteria"], CRITERIA_COLUMNS))
        if "recommendation" in section:
            out.append(f"**{section['recommendation']['line']}**\n")
    return "\n".join(out)


def _header(a: Any, shape: str) -> list[str]:
    return [
        f"## Experiment `{a.experiment}` ({shape})\n",
        f"Decision: **{a.decision}**\n",
    ]


def _metrics(metrics: Sequence[dict[str, Any]]) -> list[str]:
    """The business metrics section (docs/metrics.md), when the model defines metrics."""
    if not metrics:
        return []
    return ["### Business metrics (per unit, challenger − champion)\n",
            _general(metric_rows(metrics), METRIC_COLUMNS)]  # fmt: skip


def _notes(notes: Sequence[str]) -> list[str]:
    return ["### Notes\n", *(f"- {n}" for n in notes), ""] if notes else []


@singledispatch
def analysis_markdown(analysis: Any) -> str:
    """One analysis result as Markdown (tables, no plots); dispatches on the result type.

    A result type without a layout of its own (a strategy added without a renderer) shows
    its decision, criteria and the scalar values of its ``to_dict()``.
    """
    d = generic_view(analysis)
    out = _header(analysis, d["strategy"])
    if d["criteria"]:
        out += ["### Criteria\n", _criteria(d["criteria"])]
    out += ["### Values\n", _general(d["values"], ["name", "value"])]
    return "\n".join(out)


@analysis_markdown.register(ExperimentAnalysis)
def _(a: ExperimentAnalysis) -> str:
    d = a.to_dict()
    decided = "" if a.decided_on == a.metric else f", decided on: {a.decided_on}"
    out = _header(a, f"{a.strategy}, {a.task}, metric: {a.metric}{decided}")
    if d["estimated_remaining_sample"]:
        out.append(
            f"About {format_number(d['estimated_remaining_sample'])} more labelled "
            f"{a.sample_unit} per arm expected to be needed.\n"
        )
    out += ["### Criteria\n", _criteria(a.criteria), "### Arms\n"]
    arms = [{"side": side, **values} for side, values in d["arms"].items()]
    cols = ["side", "requests", "units", "errors", "error_rate", "latency_p50_ms",
            "latency_p99_ms", "labelled", a.metric]  # fmt: skip
    out.append(_general(arms, cols))
    tests = [{"test": f"primary: {d['primary']['name']}", **d["primary"]}]
    tests += [{"test": f"secondary: {t['name']}", **t} for t in d["secondary"].values()]
    out.append("### Tests (challenger − champion)\n")
    cols = ["test", "method", "estimate", "ci_low", "ci_high", "p_value", "status"]
    out.append(_general(tests, cols))
    out.append("### Guardrails\n")
    out.append(_general(d["guardrails"], ["name", "challenger", "champion", "limit", "status"]))
    if a.shadow is not None:
        out += shadow_markdown(analysis_shadow_view(a), latency=True)
        out.append(f"**{analysis_recommendation(a)['line']}**\n")
    return "\n".join(out + _metrics(d["metrics"]) + _notes(a.notes))


@analysis_markdown.register(MultiArmAnalysis)
def _(a: MultiArmAnalysis) -> str:
    out = _header(a, f"A/B/n, {len(a.arms)} arms, {a.task}, metric: {a.metric}")
    if a.winner:
        out.append(f"Promote arm **{a.winner}**.\n")
    if a.rollback_arms:
        out.append(f"Roll back arm(s) **{', '.join(a.rollback_arms)}**.\n")
    out += ["### Criteria\n", _criteria(a.criteria), "### Arms\n"]
    arms = [{"arm": arm, "alias": a.aliases.get(arm), "share": a.weights[arm], **a.arm_rows[arm]}
            for arm in a.arms]  # fmt: skip
    cols = ["arm", "alias", "share", "requests", "units", "errors", "latency_p99_ms",
            "labelled", a.metric]  # fmt: skip
    out.append(_general(arms, cols))
    out.append(f"### Pairwise comparisons ({a.multiplicity})\n")
    pairs = [{"pair": f"{r['b']} − {r['a']}", **r} for r in a.pairwise]
    cols = ["pair", "method", "estimate", "ci_low", "ci_high", "p_value", "adjusted_p_value",
            "significant"]  # fmt: skip
    out.append(_general(pairs, cols))
    out.append("### Guardrails\n")
    rails = [{"arm": arm, **g} for arm, rows in a.guardrails.items() for g in rows]
    out.append(_general(rails, ["arm", "name", "challenger", "champion", "limit", "status"]))
    metrics = [] if a.metrics is None else a.metrics.to_list()
    return "\n".join(out + _metrics(metrics) + _notes(a.notes))


@analysis_markdown.register(InterleaveAnalysis)
def _(a: InterleaveAnalysis) -> str:
    out = _header(a, f"interleaving: {interleaving_methods(a.methods)}")
    if a.winner:
        out.append(f"Users prefer the **{a.winner}**.\n")
    out += ["### Criteria\n", _criteria(a.criteria), "### Preference for the challenger\n"]
    cols = ["champion", "challenger", "ties", "delta", "ci_low", "ci_high", "p_value"]
    out.append(_general([{**a.wins, **a.preference}], cols))
    return "\n".join(out + _notes(a.notes))


@analysis_markdown.register(BanditAnalysis)
def _(a: BanditAnalysis) -> str:
    out = _header(a, f"bandit, {a.reward} reward")
    out += [f"- {reason_text(r)}" for r in a.reasons]
    out += ["", f"> **Warning.** {ADJUSTED_INFERENCE_WARNING}\n"]
    out.append("### Arms\n")
    cols = ["arm", "alias", "served", "rewarded", "invalid_rewards", "mean_reward_naive",
            "posterior_mean", "p_best", "current_allocation"]  # fmt: skip
    out.append(_general(a.arm_rows(), cols))
    return "\n".join(out + _notes(a.notes))


__all__ = ["ARM_COLUMNS", "CRITERIA_COLUMNS", "analysis_markdown", "cell", "render_markdown",
           "shadow_markdown", "table"]  # fmt: skip
