"""In-memory event logs for the metric engine's tests: served rows and outcome events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from arbiter.config import ModelConfig
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA, TS
from arbiter.events.views import connect_tables

T0_US = 1_790_000_000_000_000  # 2026-09-21
DAY_US = 86_400 * 1_000_000


def predictions_table(
    unit_id: np.ndarray,
    arm: np.ndarray,
    ts_us: np.ndarray,
    *,
    model: str = "m",
    experiment: str | np.ndarray = "exp",
    prediction: np.ndarray | None = None,
) -> pa.Table:
    """Served, unforced A/B rows (one per element)."""
    n = len(unit_id)
    arm = np.asarray(arm).astype(str)
    cols: dict[str, Any] = {
        "request_id": pa.array(np.char.add("r", np.arange(n).astype(str))),
        "row_index": pa.array(np.zeros(n, dtype=np.int32)),
        "ts": pa.array(np.asarray(ts_us, dtype=np.int64)).cast(TS),
        "model": pa.array(np.full(n, model)),
        "experiment": pa.array(np.asarray(experiment).astype(str))
        if np.ndim(experiment)
        else pa.array(np.full(n, experiment)),
        "strategy": pa.array(np.full(n, "ab")),
        "unit_id": pa.array(np.asarray(unit_id).astype(str)),
        "unit_random": pa.array(np.zeros(n, dtype=bool)),
        "arm": pa.array(arm),
        "role": pa.array(np.full(n, "served")),
        "alias": pa.array(arm),
        "version": pa.array(np.full(n, "1")),
        "prediction": None if prediction is None else pa.array(np.asarray(prediction).astype(str)),
        "latency_ms": pa.array(np.full(n, 1.0)),
        "protocol": pa.array(np.full(n, "arbiter")),
        "forced": pa.array(np.zeros(n, dtype=bool)),
    }
    arrays = [
        pa.nulls(n, f.type) if cols.get(f.name) is None else cols[f.name].cast(f.type)
        for f in PREDICTIONS_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA)


def outcomes_table(
    unit_id: np.ndarray, event: np.ndarray, value: np.ndarray, ts_us: np.ndarray
) -> pa.Table:
    n = len(unit_id)
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(unit_id).astype(str), pa.string()),
            pa.array(np.asarray(event).astype(str), pa.string()),
            pa.array(np.asarray(value, dtype=float), pa.float64()),
            pa.array(np.asarray(ts_us, dtype=np.int64), pa.int64()).cast(TS),
            pa.nulls(n, pa.string()),
        ],
        schema=OUTCOMES_SCHEMA,
    )


def feedback_table(request_id: list[str], label: list[str], ts_us: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(request_id, pa.string()),
            pa.array([0] * len(request_id), pa.int32()),
            pa.array(np.asarray(ts_us, dtype=np.int64), pa.int64()).cast(TS),
            pa.array(label, pa.string()),
            pa.array([float(v) for v in label], pa.float64()),
        ],
        schema=FEEDBACK_SCHEMA,
    )


def connect(predictions: pa.Table, outcomes: pa.Table, feedback: pa.Table | None = None) -> Any:
    return connect_tables(
        predictions, FEEDBACK_SCHEMA.empty_table() if feedback is None else feedback, outcomes
    )


def model_config(metrics: dict[str, Any], **decision: Any) -> ModelConfig:
    return ModelConfig.model_validate({"metrics": metrics, "decision": decision})


def swap(con: Any, predictions: pa.Table, outcomes: pa.Table) -> None:
    """Replace the log behind a :func:`connect` connection (simulations: no reconnect per run).

    The views read the tables :func:`arbiter.events.views.connect_tables` registered by name,
    so registering new ones under the same names swaps the data.
    """
    con.register("_predictions_table", predictions)
    con.register("_outcomes_table", outcomes)
