"""``arbiter analyze``: decide champion vs challenger from the event log, with the statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption


def analyze(
    model: str = ModelOption,
    home: Path = HomeOption,
    experiment: str = typer.Option(
        None,
        "--experiment",
        "-e",
        help="Only this experiment (default: every shadow, ab, interleave and bandit one).",
    ),
    html: Path = typer.Option(
        None, "--html", help="HTML report to write (default HOME/reports/MODEL-analysis.html)."
    ),
    no_html: bool = typer.Option(False, "--no-html", help="Do not write the HTML report."),
    json_output: bool = JsonOption,
) -> None:
    """Test challenger against champion (SRM, primary test, guardrails) and print the verdict.

    A/B/n experiments get the k-arm analysis (a winner only when significantly best),
    interleaving experiments the per-impression credit and clustered test, bandits their
    allocation over time and P(best). Canaries decide by themselves: `arbiter canary status`.

    Decision rules and the `decision:` keys of arbiter.yaml: docs/analysis.md. Also writes a
    self-contained HTML report with plots unless --no-html.
    """
    from rich.console import Console

    from arbiter.analysis import analyze_model
    from arbiter.cli.output import err_console, print_json
    from arbiter.errors import NotFoundError
    from arbiter.events import EventStore
    from arbiter.events.feedback import unmatched_feedback
    from arbiter.experiments.split_store import attach_for_home
    from arbiter.home import Home
    from arbiter.report.terminal import print_analysis

    h = Home.at(home)
    if not h.events.exists():
        raise NotFoundError(f"no event log in {h.root}; serve some traffic first")
    config = h.config()
    # The spinner goes to stderr so that --json output on stdout stays parseable.
    with err_console.status("Analysing the event log…") as status:
        with EventStore(h.root).connect() as con:
            attach_for_home(con, h, model)  # split changes: SRM per period (analysis/periods.py)
            analyses = analyze_model(con, model, experiment, model_config=config.models.get(model))
            unmatched = unmatched_feedback(con)  # labels joined to nothing (issue 14)
        path = None
        if not no_html:
            from arbiter.report.html import write_html

            status.update("Rendering the HTML report…")
            path = write_html(analyses, html or h.reports / f"{model}-analysis.html", model=model)
    result: dict[str, Any] = {
        "model": model,
        "experiments": [a.to_dict() for a in analyses],
        "html_file": None if path is None else str(path),
        "unmatched_feedback": unmatched,
    }
    if json_output:
        print_json(result)
        return
    console = Console()
    for a in analyses:
        print_analysis(console, a)
    if unmatched:
        console.print(
            f"\n{unmatched} feedback row(s) match no logged prediction (unknown request id or "
            "row_index); they are in no analysis."
        )
    if path is not None:
        console.print(f"\nHTML report: {path}")
