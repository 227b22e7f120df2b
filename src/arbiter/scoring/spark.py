"""Batch scoring on Apache Spark with ``mlflow.pyfunc.spark_udf``.

The same output as :func:`arbiter.scoring.batch.score_file` (the event log's ``predictions``
columns), computed by Spark: the input is a Parquet path (file or folder), a CSV file or a
table of the session's catalog, the output a Parquet folder. The model runs inside Spark's
Python workers through MLflow's own UDF, in this interpreter's environment
(``env_manager="local"``), so a cluster needs the model's dependencies installed.

Differences from the DuckDB path, because ``spark_udf`` returns only the pyfunc ``predict``
output: ``score``, ``confidence`` and ``probabilities`` are null, and ``latency_ms`` is null
(Spark does not time a row's model call). Without ``id_column`` a row's ``request_id`` is
``<batch id>-<monotonically_increasing_id>``: unique, but not the row's position in the input.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.scoring.batch import BATCH, ScoreResult, input_format, model_columns, resolve_version

if TYPE_CHECKING:
    from arbiter.registry.mlflow_registry import MLflowRegistry


def spark_session(master: str = "local[2]") -> Any:
    """The active SparkSession, or a new local one set up for scoring.

    UTC session time zone and microsecond Parquet timestamps (the event log's ``ts`` type),
    no web UI, few shuffle partitions, and this interpreter for the Python workers (the UDF
    imports MLflow and the model's libraries there).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Local-mode Python workers start `$PYSPARK_PYTHON` (default: `python3` on the PATH, which
    # may lack MLflow and pandas), whatever `spark.pyspark.python` says.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("arbiter-score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .getOrCreate()
    )


def _read_input(spark: Any, source: str) -> Any:
    path = Path(source)
    if path.exists():
        if input_format(path) == "csv":
            return spark.read.csv(str(path), header=True, inferSchema=True)
        return spark.read.parquet(str(path))
    if spark.catalog.tableExists(source):
        return spark.table(source)
    raise NotFoundError(f"--input: no such file, folder or Spark table: {source}")


def _result_type(servable: Any) -> str:
    """``double`` for numeric predictions (regression, integer classes), else ``string``."""
    classes = servable.classes
    if classes is None or all(isinstance(c, int | float) for c in classes):
        return "double"
    return "string"


def score_spark(
    registry: MLflowRegistry,
    name: str,
    input_path: str,
    output_path: str | Path,
    *,
    alias: str | None = None,
    version: str | None = None,
    id_column: str | None = None,
    spark: Any = None,
) -> ScoreResult:
    """Score a Parquet path, CSV file or Spark table; write prediction events as Parquet.

    Parameters are those of :func:`arbiter.scoring.batch.score_file`; ``spark`` is the session
    to use (default :func:`spark_session`). ``output_path`` is a folder, replaced if it exists.
    """
    import mlflow
    import pyarrow.parquet as pq
    from pyspark.sql import functions as sf
    from pyspark.sql import types as st

    started = time.perf_counter()
    target = Path(output_path)
    if not target.parent.is_dir():
        raise NotFoundError(f"--output: folder {target.parent} does not exist")
    resolved, alias = resolve_version(registry, name, alias=alias, version=version)
    servable = registry.load(name, resolved)
    spark = spark or spark_session()
    frame = _read_input(spark, input_path)
    available = list(frame.columns)
    columns = model_columns(servable, available, field="--input")
    if id_column is not None and id_column not in available:
        raise InvalidInputError(
            f"--id-column {id_column!r} is not a column of the input", field="--id-column"
        )
    uri = registry.client.get_model_version_download_uri(name, resolved)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, tracking_uri=registry.tracking_uri
    )
    result_type = _result_type(servable)
    with warnings.catch_warnings():
        # PySpark 4 warns that it does not "fully support" pandas 3 when it builds a pandas
        # UDF; spark_udf uses only Series/DataFrame basics, which the Spark test checks.
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        udf = mlflow.pyfunc.spark_udf(spark, local, result_type=result_type, env_manager="local")

    batch_id = uuid.uuid4().hex[:16]
    scored_at = datetime.now(UTC).replace(tzinfo=None)  # the session time zone is UTC
    prediction = udf(sf.struct(*[sf.col(c) for c in columns]))
    if id_column is not None:
        request_id = sf.col(id_column).cast("string")
    else:
        request_id = sf.concat(
            sf.lit(f"{batch_id}-"), sf.monotonically_increasing_id().cast("string")
        )
    if result_type == "double":
        # canonical_label: integral numbers without a decimal point ("1", not "1.0").
        text = sf.when(
            sf.col("__p") == sf.floor(sf.col("__p")), sf.col("__p").cast("bigint").cast("string")
        ).otherwise(sf.col("__p").cast("string"))
        number = sf.col("__p")
    else:
        text, number = sf.col("__p"), sf.col("__p").cast("double")
    values: dict[str, Any] = {
        "request_id": request_id,
        "row_index": sf.lit(0),
        "ts": sf.lit(scored_at),
        "model": sf.lit(name),
        "experiment": sf.lit(BATCH),
        "strategy": sf.lit(BATCH),
        "unit_id": sf.lit(None),
        "unit_random": sf.lit(False),
        "arm": sf.lit(alias or f"v{resolved}"),
        "role": sf.lit("served"),
        "alias": sf.lit(alias or ""),
        "version": sf.lit(resolved),
        "prediction": text,
        "prediction_num": number,
        "score": sf.lit(None),
        "confidence": sf.lit(None),
        "probabilities": sf.lit(None),
        "latency_ms": sf.lit(None),
        "error": sf.lit(None),
        "features": sf.to_json(sf.struct(*[sf.col(c) for c in columns])),
        "protocol": sf.lit(BATCH),
        "forced": sf.lit(False),
        "impression": sf.lit(None),
    }
    spark_types = {
        "string": st.StringType(),
        "int32": st.IntegerType(),
        "double": st.DoubleType(),
        "bool": st.BooleanType(),
    }
    out = frame.select(*[sf.col(c) for c in {*columns, *([id_column] if id_column else [])}])
    out = out.withColumn("__p", prediction)
    selected = []
    for field in PREDICTIONS_SCHEMA:
        kind = "timestamp" if field.name == "ts" else str(field.type)
        spark_type = st.TimestampType() if kind == "timestamp" else spark_types[kind]
        selected.append(values[field.name].cast(spark_type).alias(field.name))
    events = out.select(*selected)
    events.write.mode("overwrite").parquet(str(target))
    # The row count from the written files' footers: no second Spark job over the output.
    n_rows = sum(pq.read_metadata(f).num_rows for f in sorted(target.glob("*.parquet")))
    return ScoreResult(
        model=name,
        version=resolved,
        alias=alias,
        batch_id=batch_id,
        n_rows=n_rows,
        output=str(target),
        engine="spark",
        duration_s=time.perf_counter() - started,
    )


__all__ = ["score_spark", "spark_session"]
