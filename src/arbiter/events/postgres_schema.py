"""The PostgreSQL event tables: DDL, time partitions, and the settings read from the URL.

One schema (default ``arbiter``) holds three tables with exactly the columns of
:mod:`arbiter.events.schema` (Arrow types mapped by :data:`PG_TYPES`), each range-partitioned
on ``ts``:

``predictions``
    Unique on ``(ts, request_id, row_index, role)`` with ``NULLS NOT DISTINCT`` (PostgreSQL
    15; index ``predictions_key``). A unique index of a partitioned table must contain the
    partition key, so ``ts`` is part of the key; a retried flush sends the very same rows,
    ``ts`` included, so the index still turns every retry into a no-op.
``feedback``
    Plus ``write_seq bigint`` from a sequence: the order labels were written, the tie-break of
    "latest label wins" (the Parquet store's ``(filename, file_row_number)``).
``outcomes``
    Append-only, as in the Parquet store.

Partitions are created on demand, one per UTC day (or month) a batch touches, named
``<table>_pYYYYMMDD`` (``_pYYYYMM``); retention drops whole partitions
(:func:`drop_partitions_before`). There is no default partition: attaching a new partition
next to a default one would have to scan it, under a lock that stops every writer.

DDL runs in its own transaction under an advisory lock, never inside an insert transaction:
two writers creating the same day at once then queue instead of deadlocking on the parent
table's lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
from psycopg import Connection, sql

from arbiter.errors import InvalidInputError
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA

DEFAULT_SCHEMA = "arbiter"
Granularity = Literal["day", "month"]
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "predictions": PREDICTIONS_SCHEMA,
    "feedback": FEEDBACK_SCHEMA,
    "outcomes": OUTCOMES_SCHEMA,
}
#: The key a retried prediction flush is recognised by (``ts`` is the partition key).
PREDICTION_KEY = ("ts", "request_id", "row_index", "role")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_SCHEMES = ("postgresql", "postgres")
# An advisory lock key for partition DDL (any constant bigint; "arbiter-partitions").
_DDL_LOCK = 0x61726269746572
#: How long retention waits for the lock on a table before giving up.
LOCK_TIMEOUT_MS = 10_000


def pg_type(type_: pa.DataType) -> str:
    """The PostgreSQL type of an Arrow column (the contract engines reads against)."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "text"
    if pa.types.is_timestamp(type_):
        return "timestamptz"
    if pa.types.is_integer(type_):
        return "bigint"
    if pa.types.is_floating(type_):
        return "double precision"
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_nested(type_):
        return "jsonb"
    raise TypeError(f"no PostgreSQL type for Arrow type {type_}")


@dataclass(frozen=True)
class PostgresLocation:
    """Where the event tables live, parsed from ``events.url``.

    Attributes
    ----------
    conninfo : str
        The URL handed to psycopg, without arbiter's own query parameters.
    schema : str
        ``?schema=`` (default ``arbiter``): lower-case letters, digits and ``_``.
    partition : {"day", "month"}
        ``?partition=`` (default ``day``): the span of one time partition.
    """

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    partition: Granularity = "day"

    def __repr__(self) -> str:  # never the URL: it may carry a password
        return f"PostgresLocation(schema={self.schema!r}, partition={self.partition!r})"


def is_postgres_url(url: str | None) -> bool:
    """True for ``postgresql://`` and ``postgres://`` URLs."""
    return bool(url) and urlsplit(str(url)).scheme.lower() in _SCHEMES


