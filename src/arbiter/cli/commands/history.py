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
    from arbiter.cli.output import console, print_json
    from arbiter.registry import registry_for_home
    from arbiter.registry.history import experiment_changes
    from arbiter.registry.history import history as read_history
    from arbiter.report.terminal import rich_table

    registry = registry_for_home(home)
    moves = [m.to_dict() for m in read_history(registry, model)]
    changes = [c.to_dict() for c in experiment_changes(registry, model)]
    current = registry.aliases(model)
    if json_output:
        print_json(
            {"model": model, "aliases": current, "moves": moves, "experiment_changes": changes}
        )
        return
    if changes:
        for change in changes:
            change["when"] = _when(change["ts_us"])
            for key in ("shares_before", "shares_after"):
                shares = change[key]
                change[key] = "stopped" if shares is None else ", ".join(
                    f"{arm} {share:.1%}" for arm, share in shares.items()
                )  # fmt: skip
        console.print(
            rich_table(
                f"{model}: experiment changes",
                changes,
                [
                    "when",
                    "experiment",
                    "action",
                    "shares_before",
                    "shares_after",
                    "actor",
                    "reason",
                ],
            )
        )
    for move in moves:
        move["when"] = _when(move["ts_us"])
    console.print(
        rich_table(
            f"{model}: alias moves (now {current})",
            moves,
            ["when", "alias", "from_version", "to_version", "actor", "reason"],
        )
    )


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


def _when(ts_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
