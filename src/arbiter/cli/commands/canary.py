"""``arbiter canary``: look at and steer a model's canary release (docs/canary.md).

The commands talk to the registry directly (the canary's state is a registered-model tag), so
they work with or without a running gateway; every gateway worker applies a change within one
registry poll interval. Writes compare, write and read back (docs/canary.md, *Where the state
lives*): a concurrent change makes the command fail with one line and a non-zero exit, never
overwrite; repeating an action that already took effect succeeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption

app = typer.Typer(
    help="Canary releases: status, pause, resume, promote (force), abort.",
    no_args_is_help=True,
)

ReasonOption = typer.Option(None, "--reason", help="Why (kept in the decision record).")


def _service(home: Path, model: str) -> Any:
    from arbiter.canary import CanaryService
    from arbiter.errors import NotFoundError
    from arbiter.home import Home
    from arbiter.registry import MLflowRegistry

    h = Home.at(home)
    config = h.config()
    if model not in config.models:
        raise NotFoundError(
            f"model {model!r} is not configured in {h.config_path}; configured: "
            f"{sorted(config.models) or 'none'}"
        )
    registry = MLflowRegistry(
        h.tracking_uri(config),
        registry_uri=config.registry.registry_uri,
        artifact_location=h.artifact_location(),
    )
    poll_s = config.registry.poll_interval_s
    return CanaryService(registry, h.root, model, config.models[model], poll_interval_s=poll_s)


def _config(home: Path) -> Any:
    from arbiter.home import Home

    return Home.at(home).config()


def _when(ts: float | None) -> str:
    from datetime import UTC, datetime

    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_status(status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.rule(f"canary of {status['model']}")
    summary = Table(show_header=False, box=None)
    summary.add_row("status", str(status["status"]))
    if status.get("problem"):
        summary.add_row("problem", str(status["problem"]))
    summary.add_row("share", f"{status['share']:.1%}")
    if "stage" in status:
        summary.add_row("stage", f"{status['stage']} of {status['stages'] - 1}")
        summary.add_row(
            "versions",
            f"challenger v{status['tested_challenger_version']} vs champion "
            f"v{status['tested_champion_version']}",
        )
        summary.add_row("started", _when(status["started_at"]))
        summary.add_row("stage started", _when(status["stage_started_at"]))
    else:
        summary.add_row("detail", status.get("detail", ""))
    console.print(summary)
    plan = Table(title="plan", title_justify="left")
    for column in ("stage", "share", "min requests", "min duration"):
        plan.add_column(column, justify="right")
    for i, s in enumerate(status["plan"]["stages"]):
        marker = " ◀" if status.get("stage") == i and status["status"] == "running" else ""
        plan.add_row(
            f"{i}{marker}",
            f"{s['share']:.1%}",
            f"{s['min_requests']:,}",
            f"{s['min_duration_s']:g} s",
        )
    console.print(plan)
    history = Table(title="history", title_justify="left")
    for column in ("at", "action", "stage", "reasons"):
        history.add_column(column)
    for r in status.get("history", []):
        history.add_row(
            _when(r["at"]), r["action"], f"{r['from_stage']} → {r['to_stage']}",
            "; ".join(r["reasons"]),
        )  # fmt: skip
    if status.get("history"):
        console.print(history)
    latest = status.get("latest_decision")
    if latest:
        console.print(
            f"latest decision record: {latest.get('action')} at {_when(latest.get('at'))}",
            highlight=False,
        )
        if latest.get("file"):
            # On a line of its own and never wrapped, so that it copies and pastes whole.
            console.print(f"  {latest['file']}", soft_wrap=True, highlight=False, markup=False)


def status(model: str = ModelOption, home: Path = HomeOption, as_json: bool = JsonOption) -> None:
    """Stage, share, status, plan and history of the model's canary."""
    from arbiter.cli.output import print_json

    result = _service(home, model).status()
    if as_json:
        print_json(result)
    else:
        _print_status(result)


def _operate(operation: str, model: str, home: Path, reason: str | None, as_json: bool) -> None:
    from arbiter.alerts import open_alerts
    from arbiter.cli.output import print_json

    service = _service(home, model)
    # A promote or abort from the CLI alerts like a checkpoint's; flushed (bounded) at exit.
    with open_alerts(service.home_root, _config(home), component="cli") as alerts:
        service.alerts = alerts
        result = service.operate(operation, reason)
    if as_json:
        print_json(result)
        return
    _print_status(result["status"])
    if result.get("unchanged"):
        typer.echo(f"{operation}: nothing to do, {result['unchanged']}")
        return
    effects = (result.get("record") or {}).get("registry") or {}
    if effects.get("error"):
        typer.echo(f"{operation}: done, but its registry side effect failed: {effects['error']}")
    typer.echo(f"{operation}: done; gateways apply it within one registry poll interval")


def pause(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Hold the canary at its current share; checkpoints do nothing until resumed."""
    _operate("pause", model, home, reason, as_json)


def resume(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Resume a paused canary; its stage restarts now."""
    _operate("resume", model, home, reason, as_json)


def promote(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Promote the challenger now, skipping the remaining stages (moves the champion alias)."""
    _operate("promote", model, home, reason, as_json)


def abort(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop the canary: 0 % challenger everywhere, and the configured on_rollback action."""
    _operate("abort", model, home, reason, as_json)


app.command("status")(status)
app.command("pause")(pause)
app.command("resume")(resume)
app.command("promote")(promote)
app.command("abort")(abort)
