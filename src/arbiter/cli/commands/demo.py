"""``arbiter demo``: the main job, end to end, on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption

SCENARIOS = ("default", "drift", "mixed")


def demo(
    home: Path = HomeOption,
    requests: int | None = typer.Option(
        None,
        "--requests",
        min=10,
        # Parentheses, not brackets: Rich reads "[default: ...]" as markup and drops it.
        help="Requests per phase (default 2000; drift scenario: per half, 1000; mixed: per "
        "half, 1500).",
    ),
    concurrency: int = typer.Option(16, "--concurrency", min=1, help="Concurrent HTTP requests."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic data."),
    scenario: str = typer.Option(
        "default",
        "--scenario",
        help="default: champion vs challenger, shadow then A/B. drift: the traffic shifts "
        "halfway and the closed loop detects it, retrains, gates, shadow-tests and promotes "
        "(writes the drift and experiment reports). mixed: the same loop on an account table "
        "with categorical, missing and free-text columns, served as raw rows.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Delete an earlier demo's home and start over (says what it deletes). A folder "
        "the demo did not create is never deleted, nor a home a server is using.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log every step (canary decisions, MLflow's messages)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Train a champion and a challenger, serve them, test them on live HTTP traffic, report.

    Generates card-fraud-like transactions, registers both models in HOME's MLflow store, starts
    the gateway on a free loopback port, runs a shadow phase then an A/B phase with user ids,
    posts labels, and prints the comparison. Afterwards `arbiter serve --home HOME` serves the
    same models. An earlier demo's HOME is deleted only with --force; the demo refuses to touch
    a HOME that `arbiter serve` is using (HOME/.serve.lock).

    With `--scenario drift`, the closed loop (`arbiter loop`) runs on traffic whose distribution
    shifts halfway, and writes the drift and experiment reports (HTML) to HOME/reports/.
    `--scenario mixed` runs the same loop on a table that looks real: merchant category,
    country and device strings, gaps, a free-text note and a ~5 % fraud label.
    """
    from arbiter.threads import single_threaded_native_pools

    single_threaded_native_pools()
    from rich.console import Console

    from arbiter.demo.run import prepare_home
    from arbiter.errors import InvalidInputError
    from arbiter.logs import quiet_mlflow, setup
    from arbiter.serve_lock import rebuilding

    if scenario not in SCENARIOS:
        raise InvalidInputError(
            f"--scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}",
            field="--scenario",
        )
    # Quiet: the progress bars tell the story; -v logs each step (INFO) and MLflow's lines.
    setup("INFO" if verbose else "WARNING", verbose=verbose)
    console = Console(stderr=json_output)
    # Held for the whole run: a server started meanwhile refuses the home, and the demo
    # refuses a home a server holds (its rebuild would corrupt the server's registry).
    with rebuilding(home), quiet_mlflow(verbose):
        prepare_home(home, force=force, say=console.print)
        if scenario in ("drift", "mixed"):
            _loop_scenario(scenario, home, requests, concurrency, seed, json_output, console)
            return
        _default(home, requests, concurrency, seed, json_output, console)


