"""``arbiter loop``: the closed loop (drift → retrain → gate → shadow test → promote/archive)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.commands.retrain import CategoricalOption, TextOption, TimeColumnOption
from arbiter.cli.options import HomeOption, JsonOption, ModelOption

app = typer.Typer(
    help="The closed loop: drift check, retrain, offline gate, shadow test, promote or archive.",
    no_args_is_help=True,
)

ForceOption = typer.Option(False, "--force", help="Retrain even without drift.")
EveryOption = typer.Option(
    None, "--every", help="Also retrain when this long has passed since the last retrain (7d)."
)
DataOption = typer.Option(None, "--data", help="Training file (CSV or Parquet).")
LabelOption = typer.Option(None, "--label", help="Label column of --data and --holdout.")
HoldoutOption = typer.Option(None, "--holdout", help="Holdout file for the offline gate.")
MaxWaitOption = typer.Option(
    "7d", "--max-wait", help="Archive a candidate whose shadow test has no verdict after this."
)
TrafficOption = typer.Option(
    "30d",
    "--traffic-window",
    help="Also train on labelled traffic of this period; 'none' for the file only.",
)
DriftWindowOption = typer.Option(
    "7d",
    "--drift-window",
    help="Served traffic compared with the reference: a period (6h, 7d), the most recent "
    "rows ('5000 rows'), or 'none' for all.",
)
TrialsOption = typer.Option(20, "--trials", min=1, help="Optuna trials of the retrain search.")
SearchOption = typer.Option("sklearn", "--search", help="Model space: sklearn, lightgbm, all.")


def _options(
    force: bool,
    every: str | None,
    data: Path | None,
    label: str | None,
    holdout: Path | None,
    max_wait: str,
    traffic_window: str,
    trials: int,
    search: str,
    drift_window: str = "7d",
    *,
    categorical: list[str] | None = None,
    text: list[str] | None = None,
    time_column: str | None = None,
) -> Any:
    from arbiter.durations import parse_duration, parse_window
    from arbiter.loop import LoopOptions

    # Refuse a bad window before the cycle starts.
    parse_window(drift_window, field="drift_window")
    parse_window(traffic_window, field="traffic_window")
    return LoopOptions(
        force=force,
        every_s=None if every is None else parse_duration(every, field="every").total_seconds(),
        max_wait_s=parse_duration(max_wait, field="max_wait").total_seconds(),
        data=data,
        label=label,
        holdout=holdout,
        traffic_window=None if traffic_window.lower() == "none" else traffic_window,
        trials=trials,
        search=search,
        drift_window=None if drift_window.lower() == "none" else drift_window,
        categorical=tuple(categorical or ()),
        text=tuple(text or ()),
        time_column=time_column,
    )


def _print_run(result: Any) -> None:
    from rich.console import Console

    console = Console()
    rec = result.record
    console.print(
        f"[bold]cycle {rec.cycle_id}[/bold] "
        f"({'resumed' if result.resumed else 'new'}; champion v"
        f"{next(iter(rec.aliases_at_start.values()), '?')} at start)"
    )
    for name, step in rec.steps.items():
        mark = "→" if name in result.ran else " "
        summary = step.evidence.get("summary") or step.error or ""
        console.print(f" {mark} {name:<8} {step.status:<8} {summary}", highlight=False)
    if rec.finished:
        console.print(f"[bold]verdict: {rec.verdict}[/bold] — {rec.reason}", highlight=False)
    else:
        console.print(f"status: {rec.status}; next: {result.next}", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


@app.command("run")
def run(
    model: str = ModelOption,
    home: Path = HomeOption,
    force: bool = ForceOption,
    every: str = EveryOption,
    data: Path = DataOption,
    label: str = LabelOption,
    holdout: Path = HoldoutOption,
    max_wait: str = MaxWaitOption,
    traffic_window: str = TrafficOption,
    trials: int = TrialsOption,
    search: str = SearchOption,
    drift_window: str = DriftWindowOption,
    categorical: list[str] = CategoricalOption,
    text: list[str] = TextOption,
    time_column: str = TimeColumnOption,
    stop_after: str = typer.Option(
        None, "--stop-after", help="Start no step after this one (orchestrators: one per task)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Advance the model's open cycle, or start one; every step is recorded in HOME/loop/.

    Run it again to continue: after a crash, or to re-check a shadow test still waiting for
    labels. Options describe a new cycle; a resumed one keeps its own. See docs/loop.md.
    """
    from arbiter.cli.output import print_json
    from arbiter.loop import run_cycle

    options = _options(
        force,
        every,
        data,
        label,
        holdout,
        max_wait,
        traffic_window,
        trials,
        search,
        drift_window,
        categorical=categorical,
        text=text,
        time_column=time_column,
    )
    result = run_cycle(home, model, options, stop_after=stop_after)
    if json_output:
        print_json(result.to_dict())
        return
    _print_run(result)


