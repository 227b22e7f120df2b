"""`arbiter score` on the DuckDB engine: a file scored by a registered version, as events.

Predictions are checked against the registered scikit-learn estimator called directly (an
independent path: no DuckDB, no chunking, no event columns), and the output against the event
log's predictions schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import score as score_command
from arbiter.demo.data import make_transactions
from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.home import Home
from arbiter.registry import registry_for_home
from arbiter.scoring import score_file

N_ROWS = 1_500


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("score")(score_command.score)
    app.command("version")(lambda: None)
    return app


@pytest.fixture(scope="module")
def batch() -> Any:
    return make_transactions(N_ROWS, seed=11)


@pytest.fixture
def input_parquet(tmp_path: Path, batch: Any) -> Path:
    path = tmp_path / "batch.parquet"
    frame = batch.features.assign(txn_id=[f"t{i:05d}" for i in range(N_ROWS)])
    frame.to_parquet(path, index=False)
    return path


def _expected(home: Home, version: str, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and P(fraud) of the registered estimator, called directly."""
    estimator = registry_for_home(home.root).load("fraud", version).raw
    matrix = features.to_numpy(dtype=np.float64)
    return estimator.predict(matrix), estimator.predict_proba(matrix)[:, 1]


def test_score_writes_prediction_events_of_the_served_version(
    cli: typer.Typer,
    make_home: Callable[..., Home],
    input_parquet: Path,
    tmp_path: Path,
    batch: Any,
) -> None:
    home = make_home()
    out = tmp_path / "scored.parquet"
    args = [
        "score", "--home", str(home.root), "--model", "fraud",
        "--input", str(input_parquet), "--output", str(out), "--id-column", "txn_id", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["version"] == "1" and summary["alias"] == "champion"
    assert summary["n_rows"] == N_ROWS and summary["engine"] == "duckdb"

    table = pq.read_table(out)
    assert table.schema.equals(PREDICTIONS_SCHEMA)
    events = table.to_pandas()
    assert len(events) == N_ROWS
    assert (events["model"] == "fraud").all() and (events["version"] == "1").all()
    assert (events["alias"] == "champion").all() and (events["protocol"] == "batch").all()
    assert events["ts"].nunique() == 1 and (events["row_index"] == 0).all()
    assert events["request_id"].tolist() == [f"t{i:05d}" for i in range(N_ROWS)]

    labels, proba = _expected(home, "1", batch.features)
    assert events["prediction"].tolist() == [str(int(v)) for v in labels]
    np.testing.assert_allclose(events["score"].to_numpy(), proba, rtol=0, atol=1e-12)
    features = pd.DataFrame([json.loads(f) for f in events["features"]])
    pd.testing.assert_frame_equal(features, batch.features.reset_index(drop=True))

    # Joined to labels on request_id, the accuracy is the estimator's own.
    con = duckdb.connect()
    con.register("events", table)
    con.register("truth", pd.DataFrame({"txn_id": events["request_id"], "label": batch.labels}))
    accuracy = con.execute(
        "SELECT avg((e.prediction = CAST(t.label AS VARCHAR))::INT) FROM events e "
        "JOIN truth t ON t.txn_id = e.request_id"
    ).fetchall()[0][0]
    assert accuracy == pytest.approx(float(np.mean(labels == np.asarray(batch.labels))), abs=1e-12)


def test_score_a_csv_with_a_version_in_small_chunks(
    make_home: Callable[..., Home], tmp_path: Path, batch: Any
) -> None:
    home = make_home()
    source, out = tmp_path / "batch.csv", tmp_path / "scored.csv"
    batch.features.head(300).to_csv(source, index=False)
    progress: list[tuple[int, int]] = []
    result = score_file(
        registry_for_home(home.root), "fraud", source, out,
        version="2", chunk_rows=128, on_progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    assert (result.version, result.alias, result.n_rows) == ("2", None, 300)
    done = [d for d, _ in progress]
    assert len(progress) >= 2 and done == sorted(done) and progress[-1] == (300, 300)
    events = pacsv.read_csv(out).to_pandas()
    assert events["request_id"].tolist() == [f"{result.batch_id}-{i}" for i in range(300)]
    assert (events["arm"] == "v2").all()
    labels, proba = _expected(home, "2", batch.features.head(300))
    assert events["prediction"].astype(int).tolist() == labels.tolist()
    np.testing.assert_allclose(events["score"].to_numpy(), proba, atol=1e-12)


def test_score_names_missing_columns_and_unknown_aliases(
    cli: typer.Typer, make_home: Callable[..., Home], input_parquet: Path, tmp_path: Path
) -> None:
    home = make_home()
    thin = tmp_path / "thin.parquet"
    pd.read_parquet(input_parquet).drop(columns=["amount", "hour"]).to_parquet(thin)
    out = str(tmp_path / "o.parquet")
    base = ["score", "--home", str(home.root), "--model", "fraud", "--output", out]

    missing = CliRunner().invoke(cli, [*base, "--input", str(thin)])
    assert isinstance(missing.exception, InvalidInputError)
    assert "amount" in str(missing.exception) and "hour" in str(missing.exception)

    unknown = CliRunner().invoke(cli, [*base, "--input", str(input_parquet), "--alias", "nope"])
    assert isinstance(unknown.exception, NotFoundError)
    assert "'nope'" in str(unknown.exception) and "champion" in str(unknown.exception)

    bad_id = CliRunner().invoke(cli, [*base, "--input", str(input_parquet), "--id-column", "x"])
    assert isinstance(bad_id.exception, InvalidInputError) and "--id-column" in str(
        bad_id.exception
    )
    assert not (tmp_path / "o.parquet").exists()


def test_score_help_explains_the_output(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["score", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("--alias", "--version", "--engine", "spark_udf", "request_id", "champion"):
        assert words in text