def parse_postgres_url(url: str, *, field: str = "events.url") -> PostgresLocation:
    """Split ``events.url`` into psycopg's connection string and arbiter's settings.

    Raises
    ------
    InvalidInputError
        Not a PostgreSQL URL, or a bad ``schema`` / ``partition``; the message quotes the
        offending parameter, never the URL (it may carry a password).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise InvalidInputError("not a postgresql:// URL", field=field)
    schema, partition = DEFAULT_SCHEMA, "day"
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key == "partition":
            partition = value
        else:
            kept.append((key, value))
    if not _IDENTIFIER.fullmatch(schema):
        raise InvalidInputError(
            f"schema {schema!r} must be 1-48 lower-case letters, digits or _ (not first a digit)",
            field=f"{field}?schema",
        )
    if partition not in ("day", "month"):
        raise InvalidInputError(
            f"partition must be day or month, got {partition!r}", field=f"{field}?partition"
        )
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(kept, quote_via=quote), "")
    )
    return PostgresLocation(conninfo, schema, partition)  # type: ignore[arg-type]


def create_schema(conn: Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
    """Create the schema and its three partitioned tables if missing, and commit.

    Idempotent and safe to call from several processes at once (an advisory lock serialises
    it). Partitions are created by :func:`ensure_partitions` as rows arrive.
    """
    if not _IDENTIFIER.fullmatch(schema):
        raise InvalidInputError(f"bad schema name {schema!r}", field="schema")
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
        conn.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}.feedback_write_seq").format(s))
        for table, arrow_schema in TABLE_SCHEMAS.items():
            columns = [
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type)))
                for f in arrow_schema
            ]
            if table == "feedback":
                columns.append(
                    sql.SQL("write_seq bigint NOT NULL DEFAULT nextval({})").format(
                        sql.Literal(f"{schema}.feedback_write_seq")
                    )
                )
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({}) PARTITION BY RANGE (ts)").format(
                    s, sql.Identifier(table), sql.SQL(", ").join(columns)
                )
            )
        # ts first: it grows with time, so each flush's keys land at the index's right edge
        # (half the cost of random request ids first); "C" collation: byte comparison, no
        # locale rules, for ids that only need equality.
        conn.execute(
            sql.SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS predictions_key ON {}.predictions (ts, "
                'request_id COLLATE "C", row_index, role COLLATE "C") NULLS NOT DISTINCT'
            ).format(s)
        )
        conn.execute(
            sql.SQL("ALTER SEQUENCE {}.feedback_write_seq OWNED BY {}.feedback.write_seq").format(
                s, s
            )
        )


def partition_start(day: date, granularity: Granularity) -> date:
    """The first day of the partition holding ``day``."""
    return day if granularity == "day" else day.replace(day=1)


def _next_start(start: date, granularity: Granularity) -> date:
    if granularity == "day":
        return date.fromordinal(start.toordinal() + 1)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def partition_name(table: str, start: date, granularity: Granularity) -> str:
    """``predictions_p20261204`` (day) or ``predictions_p202612`` (month)."""
    return f"{table}_p{start:%Y%m%d}" if granularity == "day" else f"{table}_p{start:%Y%m}"


def partitions_for(ts_us: Iterable[int], granularity: Granularity) -> set[date]:
    """Start days of the partitions that rows with these timestamps (µs, UTC) fall in."""
    days = {datetime.fromtimestamp(us / 1e6, UTC).date() for us in ts_us}
    return {partition_start(d, granularity) for d in days}


def ensure_partitions(
    conn: Connection[Any], schema: str, table: str, starts: Iterable[date], granularity: Granularity
) -> list[str]:
    """Create the partitions of ``table`` beginning on ``starts`` if missing; commit.

    Returns the names created. Runs in its own transaction (see the module docstring).
    """
    created = []
    starts = sorted(set(starts))
    if not starts:
        return created
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace "
                "WHERE n.nspname = %s AND p.relname = %s",
                (schema, table),
            )
        }
        for start in starts:
            name = partition_name(table, start, granularity)
            if name in existing:
                continue
            end = _next_start(start, granularity)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {}.{} PARTITION OF {}.{} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(schema),
                    sql.Identifier(name),
                    sql.Identifier(schema),
                    sql.Identifier(table),
                    sql.Literal(f"{start.isoformat()} 00:00:00+00"),
                    sql.Literal(f"{end.isoformat()} 00:00:00+00"),
                )
            )
            created.append(name)
    return created


@dataclass(frozen=True)
class Partition:
    """One time partition of an event table: ``[start, end)`` in UTC."""

    table: str
    name: str
    start: datetime
    end: datetime


def list_partitions(conn: Connection[Any], schema: str) -> list[Partition]:
    """Every range partition of the three event tables, oldest first.

    The bounds come from the catalog (``pg_get_expr(relpartbound)``), not from the names, so
    partitions an operator created by hand are listed correctly too.
    """
    rows = conn.execute(
        """
        SELECT p.relname, c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]
                   ::timestamptz,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]
                   ::timestamptz
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = %s AND p.relname = ANY(%s)
        ORDER BY 3, 1
        """,
        (schema, list(TABLE_SCHEMAS)),
    ).fetchall()
    return [Partition(t, name, start, end) for t, name, start, end in rows if start and end]


def drop_partitions_before(
    conn: Connection[Any],
    schema: str,
    cutoff: datetime,
    *,
    dry_run: bool = False,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> list[tuple[Partition, int]]:
    """Drop every partition whose rows are all older than ``cutoff`` (its end <= cutoff).

    Whole partitions only: a partition straddling the cutoff is kept, so nothing newer than
    the cutoff is ever deleted. Returns each partition dropped (or, with ``dry_run``, that
    would be) with its row count. One transaction: all are dropped or none.
    """
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        # Dropping a partition locks its parent exclusively; waiting behind a long analysis
        # would queue every writer behind us. Give up instead (LockNotAvailable) and let the
        # next run try again.
        conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_ms)}ms"))
        )
        for part in list_partitions(conn, schema):
            if part.end > cutoff:
                continue
            ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(part.name))
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
            rows = int(row[0]) if row else 0
            if not dry_run:
                conn.execute(sql.SQL("DROP TABLE {}").format(ident))
            dropped.append((part, rows))
    return dropped


__all__ = [
    "DEFAULT_SCHEMA",
    "PREDICTION_KEY",
    "TABLE_SCHEMAS",
    "Partition",
    "PostgresLocation",
    "create_schema",
    "drop_partitions_before",
    "ensure_partitions",
    "is_postgres_url",
    "list_partitions",
    "parse_postgres_url",
    "partition_name",
    "partitions_for",
    "pg_type",
]
