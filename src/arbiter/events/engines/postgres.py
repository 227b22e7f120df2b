"""The PostgreSQL engine: arbiter's views as temporary views over the PostgreSQL event store.

The base tables ``predictions``, ``feedback`` and ``outcomes`` live in one schema (default
``arbiter``; ``?schema=NAME`` in the URL), with the columns of :mod:`arbiter.events.schema`
plus ``feedback.write_seq``, the order labels were written (the PostgreSQL store's contract).
:func:`connect_postgres` opens a session and defines, as *temporary* views (they belong to the
session and vanish with it, so concurrent analyses never collide):

- ``predictions``, ``feedback``, ``outcomes``: the base tables' event columns;
- ``latest_feedback``: ``DISTINCT ON (request_id, row_index) ... ORDER BY ts DESC,
  write_seq DESC``, PostgreSQL's idiom for "the latest row per key". ``write_seq`` plays the
  part of DuckDB's (segment file, row in file): the later write wins a tie on ``ts``;
- the derived views, :data:`~arbiter.events.views.DERIVED_VIEWS_SQL` transpiled.

Queries arrive in DuckDB's dialect and run through
:func:`~arbiter.events.engines.dialect.translate`; values are bound by psycopg (server-side
parameters), never formatted into the SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import sqlglot
from psycopg import sql

from arbiter.errors import InvalidInputError
from arbiter.events.engines.catalog import EXPERIMENT_CHANGES, EXPERIMENT_CHANGES_SCHEMA
from arbiter.events.engines.dialect import translate
from arbiter.events.engines.errors import EngineError
from arbiter.events.engines.result import QueryResult
from arbiter.events.schema import FEEDBACK_COLUMNS, OUTCOME_COLUMNS, PREDICTION_COLUMNS
from arbiter.events.views import DERIVED_VIEWS_SQL

DEFAULT_SCHEMA = "arbiter"

_LATEST_FEEDBACK = """
SELECT DISTINCT ON (request_id, row_index)
       request_id, row_index, label, label_num, ts AS label_ts
FROM {table}
ORDER BY request_id, row_index, ts DESC, write_seq DESC
"""

_ARROW_TO_PG = {"string": "text", "double": "double precision", "bool": "boolean"}


def split_url(url: str) -> tuple[str, str]:
    """``(conninfo, schema)`` of an ``events.url`` like ``postgresql://host/db?schema=s``.

    ``schema`` is not a libpq parameter, so it is taken out of the query string; every other
    parameter (``sslmode``, ``options``...) stays for psycopg.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidInputError(
            "the postgres engine needs events.url = postgresql://...", field="events.url"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresConnection:
    """A connection-like object over one PostgreSQL session with arbiter's views.

    Quacks like the DuckDB connection the analysis takes (:meth:`execute`, :meth:`sql`,
    :meth:`register`, :meth:`close`).
    """

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, query: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run one DuckDB-dialect statement on PostgreSQL.

        Raises
        ------
        EngineError
            PostgreSQL refused or failed the query; the message names the SQLSTATE, not the
            SQL.
        """
        statement = translate(query, "postgres", params)
        if statement.kind == "ignore":
            return QueryResult(pa.table({}))
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement.sql, statement.params or None)  # type: ignore[arg-type]
                if cur.description is None:
                    return QueryResult(pa.table({}))
                names = [d.name for d in cur.description]
                return QueryResult.from_rows(names, cur.fetchall())
        except psycopg.Error as exc:
            raise EngineError(
                f"PostgreSQL could not run a query of this analysis ({type(exc).__name__}, "
                f"SQLSTATE {exc.sqlstate}); run it with --engine duckdb"
            ) from exc

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Same as :meth:`execute` (DuckDB's ``con.sql(query, params=...)``)."""
        return self.execute(query, params)

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table readable as the temporary table ``name`` (loaded by COPY)."""
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(
                sql.Identifier(f.name), sql.SQL(_ARROW_TO_PG.get(str(f.type), "text"))
            )
            for f in table.schema
        )
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(name), columns))
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(name))) as copy:
                for row in table.to_pylist():
                    copy.write_row(tuple(row.values()))

    def close(self) -> None:
        """End the session (its temporary views and tables go with it)."""
        self.conn.close()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_postgres(url: str) -> PostgresConnection:
    """A :class:`PostgresConnection` with the views of :mod:`arbiter.events.views`.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/db?schema=NAME`` (schema default ``arbiter``).
    """
    conninfo, schema = split_url(url)
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            for name, cols in (
                ("predictions", PREDICTION_COLUMNS),
                ("feedback", FEEDBACK_COLUMNS),
                ("outcomes", OUTCOME_COLUMNS),
            ):
                cur.execute(
                    sql.SQL("CREATE TEMP VIEW {} AS SELECT {} FROM {}").format(
                        sql.Identifier(name),
                        sql.SQL(", ").join(map(sql.Identifier, cols)),
                        sql.Identifier(schema, name),
                    )
                )
            cur.execute(
                sql.SQL("CREATE TEMP VIEW latest_feedback AS " + _LATEST_FEEDBACK).format(
                    table=sql.Identifier(schema, "feedback")
                )
            )
            for create in sqlglot.parse(DERIVED_VIEWS_SQL, read="duckdb"):
                assert create is not None
                body = create.expression.sql(dialect="postgres")
                cur.execute(
                    sql.SQL("CREATE TEMP VIEW {} AS ").format(sql.Identifier(create.this.name))
                    + sql.SQL(body)  # type: ignore[arg-type]
                )
        connection = PostgresConnection(conn)
        connection.register(EXPERIMENT_CHANGES, EXPERIMENT_CHANGES_SCHEMA.empty_table())
    except BaseException:
        conn.close()
        raise
    return connection


__all__ = ["DEFAULT_SCHEMA", "PostgresConnection", "connect_postgres", "split_url"]
