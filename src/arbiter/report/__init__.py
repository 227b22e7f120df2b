"""Presentation: every result rendered for the terminal (Rich), HTML (Jinja2) and Markdown.

Renderers dispatch on the result's type (:func:`functools.singledispatch`), so an analysis
result carries no rendering code and a new result type registers its own layouts here:

* :mod:`~arbiter.report.terminal`: :func:`print_analysis`, :func:`print_summary`,
  :func:`rich_table`;
* :mod:`~arbiter.report.html`: :func:`html_section` per result, :func:`render_html` /
  :func:`write_html` for the self-contained report (templates under ``report/templates``,
  autoescaped);
* :mod:`~arbiter.report.markdown`: :func:`render_markdown` (``arbiter report``) and
  :func:`analysis_markdown`;
* :mod:`~arbiter.report.plots`: the matplotlib plots, as embedded PNGs;
* :mod:`~arbiter.report.drift`: drift reports in the three forms;
* :mod:`~arbiter.report.format`: the one number formatter and the decision colours;
* :mod:`~arbiter.report.summary`: the per-arm summary ``arbiter report`` shows;
* :mod:`~arbiter.report.shadow`: the shadow report's view model (models compared,
  predictions per model, disagreements by direction) and the recommendation line.

Only the shell (CLI, demo, loop) imports this package; analysis never does. Names load on
first use (PEP 562), so importing :mod:`arbiter.report.format` alone, as the loop does, costs
no Rich, Jinja2, matplotlib or analysis import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbiter.report.drift import (
        drift_markdown,
        drift_order,
        print_drift,
        render_drift_html,
        write_drift_html,
    )
    from arbiter.report.format import (
        DECISION_COLOURS,
        DecisionColour,
        decision_colour,
        format_number,
    )
    from arbiter.report.html import html_section, render_html, write_html
    from arbiter.report.markdown import analysis_markdown, render_markdown
    from arbiter.report.plots import Plot, plots
    from arbiter.report.shadow import (
        Recommendation,
        analysis_recommendation,
        analysis_shadow_view,
        recommend,
        shadow_view,
        summary_shadow_view,
    )
    from arbiter.report.summary import summarize
    from arbiter.report.terminal import print_analysis, print_summary, rich_table

_HOME = {
    "DECISION_COLOURS": "format",
    "DecisionColour": "format",
    "Plot": "plots",
    "Recommendation": "shadow",
    "analysis_recommendation": "shadow",
    "analysis_shadow_view": "shadow",
    "recommend": "shadow",
    "shadow_view": "shadow",
    "summary_shadow_view": "shadow",
    "analysis_markdown": "markdown",
    "decision_colour": "format",
    "drift_markdown": "drift",
    "drift_order": "drift",
    "format_number": "format",
    "html_section": "html",
    "plots": "plots",
    "print_analysis": "terminal",
    "print_drift": "drift",
    "print_summary": "terminal",
    "render_drift_html": "drift",
    "render_html": "html",
    "render_markdown": "markdown",
    "rich_table": "terminal",
    "summarize": "summary",
    "write_drift_html": "drift",
    "write_html": "html",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'arbiter.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"arbiter.report.{module}"), name)


__all__ = [
    "DECISION_COLOURS",
    "DecisionColour",
    "Plot",
    "Recommendation",
    "analysis_markdown",
    "analysis_recommendation",
    "analysis_shadow_view",
    "decision_colour",
    "drift_markdown",
    "drift_order",
    "format_number",
    "html_section",
    "plots",
    "print_analysis",
    "print_drift",
    "print_summary",
    "recommend",
    "render_drift_html",
    "render_html",
    "render_markdown",
    "rich_table",
    "shadow_view",
    "summarize",
    "summary_shadow_view",
    "write_drift_html",
    "write_html",
]
