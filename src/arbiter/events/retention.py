"""Retention: delete whole units of the event log older than a cutoff.

``arbiter events prune --older-than 90d`` deletes what holds only events older than the cutoff,
in whole units and never a row at a time, so it is cheap and never rewrites data:

- PostgreSQL store: whole time partitions whose upper bound is at or before the cutoff
  (:meth:`~arbiter.events.postgres_store.PostgresEventStore.prune`);
- Parquet store: whole segments whose newest ``ts`` is before the cutoff (:func:`prune_segments`).

A partition or segment that also holds a newer event is kept; so is everything when in doubt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arbiter.errors import EventStoreError
from arbiter.events import segments
from arbiter.events.store import EventStore
from arbiter.events.views import TABLES


@dataclass(frozen=True)
class Pruned:
    """One unit of the log deleted (or, in a dry run, that would be).

    Attributes
    ----------
    table : str
        ``predictions``, ``feedback`` or ``outcomes``.
    name : str
        The partition or segment file name.
    rows : int
        Events it held.
    newest : datetime or None
        Its newest possible ``ts`` (a partition's upper bound, a segment's max ``ts``).
    """

    table: str
    name: str
    rows: int
    newest: datetime | None


def _newest_ts(path: Path) -> tuple[datetime | None, int]:
    """``(max ts, rows)`` of a segment, from its footer statistics when present."""
    meta = pq.ParquetFile(path).metadata
    index = meta.schema.names.index("ts") if "ts" in meta.schema.names else None
    newest = None
    if index is not None:
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            if stats is None or not stats.has_min_max:
                newest = None
                break
            value = stats.max
            newest = value if newest is None or value > newest else newest
        else:
            return newest, meta.num_rows
        column = pq.read_table(path, columns=["ts"]).column("ts")
        value = pc.max(column).as_py() if len(column) else None
        return value, meta.num_rows
    return None, meta.num_rows


# How often a pruner waiting for a running compaction looks at the lease again.
_LEASE_POLL_S = 0.5


def prune_segments(store: EventStore, cutoff: datetime, *, dry_run: bool = False) -> list[Pruned]:
    """Delete every Parquet segment whose events are all older than ``cutoff``.

    Runs under the compaction lease (``.compact.lease``, waiting for a running compaction
    on any host), so no merge reads a file being deleted. A compacted file's remaining
    sources are deleted with it, or they would reappear in listings.

    Raises
    ------
    EventStoreError
        A segment could not be read or deleted; those deleted so far stay deleted.
    """
    pruned: list[Pruned] = []
    lease = store.compaction_lease()
    try:
        while not lease.acquire():
            time.sleep(_LEASE_POLL_S)  # a compaction is running: wait for it to finish
        try:
            for table in TABLES:
                directory = store.table_dir(table)
                for path in segments.list_segments(directory):
                    newest, rows = _newest_ts(path)
                    if newest is None or newest >= cutoff:
                        continue
                    lease.check()  # a pruner that stalled past its lease stops here
                    pruned.append(Pruned(table, path.name, rows, newest))
                    if dry_run:
                        continue
                    if path.name.startswith(segments.COMPACTED_PREFIX):
                        for source in segments.read_compacted_sources(path):
                            (directory / source).unlink(missing_ok=True)
                    path.unlink(missing_ok=True)
                if not dry_run:
                    segments.fsync_dir(directory)
        finally:
            lease.release()
    except (OSError, pa.ArrowException) as exc:
        raise EventStoreError(f"pruning the event log failed ({segments.io_reason(exc)})") from exc
    return pruned


__all__ = ["Pruned", "prune_segments"]
