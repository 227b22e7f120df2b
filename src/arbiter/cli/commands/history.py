"""``arbiter history``, ``arbiter promote`` and ``arbiter rollback``: alias moves, recorded."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption


def history(
    model: str = ModelOption,
    home: Path = HomeOption,
    json_output: bool = JsonOption,
) -> None:
    """Every alias move of MODEL (when, who, from which version to which, and why), and every
    change of its running experiments (split, stop, start)."""
    from rich.markup import escape

    from arbiter.cli.output import console, print_json
    from arbiter.registry import registry_for_home
    from arbiter.registry.history import experiment_changes
    from arbiter.registry.history import history as read_history

    registry = registry_for_home(home)
    moves = [m.to_dict() for m in read_history(registry, model)]
    changes = [c.to_dict() for c in experiment_changes(registry, model)]
    current = registry.aliases(model)
    if json_output:
        print_json(
            {"model": model, "aliases": current, "moves": moves, "experiment_changes": changes}
        )
        return
    now = ", ".join(f"{alias} v{version}" for alias, version in current.items()) or "none"
    if changes:
        console.print(f"[bold]{escape(model)}: experiment changes[/bold]")
        for change in changes:
            shares = [
                "stopped"
                if change[key] is None
                else ", ".join(f"{arm} {share:.1%}" for arm, share in change[key].items())
                for key in ("shares_before", "shares_after")
            ]
            _entry(
                change["ts_us"],
                f"{change['experiment']} {change['action']}: {shares[0]} → {shares[1]}",
                change["actor"],
                change["reason"],
            )
        console.print()
    console.print(f"[bold]{escape(model)}: alias moves[/bold] (now {escape(now)})")
    if not moves:
        console.print("  none recorded")
    for move in moves:
        before, after = (
            "—" if move[key] is None else f"v{move[key]}" for key in ("from_version", "to_version")
        )
        _entry(move["ts_us"], f"{move['alias']}: {before} → {after}", move["actor"], move["reason"])


def _entry(ts_us: int, what: str, actor: str | None, reason: str | None) -> None:
    """One history entry: when, what and who on one line, the reason indented below.

    The reason is the long part; in a table column it wrapped one word per line at 80
    columns. Here it wraps under its entry at the terminal's full width.
    """
    from rich.padding import Padding
    from rich.text import Text

    from arbiter.cli.output import console
    from arbiter.report.format import format_timestamp

    line = Text(format_timestamp(ts_us), style="dim")
    line.append(f"  {what}", style="bold")
    if actor:
        line.append(f"  by {actor}")
    console.print(line)
    if reason:
        console.print(Padding(Text(reason), (0, 0, 0, 4), expand=False))


def promote(
    model: str = ModelOption,
    version: str = typer.Option(..., "--version", "-v", help="The version to make champion."),
    home: Path = HomeOption,
    reason: str = typer.Option("manual promotion", "--reason", help="Recorded in the history."),
    json_output: bool = JsonOption,
) -> None:
    """Make VERSION the champion (the model's configured champion alias); the old champion
    keeps the `previous` alias."""
    from arbiter.cli.output import console, print_json
    from arbiter.home import Home
    from arbiter.registry import registry_for_home
    from arbiter.registry.history import promote as do_promote

    registry = registry_for_home(home)
    champion_alias = Home.at(home).aliases(model)[0]
    expected = registry.aliases(model).get(champion_alias)
    moves = do_promote(
        registry,
        model,
        version,
        expected_champion=expected,
        reason=reason,
        champion_alias=champion_alias,
    )
    if json_output:
        print_json({"model": model, "moves": [m.to_dict() for m in moves]})
        return
    console.print(f"{model}: {champion_alias} v{expected} → v{version} (previous = v{expected})")


def rollback(
    model: str = ModelOption,
    home: Path = HomeOption,
    reason: str = typer.Option("manual rollback", "--reason", help="Recorded in the history."),
    json_output: bool = JsonOption,
) -> None:
    """Move the champion back to the `previous` version in one step (running gateways follow
    within one poll interval)."""
    from arbiter.cli.output import console, print_json
    from arbiter.home import Home
    from arbiter.registry import registry_for_home
    from arbiter.registry.history import rollback as do_rollback

    champion_alias = Home.at(home).aliases(model)[0]
    move = do_rollback(registry_for_home(home), model, reason=reason, champion_alias=champion_alias)
    if json_output:
        print_json(move.to_dict())
        return
    console.print(f"{model}: {champion_alias} v{move.from_version} → v{move.to_version}")
