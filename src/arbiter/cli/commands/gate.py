"""``arbiter gate``: the offline gate, champion against challenger on one holdout.

Exit codes: 0 when the challenger passes, :data:`GATE_FAILED` (10) when it does not, and the
usual error codes of :mod:`arbiter.cli.status_codes` when the gate could not run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption
from arbiter.cli.status_codes import GATE_FAILED  # the gate ran and the challenger failed it


def gate(
    model: str = ModelOption,
    home: Path = HomeOption,
    holdout: Path = typer.Option(..., "--holdout", help="Holdout data (.csv or .parquet)."),
    label: str = typer.Option(..., "--label", "-l", help="Column of the holdout with labels."),
    challenger_version: str = typer.Option(
        None,
        "--challenger-version",
        help="Version to gate (default: the challenger alias).",
    ),
    champion_version: str = typer.Option(
        None,
        "--champion-version",
        help="Version to beat (default: the champion alias).",
    ),
    metric: str = typer.Option(
        None, "--metric", help="roc_auc, accuracy, f1, log_loss, rmse, mae... (default: auto)."
    ),
    min_improvement: float = typer.Option(
        0.0, "--min-improvement", help="The challenger must improve the metric by more than this."
    ),
    relative: bool = typer.Option(
        False, "--relative", help="--min-improvement is a fraction of the champion's score."
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the primary paired test."),
    no_significance: bool = typer.Option(
        False, "--no-significance", help="Do not require a significant primary test."
    ),
    slices: list[str] = typer.Option(
        None, "--slice", help="Column whose every value must not regress (repeatable)."
    ),
    slice_tolerance: float = typer.Option(
        0.01, "--slice-tolerance", help="Allowed per-slice regression of the metric."
    ),
    min_slice_rows: int = typer.Option(
        30, "--min-slice-rows", help="Smaller slices are reported, not judged."
    ),
    no_record: bool = typer.Option(
        False, "--no-record", help="Do not write the verdict as tags on the challenger."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Score champion and challenger on the same holdout and decide if the challenger passes.

    The holdout is stored as HOME/snapshots/<sha256>.parquet; the verdict is written as
    arbiter.gate.* tags on the challenger version. Exit code 0: passed; 10: failed.
    See docs/retrain-and-gate.md.
    """
    from rich.table import Table

    from arbiter.cli.output import console, err_console, print_json
    from arbiter.gate import GateConfig, offline_gate
    from arbiter.home import Home
    from arbiter.registry import registry_for_home
    from arbiter.report.format import format_number
    from arbiter.tables import read_table

    config = GateConfig(
        metric=metric,
        min_improvement=min_improvement,
        relative=relative,
        alpha=alpha,
        require_significance=not no_significance,
        slices=tuple(slices or ()),
        slice_tolerance=slice_tolerance,
        min_slice_rows=min_slice_rows,
    )
    h = Home.at(home)
    frame = read_table(holdout, field="--holdout")
    registry = registry_for_home(h.root)
    champion_alias, challenger_alias = h.aliases(model)
    with err_console.status("Scoring champion and challenger on the holdout…"):
        result = offline_gate(
            registry,
            model,
            frame,
            label,
            home=h.root,
            champion_version=champion_version,
            challenger_version=challenger_version,
            champion_alias=champion_alias,
            challenger_alias=challenger_alias,
            config=config,
            record=not no_record,
        )
    if json_output:
        print_json(result.to_dict())
    else:
        verdict = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
        console.print(
            f"{model}: challenger v{result.challenger_version} vs champion "
            f"v{result.champion_version} on {result.n_rows} rows — {verdict}"
        )
        table = Table("criterion", "met", "observed", "threshold", "n", "detail")
        for c in result.criteria:
            table.add_row(
                c.name,
                "[green]yes[/]" if c.met else "[red]no[/]",
                format_number(c.observed),
                format_number(c.threshold),
                "" if c.n is None else str(c.n),
                c.detail,
            )
        console.print(table)
        console.print(f"snapshot: {result.snapshot_path}", highlight=False)
    if not result.passed:
        # SystemExit, not typer.Exit: `arbiter.cli.main` runs the app with standalone_mode=False,
        # where typer.Exit's code is returned and dropped, but SystemExit propagates.
        raise SystemExit(GATE_FAILED)
