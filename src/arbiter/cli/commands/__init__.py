"""Registers each command module's commands on the root Typer app.

Command modules import only Typer at module level; heavy imports happen when a command runs.
"""

from __future__ import annotations

import typer


def register_commands(app: typer.Typer) -> None:
    """Attach every command and command group to ``app``."""
    from arbiter.cli.commands import (
        analyze,
        canary,
        compact,
        demo,
        drift,
        events,
        experiment,
        export,
        gate,
        history,
        loop,
        outcomes,
        report,
        retrain,
        score,
        serve,
        split,
        stats,
        ui,
    )

    app.command("demo")(demo.demo)
    app.command("serve")(serve.serve)
    app.command("report")(report.report)
    app.command("analyze")(analyze.analyze)
    app.command("export")(export.export)
    app.command("compact")(compact.compact)
    app.command("retrain")(retrain.retrain)
    app.command("score")(score.score)
    app.command("gate")(gate.gate)
    app.command("history")(history.history)
    app.command("promote")(history.promote)
    app.command("rollback")(history.rollback)
    app.command("split")(split.split)
    app.command("ui")(ui.ui)
    app.add_typer(experiment.app, name="experiment", help="Stop, start or show a running A/B test.")
    app.add_typer(
        drift.app, name="drift", help="Data and prediction drift against the training data."
    )
    app.add_typer(
        loop.app, name="loop", help="The closed loop: drift, retrain, gate, shadow test, promote."
    )
    app.add_typer(
        canary.app, name="canary", help="Canary releases: status, pause, resume, promote, abort."
    )
    app.add_typer(events.app, name="events", help="The event log as a whole: retention.")
    app.add_typer(outcomes.app, name="outcomes", help="Outcome events: import files, summary.")
    app.add_typer(
        stats.app, name="stats", help="Calculators for analysts: tests, sample sizes, SRM."
    )


__all__ = ["register_commands"]
