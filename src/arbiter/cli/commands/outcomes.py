"""``arbiter outcomes``: outcome events (purchases, sessions...) from files, and a summary.

``import`` loads a CSV or Parquet export of a warehouse into the event log, the bulk twin of
``POST /outcomes`` (docs/outcomes.md); ``summary`` shows what the log holds per event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption

app = typer.Typer(
    help="Outcome events (purchases, sessions...): import files, summarise the log.",
    no_args_is_help=True,
)

#: Files with at least this many rows (or bytes, for CSV) get a progress bar.
PROGRESS_ROWS = 1_000_000
PROGRESS_BYTES = 64 * 2**20


def _home(home: Path) -> Any:
    from arbiter.errors import NotFoundError
    from arbiter.home import Home

    h = Home.at(home)
    if not h.root.is_dir():
        raise NotFoundError(f"no arbiter home at {h.root}")
    return h


def _import_with_progress(
    store: Any, file: Path, ignore_extra: bool, dry_run: bool, *, quiet: bool
) -> Any:
    """Import FILE into ``store``, with progress bars on stderr for a big file unless quiet."""
    from arbiter.cli.output import err_console
    from arbiter.events.outcome_files import count_rows, import_outcome_file

    total = count_rows(file) if file.is_file() else None
    big = (total or 0) >= PROGRESS_ROWS or (
        total is None and file.is_file() and file.stat().st_size >= PROGRESS_BYTES
    )
    if not big or quiet:
        result = import_outcome_file(store, file, ignore_extra=ignore_extra, dry_run=dry_run)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            tasks = {
                "check": progress.add_task("validating", total=total),
                "write": progress.add_task("writing", total=total, visible=not dry_run),
            }

            def advance(phase: str, rows: int) -> None:
                progress.advance(tasks[phase], rows)

            result = import_outcome_file(
                store, file, ignore_extra=ignore_extra, dry_run=dry_run, progress=advance
            )
    return result


def import_file(
    file: Path = typer.Argument(..., help="CSV (.csv, .csv.gz) or Parquet (.parquet) file."),
    home: Path = HomeOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the file, write nothing."),
    ignore_extra: bool = typer.Option(
        False, "--ignore-extra", help="Skip columns other than the outcome fields."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Import outcome events from FILE into the event log.

    Columns: unit_id, event, and optionally value (default 1; a value column needs a number
    in every row), ts (ISO 8601 with a zone such as 2026-12-01T10:00:00Z, or Parquet
    timestamps with a time zone; default: now) and request_id. Other columns are refused
    unless --ignore-extra.

    The whole file is validated before anything is written: a bad row stops the import with
    its line (CSV) or row (Parquet) number and nothing is stored. Then the rows are written in
    segments of 100 000, each durable on its own: a failure while writing (disk full) keeps
    the segments already written, and the error says how many rows that was. Importing the
    same file twice stores its events twice.
    """
    from arbiter.cli.output import console, print_json
    from arbiter.events.location import open_event_store

    h = _home(home)
    store = open_event_store(h)
    try:
        result = _import_with_progress(store, file, ignore_extra, dry_run, quiet=json_output)
    finally:
        if hasattr(store, "close"):
            store.close()  # the PostgreSQL store's connection
    if json_output:
        print_json(
            {"file": str(file), "rows": result.rows, "stored": result.stored, "dry_run": dry_run}
        )
    elif dry_run:
        console.print(f"{file}: {result.rows} valid outcome rows (dry run: nothing stored)")
    else:
        console.print(f"stored {result.stored} outcome events from {file}")


def summary(home: Path = HomeOption, json_output: bool = JsonOption) -> None:
    """Outcome events in the log per event name: rows, units, value sum, first and last ts."""
    from arbiter.cli.output import console, print_json
    from arbiter.events.location import open_event_store

    h = _home(home)
    with open_event_store(h).connect() as con:
        rows = con.sql(
            "SELECT event, count(*), count(DISTINCT unit_id), sum(value), min(ts), max(ts) "
            "FROM outcomes GROUP BY event ORDER BY event"
        ).fetchall()
    events = [
        {
            "event": event,
            "rows": n,
            "units": units,
            "value_sum": total,
            "first_ts": first.isoformat(),
            "last_ts": last.isoformat(),
        }
        for event, n, units, total, first, last in rows
    ]
    if json_output:
        print_json({"events": events, "rows": sum(e["rows"] for e in events)})
        return
    if not events:
        console.print(f"no outcome events in {h.root}")
        return
    from rich.table import Table

    table = Table("event", "rows", "units", "value sum", "first (UTC)", "last (UTC)")
    for e in events:
        table.add_row(
            e["event"],
            f"{e['rows']:,}",
            f"{e['units']:,}",
            f"{e['value_sum']:,.6g}",
            e["first_ts"][:16].replace("T", " "),
            e["last_ts"][:16].replace("T", " "),
        )
    console.print(table)


app.command("import")(import_file)
app.command("summary")(summary)

__all__ = ["app", "import_file", "summary"]
