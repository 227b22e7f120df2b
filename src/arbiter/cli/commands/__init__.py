"""Registers each command module's commands on the root Typer app.

Command modules import only Typer at module level; heavy imports happen when a command runs.
"""

from __future__ import annotations

import typer


def register_commands(app: typer.Typer) -> None:
    """Attach every command group to ``app``."""
    from arbiter.cli.commands import stats

    app.add_typer(stats.app, name="stats", help="Calculators for analysts: tests, sample sizes, SRM.")
