"""``arbiter export``: the joined event log (predictions + labels) and its outcomes as files."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption


def export(
    model: str = ModelOption,
    home: Path = HomeOption,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or parquet."),
    layout: str = typer.Option(
        "long",
        "--layout",
        help="long: one row per model per input row (the log as stored). wide: one row per "
        "input row: request id, time, unit, one column per feature, each model's prediction, "
        "confidence and version side by side (champion_*, challenger_*; A/B/n: one group per "
        "arm), has_discrepancy and the label.",
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="File to write (default MODEL-events.FORMAT in the current directory).",
    ),
    outcomes: bool = typer.Option(
        True,
        "--outcomes/--no-outcomes",
        help="Also write the outcome events of MODEL's units to STEM-outcomes.FORMAT beside "
        "the output (when there are any).",
    ),
    json_output: bool = JsonOption,
) -> None:
    """Write every logged prediction of MODEL with its label (when one arrived) to a file.

    --layout wide writes one row per input row with the models' answers side by side.

    The outcome events (purchases, sessions...) of the units MODEL served go to a second
    file, MODEL-outcomes.FORMAT (or STEM-outcomes.FORMAT beside --output). Each file appears
    whole or not at all (written to a temporary name, then renamed).
    """
    from arbiter.cli.output import console, print_json
    from arbiter.errors import InvalidInputError, NotFoundError
    from arbiter.events import export as export_events
    from arbiter.events.export import export_outcomes
    from arbiter.events.location import event_log_exists, open_event_store
    from arbiter.home import Home

    if fmt not in ("csv", "parquet"):
        raise InvalidInputError(f"--format must be csv or parquet, got {fmt!r}", field="--format")
    if layout not in ("long", "wide"):
        raise InvalidInputError(f"--layout must be long or wide, got {layout!r}", field="--layout")
    h = Home.at(home)
    if not event_log_exists(h):
        raise NotFoundError(f"no event log in {h.root}")
    path = output or Path(f"{model}-events.{fmt}")
    store = open_event_store(h)
    result = export_events(store, model, path, format=fmt, layout=layout)
    rows = result if isinstance(result, int) else getattr(result, "rows", None)
    outcome_rows = 0
    outcome_path = (
        path.with_name(f"{path.name.removesuffix('.' + fmt)}-outcomes.{fmt}")
        if output
        else Path(f"{model}-outcomes.{fmt}")
    )
    if outcomes:
        outcome_rows = export_outcomes(store, model, outcome_path, format=fmt)
    written = {"path": str(outcome_path), "rows": outcome_rows} if outcome_rows else None
    if json_output:
        print_json(
            {
                "model": model,
                "path": str(path),
                "format": fmt,
                "layout": layout,
                "rows": rows,
                "outcomes": written,
            }
        )
        return
    # Say where: without --output the files land in the current directory, which may be
    # a repository checkout; the absolute path leaves no doubt, printed unbroken.
    where = "" if output else " (the current directory; --output chooses another place)"
    count = "" if rows is None else f"{rows:,} "
    console.print(f"wrote {count}rows to {path.resolve()}{where}", soft_wrap=True, highlight=False)
    if written:
        console.print(
            f"wrote {outcome_rows:,} outcome events to {outcome_path.resolve()}",
            soft_wrap=True,
            highlight=False,
        )
