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
    experiment: str = "exp",
    prediction: np.ndarray | None = None,
) -> pa.Table:
    """Served, unforced A/B rows (one per element)."""
    n = len(unit_id)
    cols: dict[str, Any] = {
        "request_id": [f"r{i}" for i in range(n)],
        "row_index": np.zeros(n, dtype=np.int32),
        "ts": np.asarray(ts_us, dtype=np.int64),
        "model": [model] * n,
        "experiment": [experiment] * n,
        "strategy": ["ab"] * n,
        "unit_id": [str(u) for u in unit_id],
        "unit_random": [False] * n,
        "arm": list(arm),
        "role": ["served"] * n,
        "alias": list(arm),
        "version": ["1"] * n,
        "prediction": None if prediction is None else [str(p) for p in prediction],
        "latency_ms": np.full(n, 1.0),
        "protocol": ["arbiter"] * n,
        "forced": [False] * n,
    }
    arrays = []
    for f in PREDICTIONS_SCHEMA:
        value = cols.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif f.name == "ts":
            arrays.append(pa.array(value, pa.int64()).cast(TS))
        else:
            arrays.append(pa.array(np.asarray(value).tolist(), f.type))
    return pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA)


def outcomes_table(
    unit_id: np.ndarray, event: np.ndarray, value: np.ndarray, ts_us: np.ndarray
) -> pa.Table:
    n = len(unit_id)
    return pa.Table.from_arrays(
        [
            pa.array([str(u) for u in unit_id], pa.string()),
            pa.array(np.asarray(event).tolist(), pa.string()),
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
