"""``arbiter loop run/history/schedule`` through Typer, and the scheduler's stop handling."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable

import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import loop as loop_commands
from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.home import Home
from arbiter.loop import CycleStore, LoopOptions, run_schedule
from tests.loop.conftest import MODEL


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(loop_commands.app, name="loop")
    return app


def test_run_then_history(cli: typer.Typer, loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    runner = CliRunner()
    # An empty event log: nothing to compare, so the cycle ends without action.
    result = runner.invoke(cli, ["loop", "run", "--home", str(home.root), "-m", MODEL, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ran"] == ["drift"] and out["resumed"] is False and out["next"] is None
    cycle = out["cycle"]
    assert cycle["verdict"] == "no_action" and cycle["status"] == "finished"
    assert cycle["steps"]["drift"]["evidence"]["status"] == "no_traffic"
    assert cycle["aliases_at_start"] == {"champion": "1", "challenger": "2"}
    assert (home.root / "loop" / "cycles" / f"{cycle['cycle_id']}.json").exists()

    result = runner.invoke(cli, ["loop", "run", "--home", str(home.root), "-m", MODEL])
    assert result.exit_code == 0, result.output
    assert "verdict: no_action" in result.stdout

    result = runner.invoke(
        cli, ["loop", "history", "--home", str(home.root), "-m", MODEL, "--json"]
    )
    assert result.exit_code == 0, result.output
    cycles = json.loads(result.stdout)["cycles"]
    assert len(cycles) == 2 and cycles[1]["cycle_id"] == cycle["cycle_id"]  # newest first
    result = runner.invoke(cli, ["loop", "history", "--home", str(home.root), "-m", MODEL])
    assert result.exit_code == 0 and "loop cycles of fraud" in result.stdout


def test_run_errors_are_arbiter_errors(cli: typer.Typer, loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    runner = CliRunner()
    result = runner.invoke(cli, ["loop", "run", "--home", str(home.root), "-m", "nope"])
    assert isinstance(result.exception, NotFoundError)
    result = runner.invoke(
        cli, ["loop", "run", "--home", str(home.root), "-m", MODEL, "--every", "soon"]
    )
    assert isinstance(result.exception, InvalidInputError)
    assert "every: 'soon' is not a duration" in str(result.exception)
    result = runner.invoke(
        cli, ["loop", "run", "--home", str(home.root), "-m", MODEL, "--stop-after", "lunch"]
    )
    assert isinstance(result.exception, InvalidInputError)
    # A bad drift window is refused before a cycle record is written.
    result = runner.invoke(
        cli, ["loop", "run", "--home", str(home.root), "-m", MODEL, "--drift-window", "5 rowz"]
    )
    assert isinstance(result.exception, InvalidInputError)
    assert result.exception.field == "drift_window" and "'5000 rows'" in str(result.exception)
    assert CycleStore(home.root).records(MODEL) == []


def test_run_with_a_row_count_window(cli: typer.Typer, loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    args = ["loop", "run", "--home", str(home.root), "-m", MODEL, "--json"]
    result = CliRunner().invoke(cli, [*args, "--drift-window", "300 rows"])
    assert result.exit_code == 0, result.output
    drift = json.loads(result.stdout)["cycle"]["steps"]["drift"]["evidence"]
    assert drift["window"] == "300 rows" and drift["status"] == "no_traffic"
    assert drift["summary"] == "no served traffic in the last 300 rows; drift not checked"


def test_schedule_runs_max_cycles(cli: typer.Typer, loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    result = CliRunner().invoke(
        cli,
        [
            "loop",
            "schedule",
            "--home",
            str(home.root),
            "-m",
            MODEL,
            "--every",
            "0.05",
            "--max-cycles",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ticks"] == 2 and out["stopped_by"] == "max_cycles" and out["failures"] == 0
    assert [r["verdict"] for r in out["runs"]] == ["no_action", "no_action"]
    assert len(CycleStore(home.root).records(MODEL)) == 2


def test_schedule_stops_on_sigterm_and_logs_failures(loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    ticked = threading.Event()

    def terminate_after_first_tick() -> None:
        if ticked.wait(240):  # the first cycle can take long on a loaded machine
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_tick)
    killer.start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = run_schedule(
            home.root, MODEL, 3600.0, LoopOptions(), on_run=lambda run: ticked.set()
        )
    finally:
        ticked.set()
        killer.join()
    assert result.stopped_by == "SIGTERM" and result.ticks == 1
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored

    stop = threading.Event()
    failed = run_schedule(home.root, "nope", 0.01, max_cycles=2, stop=stop)
    assert failed.failures == 2 and "nope" in failed.runs[0]["error"]
