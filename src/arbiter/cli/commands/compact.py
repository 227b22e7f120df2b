"""``arbiter compact``: merge the event log's small segments into larger files."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption


def compact(
    home: Path = HomeOption,
    min_age: float = typer.Option(
        60.0, "--min-age", min=0.0, help="Only merge segments at least this many seconds old."
    ),
    grace: float = typer.Option(
        60.0,
        "--grace",
        min=0.0,
        help="Delete merged sources once their replacement is this old (open readers keep "
        "working meanwhile).",
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for another compaction to finish."),
    json_output: bool = JsonOption,
) -> None:
    """Merge old small event-log segments (one per flush per worker) into larger files.

    Safe while gateways are writing and readers are reading: only one compaction runs at a
    time, and no event is ever counted twice or lost (docs/design/event-store.md). Run it from
    cron, e.g. hourly. With a PostgreSQL event log (events.url) there are no segments: it
    says so and does nothing (retention there is `arbiter events prune`).
    """
    from dataclasses import asdict

    from arbiter.cli.output import console, print_json
    from arbiter.errors import NotFoundError
    from arbiter.events.location import event_location, event_log_exists, open_event_store
    from arbiter.events.query import TABLES
    from arbiter.home import Home

    h = Home.at(home)
    if not event_log_exists(h):
        raise NotFoundError(f"no event log in {h.root}")
    if event_location(h).kind == "postgresql":
        note = (
            "the event log is in PostgreSQL (events.url): rows go straight into its tables, "
            "so there is nothing to compact; old partitions go with `arbiter events prune`"
        )
        if json_output:
            from arbiter.events.segments import CompactionResult

            none = dict.fromkeys(TABLES, 0)
            nothing = asdict(CompactionResult())  # the same keys as a Parquet compaction
            print_json({**nothing, "segments_before": none, "segments_after": none, "note": note})
        else:
            console.print(note)
        return
    store = open_event_store(h, fallback_dir=h.spill_dir())  # spilled rows come back first
    before = {t: len(store.segments(t)) for t in TABLES}
    with console.status("Compacting the event log…"):
        result = store.compact(min_age, grace_s=grace, wait=wait)
    after = {t: len(store.segments(t)) for t in TABLES}
    report = {**asdict(result), "segments_before": before, "segments_after": after}
    if json_output:
        print_json(report)
        return
    if result.skipped:
        console.print("another process is compacting; nothing done (use --wait to wait)")
        return
    console.print(
        f"merged {result.merged_segments} segments into {result.merged_files} files; "
        f"deleted {result.deleted_files}; live segments {before} -> {after}"
    )
