"""Shared by test_regression.py and test_multi_output.py: a registry built once per module,
a gateway on a copy of it, waiting on the gateway's metrics, and reading the log back."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from arbiter.events import EventStore
from arbiter.home import Home


def build_registry(root: Path, log: Callable[[Any], None]) -> Path:
    """A home at ``root`` whose registry ``log(registry)`` filled; returns ``root``."""
    from arbiter.registry import registry_for_home

    log(registry_for_home(root))
    return root


def start_on(running: Any, tmp_path: Path, template: Path, models: dict[str, Any]) -> Any:
    """A real gateway on a copy of ``template``'s registry (``running`` fixture)."""
    home = Home.at(tmp_path / "home", create=True)
    shutil.copy(template / "mlflow.db", home.mlflow_db)
    return running(models)


def metric_total(client: httpx.Client, prefix: str) -> float:
    """The sum of the /metrics samples whose line starts with ``prefix``."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check`` until it holds (evidence, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def logged(home: Home) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The predictions and feedback tables as DataFrames (read after the server stopped)."""
    with EventStore(home.root).connect() as con:
        predictions = con.execute("SELECT * FROM predictions").fetchdf()
        feedback = con.execute("SELECT * FROM feedback").fetchdf()
    return predictions, feedback


def v2_inputs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An OIP v2 JSON body with one FP64 tensor per column."""
    columns = list(rows[0])
    return {
        "inputs": [
            {
                "name": c,
                "datatype": "FP64",
                "shape": [len(rows)],
                "data": [float(r[c]) for r in rows],
            }
            for c in columns
        ]
    }
