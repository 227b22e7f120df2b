"""Fixtures for canary tests: tiny plans, a fast-polling gateway, traffic helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

TOKEN = "canary-test-token"


def canary_model(
    challenger_alias: str,
    *,
    stages: list[dict[str, Any]] | None = None,
    analysis_interval_s: float = 0.5,
    require_primary_sample: bool = False,
    on_rollback: str = "archive",
    max_prediction_psi: float | None = 0.25,
    min_sample_per_arm: int = 1000,
) -> dict[str, Any]:
    """A ``models.<name>`` section running a canary with a two-stage plan (20 % then 100 %)."""
    return {
        "experiment": {
            "strategy": "canary",
            "challenger_alias": challenger_alias,
            "canary": {
                "stages": stages
                or [
                    {"share": 0.2, "min_requests": 20, "min_duration_s": 0.0},
                    {"share": 1.0, "min_requests": 20, "min_duration_s": 0.0},
                ],
                "analysis_interval_s": analysis_interval_s,
                "require_primary_sample": require_primary_sample,
                "on_rollback": on_rollback,
                "max_prediction_psi": max_prediction_psi,
            },
        },
        "decision": {"min_sample_per_arm": min_sample_per_arm},
    }


#: Sections that make a gateway react fast: poll the registry every 0.2 s, flush events often.
FAST = {"registry": {"poll_interval_s": 0.2}, "events": {"flush_interval_s": 0.1}}


def send(
    client: httpx.Client, model: str, rows: list[dict[str, float]], start: int, n: int
) -> list[dict[str, Any]]:
    """``n`` predictions, one unit each; returns the JSON answers (errors included)."""
    out = []
    for i in range(start, start + n):
        r = client.post(
            f"/models/{model}/predict",
            json={"unit_id": f"u{i}", "features": rows[i % len(rows)]},
        )
        out.append({"status": r.status_code, **r.json()})
    return out


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


def write_events(root: Any, columns: dict[str, Any], labels: Any = None) -> None:
    """Write prediction rows (numpy/list columns; the rest as the gateway logs them) and the
    labels of rows whose label is not None, as Parquet segments of the home's event store."""
    import numpy as np
    import pyarrow as pa

    from arbiter.events import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA, EventStore
    from arbiter.events.segments import write_segment

    store = EventStore(root)
    n = len(columns["request_id"])
    full: dict[str, Any] = {
        "row_index": [0] * n,
        "unit_random": [False] * n,
        "role": ["served"] * n,
        "protocol": ["arbiter"] * n,
        "forced": [False] * n,
        "strategy": ["canary"] * n,
        "features": ['{"x": 1.0}'] * n,
        **columns,
    }
    arrays = []
    for f in PREDICTIONS_SCHEMA:
        value = full.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
            continue
        values = [v.item() if hasattr(v, "item") else v for v in value]
        values = [None if isinstance(v, float) and np.isnan(v) else v for v in values]
        arrays.append(pa.array(values, f.type))
    write_segment(store.predictions_dir, pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA))
    if labels is not None:
        keep = [i for i, v in enumerate(labels) if v is not None]
        table = pa.table(
            {
                "request_id": pa.array([full["request_id"][i] for i in keep], pa.string()),
                "row_index": pa.array([0] * len(keep), pa.int32()),
                "ts": pa.array(
                    [int(full["ts"][i]) + 1000 for i in keep], FEEDBACK_SCHEMA.field("ts").type
                ),
                "label": pa.array([str(labels[i]) for i in keep], pa.string()),
                "label_num": pa.array([float(labels[i]) for i in keep], pa.float64()),
            },
            schema=FEEDBACK_SCHEMA,
        )
        write_segment(store.feedback_dir, table)
