"""The PostgreSQL event store: the event log in a database every replica can reach.

Selected by ``events.url: postgresql://user@host/db?schema=arbiter`` in ``arbiter.yaml``. It
keeps the promises of the Parquet :class:`~arbiter.events.store.EventStore` for writers:

- predictions arrive through the same :class:`~arbiter.events.writer.EventWriter` (buffered,
  flushed in the background); each flush is one ``COPY`` of CSV (written by pyarrow, in C)
  into the partitioned ``predictions`` table, unique on ``(request_id, row_index, role, ts)``.
  A retried flush (the commit's answer lost with the connection) violates that key, so the
  whole COPY is refused and the batch goes through a session-local staging table and
  ``INSERT ... ON CONFLICT DO NOTHING`` instead: a retry is a no-op, never a double count;
- feedback and outcomes are group-committed (:class:`~arbiter.events.feedback.GroupCommitter`):
  concurrent callers share one ``COPY`` and one commit, with ``synchronous_commit = on`` for the
  session, so a call returns only once its rows are durable and the caller may acknowledge them;
- when the database cannot be reached, feedback and outcomes are refused (never acknowledged),
  :meth:`PostgresEventStore.write_health` says so until a write or a probe succeeds, and
  predictions stay buffered; those still buffered at shutdown are spilled as Parquet segments
  to the fallback folder, and :meth:`PostgresEventStore.recover_spilled` copies them in at the
  next start (idempotently, so a crash half-way through recovery counts nothing twice).

No error text of the driver leaves this module: it may quote the host, the SQL or row values.
What reaches logs, ``/readyz`` and HTTP answers is the error's class and SQLSTATE
(:func:`failure_reason`).

Reading goes through :meth:`PostgresEventStore.connect` (a DuckDB snapshot with the usual views,
for code written against DuckDB) or :meth:`PostgresEventStore.pg_connect` (a psycopg connection,
``search_path`` set to the event schema, for query engines that push SQL down).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events import segments
from arbiter.events.feedback import GroupCommitter, feedback_columns
from arbiter.events.outcomes import outcome_columns
from arbiter.events.postgres_schema import (
    TABLE_SCHEMAS,
    Partition,
    PostgresLocation,
    create_schema,
    drop_partitions_before,
    ensure_partitions,
    parse_postgres_url,
    partitions_for,
)
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables

logger = logging.getLogger(__name__)

#: While writes fail, how often :meth:`PostgresEventStore.write_health` tries the database.
PROBE_INTERVAL_S = 1.0
#: How long a connection attempt may take before the write is refused.
CONNECT_TIMEOUT_S = 5
_T = TypeVar("_T")
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


class StoreUnavailableError(OSError):
    """A database write failed; ``reason`` says why in words that quote no URL, SQL or value.

    An ``OSError`` so the prediction writer's flush loop (which retries ``OSError``) and the
    group committer (which turns it into :class:`~arbiter.errors.EventStoreError`) treat a
    database outage as they treat a full disk.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """Why a database call failed, naming no host, password, SQL or row value.

    psycopg's messages quote the server address and, for data errors, the offending values
    and statement; the class and the SQLSTATE are what an operator needs to look it up.
    """
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return "the PostgreSQL event store is unreachable (connection failed)"
    state = getattr(exc, "sqlstate", None)
    suffix = f", SQLSTATE {state}" if state else ""
    return f"the PostgreSQL event store failed ({type(exc).__name__}{suffix})"