@app.command("history")
def history(
    model: str = ModelOption,
    home: Path = HomeOption,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Most recent cycles to show."),
    json_output: bool = JsonOption,
) -> None:
    """List the model's cycles, newest first (one decision record each)."""
    from rich.console import Console
    from rich.table import Table

    from arbiter.cli.output import print_json
    from arbiter.loop import CycleStore

    records = CycleStore(home).records(model)[::-1][:limit]
    if json_output:
        print_json({"model": model, "cycles": [r.to_dict() for r in records]})
        return
    if not records:
        Console().print(f"no loop cycles for model {model!r} in {home}")
        return
    table = Table(title=f"loop cycles of {model}")
    for column in ("cycle", "started", "status", "verdict", "candidate", "steps", "reason"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.cycle_id,
            r.created_at[:19].replace("T", " "),
            r.status,
            r.verdict or "",
            f"v{r.candidate_version}" if r.candidate_version else "",
            " ".join(f"{n}:{s.status}" for n, s in r.steps.items()),
            r.reason or "",
        )
    Console().print(table)


@app.command("schedule")
def schedule(
    model: str = ModelOption,
    home: Path = HomeOption,
    every: str = typer.Option("1h", "--every", help="Time between two loop runs."),
    max_cycles: int = typer.Option(
        None, "--max-cycles", min=1, help="Stop after this many loop runs."
    ),
    force: bool = ForceOption,
    retrain_every: str = typer.Option(
        None, "--retrain-every", help="As `loop run --every`: retrain at least this often."
    ),
    data: Path = DataOption,
    label: str = LabelOption,
    holdout: Path = HoldoutOption,
    max_wait: str = MaxWaitOption,
    traffic_window: str = TrafficOption,
    trials: int = TrialsOption,
    search: str = SearchOption,
    drift_window: str = DriftWindowOption,
    categorical: list[str] = CategoricalOption,
    text: list[str] = TextOption,
    time_column: str = TimeColumnOption,
    json_output: bool = JsonOption,
) -> None:
    """Run `loop run` every --every in the foreground (for cron-less hosts and systemd).

    Logs one line per step on stderr; SIGINT/SIGTERM stop it after the step in progress.
    """
    from arbiter.cli.output import print_json
    from arbiter.durations import parse_duration
    from arbiter.logs import setup
    from arbiter.loop import run_schedule

    setup("INFO")  # the one logging setup (arbiter.logs): time, level, pid, logger
    options = _options(
        force,
        retrain_every,
        data,
        label,
        holdout,
        max_wait,
        traffic_window,
        trials,
        search,
        drift_window,
        categorical=categorical,
        text=text,
        time_column=time_column,
    )
    result = run_schedule(
        home,
        model,
        parse_duration(every, field="every").total_seconds(),
        options,
        max_cycles=max_cycles,
    )
    if json_output:
        print_json(result.to_dict())
