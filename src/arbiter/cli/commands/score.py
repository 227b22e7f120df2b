"""``arbiter score``: batch-score a file (or a Spark table) with a registered model version."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption, JsonOption, ModelOption


def score(
    model: str = ModelOption,
    home: Path = HomeOption,
    input_path: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="Rows to score: a .parquet file or folder, a .csv/.csv.gz file; with --engine "
        "spark also a table of the Spark catalog.",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write the predictions: .parquet or .csv (duckdb), a Parquet folder "
        "(spark). Replaced if it exists.",
    ),
    alias: str = typer.Option(
        None,
        "--alias",
        "-a",
        help="Score with the version this alias points to (default: champion, the served version).",
    ),
    version: str = typer.Option(None, "--version", "-v", help="Score with this version."),
    id_column: str = typer.Option(
        None,
        "--id-column",
        help="Input column to use as each row's request_id, so labels keyed by it join.",
    ),
    engine: str = typer.Option(
        "duckdb",
        "--engine",
        "-e",
        help="duckdb: read with DuckDB, score in this process. spark: score with "
        "mlflow.pyfunc.spark_udf on a local[2] Spark session.",
    ),
    json_output: bool = JsonOption,
) -> None:
    """Score every row of a file with a registered model version; write prediction events.

    The output has the columns of the event log's predictions table: model, version and
    alias that scored the row, ts (score time), request_id (from --id-column, else
    <batch id>-<row>), prediction, score/probabilities (duckdb engine), and the input row
    as JSON in features. Join it to labels on request_id, or analyse it like live traffic.
    See docs/batch-scoring.md.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from arbiter.cli.output import console, err_console, print_json
    from arbiter.errors import InvalidInputError
    from arbiter.home import Home
    from arbiter.registry import registry_for_home

    if engine not in ("duckdb", "spark"):
        raise InvalidInputError(
            f"--engine must be duckdb or spark, got {engine!r}", field="--engine"
        )
    if alias is not None and version is not None:
        raise InvalidInputError("give --alias or --version, not both", field="--version")
    registry = registry_for_home(Home.at(home).root)
    if engine == "spark":
        from arbiter.scoring.spark import score_spark

        with Progress(
            SpinnerColumn(),
            TextColumn("scoring on Spark"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            progress.add_task("spark", total=None)
            result = score_spark(
                registry, model, input_path, output,
                alias=alias, version=version, id_column=id_column,
            )  # fmt: skip
    else:
        from arbiter.scoring import score_file

        # The bar goes to stderr so that --json output on stdout stays parseable.
        with Progress(
            TextColumn("[bold]score[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=json_output,
        ) as progress:
            task = progress.add_task("score", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = score_file(
                registry, model, Path(input_path), output,
                alias=alias, version=version, id_column=id_column, on_progress=on_progress,
            )  # fmt: skip
    if json_output:
        print_json(result.to_dict())
        return
    via = f"@{result.alias} = " if result.alias else ""
    console.print(
        f"scored {result.n_rows} rows with [bold]{model}[/bold] {via}v{result.version} "
        f"on {result.engine} in {result.duration_s:.1f} s ({result.rows_per_s:,.0f} rows/s)",
        highlight=False,
    )
    console.print(f"wrote {result.output} (batch id {result.batch_id})", highlight=False)
