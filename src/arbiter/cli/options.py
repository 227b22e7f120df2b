"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

HomeOption = typer.Option(
    Path("./arbiter-home"),
    "--home",
    help="The arbiter home folder (config, embedded MLflow store, event log).",
    envvar="ARBITER_HOME",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
ModelOption = typer.Option(..., "--model", "-m", help="Registered model name.")
EngineOption = typer.Option(
    None,
    "--engine",
    help="Query engine: duckdb (embedded, default), spark (Spark SQL over the Parquet log) or "
    "postgres (the events.url PostgreSQL store). Default: analysis.engine in arbiter.yaml.",
)
