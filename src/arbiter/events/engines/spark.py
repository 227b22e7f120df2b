"""The Spark engine: arbiter's views as Spark SQL temporary views over the Parquet segment files.

:func:`connect_spark` reads the same segment files DuckDB reads (the store's live list, taken
at connect time: a snapshot, compacted sources left out) with ``spark.read.parquet``, and
defines the views of :mod:`arbiter.events.views` on them: ``predictions``, ``feedback`` and
``outcomes`` as DataFrames, the derived views from :data:`~arbiter.events.views.DERIVED_VIEWS_SQL`
transpiled, and ``latest_feedback`` written for Spark.

The latest-label tie-break
--------------------------
DuckDB breaks a tie on ``ts`` between two labels of one row by the segment file name, then the
row number within the file (``read_parquet(..., filename, file_row_number)``). Spark 3.5+
exposes the same two facts as the hidden ``_metadata.file_path`` and ``_metadata.row_index``
columns of a Parquet scan, so the rule is the same. One difference: ``file_path`` is a URI
(``file:/home/...``, percent-encoded) where DuckDB's ``filename`` is the path as listed. All
segments of a table share one directory, so both order the generated segment names alike.

Each connection is a new Spark session (``SparkSession.newSession``: its own temporary views,
the one shared SparkContext), so two analyses never see each other's views.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot

from arbiter.events.engines.catalog import EXPERIMENT_CHANGES, EXPERIMENT_CHANGES_SCHEMA
from arbiter.events.engines.dialect import translate
from arbiter.events.engines.errors import EngineError
from arbiter.events.engines.result import QueryResult
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import DERIVED_VIEWS_SQL

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"

# Latest label of each (request_id, row_index), by the rule of arbiter.events.views: max_by
# over a struct compares its fields in order (ts, then file, then row), as DuckDB's arg_max
# over the tuple does.
_LATEST_FEEDBACK_SQL = """
SELECT request_id, row_index,
       latest.label AS label, latest.label_num AS label_num, latest.ts AS label_ts
