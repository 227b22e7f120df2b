"""Buffered prediction logging with a background flusher thread.

The gateway calls :meth:`EventWriter.append_prediction` / :meth:`EventWriter.append_predictions`
on the request path. Appending does no I/O and keeps no per-row object: values go straight
into one Python list per column, so the garbage collector tracks a fixed couple of dozen
containers however many rows are buffered (per-request dicts or objects kept alive until the
flush would make every full collection walk them, ~200 ms pauses under load).

A daemon thread swaps the lists out every ``flush_interval`` seconds, or sooner when
``max_batch`` rows are waiting, converts them to a ``pyarrow.Table`` and writes one segment
(:func:`~arbiter.events.segments.write_segment`). What ``kill -9`` loses is the buffer: at most
one flush interval of rows. ``close()`` (from the shutdown path, not from inside a signal
handler: it takes the buffer lock) writes everything and stops the thread.

If a flush fails (disk full, read-only), the rows go back to the front of the buffer and the next
interval retries; :meth:`EventWriter.stats` says since when writes fail and why
(``failing_since_unix``, ``last_error``: the gateway's ``/readyz`` answers 503 meanwhile).
The buffer is bounded by ``max_buffer`` rows: past it the oldest rows are dropped, each time
counted in ``events_dropped`` and logged at ERROR.

:meth:`EventWriter.shutdown` is the gateway's way out: it retries a failing final flush for a
bounded time, then spills what is left to a fallback folder (moved back by
:meth:`~arbiter.events.store.EventStore.recover_spilled`), and logs exactly how many rows were
written, spilled and lost. It never raises for a write failure: the numbers are the outcome.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.events.segments import io_reason, write_segment

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

logger = logging.getLogger(__name__)

# Rows converted per pyarrow call at flush time: ~1-2 ms of GIL-holding work per call.
_CONVERT_CHUNK = 4096

_COLUMN_TYPES = (list, tuple, range, np.ndarray, pa.Array, pa.ChunkedArray)

# How log lines name the folder: the table, never the absolute path (logs are shipped).
_WHERE = "events/predictions"


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one :class:`EventWriter`, for Prometheus and tests.

    Attributes
    ----------
    events_appended : int
        Rows accepted by ``append_*`` since start.
    events_written : int
        Rows durably written to segments.
    events_dropped : int
        Rows dropped because the buffer overflowed while flushes kept failing.
    values_nulled : int
        Values stored as null because they could not be converted to their column's type.
    flushes : int
        Segments written.
    flush_errors : int
        Failed flush attempts.
    last_flush_unix : float or None
        Wall-clock time of the last successful flush.
    last_flush_seconds : float or None
        How long it took.
    buffered : int
        Rows waiting for the next flush.
    events_spilled : int
        Rows written to the fallback folder at shutdown instead of ``HOME/events``.
    failing_since_unix : float or None
        When the current run of failed flushes began; None while writes succeed.
    last_error : str or None
        Why the last flush failed ("No space left on device"), naming no path; None once a
        flush succeeds again.
    """

    events_appended: int
    events_written: int
    events_dropped: int
    values_nulled: int
    flushes: int
    flush_errors: int
    last_flush_unix: float | None
    last_flush_seconds: float | None
    buffered: int
    events_spilled: int = 0
    failing_since_unix: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What became of every acknowledged row when the writer shut down.

    ``acknowledged == written + spilled + lost + dropped`` always holds: ``lost`` are the rows
    still buffered when neither the event folder nor the fallback folder took them, ``dropped``
    those the bounded buffer shed earlier while flushes kept failing.
    """

    acknowledged: int
    written: int
    spilled: int
    lost: int
    dropped: int
    reason: str | None


def _coerce(value: Any, type_: pa.DataType) -> Any:
    """Best-effort conversion of one value the fast path rejected; raises when impossible."""
    if pa.types.is_string(type_):
        return str(value)
    if pa.types.is_floating(type_):
        return float(value)
    if pa.types.is_integer(type_):
        return int(value)
    if pa.types.is_boolean(type_) and isinstance(value, int | np.integer | np.bool_):
        return bool(value)
    pa.scalar(value, type_)  # raises if unconvertible
    return value


class EventWriter:
    """Buffer prediction rows in memory and write them as segments from a background thread.

    Thread-safe: ``append_*`` may be called from any thread, including an asyncio event loop
    (it never blocks on I/O). ``flush`` and ``close`` block until rows are durable; asyncio code
    uses :meth:`aflush` / :meth:`aclose`.

    Parameters
    ----------
    store : EventStore
        Where segments go (:meth:`EventStore.append_segment` of ``predictions``).
    flush_interval : float, default 0.5
        Seconds between background flushes: the most ``kill -9`` can lose.
    max_batch : int, default 50_000
        Flush early once this many rows are buffered; also the most rows per segment.
    max_buffer : int, default 1_000_000
        Most rows kept while flushes fail; beyond it the oldest are dropped (and counted).
    on_flush : callable, optional
        ``on_flush(rows, seconds)`` after each successful segment write, e.g. to observe a
        Prometheus histogram. Called from the flushing thread; must be quick and not raise.

    Examples
    --------
    >>> writer = EventWriter(store).start()  # doctest: +SKIP
    >>> writer.append_prediction(request_id="r1", row_index=0, model="fraud")  # doctest: +SKIP
    >>> writer.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        store: EventStore,
        *,
        flush_interval: float = 0.5,
        max_batch: int = 50_000,
        max_buffer: int = 1_000_000,
        on_flush: Callable[[int, float], None] | None = None,
    ) -> None:
        if flush_interval <= 0:
            raise InvalidInputError(
                f"flush_interval must be > 0 seconds, got {flush_interval!r}",
                field="flush_interval",
            )
        if max_batch < 1:
            raise InvalidInputError(f"max_batch must be >= 1, got {max_batch!r}", field="max_batch")
        if max_buffer < max_batch:
            raise InvalidInputError(
                f"max_buffer ({max_buffer}) must be >= max_batch ({max_batch})",
                field="max_buffer",
            )
        self.store = store
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self._on_flush = on_flush
        self._names = PREDICTIONS_SCHEMA.names
        self._name_set = frozenset(self._names)

        # _lock guards the buffer and counters; it is held only for list operations.
        # _flush_lock serialises segment writes so rows reach disk in append order and a
        # synchronous flush() waits for a background write already in progress.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._columns: dict[str, list[Any]] = {name: [] for name in self._names}
        self._size = 0
        self._appended = 0
        self._written = 0
        self._dropped = 0
        self._nulled = 0
        self._flushes = 0
        self._flush_errors = 0
        self._last_flush_unix: float | None = None
        self._last_flush_seconds: float | None = None
        self._spilled = 0
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._atexit: Callable[[], None] | None = None
        # pyarrow imports pandas on its first list conversion (~1 s, holding the import lock
        # and the GIL). Pay that here, at start-up, not in the first flush under traffic.
        pa.array([""], type=pa.string())

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EventWriter:
        """Start the background flusher thread; return ``self``. Idempotent."""
        with self._lock:
            if self._closed:
                raise EventStoreError("EventWriter is closed; create a new one")
            if self._thread is not None:
                return self
            self._thread = threading.Thread(
                target=self._run, name="arbiter-event-flusher", daemon=True
            )
            self._thread.start()
        # Flush at interpreter exit if the owner forgot close(). A weak reference, so the
        # registration does not keep an abandoned writer alive.
        ref = weakref.ref(self)

        def _close_at_exit() -> None:
            writer = ref()
            if writer is not None:
                writer.close()

        self._atexit = _close_at_exit
        atexit.register(_close_at_exit)
        return self

    def close(self) -> None:
        """Write every buffered row and stop the flusher. Idempotent.

        Raises
        ------
        EventStoreError
            The final flush failed; the rows stay buffered and the error is logged.
        """
        if self._stop_flusher():
            self.flush()

    def _stop_flusher(self) -> bool:
        """Refuse new rows and stop the background thread; False if already closed."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join()
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        return True

    def shutdown(self, *, retry_s: float = 0.0, spill_dir: Path | None = None) -> ShutdownReport:
        """Close for good, losing as little as the disk allows, and say exactly what happened.

        Writes every buffered row; while that fails, retries every ``flush_interval`` for up to
        ``retry_s`` seconds (space may come back: an operator deleting files, log rotation);
        then writes what is still buffered as segments under ``spill_dir/predictions``; what
        neither took is lost, counted and logged at ERROR. Never raises for a write failure,
        so a full disk cannot turn a graceful stop into a crash with a traceback.

        Parameters
        ----------
        retry_s : float, default 0.0
            How long to keep retrying the event folder.
        spill_dir : Path, optional
            The fallback folder (``events.fallback_dir``); None spills nowhere.
        """
        if not self._stop_flusher():
            return self._report(None)
        deadline = time.monotonic() + retry_s
        error = self._flush()
        while error is not None and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self.flush_interval, deadline - time.monotonic())))
            error = self._flush()
        if error is None:
            return self._report(None)
        reason = io_reason(error)
        with self._lock:
            pending = self._size
        if spill_dir is not None:
            try:
                target = spill_dir / "predictions"
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logger.error("cannot create the events fallback folder: %s", io_reason(exc))
            else:
                spill_error = self._flush(target)
                if spill_error is not None:
                    logger.error(
                        "spilling to the events fallback folder failed too: %s",
                        io_reason(spill_error),
                    )
        report = self._report(reason)
        if report.spilled:
            logger.warning(
                "shutdown: %d buffered prediction rows could not be written to %s (%s); "
                "%d were spilled to the fallback folder (events.fallback_dir) and move back "
                "at the next start or `arbiter compact`",
                pending,
                _WHERE,
                reason,
                report.spilled,
            )
        if report.lost:
            logger.error(
                "shutdown: %d acknowledged prediction rows were LOST: neither %s nor the "
                "fallback folder could be written (%s)",
                report.lost,
                _WHERE,
                reason,
            )
        return report

    def _report(self, reason: str | None) -> ShutdownReport:
        with self._lock:
            return ShutdownReport(
                acknowledged=self._appended,
                written=self._written,
                spilled=self._spilled,
                lost=self._size,
                dropped=self._dropped,
                reason=reason,
            )

    def __enter__(self) -> EventWriter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aflush(self) -> None:
        """:meth:`flush` from asyncio code, without blocking the event loop."""
        await asyncio.to_thread(self.flush)

    async def aclose(self) -> None:
        """:meth:`close` from asyncio code, without blocking the event loop."""
        await asyncio.to_thread(self.close)

    # -- request path ------------------------------------------------------------------------

    def append_prediction(self, **fields: Any) -> None:
        """Buffer one prediction row.

        Parameters
        ----------
        **fields
            Columns of :data:`~arbiter.events.schema.PREDICTIONS_SCHEMA`; missing ones are null,
            and ``ts`` defaults to now. ``ts`` may be a timezone-aware ``datetime`` or int
            microseconds since the epoch.

        Raises
        ------
        InvalidInputError
            Unknown column name.
        EventStoreError
            The writer is closed.
        """
        if not self._name_set.issuperset(fields):
            self._reject_unknown(fields)
        if "ts" not in fields:
            fields["ts"] = time.time_ns() // 1000
        with self._lock:
            if self._closed:
                raise EventStoreError("EventWriter is closed; the event was not logged")
            try:
                for name, column in self._columns.items():
                    column.append(fields.get(name))
                self._size += 1
            except BaseException:
                self._rollback_locked()
                raise
            self._appended += 1
            size = self._size
        if size >= self.max_batch:
            self._on_full(size)

    def append_predictions(self, columns: Mapping[str, Any]) -> int:
        """Buffer a batch of prediction rows given as columns.

        Parameters
        ----------
        columns : mapping of str to sequence or scalar
            Column name to values. Lists, tuples, ranges, numpy arrays and pyarrow arrays are
            columns and must all have the same length; anything else (str, number, None) is
            repeated for every row, so per-request values such as ``request_id`` or ``model``
            are passed once. Missing columns are null; ``ts`` defaults to now.

        Returns
        -------
        int
            Number of rows buffered (1 if every value is a scalar).

        Raises
        ------
        InvalidInputError
            Unknown column, or columns of different lengths.
        EventStoreError
            The writer is closed.
        """
        if not self._name_set.issuperset(columns):
            self._reject_unknown(columns)
        n: int | None = None
        values: dict[str, Any] = {}
        for name, value in columns.items():
            if isinstance(value, _COLUMN_TYPES):
                if isinstance(value, np.ndarray | pa.Array | pa.ChunkedArray):
                    value = value.tolist() if isinstance(value, np.ndarray) else value.to_pylist()
                if n is None:
                    n = len(value)
                elif len(value) != n:
                    raise InvalidInputError(
                        f"column {name!r} has {len(value)} values, expected {n} like the others",
                        field=name,
                    )
            values[name] = value
        if n is None:
            n = 1
        if "ts" not in values:
            values["ts"] = time.time_ns() // 1000
        with self._lock:
            if self._closed:
                raise EventStoreError("EventWriter is closed; the events were not logged")
            try:
                for name, column in self._columns.items():
                    value = values.get(name)
                    if isinstance(value, _COLUMN_TYPES):
                        column.extend(value)
                    else:
                        column.extend(itertools.repeat(value, n))
                self._size += n
            except BaseException:
                self._rollback_locked()
                raise
            self._appended += n
            size = self._size
        if size >= self.max_batch:
            self._on_full(size)
        return n

    def _rollback_locked(self) -> None:
        # An exception mid-append (KeyboardInterrupt, a generator column raising) left some
        # columns longer than others; cut them back so rows stay aligned.
        for column in self._columns.values():
            del column[self._size :]

    def _reject_unknown(self, fields: Mapping[str, Any]) -> None:
        name = sorted(set(fields) - self._name_set)[0]
        raise InvalidInputError(
            f"unknown prediction column {name!r}; see arbiter.events.PREDICTION_COLUMNS",
            field=name,
        )

    def _on_full(self, size: int) -> None:
        if self._thread is not None:
            self._wake.set()
        if size > self.max_buffer:
            with self._lock:
                self._trim_locked()

    # -- flushing ----------------------------------------------------------------------------

    def stats(self) -> WriterStats:
        """Return a consistent snapshot of the counters."""
        with self._lock:
            return WriterStats(
                events_appended=self._appended,
                events_written=self._written,
                events_dropped=self._dropped,
                values_nulled=self._nulled,
                flushes=self._flushes,
                flush_errors=self._flush_errors,
                last_flush_unix=self._last_flush_unix,
                last_flush_seconds=self._last_flush_seconds,
                buffered=self._size,
                events_spilled=self._spilled,
                failing_since_unix=self._failing_since,
                last_error=self._last_error,
            )

    def flush(self) -> None:
        """Write every row appended before this call; return once they are durable.

        Raises
        ------
        EventStoreError
            A segment write failed; the unwritten rows stay buffered for the next attempt.
        """
        error = self._flush()
        if error is not None:
            raise EventStoreError(
                f"could not write events to {_WHERE}: {io_reason(error)}; "
                f"{self.stats().buffered} rows stay buffered"
            ) from error

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                # Write errors are counted and logged inside _flush; rows retry next interval.
                self._flush()
            except Exception:
                # Anything else is a bug, but a dead flusher would silently lose every later
                # event: log it loudly, count it, and keep flushing.
                with self._lock:
                    self._flush_errors += 1
                logger.exception("event flusher failed; retrying in %.2f s", self.flush_interval)

    def _take(self) -> tuple[dict[str, list[Any]], int]:
        """Swap the buffer for empty lists; return the old columns and their row count."""
        with self._lock:
            columns, rows = self._columns, self._size
            self._columns = {name: [] for name in self._names}
            self._size = 0
        return columns, rows

    def _give_back(self, columns: dict[str, list[Any]], start: int, rows: int) -> None:
        """Put rows ``start:rows`` of ``columns`` back in front of the buffer."""
        with self._lock:
            for name in self._names:
                self._columns[name] = columns[name][start:rows] + self._columns[name]
            self._size += rows - start
            self._trim_locked()

    def _trim_locked(self) -> None:
        excess = self._size - self.max_buffer
        if excess <= 0:
            return
        for column in self._columns.values():
            del column[:excess]
        self._size -= excess
        self._dropped += excess
        logger.error(
            "event buffer over %d rows while writes to %s fail: dropped the %d oldest events "
            "(%d dropped so far)",
            self.max_buffer,
            _WHERE,
            excess,
            self._dropped,
        )

    def _flush(self, spill: Path | None = None) -> BaseException | None:
        """Write the buffer in segments of at most ``max_batch`` rows; return the error, if any.

        ``spill`` writes to that folder instead (shutdown only); rows written there count as
        spilled, and its failures do not change the event folder's health.
        """
        with self._flush_lock:
            columns, rows = self._take()
            start = 0
            while start < rows:
                stop = min(start + self.max_batch, rows)
                began = time.perf_counter()
                try:
                    table = self._to_table(columns, start, stop)
                    if spill is not None:
                        write_segment(spill, table)
                    else:
                        self.store.append_segment("predictions", table)
                except (OSError, pa.ArrowException) as exc:
                    self._give_back(columns, start, rows)
                    if spill is not None:
                        return exc
                    reason = io_reason(exc)
                    with self._lock:
                        self._flush_errors += 1
                        first = self._failing_since is None
                        if first:
                            self._failing_since = time.time()
                        self._last_error = reason
                    # Once per outage at ERROR, then at WARNING: a full disk must not flood
                    # the log (and the disk) with one line per flush interval.
                    logger.log(
                        logging.ERROR if first else logging.WARNING,
                        "writing %d events to %s failed (%s); %d rows buffered, retrying "
                        "every %.2f s",
                        rows - start,
                        _WHERE,
                        reason,
                        self.stats().buffered,
                        self.flush_interval,
                    )
                    return exc
                except BaseException:
                    self._give_back(columns, start, rows)
                    raise
                seconds = time.perf_counter() - began
                if spill is not None:
                    with self._lock:
                        self._spilled += stop - start
                    start = stop
                    continue
                with self._lock:
                    self._written += stop - start
                    self._flushes += 1
                    self._last_flush_unix = time.time()
                    self._last_flush_seconds = seconds
                    recovered_after = self._failing_since
                    self._failing_since = None
                    self._last_error = None
                if recovered_after is not None:
                    logger.warning(
                        "writing events to %s works again after %.1f s of failures",
                        _WHERE,
                        time.time() - recovered_after,
                    )
                if self._on_flush is not None:
                    self._on_flush(stop - start, seconds)
                start = stop
        return None

    def _to_table(self, columns: dict[str, list[Any]], start: int, stop: int) -> pa.Table:
        arrays = []
        for field in PREDICTIONS_SCHEMA:
            values = columns[field.name]
            # Converting Python objects holds the GIL; in chunks, the event loop gets it back
            # every few milliseconds instead of stalling for a whole 50k-row column.
            chunks = []
            for lo in range(start, stop, _CONVERT_CHUNK):
                part = values[lo : min(lo + _CONVERT_CHUNK, stop)]
                try:
                    chunks.append(pa.array(part, type=field.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
                    chunks.append(self._to_array_slow(part, field))
            arrays.append(pa.chunked_array(chunks, type=field.type))
        return pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA)

    def _to_array_slow(self, values: list[Any], field: pa.Field) -> pa.Array:
        """Convert value by value, storing null for what cannot be converted (and counting it).

        A bad value must not poison the whole batch: the flush would fail forever and every
        other row would be lost with it.
        """
        out = []
        nulled = 0
        for value in values:
            if value is None:
                out.append(None)
                continue
            try:
                out.append(_coerce(value, field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
                out.append(None)
                nulled += 1
        if nulled:
            with self._lock:
                self._nulled += nulled
            logger.error(
                "%d values of column %r could not be converted to %s and were stored as null",
                nulled,
                field.name,
                field.type,
            )
        try:
            return pa.array(out, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            with self._lock:
                self._nulled += len(values)
            logger.error("column %r could not be converted; stored as null", field.name)
            return pa.nulls(len(values), field.type)
