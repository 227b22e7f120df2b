"""The event store: where the segments live, and the operations on them as a whole.

Layout of the log's root (``HOME/events``, or the shared directory ``events.url`` names:
:mod:`arbiter.events.location`)::

    ROOT/predictions/seg-*.parquet, cmp-*.parquet
    ROOT/feedback/seg-*.parquet, cmp-*.parquet
    ROOT/outcomes/seg-*.parquet, cmp-*.parquet
    ROOT/.compact.lease      who compacts now, until when (arbiter.events.lease)

Any number of processes on any number of hosts may write one root: segment names are unique
across hosts (:func:`arbiter.events.segments.segment_name`), and compaction, the only step
that deletes, runs under a lease file every host sees (not an ``fcntl`` lock, which one host's
kernel keeps to itself).

Predictions arrive through an :class:`~arbiter.events.writer.EventWriter` (buffered, flushed in
the background); feedback and outcomes through :meth:`EventStore.write_feedback` and
:meth:`EventStore.write_outcomes` (durable before they return).

When the disk fails, feedback and outcomes are refused (never acknowledged), and
:meth:`EventStore.write_health` says so until a write succeeds again. Predictions a gateway
could not write at shutdown are spilled to a fallback folder; :meth:`EventStore.recover_spilled`
moves them back (the gateway at start-up, ``arbiter compact``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events import segments
from arbiter.events.feedback import GroupCommitter, feedback_columns
from arbiter.events.lease import DEFAULT_TTL_S, Lease
from arbiter.events.outcomes import outcome_columns
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import TABLES, Table, connect

logger = logging.getLogger(__name__)

# While feedback writes fail, how often write_health() checks whether space came back, and
# with how many bytes (a page or two: less would fit in a full file system's last block).
PROBE_INTERVAL_S = 1.0
PROBE_BYTES = 8192

# compact(wait=True): how often to look at a lease another process holds.
WAIT_POLL_S = 0.2

#: The compaction lease's file name in the log's root.
LEASE_FILE = ".compact.lease"

_SCHEMAS: dict[str, pa.Schema] = {
    "predictions": PREDICTIONS_SCHEMA,
    "feedback": FEEDBACK_SCHEMA,
    "outcomes": OUTCOMES_SCHEMA,
}


class EventStore:
    """Append-only Parquet event log under ``HOME/events`` or a shared directory.

    Safe to share between threads, and to open from several processes on several hosts at
    once: writers never modify a file once it is renamed into place, and only compaction
    deletes, under a lease. Open it through
    :func:`arbiter.events.location.open_event_store`, which reads ``events.url``.

    Parameters
    ----------
    home : str or os.PathLike
        The arbiter home folder. Without ``root``, ``events/predictions``,
        ``events/feedback`` and ``events/outcomes`` are created in it.
    root : str or os.PathLike, optional
        The log's directory when it is not ``HOME/events`` (``events.url``).
    feedback_linger_s : float, default 0.002
        Group-commit window of :meth:`write_feedback` and :meth:`write_outcomes`: concurrent
        calls within it share one segment and one fsync.
    fallback_dir : str or os.PathLike, optional
        Where a gateway spills predictions it could not write at shutdown
        (:meth:`arbiter.home.Home.spill_dir`); :meth:`recover_spilled` and :meth:`compact`
        move them back. None: nothing to recover.
    compaction_lease_s : float, default 300
        Time of the compaction lease before its holder renews it (``events.compaction_lease_s``).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        feedback_linger_s: float = 0.002,
        fallback_dir: str | os.PathLike[str] | None = None,
        compaction_lease_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.home = Path(home)
        self.root = Path(root) if root is not None else self.home / "events"
        self.compaction_lease_s = compaction_lease_s
        self.fallback_dir = Path(fallback_dir) if fallback_dir is not None else None
        self._health_lock = threading.Lock()
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._probed = 0.0
        self._create_layout()
        self._feedback = GroupCommitter(self._write_feedback_segment, linger_s=feedback_linger_s)
        self._outcomes = GroupCommitter(
            self._write_outcome_segment,
            linger_s=feedback_linger_s,
            schema=OUTCOMES_SCHEMA,
            what="outcome",
        )

    def __repr__(self) -> str:
        return f"EventStore({str(self.root)!r})"

    def _create_layout(self) -> None:
        try:
            for table in TABLES:
                (self.root / table).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EventStoreError(f"cannot create the event store in {self.root}: {exc}") from exc

    def append_segment(self, table: Table, data: pa.Table) -> str:
        """Write ``data`` as one new segment of ``table``, durably; return its name.

        The one way rows enter the log (the prediction writer, feedback and outcome group
        commits, outcome file imports), so a store on other storage overrides only this.

        Raises
        ------
        OSError or pyarrow.ArrowException
            The write failed; no segment was left behind.
        """
        return segments.write_segment(self.table_dir(table), data).name

    def compaction_lease(self) -> Lease:
        """A fresh (not yet acquired) handle on this log's compaction lease (:class:`Lease`)."""
        return Lease(self.root / LEASE_FILE, ttl_s=self.compaction_lease_s)

    def table_dir(self, table: Table) -> Path:
        """Return the directory holding ``table``'s segments."""
        if table not in TABLES:
            raise InvalidInputError(
                f"unknown table {table!r}; expected one of {', '.join(TABLES)}", field="table"
            )
        return self.root / table

    @property
    def predictions_dir(self) -> Path:
        """Directory of the ``predictions`` segments."""
        return self.root / "predictions"

    @property
    def feedback_dir(self) -> Path:
        """Directory of the ``feedback`` segments."""
        return self.root / "feedback"

    @property
    def outcomes_dir(self) -> Path:
        """Directory of the ``outcomes`` segments."""
        return self.root / "outcomes"

    def segments(self, table: Table) -> list[Path]:
        """Return ``table``'s live segment files (compacted sources left out), oldest first."""
        return segments.list_segments(self.table_dir(table))

    def connect(self) -> duckdb.DuckDBPyConnection:
        """Open a DuckDB connection with the views of :mod:`arbiter.events.views`.

        ``predictions``, ``feedback``, ``latest_feedback``, ``unforced``, ``served``,
        ``shadowed``, ``labeled``, ``all_labeled`` and ``outcomes`` (see
        :mod:`arbiter.events.query`). They
        are a snapshot of the segments present now; connect again to see newer events. Close
        the connection when done.
        """
        return connect(
            self.segments("predictions"),
            self.segments("feedback"),
            outcome_files=self.segments("outcomes"),
        )

    def write_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Validate and durably store feedback rows; return how many were stored.

        Returns only after the rows are fsynced and renamed into place, so the caller may
        acknowledge them. Concurrent calls are merged into one segment (group commit).

        Parameters
        ----------
        rows : sequence of mapping
            ``{"request_id": str, "row_index": int, "label": value}`` plus optional ``ts``.

        Returns
        -------
        int
            Number of rows stored (``len(rows)``).

        Raises
        ------
        InvalidInputError
            A row is invalid; ``field`` names it (``rows[i].label``). Nothing is written.
        EventStoreError
            The disk write failed; nothing of this call was stored.
        """
        columns = feedback_columns(rows)
        n = len(rows)
        if n:
            self._feedback.commit(columns, n)
        return n

    async def awrite_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write_feedback` for asyncio code: the fsync runs in a worker thread."""
        columns = feedback_columns(rows)  # validate on the loop: cheap, and fails fast
        n = len(rows)
        if n:
            await asyncio.to_thread(self._feedback.commit, columns, n)
        return n

    def _write_feedback_segment(self, table: pa.Table) -> str:
        return self._write_durably("feedback", table)

    def _write_durably(self, table_name: Table, table: pa.Table) -> str:
        """Write one group-committed segment, keeping :meth:`write_health` current.

        A failure is re-raised as an ``OSError`` without the file name: its text reaches the
        client (``/feedback`` answers 503 with it), and an absolute path under the home is
        none of the client's business.
        """
        try:
            name = self.append_segment(table_name, table)
        except (OSError, pa.ArrowException) as exc:
            reason = segments.io_reason(exc)
            with self._health_lock:
                if self._failing_since is None:
                    self._failing_since = time.time()
                self._last_error = reason
            raise OSError(getattr(exc, "errno", None) or 0, reason) from exc
        with self._health_lock:
            self._failing_since = None
            self._last_error = None
        return name

    def write_health(self) -> tuple[float | None, str | None]:
        """``(failing_since_unix, reason)`` of feedback/outcome writes; ``(None, None)`` when
        the last one succeeded. The reason names no path.

        While failing, at most once per :data:`PROBE_INTERVAL_S` it writes and deletes a small
        probe file: a gateway out of its load balancer's rotation gets no feedback to retry
        with, and must still notice that space came back.
        """
        with self._health_lock:
            failing_since, reason = self._failing_since, self._last_error
            due = failing_since is not None and time.monotonic() - self._probed >= PROBE_INTERVAL_S
            if due:
                self._probed = time.monotonic()
        if due and self._probe():
            with self._health_lock:
                if self._failing_since == failing_since:
                    self._failing_since = self._last_error = None
            return None, None
        return failing_since, reason

    def _probe(self) -> bool:
        probe = self.feedback_dir / f"{segments.TEMP_PREFIX}probe-{os.getpid()}.tmp"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * PROBE_BYTES)
            return True
        except OSError:
            return False
        finally:
            probe.unlink(missing_ok=True)

    def recover_spilled(self) -> tuple[int, int]:
        """Move predictions spilled to :attr:`fallback_dir` back into the event log.

        Returns
        -------
        tuple of int
            ``(files, rows)`` moved; ``(0, 0)`` when there is no fallback folder or nothing
            in it.

        Runs under the compaction lease, so gateway workers starting together and a compaction
        never move the same file twice; when the lease is held elsewhere this returns
        ``(0, 0)`` and the holder (a compaction recovers first) or the next start does it.

        Raises
        ------
        EventStoreError
            The event folder cannot take them yet (still full); they stay in the fallback
            folder for the next attempt.
        """
        if self.fallback_dir is None or not (self.fallback_dir / "predictions").is_dir():
            return 0, 0
        lease = self.compaction_lease()
        try:
            if not lease.acquire():
                return 0, 0
        except OSError as exc:
            raise EventStoreError(
                f"cannot take the event log's lease to recover spilled predictions "
                f"({segments.io_reason(exc)})"
            ) from exc
        try:
            return self._recover_locked()
        finally:
            lease.release()

    def _recover_locked(self) -> tuple[int, int]:
        if self.fallback_dir is None:
            return 0, 0
        try:
            files, rows = segments.move_segments(
                self.fallback_dir / "predictions", self.predictions_dir
            )
        except (OSError, pa.ArrowException) as exc:
            raise EventStoreError(
                "moving spilled predictions back from events.fallback_dir failed "
                f"({segments.io_reason(exc)}); they stay there for the next attempt"
            ) from exc
        if files:
            logger.info(
                "moved %d spilled prediction rows (%d segments) back from events.fallback_dir",
                rows,
                files,
            )
        return files, rows

    def write_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Validate and durably store outcome events; return how many were stored.

        Returns only after the rows are fsynced and renamed into place (group commit, as
        :meth:`write_feedback`), so the caller may acknowledge them.

        Parameters
        ----------
        rows : sequence of mapping
            ``{"unit_id": str, "event": str}`` plus optional ``value``, ``ts``,
            ``request_id`` (:func:`arbiter.events.outcomes.outcome_columns`).

        Raises
        ------
        InvalidInputError
            A row is invalid; ``field`` names it (``rows[i].value``). Nothing is written.
        EventStoreError
            The disk write failed; nothing of this call was stored.
        """
        columns = outcome_columns(rows)
        n = len(rows)
        if n:
            self._outcomes.commit(columns, n)
        return n

    async def awrite_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write_outcomes` for asyncio code: the fsync runs in a worker thread."""
        columns = outcome_columns(rows)
        n = len(rows)
        if n:
            await asyncio.to_thread(self._outcomes.commit, columns, n)
        return n

    def _write_outcome_segment(self, table: pa.Table) -> str:
        return self._write_durably("outcomes", table)

    def compact(
        self,
        min_age_s: float = 60.0,
        *,
        grace_s: float = 60.0,
        small_bytes: int = 16 * 2**20,
        target_bytes: int = 128 * 2**20,
        wait: bool = False,
    ) -> segments.CompactionResult:
        """Merge old small segments of every table into larger files.

        Only one process on any host compacts at a time: the lease ``.compact.lease`` in the
        log's root (:mod:`arbiter.events.lease`), renewed as the run goes and checked before
        every delete and rename, so a compactor that stalled past its lease stops. Each run
        first finishes earlier runs: it deletes the sources of compacted files older than
        ``grace_s``, including those left by a run that crashed between writing the merged file
        and deleting its sources.

        Parameters
        ----------
        min_age_s : float, default 60.0
            Only segments at least this old (by mtime) are merged.
        grace_s : float, default 60.0
            Sources are deleted once the file replacing them is this old, so a reader that
            listed them just before can still open them. 0 deletes them right away. Readers
            never count both: listings hide any file a compacted file names as a source.
        small_bytes : int, default 16 MiB
            Segments this large or larger are left alone.
        target_bytes : int, default 128 MiB
            Approximate size of input per merged file.
        wait : bool, default False
            Wait until the lease is free instead of returning ``skipped=True``.

        Returns
        -------
        CompactionResult
            Files merged and deleted, or ``skipped``.

        Raises
        ------
        EventStoreError
            Reading or writing a segment failed; sources are left in place.
        LeaseLostError
            Another process took the lease over mid-run (this one stalled past it); what was
            done so far is consistent and the holder carries on.
        """
        try:
            return self._compact_locked(
                min_age_s,
                grace_s=grace_s,
                small_bytes=small_bytes,
                target_bytes=target_bytes,
                wait=wait,
            )
        except OSError as exc:
            raise EventStoreError(
                f"compacting the event store in {self.root} failed: {exc}"
            ) from exc

    def _compact_locked(
        self, min_age_s: float, *, grace_s: float, small_bytes: int, target_bytes: int, wait: bool
    ) -> segments.CompactionResult:
        lease = self.compaction_lease()
        while not lease.acquire():
            if not wait:
                return segments.CompactionResult(skipped=True)
            time.sleep(WAIT_POLL_S)  # the holder's progress is not observable: poll the file
        try:
            self._recover_locked()  # spilled predictions first, so they are compacted too
            result = segments.CompactionResult()
            for table in TABLES:
                result = result + self._compact_table(
                    table,
                    min_age_s=min_age_s,
                    grace_s=grace_s,
                    small_bytes=small_bytes,
                    target_bytes=target_bytes,
                    check=lease.check,
                )
            return result
        finally:
            lease.release()

    def _compact_table(
        self,
        table: Table,
        *,
        min_age_s: float,
        grace_s: float,
        small_bytes: int,
        target_bytes: int,
        check: Callable[[], None],
    ) -> segments.CompactionResult:
        return segments.compact_directory(
            self.table_dir(table),
            _SCHEMAS[table],
            min_age_s=min_age_s,
            grace_s=grace_s,
            small_bytes=small_bytes,
            target_bytes=target_bytes,
            check=check,
        )
