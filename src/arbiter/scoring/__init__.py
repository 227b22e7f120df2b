"""Batch scoring: a file or Spark table scored by a registered model version.

:func:`score_file` (DuckDB + pandas, embedded) and :func:`score_spark` (Apache Spark,
``mlflow.pyfunc.spark_udf``) write the same columns as the event log's ``predictions`` table,
so batch predictions are joined to labels and analysed like live ones. See
``docs/batch-scoring.md``.
"""

from __future__ import annotations

from arbiter.scoring.batch import ScoreResult, resolve_version, score_file

__all__ = ["ScoreResult", "resolve_version", "score_file"]
