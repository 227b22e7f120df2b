"""Rich rendering of report summaries for people (``--json`` skips this)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from arbiter.report.markdown import fmt

HEADERS = {
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "latency_p99_ms": "p99 ms",
    "error_rate": "err rate",
    "version": "v",
    "labeled_rows": "labelled",
}
# The terminal table leaves out what the Markdown file has room for (alias, rows, rate).
ARM_TABLE = (
    "role",
    "arm",
    "version",
    "requests",
    "errors",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
LEFT = frozenset({"role", "arm", "alias", "name", "metric", "threshold", "detail"})


def rich_table(
    title: str, rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str]
) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(
            HEADERS.get(column, column.replace("_", " ")),
            justify="left" if column in LEFT else "right",
            no_wrap=column in LEFT,
        )
    for row in rows:
        table.add_row(*(fmt(row.get(c)) for c in columns))
    return table


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    console.rule(f"model [bold]{summary['model']}[/bold]")
    for section in summary["experiments"]:
        console.print(
            f"\n[bold]{section['experiment']}[/bold] ({section['strategy']}, {section['task']}): "
            f"{fmt(section['requests'])} requests"
        )
        console.print(rich_table("traffic, errors, latency", section["arms"], ARM_TABLE))
        if section["quality"]:
            cols = ["role", "arm", "alias", "version", "labeled_rows"]
            cols += ["accuracy"] if section["task"] == "classification" else ["mae", "rmse"]
            console.print(rich_table("quality on labelled rows", section["quality"], cols))
        if "shadow" in section:
            shadow = [{"metric": k, "value": v} for k, v in section["shadow"].items()]
            console.print(rich_table("shadow comparison", shadow, ["metric", "value"]))
            console.print(
                rich_table(
                    "classic shadow criteria",
                    section["shadow_criteria"],
                    ["name", "observed", "threshold", "met"],
                )
            )
        if "verdict" in section:
            verdict = section["verdict"]
            console.print(f"verdict: [bold]{verdict['decision']}[/bold]")
            console.print(
                rich_table(
                    "criteria",
                    verdict.get("criteria", []),
                    ["name", "met", "observed", "threshold", "detail"],
                )
            )


def print_analysis(console: Any, a: Any) -> None:
    """One experiment's analysis: arms, tests, criteria and the verdict."""
    from arbiter.analysis import ExperimentAnalysis

    if not isinstance(a, ExperimentAnalysis):  # A/B/n, interleaving, bandit render themselves
        a.render(console)
        return
    d = a.to_dict()
    colour = {"promote": "green", "rollback": "red", "continue": "yellow"}.get(d["decision"], "")
    console.rule(f"[bold]{d['experiment']}[/bold] ({d['strategy']}, {d['task']}, {d['metric']})")
    arms = [{"side": side, **values} for side, values in d["arms"].items()]
    cols = ["side", "requests", "units", "errors", "latency_p99_ms", "labelled", d["metric"]]
    if d.get("sample_unit") == "units":  # tests count labelled units: show them
        cols.insert(6, "labelled_units")
    console.print(rich_table("arms", arms, cols))
    tests = [{**d["primary"], "name": f"primary: {d['primary']['name']}"}]
    tests += [{**t, "name": f"secondary: {t['name']}"} for t in d["secondary"].values()]
    cols = ["name", "estimate", "ci_low", "ci_high", "p_value", "status"]
    console.print(rich_table("tests (challenger − champion)", tests, cols))
    if d["bayesian"]:
        b = d["bayesian"]
        console.print(
            f"Bayesian: P(challenger better) = {b['chance_to_beat_control']:.1%}, "
            f"expected loss if promoted {b['expected_loss_treatment']:.4g}"
        )
    criteria = Table(title="criteria", title_justify="left")
    criteria.add_column("criterion", no_wrap=True)
    criteria.add_column("met", justify="center")
    criteria.add_column("detail", overflow="fold")
    for c in d["criteria"]:
        mark = "[green]yes[/green]" if c["met"] else "[red]no[/red]"
        criteria.add_row(c["name"], mark, c["detail"])
    console.print(criteria)
    line = f"verdict: [bold {colour}]{d['decision']}[/bold {colour}]"
    if d["estimated_remaining_sample"]:
        line += (
            f" (about {d['estimated_remaining_sample']:,} more labelled "
            f"{d.get('sample_unit', 'rows')} per arm)"
        )
    console.print(line)
    for note in d["notes"]:
        console.print(f"[dim]note: {note}[/dim]")
