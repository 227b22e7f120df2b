"""Markdown rendering of a report summary (what ``arbiter report`` writes to a file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt(value: Any) -> str:
    """A number as people read it: rates as percentages-free decimals, latencies to 0.01 ms."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "_none_\n"
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


ARM_COLUMNS = (
    "role",
    "arm",
    "alias",
    "version",
    "requests",
    "rows",
    "errors",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)


def render_markdown(summary: dict[str, Any]) -> str:
    out = [f"# arbiter report: model `{summary['model']}`\n"]
    for section in summary["experiments"]:
        out.append(
            f"## Experiment `{section['experiment']}` ({section['strategy']}, {section['task']})\n"
        )
        out.append(
            f"{fmt(section['requests'])} requests from {section['first_event']} "
            f"to {section['last_event']}.\n"
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
                table([{"metric": k, "value": v} for k, v in shadow.items()], ["metric", "value"])
            )
            out.append("### Classic shadow criteria\n")
            out.append(table(section["shadow_criteria"], ["name", "observed", "threshold", "met"]))
        if "verdict" in section:
            verdict = section["verdict"]
            out.append(f"### Verdict: **{verdict['decision']}**\n")
            out.append(
                table(
                    verdict.get("criteria", []), ["name", "met", "observed", "threshold", "detail"]
                )
            )
    return "\n".join(out)


__all__ = ["fmt", "render_markdown", "table"]
