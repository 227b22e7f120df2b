"""``arbiter experiment``: stop, start or look at a model's running A/B experiment.

``stop`` ends it cleanly (the champion serves everything; requests are logged apart, so the
stopped experiment's analysis reads its data up to the stop), ``start`` restarts it, or starts
a fresh one under ``--name`` (a new salt, hence a fresh assignment). Stored in the registry
and applied by every gateway worker within one poll interval, like ``arbiter split``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.commands.split import ReasonOption, control_service, print_result
from arbiter.cli.options import HomeOption, JsonOption, ModelOption

app = typer.Typer(help="Stop, start or show a running A/B experiment.", no_args_is_help=True)


@app.command("stop")
def stop(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """End MODEL's experiment: all traffic to the champion, recorded in the history."""
    print_result(control_service(home, model).stop(reason=reason), as_json, "stop")


@app.command("start")
def start(
    model: str = ModelOption,
    home: Path = HomeOption,
    name: str | None = typer.Option(
        None, "--name", help="Start a new experiment under this name (a fresh assignment)."
    ),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Restart MODEL's stopped experiment, or start a new one with --name."""
    print_result(control_service(home, model).start(name=name, reason=reason), as_json, "start")


@app.command("status")
def status(model: str = ModelOption, home: Path = HomeOption, as_json: bool = JsonOption) -> None:
    """Status, shares (now and configured) and recorded changes of MODEL's experiment."""
    from arbiter.cli.output import print_json

    result = control_service(home, model).status()
    if as_json:
        print_json(result)
        return
    print_result({**result, "unchanged": "status only"}, False, "status")
    for c in result["changes"]:
        typer.echo(f"  {c['action']:<5} {c['shares_before']} -> {c['shares_after']} by "
                   f"{c['actor']}: {c['reason']}")  # fmt: skip
