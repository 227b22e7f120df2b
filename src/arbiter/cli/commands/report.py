"""``arbiter report``: how the models of one endpoint compare, from the event log."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.commands.analyze import WideOption
from arbiter.cli.options import EngineOption, HomeOption, JsonOption, ModelOption


def report(
    model: str = ModelOption,
    home: Path = HomeOption,
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Markdown file to write (default HOME/reports/MODEL-report.md).",
    ),
    json_output: bool = JsonOption,
    wide: bool = WideOption,
    engine: str = EngineOption,
) -> None:
    """Requests, errors, latency (mean and percentiles) and quality per arm; shadow agreement.

    A shadow experiment also shows the models compared (flavor and estimator class, read from
    the registry without loading them), each model's prediction distribution, the directions
    of disagreement with who was right, and a recommendation line. Reads the event log joined
    with the labels posted to /feedback, and writes a Markdown copy.
    """
    from rich.console import Console

    from arbiter.cli.output import print_json
    from arbiter.events.engines import open_for_home
    from arbiter.home import Home
    from arbiter.registry.model_info import describe_summary_models
    from arbiter.report.markdown import render_markdown
    from arbiter.report.summary import summarize
    from arbiter.report.terminal import WIDE, print_path, print_summary

    h = Home.at(home)
    config = h.config().models.get(model)
    with open_for_home(h, engine) as con:
        summary = summarize(
            con, model, experiment, decision=None if config is None else config.decision
        )
    describe_summary_models(h, model, summary)  # the registry's word on the shadow's models
    path = output or h.reports / f"{model}-report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(summary), encoding="utf-8")
    summary["report_file"] = str(path)
    if json_output:
        print_json(summary)
        return
    WIDE.set(wide)
    console = Console()
    print_summary(console, summary)
    console.print()
    print_path(console, "Markdown report", path)
