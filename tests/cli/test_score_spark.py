"""`arbiter score --engine spark`: mlflow.pyfunc.spark_udf on a real local[2] SparkSession.

Runs, never skips, where Java and PySpark are installed (`make test` installs PySpark; CI has
Java 17). One SparkSession for the test session; the rows are few so Spark time stays small.
The Spark output is checked against the DuckDB engine's output on the same rows, and both
against the registered estimator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import score as score_command
from arbiter.demo.data import make_transactions
from arbiter.errors import InvalidInputError
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.home import Home
from arbiter.registry import registry_for_home
from arbiter.scoring import score_file

N_ROWS = 400


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from arbiter.scoring.spark import spark_session

    session = spark_session("local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("score")(score_command.score)
    app.command("version")(lambda: None)
    return app


@pytest.mark.timeout(900)  # Spark start-up and its Python workers are slow beside a busy CPU
def test_spark_scores_like_the_duckdb_engine(
    spark: Any, cli: typer.Typer, make_home: Callable[..., Home], tmp_path: Path
) -> None:
    home = make_home()
    batch = make_transactions(N_ROWS, seed=5)
    source = tmp_path / "batch.parquet"
    batch.features.assign(txn_id=[f"t{i}" for i in range(N_ROWS)]).to_parquet(source)
    out = tmp_path / "scored-spark"
    args = [
        "score", "--home", str(home.root), "--model", "fraud", "--alias", "challenger",
        "--input", str(source), "--output", str(out), "--id-column", "txn_id",
        "--engine", "spark", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["engine"], summary["version"], summary["n_rows"]) == ("spark", "2", N_ROWS)

    table = pq.read_table(out)
    assert table.schema.names == PREDICTIONS_SCHEMA.names
    for field in PREDICTIONS_SCHEMA:
        assert table.schema.field(field.name).type == field.type, field.name
    events = table.to_pandas().set_index("request_id").sort_index()
    assert (events["version"] == "2").all() and (events["alias"] == "challenger").all()

    local = tmp_path / "scored-duckdb.parquet"
    score_file(registry_for_home(home.root), "fraud", source, local, alias="challenger",
               id_column="txn_id")  # fmt: skip
    expected = pq.read_table(local).to_pandas().set_index("request_id").sort_index()
    assert events.index.tolist() == expected.index.tolist()
    assert events["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_array_equal(events["prediction_num"], expected["prediction_num"])
    for spark_json, duck_json in zip(events["features"], expected["features"], strict=True):
        assert json.loads(spark_json) == pytest.approx(json.loads(duck_json))

    # A table of the Spark catalog is an input too; a missing column is named.
    spark.read.parquet(str(source)).drop("merchant_risk").createOrReplaceTempView("thin_batch")
    with pytest.raises(InvalidInputError, match="merchant_risk"):
        from arbiter.scoring.spark import score_spark

        score_spark(registry_for_home(home.root), "fraud", "thin_batch", tmp_path / "never")
