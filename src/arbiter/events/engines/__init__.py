"""Query engines: the same analysis queries on DuckDB (embedded default), Spark or PostgreSQL.

Every query in arbiter is DuckDB SQL with ``$name`` parameters over the named views of
:mod:`arbiter.events.views`. An *engine connection* runs them: ``execute(sql, params)``
returning an object with ``fetchall() / fetchone() / fetchnumpy() / df()``, like DuckDB's.

``duckdb``
    :meth:`arbiter.events.EventStore.connect`, unchanged: the embedded default, nothing to
    run beside arbiter.
``spark``
    :func:`~arbiter.events.engines.spark.connect_spark`: Spark SQL temporary views over the
    same Parquet segment files, queries transpiled by SQLGlot
    (:mod:`arbiter.events.engines.dialect`).
``postgres``
    :func:`~arbiter.events.engines.postgres.connect_postgres`: temporary views over the
    PostgreSQL event store's tables (``events.url: postgresql://...``).

Why SQLGlot rather than Ibis, and what differs per engine: docs/design/query-engines.md.
"""

from __future__ import annotations

from typing import Any, Literal

from arbiter.errors import ConfigError, InvalidInputError
from arbiter.events.engines.errors import EngineError

Engine = Literal["duckdb", "spark", "postgres"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark", "postgres")
DEFAULT_SPARK_MASTER = "local[2]"


def open_engine(
    engine: str,
    store: Any = None,
    *,
    events_url: str | None = None,
    spark_master: str = DEFAULT_SPARK_MASTER,
) -> Any:
    """Open a connection with arbiter's views on ``engine``.

    Parameters
    ----------
    engine : {"duckdb", "spark", "postgres"}
        Which engine runs the queries.
    store : EventStore, optional
        The Parquet event store (``duckdb`` and ``spark`` read its live segment files).
    events_url : str, optional
        ``events.url`` of the home; ``postgres`` needs a ``postgresql://`` one.
    spark_master : str, default "local[2]"
        Spark master URL (``local[N]``, ``spark://host:7077``, ``yarn``...).

    Returns
    -------
    DuckDB, Spark or PostgreSQL connection
        Close it when done (each is a context manager).

    Raises
    ------
    InvalidInputError
        Unknown engine, or an engine that cannot read this event store.
    EngineError
        The engine could not be started (PySpark not installed, Java missing, server down).
    """
    if engine not in ENGINES:
        raise InvalidInputError(
            f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}", field="engine"
        )
    is_pg = bool(events_url) and str(events_url).startswith(("postgresql:", "postgres:"))
    if engine == "postgres":
        if not is_pg:
            raise InvalidInputError(
                "--engine postgres reads the PostgreSQL event store: set events.url: "
                "postgresql://... in arbiter.yaml (this home's events are Parquet files; "
                "use --engine duckdb or spark)",
                field="engine",
            )
        return _postgres(str(events_url))
    if is_pg or store is None:
        raise InvalidInputError(
            f"--engine {engine} reads the Parquet event log; this home's events.url is "
            "PostgreSQL: use --engine postgres",
            field="engine",
        )
    if engine == "duckdb":
        return store.connect()
    return _spark(store, spark_master)


def open_for_home(home: Any, engine: str | None = None) -> Any:
    """Open the analysis connection of an arbiter home on ``engine``.

    ``engine`` None means ``analysis.engine`` of the home's ``arbiter.yaml`` (default
    ``duckdb``); the Spark master is ``analysis.spark_master`` and the PostgreSQL store
    ``events.url``.

    Parameters
    ----------
    home : arbiter.home.Home
        The home whose event log to read.
    engine : {"duckdb", "spark", "postgres"}, optional
        Overrides the configured engine (``--engine``).

    Raises
    ------
    NotFoundError
        A Parquet engine and no event log in the home yet.
    """
    from arbiter.errors import NotFoundError
    from arbiter.events.location import event_location, event_log_exists, open_event_store

    config = home.config()
    chosen = engine or config.analysis.engine
    location = event_location(home, config)
    if chosen == "postgres":
        url = config.events.url if location.kind == "postgresql" else None
        return open_engine("postgres", None, events_url=url)
    if not event_log_exists(home, config):
        raise NotFoundError(f"no event log in {home.root}; serve some traffic first")
    store = open_event_store(home, config)
    if chosen == "duckdb":
        # Whatever events.url names: a directory, object storage, or a snapshot of the
        # PostgreSQL store's tables (fine for modest logs; --engine postgres for big ones).
        return store.connect()
    if location.kind != "directory":
        raise InvalidInputError(
            f"--engine {chosen} reads a Parquet event log in a directory (HOME/events or a "
            f"shared mount); this home's events.url is {location.kind.replace('_', ' ')}: use "
            + ("--engine postgres" if location.kind == "postgresql" else "--engine duckdb"),
            field="engine",
        )
    return open_engine(chosen, store, spark_master=config.analysis.spark_master)


def _postgres(url: str) -> Any:
    import psycopg

    from arbiter.events.engines.postgres import connect_postgres

    try:
        return connect_postgres(url)
    except psycopg.OperationalError as exc:
        # The driver's message may carry the host and user; say what failed, not the URL.
        raise EngineError(
            "cannot connect to the PostgreSQL event store (events.url); is the server up "
            "and the database reachable?"
        ) from exc


def _spark(store: Any, master: str) -> Any:
    try:
        from arbiter.events.engines.spark import connect_spark, spark_session
    except ImportError as exc:
        raise ConfigError(
            "--engine spark needs PySpark: pip install 'arbiter[spark]' (and Java 17+)"
        ) from exc
    try:
        session = spark_session(master)
    except Exception as exc:  # PySparkRuntimeError: JAVA_GATEWAY_EXITED and the like
        raise EngineError(
            f"cannot start Spark (master {master!r}): is Java 17+ installed and JAVA_HOME "
            f"set? ({type(exc).__name__})"
        ) from exc
    return connect_spark(
        session,
        store.segments("predictions"),
        store.segments("feedback"),
        store.segments("outcomes"),
    )


__all__ = [
    "DEFAULT_SPARK_MASTER",
    "ENGINES",
    "Engine",
    "EngineError",
    "open_engine",
    "open_for_home",
]
