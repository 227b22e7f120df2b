"""``arbiter export``: the joined event log (predictions + labels) as a file."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption


def export(
    model: str = ModelOption,
    home: Path = HomeOption,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or parquet."),
    output: Path = typer.Option(
        None, "--output", "-o", help="File to write (default ./MODEL-events.FORMAT)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Write every logged prediction of MODEL with its label (when one arrived) to a file.

    The file appears whole or not at all (written to a temporary name, then renamed).
    """
    from arbiter.cli.output import console, print_json
    from arbiter.errors import InvalidInputError, NotFoundError
    from arbiter.events import EventStore
    from arbiter.events import export as export_events
    from arbiter.home import Home

    if fmt not in ("csv", "parquet"):
        raise InvalidInputError(f"--format must be csv or parquet, got {fmt!r}", field="--format")
    h = Home.at(home)
    if not h.events.exists():
        raise NotFoundError(f"no event log in {h.root}")
    path = output or Path(f"{model}-events.{fmt}")
    result = export_events(EventStore(h.root), model, path, format=fmt)
    rows = result if isinstance(result, int) else getattr(result, "rows", None)
    if json_output:
        print_json({"model": model, "path": str(path), "format": fmt, "rows": rows})
        return
    console.print(f"wrote {rows if rows is not None else ''} rows to {path}")