FROM (
    SELECT request_id, row_index,
           max_by(named_struct('label', label, 'label_num', label_num, 'ts', ts),
                  named_struct('ts', ts, 'file', filename, 'row', file_row_number)) AS latest
    FROM _feedback_raw
    GROUP BY request_id, row_index
)
"""


def spark_session(
    master: str = DEFAULT_MASTER,
    *,
    shuffle_partitions: int | None = None,
    conf: Mapping[str, str] | None = None,
) -> Any:
    """The process's SparkSession (created on first use) for ``master``.

    Local masters get a small number of shuffle partitions (Spark's 200 default is for a
    cluster: on two cores it spends more time scheduling empty tasks than aggregating), the
    UI off and UTC as the session time zone, so timestamps read back as they were written.
    ``conf`` adds Spark settings (``spark.driver.memory`` must be given before the first
    session of the process starts its JVM).
    """
    from pyspark.sql import SparkSession

    local = master.startswith("local")
    partitions = shuffle_partitions or (4 if local else 200)
    builder = (
        SparkSession.builder.master(master)
        .appName("arbiter")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if local:
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkConnection:
    """A connection-like object over one Spark session with arbiter's views.

    Quacks like the DuckDB connection the analysis takes: :meth:`execute` and :meth:`sql`
    run one DuckDB-dialect statement with ``$name`` parameters (transpiled by
    :func:`~arbiter.events.engines.dialect.translate`, values passed to ``spark.sql`` as named
    arguments), :meth:`register` adds an Arrow table as a view, :meth:`close` drops the views.
    """

    dialect = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self._cached: dict[str, DataFrame] = {}

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run one DuckDB-dialect statement on Spark; see the class docstring.

        Raises
        ------
        EngineError
            Spark refused or failed the query; the message names Spark's error condition,
            not the SQL.
        """
        from pyspark.errors import PySparkException

        try:
            return self._execute(sql, params)
        except PySparkException as exc:
            condition = getattr(exc, "getCondition", lambda: None)() or type(exc).__name__
            raise EngineError(
                f"Spark could not run a query of this analysis ({condition}); "
                "run it with --engine duckdb"
            ) from exc

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        statement = translate(sql, "spark", params)
        if statement.kind == "ignore":
            return QueryResult(pa.table({}))
        if statement.kind == "drop":
            assert statement.table is not None
            frame = self._cached.pop(statement.table, None)
            if frame is not None:
                frame.unpersist()
            self.session.catalog.dropTempView(statement.table)
            return QueryResult(pa.table({}))
        frame = self.session.sql(statement.sql, args=statement.params or None)
        if statement.kind == "create_temp":
            # DuckDB's temporary table: computed once, read by the queries that follow.
            assert statement.table is not None
            frame = frame.cache()
            frame.createOrReplaceTempView(statement.table)
            self._cached[statement.table] = frame
            return QueryResult(pa.table({}))
        return QueryResult(frame.toArrow())

    def sql(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Same as :meth:`execute` (DuckDB's ``con.sql(query, params=...)``)."""
        return self.execute(sql, params)

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table readable as the view ``name`` (``experiment_changes``)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        frame = self.session.createDataFrame(
            table.to_pylist(), schema=from_arrow_schema(table.schema)
        )
        frame.createOrReplaceTempView(name)

    def close(self) -> None:
        """Unpersist this connection's cached tables and drop its temporary views.

        The SparkContext (and its JVM) stays up for the next connection of the process.
        """
        for frame in self._cached.values():
            frame.unpersist()
        self._cached.clear()
        for table in self.session.catalog.listTables():
            if table.isTemporary:
                self.session.catalog.dropTempView(table.name)

    def __enter__(self) -> SparkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_segments(
    session: SparkSession, files: Sequence[Path], schema: pa.Schema, *, file_columns: bool = False
) -> DataFrame:
    """Every file of one table as a DataFrame with exactly the table's columns.

    ``mergeSchema`` with added NULL columns plays the part of DuckDB's ``union_by_name``:
    segments written before a column existed simply lack it. ``file_columns`` adds
    ``filename`` and ``file_row_number`` (the label tie-break, see the module docstring).
    """
    from pyspark.sql import functions as F  # noqa: N812 (PySpark's own convention)
    from pyspark.sql.pandas.types import from_arrow_schema

    spark_schema = from_arrow_schema(schema)
    if not files:
        frame = session.createDataFrame([], schema=spark_schema)
        extra = [F.lit("").alias("filename"), F.lit(0).cast("bigint").alias("file_row_number")]
        return frame.select("*", *extra) if file_columns else frame
    frame = session.read.option("mergeSchema", "true").parquet(*(str(f) for f in files))
    present = set(frame.columns)
    columns = [
        F.col(field.name).cast(field.dataType)
        if field.name in present
        else F.lit(None).cast(field.dataType).alias(field.name)
        for field in spark_schema.fields
    ]
    if file_columns:
        columns += [
            F.col("_metadata.file_path").alias("filename"),
            F.col("_metadata.row_index").alias("file_row_number"),
        ]
    return frame.select(*columns)


def connect_spark(
    session: SparkSession,
    prediction_files: Sequence[Path],
    feedback_files: Sequence[Path],
    outcome_files: Sequence[Path] = (),
) -> SparkConnection:
    """A :class:`SparkConnection` with the views of :mod:`arbiter.events.views` on ``session``.

    Parameters
    ----------
    session : SparkSession
        From :func:`spark_session` (or a cluster's); a new session is derived from it.
    prediction_files, feedback_files, outcome_files : sequence of Path
        The live segment files of each table
        (:meth:`arbiter.events.EventStore.segments`).
    """
    spark = session.newSession()
    _read_segments(spark, prediction_files, PREDICTIONS_SCHEMA).createOrReplaceTempView(
        "predictions"
    )
    _read_segments(spark, outcome_files, OUTCOMES_SCHEMA).createOrReplaceTempView("outcomes")
    raw = _read_segments(spark, feedback_files, FEEDBACK_SCHEMA, file_columns=True)
    raw.createOrReplaceTempView("_feedback_raw")
    raw.drop("filename", "file_row_number").createOrReplaceTempView("feedback")
    spark.sql(_LATEST_FEEDBACK_SQL).createOrReplaceTempView("latest_feedback")
    for create in sqlglot.parse(DERIVED_VIEWS_SQL, read="duckdb"):
        assert create is not None
        query = create.expression.sql(dialect="spark")
        spark.sql(query).createOrReplaceTempView(create.this.name)
    connection = SparkConnection(spark)
    connection.register(EXPERIMENT_CHANGES, EXPERIMENT_CHANGES_SCHEMA.empty_table())
    return connection


__all__ = ["DEFAULT_MASTER", "SparkConnection", "connect_spark", "spark_session"]
