"""A self-contained HTML report of analysed experiments: one file that opens offline.

CSS is inline and every plot is a PNG embedded as base64 (:mod:`arbiter.report.plots`), so the
file can be mailed or attached to a ticket. All markup lives in Jinja2 templates under
``report/templates`` with autoescaping on; :func:`html_section` picks the section template
by the analysis type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache, singledispatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbiter.analysis.analyze import ExperimentAnalysis
from arbiter.analysis.bandit import ADJUSTED_INFERENCE_WARNING, BanditAnalysis
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.report.format import (
    DECISION_COLOURS,
    METRIC_COLUMNS,
    detail_text,
    format_cells,
    format_number,
    format_p_value,
    format_timestamp,
    generic_view,
    interleaving_methods,
    is_number,
    metric_rows,
    reason_text,
)
from arbiter.report.plots import plots
from arbiter.report.shadow import analysis_recommendation, analysis_shadow_view

if TYPE_CHECKING:
    import jinja2
    import markupsafe


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of every report template (autoescape on, strict undefined)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("arbiter.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["pval"] = format_p_value
    env.filters["when"] = format_timestamp
    env.tests["number_cell"] = is_number
    return env


def render_template(name: str, **context: Any) -> str:
    """Render one template of ``report/templates`` (shared with the drift report)."""
    return environment().get_template(name).render(**context)


@singledispatch
def html_section(analysis: Any) -> markupsafe.Markup:
    """One experiment's section of the report (``<h2>`` and below), escaped, with its plots.

    Dispatches on the analysis type: every result type registers its own template. Any
    other result of the Analysis protocol (a strategy added without a renderer) gets the
    generic section: its decision, criteria and the scalar values of its ``to_dict()``.
    """
    d = generic_view(analysis)
    criteria = [
        [c.name, c.met, c.observed, c.threshold, detail_text(c.detail)] for c in d["criteria"]
    ]
    values = [[row["name"], row["value"]] for row in d["values"]]
    return _section("generic.html.j2", d=d, criteria_rows=criteria, value_rows=values)


def _section(template: str, **context: Any) -> markupsafe.Markup:
    import markupsafe

    return markupsafe.Markup(render_template(template, **context))


def _criteria_rows(criteria: Sequence[Any]) -> list[list[Any]]:
    return [[c.name, c.met, c.observed, c.threshold, detail_text(c.detail)] for c in criteria]


@html_section.register(ExperimentAnalysis)
def _(a: ExperimentAnalysis) -> markupsafe.Markup:
    d = a.to_dict()
    tests = [{"role": "primary", **d["primary"]}]
    tests += [{"role": "secondary", **t} for t in d["secondary"].values()]
    # The arms table's numbers as the terminal prints them: p50 and p99 share decimals.
    columns = ["error_rate", "latency_p50_ms", "latency_p99_ms", d["metric"]]
    arms = list(d["arms"].values())
    texts = format_cells(arms, columns)
    cells = {side: {c: texts[c][i] for c in columns} for i, side in enumerate(d["arms"])}
    context = {
        **d,
        "cells": cells,
        "remaining": d["estimated_remaining_sample"],
        "tests": tests,
        "plots": plots(a),
        "metric_table": metric_rows(d["metrics"]),
        "metric_columns": METRIC_COLUMNS,
        "shadow_view": None if a.shadow is None else analysis_shadow_view(a),
        "recommendation": None if a.shadow is None else analysis_recommendation(a),
    }
    return _section("experiment.html.j2", a=context)


@html_section.register(MultiArmAnalysis)
def _(a: MultiArmAnalysis) -> markupsafe.Markup:
    classification = a.task == "classification"
    header = ["pair", "method", "estimate", "CI low", "CI high", "p", "adjusted p", "significant"]
    pairwise = [
        [f"{r['b']} − {r['a']}", r["method"], r["estimate"], r["ci_low"], r["ci_high"],
         r["p_value"], r["adjusted_p_value"], r["significant"],
         *([r.get("marascuilo_significant")] if classification else [])]
        for r in a.pairwise
    ]  # fmt: skip
    return _section(
        "multiarm.html.j2",
        a=a,
        criteria_rows=_criteria_rows(a.criteria),
        arm_rows=[
            [
                arm,
                a.aliases.get(arm),
                a.weights[arm],
                r["requests"],
                r["units"],
                r["errors"],
                r["latency_p99_ms"],
                r["labelled"],
                r[a.metric],
            ]
            for arm, r in a.arm_rows.items()
        ],
        pairwise_header=[*header, "Marascuilo"] if classification else header,
        pairwise_rows=pairwise,
        guardrail_rows=[
            [arm, g["name"], g["challenger"], g["champion"], g["limit"], g["status"]]
            for arm, rows in a.guardrails.items()
            for g in rows
        ],
        metric_table=metric_rows([] if a.metrics is None else a.metrics.to_list()),
        metric_columns=METRIC_COLUMNS,
        plots=plots(a),
    )


@html_section.register(InterleaveAnalysis)
def _(a: InterleaveAnalysis) -> markupsafe.Markup:
    tests = [
        [name, t.wins_a, t.wins_b, t.ties, -t.delta, -t.ci_high, -t.ci_low, t.p_value,
         t.sign_test_p_value, t.n_clusters]
        for name, t in (("clustered by user", a.test), ("per impression", a.unclustered))
    ]  # fmt: skip
    return _section(
        "interleave.html.j2",
        a=a,
        methods=interleaving_methods(a.methods),
        criteria_rows=_criteria_rows(a.criteria),
        test_rows=tests,
        plots=plots(a),
    )


@html_section.register(BanditAnalysis)
def _(a: BanditAnalysis) -> markupsafe.Markup:
    def pct(v: float) -> str:
        return format_number(v, style="percent", digits=1)

    rows = [
        [r["arm"], r["alias"], r["served"], r["rewarded"], r["invalid_rewards"],
         r["mean_reward_naive"], r["posterior_mean"], pct(r["p_best"]),
         pct(r["current_allocation"])]
        for r in a.arm_rows()
    ]  # fmt: skip
    return _section(
        "bandit.html.j2",
        a=a,
        reasons=[reason_text(r) for r in a.reasons],
        arm_rows=rows,
        warning=ADJUSTED_INFERENCE_WARNING,
        plots=plots(a),
    )


def render_html(
    analyses: Sequence[Any], *, model: str, generated_at: datetime | None = None
) -> str:
    """Render the report as one HTML string (inline CSS, base64 PNG plots, no external links).

    Parameters
    ----------
    analyses : sequence of analysis results
        The experiments to show, in order (any type :func:`html_section` knows).
    model : str
        Model name for the title.
    generated_at : datetime, optional
        Timestamp printed in the header (default: now, UTC).

    Returns
    -------
    str
    """
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return render_template(
        "report.html.j2",
        model=model,
        sections=[html_section(a) for a in analyses],
        generated_at=when,
        decision_colours=DECISION_COLOURS,
    )


def write_html(analyses: Sequence[Any], path: str | Path, *, model: str) -> Path:
    """Render :func:`render_html` into ``path`` (parent folders created); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(analyses, model=model), encoding="utf-8")
    return out


__all__ = [
    "environment",
    "html_section",
    "render_html",
    "render_template",
    "write_html",
]