def _default(
    home: Path, requests: int | None, concurrency: int, seed: int, json_output: bool, console: Any
) -> None:
    from arbiter.cli.output import print_json
    from arbiter.demo.run import DemoOptions, run_demo
    from arbiter.report.markdown import render_markdown
    from arbiter.report.terminal import print_analysis, print_summary

    summary = run_demo(
        home,
        DemoOptions(requests=requests or 2_000, concurrency=concurrency, seed=seed),
        console=console,
    )
    reports = Path(summary["demo"]["home"]) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "fraud-report.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    summary["demo"]["report"] = str(path)
    analyses = summary.pop("_analyses")
    ranking = summary.pop("_ranking_analysis", None)
    if json_output:
        print_json(summary)
        return
    print_summary(console, summary)
    for analysis in analyses:
        print_analysis(console, analysis)
    _print_ab_metrics(console, summary.get("ab_metrics"))
    _print_canaries(console, summary["canaries"])
    if ranking is not None:
        print_analysis(console, ranking)
    home_dir = summary["demo"]["home"]
    arbiter = arbiter_command()
    # One path or command per line, never wrapped (soft_wrap), each ending in the path, so a
    # narrow terminal shows it whole and copy and paste works.
    lines = [
        f"\nDone in {summary['demo']['seconds']} s.",
        f"Report: {path}",
        f"Analysis (HTML, with plots): {summary['analysis_html']}",
        f"Canary decision records: {home_dir}/canary/fraud/",
        f"  [bold]{arbiter} canary status --model fraud --home {home_dir}[/bold]",
        "Alias history:",
        f"  [bold]{arbiter} history --model fraud --home {home_dir}[/bold]",
        "Serve the same models:",
        f"  [bold]{arbiter} serve --home {home_dir}[/bold]",
        "Look at what it did in a browser (http://127.0.0.1:8080/):",
        f"  [bold]{arbiter} ui --home {home_dir}[/bold]",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


def arbiter_command() -> str:
    """How to run arbiter again from this shell: ``arbiter`` when that is on the PATH and is
    this installation, else the script's path as typed (``.venv/bin/arbiter`` after `make
    demo`), so the commands the demo prints can be pasted as they are."""
    import os
    import shutil
    import sys

    script = sys.argv[0]
    if Path(script).name != "arbiter":
        return "python -m arbiter"
    found = shutil.which("arbiter")
    if found and os.path.realpath(found) == os.path.realpath(script):
        return "arbiter"
    return script


def _print_ab_metrics(console: Any, ab: dict[str, Any] | None) -> None:
    """The A/B phase's business metrics per user and the verdict on the primary metric."""
    from rich.table import Table

    from arbiter.report.format import format_number

    if not ab:
        return
    first = ab["metrics"][0] if ab["metrics"] else None
    users = (
        ""
        if first is None
        else " ({} / {} users)".format(*(first["arms"][a]["units"] for a in first["arms"]))
    )
    console.rule(
        f"[bold]{ab['experiment']}[/bold]: business metrics per user, champion / challenger" + users
    )
    table = Table(show_header=True, header_style="bold")
    for col in ("metric", "role", "champion", "challenger", "difference [CI]", "p"):
        table.add_column(col, justify="left" if col in ("metric", "role") else "right")
    for m in ab["metrics"]:
        arms = m["arms"]
        table.add_row(
            m["name"],
            m["role"],
            format_number(arms[m["champion"]]["mean"], digits=3),
            format_number(arms[m["arm"]]["mean"], digits=3),
            f"{format_number(m['estimate'], digits=3)} [{format_number(m['ci_low'], digits=3)}, "
            f"{format_number(m['ci_high'], digits=3)}]",
            format_number(m["p_value"], digits=2),
        )
    console.print(table)
    # Named, so an unrelated guardrail's "no observation yet" is not read as the reason.
    failed = [f"{r['name']}: {r['detail']}" for r in ab["reasons"] if not r["met"]]
    console.print(
        f"verdict on {ab['primary_metric']}: [bold]{ab['decision']}[/bold]"
        + (f" ({'; '.join(failed)})" if failed else "")
    )


def _print_canaries(console: Any, canaries: dict[str, Any]) -> None:
    """Each canary's decision records: when, what, at which share, and why."""
    from rich.table import Table

    for run in canaries.values():
        console.rule(
            f"[bold]canary[/bold] v{run['challenger_version']} against champion "
            f"v{run['champion_version']}: {run['outcome']} after {run['requests']} requests"
        )
        history = run["history"]
        start = history[0]["at"] if history else 0.0
        table = Table(show_header=True, header_style="bold")
        for col in ("t (s)", "action", "stage", "why"):
            table.add_column(col, justify="right" if col == "t (s)" else "left")
        for record in history:
            stage = f"{record['from_stage']} → {record['to_stage']}"
            why = "; ".join(record["reasons"])
            table.add_row(f"{record['at'] - start:.1f}", record["action"], stage, why)
        console.print(table)
        console.print(f"aliases now: {run['aliases']}")


def _loop_scenario(
    scenario: str,
    home: Path,
    requests: int | None,
    concurrency: int,
    seed: int,
    json_output: bool,
    console: Any,
) -> None:
    """The closed-loop scenarios: drift (numeric table) and mixed (mixed-type table)."""
    import os

    from arbiter.cli.output import print_json

    # The loop reads reference profiles from MLflow; its download bars would break the steps.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    sizes: dict[str, Any] = {"concurrency": concurrency, "seed": seed}
    if requests is not None:
        sizes["requests"] = requests
    if scenario == "mixed":
        from arbiter.demo.mixed_scenario import MixedDemoOptions, run_mixed_demo

        summary = run_mixed_demo(home, MixedDemoOptions(**sizes), console=console)
    else:
        from arbiter.demo.drift_scenario import DriftDemoOptions, run_drift_demo

        summary = run_drift_demo(home, DriftDemoOptions(**sizes), console=console)
    summary.pop("_analysis")
    if json_output:
        print_json(summary)
        return
    versions, reports = summary["versions"], summary["reports"]
    console.print(
        f"\n[bold]{summary['verdict'] or summary['status']}[/bold]: {summary['reason'] or ''}\n"
        f"champion v{versions['champion_before']} → v{versions['champion_after']} "
        f"(aliases now {versions['aliases']})"
    )
    console.print(f"\nDone in {summary['seconds']} s.")
    if reports["drift_html"]:
        console.print(f"Drift report (HTML): {reports['drift_html']}")
    if reports["analysis_html"]:
        console.print(f"Shadow-test analysis (HTML): {reports['analysis_html']}")
    console.print(
        f"Decision record: {summary['decision_record']}\n"
        f"History: [bold]arbiter loop history --home {summary['home']} --model fraud[/bold]"
    )
