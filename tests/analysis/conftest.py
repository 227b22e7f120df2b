"""Synthetic event logs with known truth, written as Parquet segments (no server, no MLflow).

:func:`write_log` takes numpy columns for the ``predictions`` table, fills the rest with the
values the gateway would log, and writes one segment; labels go to the ``feedback`` table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from arbiter.events import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA, EventStore
from arbiter.events.segments import write_segment

T0_US = 1_790_000_000_000_000  # 2026-09-21, an arbitrary fixed start


def write_log(
    store: EventStore,
    columns: dict[str, Any],
    labels: np.ndarray | None = None,
) -> None:
    """Write prediction rows (plus labels for rows whose label is not None) as segments."""
    n = len(columns["request_id"])
    full: dict[str, Any] = {
        "row_index": np.zeros(n, dtype=np.int32),
        "ts": T0_US + np.arange(n, dtype=np.int64) * 1_000_000,
        "model": ["m"] * n,
        "unit_random": [False] * n,
        "role": ["served"] * n,
        "alias": None,
        "version": None,
        "protocol": ["arbiter"] * n,
        "forced": [False] * n,
        "features": ['{"x": 1.0}'] * n,
        "latency_ms": np.full(n, 2.0),
        **columns,
    }
    if full["alias"] is None:
        full["alias"] = np.where(np.asarray(full["arm"]) == "challenger", "challenger", "champion")
    if full["version"] is None:
        full["version"] = np.where(np.asarray(full["alias"]) == "challenger", "2", "1")
    arrays = []
    for f in PREDICTIONS_SCHEMA:
        value = full.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            values = np.asarray(value, dtype=object).tolist()
            # pandas' string dtype turns None into NaN; the log stores null.
            values = [None if isinstance(v, float) and np.isnan(v) else v for v in values]
            arrays.append(pa.array(values, f.type))
    write_segment(store.predictions_dir, pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA))
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        keep = np.array([v is not None for v in labels])
        served = np.asarray(full["role"]) == "served"
        rows = keep & served
        k = int(rows.sum())
        text = [str(v) for v in labels[rows]]
        table = pa.table(
            {
                "request_id": pa.array(np.asarray(full["request_id"])[rows].tolist(), pa.string()),
                "row_index": pa.array(np.asarray(full["row_index"])[rows].tolist(), pa.int32()),
                "ts": pa.array(
                    (np.asarray(full["ts"])[rows] + 1000).tolist(), FEEDBACK_SCHEMA.field("ts").type
                ),
                "label": pa.array(text, pa.string()),
                "label_num": pa.array([float(t) for t in text], pa.float64()),
            },
            schema=FEEDBACK_SCHEMA,
        )
        assert table.num_rows == k
        write_segment(store.feedback_dir, table)


def ab_columns(
    rng: np.random.Generator,
    n_champion: int,
    n_challenger: int,
    acc_champion: float,
    acc_challenger: float,
    *,
    experiment: str = "m-ab",
) -> tuple[dict[str, Any], np.ndarray]:
    """An A/B log of a binary classifier: one request per unit, every row labelled."""
    n = n_champion + n_challenger
    arm = np.array(["champion"] * n_champion + ["challenger"] * n_challenger)
    rng.shuffle(arm)
    y = rng.integers(0, 2, n)
    acc = np.where(arm == "challenger", acc_challenger, acc_champion)
    correct = rng.random(n) < acc
    pred = np.where(correct, y, 1 - y)
    columns = {
        "request_id": [f"r{i}" for i in range(n)],
        "experiment": [experiment] * n,
        "strategy": ["ab"] * n,
        "unit_id": [f"u{i}" for i in range(n)],
        "arm": arm,
        "prediction": pred.astype(str),
        "prediction_num": pred.astype(float),
        "score": np.where(pred == 1, 0.8, 0.2),
        "confidence": np.full(n, 0.8),
        "latency_ms": rng.gamma(4.0, 0.5, n),
    }
    return columns, y


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "home")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


@pytest.fixture
def ab_log(store: EventStore, rng: np.random.Generator) -> Callable[..., EventStore]:
    def make(*args: Any, **kwargs: Any) -> EventStore:
        columns, y = ab_columns(rng, *args, **kwargs)
        write_log(store, columns, y)
        return store

    return make
