"""``arbiter demo``: the main job, end to end, on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption


def demo(
    home: Path = HomeOption,
    requests: int = typer.Option(2_000, "--requests", min=10, help="Requests per phase."),
    concurrency: int = typer.Option(16, "--concurrency", min=1, help="Concurrent HTTP requests."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic data."),
    json_output: bool = JsonOption,
) -> None:
    """Train a champion and a challenger, serve them, test them on live HTTP traffic, report.

    Generates card-fraud-like transactions, registers both models in HOME's MLflow store, starts
    the gateway on a free loopback port, runs a shadow phase then an A/B phase with user ids,
    posts labels, and prints the comparison. Afterwards `arbiter serve --home HOME` serves the
    same models. HOME is wiped first only if an earlier demo created it.
    """
    from arbiter.threads import single_threaded_native_pools

    single_threaded_native_pools()
    import logging

    from rich.console import Console

    from arbiter.cli.output import print_json
    from arbiter.cli.render import print_analysis, print_summary
    from arbiter.demo.run import DemoOptions, run_demo
    from arbiter.report.markdown import render_markdown

    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=json_output)
    summary = run_demo(
        home, DemoOptions(requests=requests, concurrency=concurrency, seed=seed), console=console
    )
    reports = Path(summary["demo"]["home"]) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "fraud-report.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    summary["demo"]["report"] = str(path)
    analyses = summary.pop("_analyses")
    if json_output:
        print_json(summary)
        return
    print_summary(console, summary)
    for analysis in analyses:
        print_analysis(console, analysis)
    console.print(
        f"\nDone in {summary['demo']['seconds']} s. Report: {path}\n"
        f"Analysis (HTML, with plots): {summary['analysis_html']}\n"
        f"Serve the same models: [bold]arbiter serve --home {summary['demo']['home']}[/bold]"
    )
