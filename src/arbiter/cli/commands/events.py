"""``arbiter events``: operations on the event log as a whole (retention)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import HomeOption, JsonOption

app = typer.Typer(help="The event log as a whole: retention.", no_args_is_help=True)


@app.command("prune")
def prune(
    older_than: str = typer.Option(
        ...,
        "--older-than",
        help="Delete events older than this, e.g. 90d, 12w, 36h (units s, m, h, d, w).",
    ),
    home: Path = HomeOption,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be deleted, delete nothing."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Delete whole partitions (PostgreSQL) or segments (Parquet) older than --older-than.

    Only units whose every event is older than the cutoff go: a PostgreSQL partition whose
    range ends at or before it, a Parquet segment whose newest event is before it. Nothing
    newer than the cutoff is ever deleted; a unit straddling it waits for the next run. Safe
    while gateways write. The store is the one arbiter.yaml configures (events.url). Run it
    from cron, e.g. daily; analyses then see only the retained window.
    """
    from datetime import UTC, datetime

    from arbiter.cli.output import console, print_json
    from arbiter.durations import parse_duration
    from arbiter.errors import ConfigError, InvalidInputError, NotFoundError
    from arbiter.events.postgres_schema import is_postgres_url
    from arbiter.home import Home

    age = parse_duration(older_than, field="--older-than")
    h = Home.at(home)
    if not h.config_path.exists() and not h.events.exists():
        raise NotFoundError(f"no arbiter home at {h.root}")
    url = h.config().events.url
    now = datetime.now(UTC)
    try:
        cutoff = now - age
    except OverflowError:
        raise InvalidInputError(
            f"--older-than {older_than!r} reaches before year 1", field="--older-than"
        ) from None
    rows: list[dict[str, Any]]
    if is_postgres_url(url):
        from arbiter.events.postgres_store import PostgresEventStore

        store = PostgresEventStore(str(url))
        dropped = store.prune(age, now=now, dry_run=dry_run)
        rows = [
            {"table": p.table, "name": p.name, "rows": n, "newest": p.end.isoformat()}
            for p, n in dropped
        ]
        kind = "partitions"
    else:
        from arbiter.events.location import event_location, event_log_exists, open_event_store
        from arbiter.events.retention import prune_segments

        if not event_log_exists(h):
            raise NotFoundError(f"no event log in {h.root}")
        if event_location(h).kind == "object_store":
            # Buckets expire objects themselves, cheaper than listing and deleting from here.
            raise ConfigError(
                "events prune works on a directory or PostgreSQL event log; on object storage, "
                "set a lifecycle rule on the bucket (docs/scaling.md)"
            )
        pruned = prune_segments(open_event_store(h), cutoff, dry_run=dry_run)
        rows = [
            {
                "table": p.table,
                "name": p.name,
                "rows": p.rows,
                "newest": p.newest.isoformat() if p.newest else None,
            }
            for p in pruned
        ]
        kind = "segments"
    report = {
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "store": "postgresql" if is_postgres_url(url) else "parquet",
        "deleted": rows,
        "rows": sum(r["rows"] for r in rows),
    }
    if json_output:
        print_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    if not rows:
        console.print(f"nothing older than {cutoff:%Y-%m-%d %H:%M} UTC; {verb} no {kind}")
        return
    for r in rows:
        console.print(f"{verb} {r['table']} {r['name']} ({r['rows']} events)")
    console.print(
        f"{verb} {len(rows)} {kind}, {report['rows']} events older than {cutoff:%Y-%m-%d %H:%M} UTC"
    )