def _csv(table: pa.Table) -> bytes:
    """``table`` as CSV for ``COPY ... (FORMAT csv)``: nulls unquoted, every value quoted.

    Quoting every valid value keeps an empty string (``""``) apart from null (nothing), which
    is how PostgreSQL's CSV format tells them apart. Floats are written shortest-round-trip,
    so every double arrives bit for bit.
    """
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, _CSV_OPTIONS)
    return sink.getvalue()


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (missing ones null), e.g. an old segment."""
    arrays = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


class _Session:
    """One database connection for one kind of write, reopened after it breaks.

    Writes of one kind are already serialised (one flusher thread, one group-commit leader),
    so a lock and a single connection are all a worker needs; a pool would only hold idle
    connections against the server's ``max_connections``.
    """

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._store._open()
                return work(self._conn)
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._conn.close()
                    self._conn = None
                raise StoreUnavailableError(failure_reason(exc)) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresEventStore:
    """Event log in PostgreSQL: the writer side of :class:`~arbiter.events.store.EventStore`.

    Thread-safe; open one per process (each gateway worker has its own). The schema and its
    tables are created on first use (:func:`~arbiter.events.postgres_schema.create_schema`).

    Parameters
    ----------
    url : str
        ``postgresql://[user[:password]@]host[:port]/database[?schema=arbiter&partition=day]``;
        other query parameters go to libpq (``sslmode=require``...).
    feedback_linger_s : float, default 0.002
        Group-commit window of :meth:`write_feedback` / :meth:`write_outcomes`.
    fallback_dir : str or os.PathLike, optional
        Where a gateway spills predictions it could not write at shutdown; moved in by
        :meth:`recover_spilled`.

    Raises
    ------
    InvalidInputError
        The URL is not a usable ``postgresql://`` URL (``field`` names the parameter).
    """

    def __init__(
        self,
        url: str,
        *,
        feedback_linger_s: float = 0.002,
        fallback_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.location: PostgresLocation = parse_postgres_url(url)
        self.schema = self.location.schema
        self.fallback_dir = Path(fallback_dir) if fallback_dir is not None else None
        self._schema_ready = False
        self._ddl_lock = threading.Lock()
        self._partitions: set[tuple[str, Any]] = set()
        self._health_lock = threading.Lock()
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._probed = 0.0
        self._predictions = _Session(self)
        self._feedback_session = _Session(self)
        self._outcome_session = _Session(self)
        self._feedback = GroupCommitter(
            lambda t: self._write_durably(self._feedback_session, "feedback", t),
            linger_s=feedback_linger_s,
        )
        self._outcomes = GroupCommitter(
            lambda t: self._write_durably(self._outcome_session, "outcomes", t),
            linger_s=feedback_linger_s,
            schema=OUTCOMES_SCHEMA,
            what="outcome",
        )

    def __repr__(self) -> str:  # the URL may carry a password
        return f"PostgresEventStore(schema={self.schema!r})"

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        """A new connection: UTC, durable commits, the event schema created once."""
        options: dict[str, Any] = {}
        if "connect_timeout=" not in self.location.conninfo:
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name=" not in self.location.conninfo:  # the URL's own wins
            options["application_name"] = "arbiter-events"
        conn = psycopg.connect(self.location.conninfo, autocommit=True, **options)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            # Acknowledged = durable: whatever the server's default, our commits wait for the WAL.
            conn.execute("SET synchronous_commit = on")
            if not self._schema_ready:
                with self._ddl_lock:
                    if not self._schema_ready:
                        create_schema(conn, self.schema)
                        self._schema_ready = True
            conn.execute(
                sql.SQL("SET search_path = {}, pg_catalog").format(sql.Identifier(self.schema))
            )
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def pg_connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A psycopg connection with ``search_path`` set to the event schema; closed on exit.

        For query engines that run SQL in the database. Autocommit, time zone UTC.

        Raises
        ------
        EventStoreError
            The database cannot be reached (the reason names no host or password).
        """
        try:
            conn = self._open()
        except psycopg.Error as exc:
            raise EventStoreError(failure_reason(exc)) from exc
        with conn:
            yield conn

    def close(self) -> None:
        """Close this store's connections (the next write opens new ones)."""
        for session in (self._predictions, self._feedback_session, self._outcome_session):
            session.close()

    def _ensure_partitions(self, conn: psycopg.Connection[Any], table: str, ts: pa.Array) -> None:
        starts = partitions_for(
            (v for v in ts.cast(pa.int64()).to_pylist() if v is not None), self.location.partition
        )
        missing = {s for s in starts if (table, s) not in self._partitions}
        if missing:
            ensure_partitions(conn, self.schema, table, missing, self.location.partition)
            self._partitions.update((table, s) for s in missing)

    def _run(
        self, session: _Session, table: str, work: Callable[[psycopg.Connection[Any]], _T]
    ) -> _T:
        """``session.run(work)``, once more after a partition this process knew was dropped.

        ``arbiter events prune`` in another process drops partitions this one remembers as
        present; the insert then finds no partition for its rows (a check violation).
        """
        try:
            return session.run(work)
        except StoreUnavailableError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.CheckViolation):
                raise
            self._partitions = {p for p in self._partitions if p[0] != table}
            return session.run(work)

    # -- predictions -------------------------------------------------------------------------

    @property
    def predictions_dir(self) -> None:
        """No folder: predictions go to :meth:`append_prediction_table`."""
        return None

    def append_prediction_table(self, table: pa.Table) -> int:
        """Insert prediction rows; return how many were new (a retried batch inserts 0).

        Called by :class:`~arbiter.events.writer.EventWriter` for each flush. Rows already
        present (same ``request_id``, ``row_index``, ``role`` and ``ts``) are skipped.

        Raises
        ------
        StoreUnavailableError
            The database write failed (an ``OSError``; the writer keeps the rows and retries).
        """
        table = _conform(table, PREDICTIONS_SCHEMA)
        if table.num_rows == 0:
            return 0
        data = _csv(table)
        columns = sql.SQL(", ").join(map(sql.Identifier, PREDICTIONS_SCHEMA.names))

        def work(conn: psycopg.Connection[Any]) -> int:
            self._ensure_partitions(conn, "predictions", table.column("ts"))
            # Fast path: one COPY straight into the table. It inserts every row or, if any
            # key is already there (a retry), none: the unique index refuses the whole COPY.
            try:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(
                        sql.SQL("COPY predictions ({}) FROM STDIN (FORMAT csv)").format(columns)
                    ) as copy:
                        copy.write(data)
                    return table.num_rows
            except psycopg.errors.UniqueViolation:
                pass
            # A retry: stage the batch, keep only the rows not stored yet.
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _arbiter_stage_predictions "
                    "(LIKE predictions) ON COMMIT DELETE ROWS"
                )
                with cur.copy(
                    sql.SQL("COPY _arbiter_stage_predictions ({}) FROM STDIN (FORMAT csv)").format(
                        columns
                    )
                ) as copy:
                    copy.write(data)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO predictions ({cols}) SELECT {cols} "
                        "FROM _arbiter_stage_predictions ON CONFLICT DO NOTHING"
                    ).format(cols=columns)
                )
                return max(cur.rowcount, 0)

        return self._run(self._predictions, "predictions", work)

    def append_segment(self, table_name: str, table: pa.Table) -> int:
        """Append rows the way :meth:`EventStore.append_segment` does; return how many.

        Predictions come from the event writer (idempotent inserts); outcomes from
        ``arbiter outcomes import`` (arbiter.events.outcome_files), one committed COPY per
        block, so a failure keeps the blocks already written as the Parquet store does.
        Feedback arrives only through :meth:`write_feedback`.
        """
        if table_name == "predictions":
            return self.append_prediction_table(table)
        if table_name == "outcomes":
            self._write_durably(self._outcome_session, "outcomes", table)
            return table.num_rows
        raise ValueError(f"append_segment takes predictions or outcomes, got {table_name!r}")

    def recover_spilled(self) -> tuple[int, int]:
        """Insert predictions spilled to :attr:`fallback_dir` at shutdown, then delete them.

        Returns ``(files, rows)`` read back. Idempotent: a file is deleted only after its rows
        are committed, and rows already in the table are skipped, so two workers recovering
        at once, or a crash in between, never count a prediction twice.

        Raises
        ------
        EventStoreError
            The database cannot take them yet; they stay for the next attempt.
        """
        if self.fallback_dir is None or not (self.fallback_dir / "predictions").is_dir():
            return 0, 0
        files = rows = 0
        for path in segments.list_segments(self.fallback_dir / "predictions"):
            try:
                table = pq.read_table(path)
            except FileNotFoundError:
                continue  # another worker recovered it meanwhile
            except (OSError, pa.ArrowException) as exc:
                raise EventStoreError(
                    f"reading a spilled prediction segment failed ({segments.io_reason(exc)})"
                ) from exc
            try:
                self.append_prediction_table(table)
            except StoreUnavailableError as exc:
                raise EventStoreError(
                    f"moving spilled predictions into PostgreSQL failed ({exc.reason}); they "
                    "stay in events.fallback_dir for the next attempt"
                ) from exc
            path.unlink(missing_ok=True)
            files += 1
            rows += table.num_rows
        if files:
            logger.info(
                "moved %d spilled prediction rows (%d segments) into PostgreSQL", rows, files
            )
        return files, rows

    # -- feedback and outcomes ---------------------------------------------------------------

    def write_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Validate and durably store feedback rows; return how many were stored.

        Returns only after the rows are committed; concurrent calls share one commit.

        Raises
        ------
        InvalidInputError
            A row is invalid; ``field`` names it. Nothing is written.
        EventStoreError
            The database write failed; nothing of this call was stored.
        """
        columns = feedback_columns(rows)
        if rows:
            self._feedback.commit(columns, len(rows))
        return len(rows)

    async def awrite_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write_feedback` for asyncio code: the commit waits in a worker thread."""
        columns = feedback_columns(rows)
        if rows:
            await asyncio.to_thread(self._feedback.commit, columns, len(rows))
        return len(rows)

    def write_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Validate and durably store outcome events; return how many were stored.

        Raises
        ------
        InvalidInputError
            A row is invalid; ``field`` names it. Nothing is written.
        EventStoreError
            The database write failed; nothing of this call was stored.
        """
        columns = outcome_columns(rows)
        if rows:
            self._outcomes.commit(columns, len(rows))
        return len(rows)

    async def awrite_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write_outcomes` for asyncio code."""
        columns = outcome_columns(rows)
        if rows:
            await asyncio.to_thread(self._outcomes.commit, columns, len(rows))
        return len(rows)

    def _write_durably(self, session: _Session, table_name: str, table: pa.Table) -> None:
        """COPY one group's rows and commit, keeping :meth:`write_health` current."""
        data = _csv(table)
        columns = sql.SQL(", ").join(map(sql.Identifier, table.column_names))

        def work(conn: psycopg.Connection[Any]) -> None:
            self._ensure_partitions(conn, table_name, table.column("ts"))
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                        sql.Identifier(table_name), columns
                    )
                ) as copy,
            ):
                copy.write(data)

        try:
            self._run(session, table_name, work)
        except StoreUnavailableError as exc:
            with self._health_lock:
                if self._failing_since is None:
                    self._failing_since = time.time()
                    logger.error("writing %s failed: %s", table_name, exc.reason)
                self._last_error = exc.reason
            raise
        with self._health_lock:
            self._failing_since = None
            self._last_error = None

    def write_health(self) -> tuple[float | None, str | None]:
        """``(failing_since_unix, reason)`` of feedback/outcome writes; ``(None, None)`` when
        the last one succeeded. The reason names no host, password or SQL.

        While failing, at most once per :data:`PROBE_INTERVAL_S` it opens a connection: a
        gateway out of its load balancer's rotation gets no feedback to retry with, and must
        still notice that the database came back.
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
        try:
            self._feedback_session.run(lambda conn: conn.execute("SELECT 1").fetchone())
        except StoreUnavailableError:
            return False
        return True

    # -- reading and retention ---------------------------------------------------------------

    def read_table(self, table: str) -> pa.Table:
        """Every row of ``table`` as Arrow (feedback in write order), for small logs and tests.

        Streams ``COPY ... TO STDOUT`` CSV into pyarrow's reader. Large logs should be queried
        in the database instead (:meth:`pg_connect`, the postgres query engine).
        """
        if table not in TABLE_SCHEMAS:
            raise InvalidInputError(
                f"unknown table {table!r}; expected one of {', '.join(TABLE_SCHEMAS)}",
                field="table",
            )
        schema = TABLE_SCHEMAS[table]
        select = sql.SQL(", ").join(
            sql.SQL("{c} AT TIME ZONE 'UTC'").format(c=sql.Identifier(f.name))
            if pa.types.is_timestamp(f.type)
            else sql.Identifier(f.name)
            for f in schema
        )
        order = sql.SQL(" ORDER BY write_seq") if table == "feedback" else sql.SQL("")
        query = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT csv)").format(
            select, sql.Identifier(table), order
        )
        buffer = io.BytesIO()
        with self.pg_connect() as conn, conn.cursor() as cur:
            try:
                with cur.copy(query) as copy:
                    for chunk in copy:
                        buffer.write(chunk)
            except psycopg.Error as exc:
                raise EventStoreError(failure_reason(exc)) from exc
        if buffer.tell() == 0:
            return schema.empty_table()
        buffer.seek(0)
        read_types = {
            f.name: pa.timestamp("us") if pa.types.is_timestamp(f.type) else f.type for f in schema
        }
        parsed = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=schema.names),
            convert_options=pacsv.ConvertOptions(
                column_types=read_types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        return _conform(parsed, schema)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the views of :mod:`arbiter.events.views` over a snapshot.

        The tables are copied out of PostgreSQL now (feedback in write order, so "latest label
        wins" breaks ties as in the database); fine for the gateway's checkpoints on a modest
        log. Analyses of a large log belong in the database (``--engine postgres``).
        """
        return connect_tables(
            self.read_table("predictions"),
            self.read_table("feedback").select(FEEDBACK_SCHEMA.names),
            self.read_table("outcomes"),
        )

    def partitions(self) -> list[Partition]:
        """The time partitions of the three tables, oldest first."""
        from arbiter.events.postgres_schema import list_partitions

        with self.pg_connect() as conn:
            return list_partitions(conn, self.schema)

    def prune(
        self,
        older_than: timedelta,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
        lock_timeout_s: float = 10.0,
    ) -> list[tuple[Partition, int]]:
        """Drop whole partitions whose every row is older than ``now - older_than``.

        Returns the partitions dropped (or that would be, with ``dry_run``) and their row
        counts. A partition straddling the cutoff is kept. Waits at most ``lock_timeout_s``
        for a table a long query holds, then drops nothing.

        Raises
        ------
        InvalidInputError
            ``older_than`` is not positive.
        EventStoreError
            The database cannot be reached.
        """
        if older_than <= timedelta(0):
            raise InvalidInputError("older_than must be a positive duration", field="older_than")
        cutoff = (now or datetime.now(UTC)) - older_than
        with self.pg_connect() as conn:
            try:
                dropped = drop_partitions_before(
                    conn,
                    self.schema,
                    cutoff,
                    dry_run=dry_run,
                    lock_timeout_ms=int(lock_timeout_s * 1000),
                )
            except psycopg.errors.LockNotAvailable as exc:
                raise EventStoreError(
                    "the event tables are busy (a long query holds them); nothing was dropped, "
                    "run prune again later"
                ) from exc
            except psycopg.Error as exc:
                raise EventStoreError(failure_reason(exc)) from exc
        self._partitions.clear()  # a later write into a dropped day recreates it
        return dropped


__all__ = ["PostgresEventStore", "StoreUnavailableError", "failure_reason"]
