"""Turns one scored request into event-log columns.

Shared by the HTTP gateway and the in-process API, so both log exactly the same rows. Builds
columns (lists of plain values), not per-row objects: buffered events then hold no container
objects the garbage collector must trace, which keeps full collections rare under load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from arbiter.events.schema import PREDICTION_COLUMNS, canonical_label


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What is common to every row a request logs."""

    request_id: str
    ts_us: int  # arrival time, microseconds since the Unix epoch (UTC)
    model: str
    experiment: str
    strategy: str
    unit_id: str | None
    unit_random: bool
    arm: str
    protocol: str
    forced: bool = False


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def encode_features(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One JSON text per input row."""
    return [
        orjson.dumps(row, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        for row in rows
    ]


def prediction_columns(
    ctx: RequestContext,
    *,
    role: str,
    alias: str,
    version: str,
    features_json: Sequence[str],
    predictions: Sequence[Any] | None,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    latency_ms: float,
    error: str | None = None,
    impression: str | None = None,
) -> dict[str, list[Any]]:
    """Columns for the rows one model produced for one request (one row per input row)."""
    n = len(features_json)
    pred_text: list[str | None] = [None] * n
    pred_num: list[float | None] = [None] * n
    if predictions is not None:
        for i, value in enumerate(predictions[:n]):
            text, number = canonical_label(value)
            pred_text[i] = text
            pred_num[i] = number
    score: list[float | None] = [None] * n
    confidence: list[float | None] = [None] * n
    probabilities: list[str | None] = [None] * n
    if proba is not None and classes is not None and len(proba) == n:
        labels = [canonical_label(c)[0] for c in classes]
        confidence = proba.max(axis=1).tolist()
        if len(labels) == 2:
            score = proba[:, 1].tolist()
        probabilities = [
            orjson.dumps(dict(zip(labels, row, strict=True))).decode() for row in proba.tolist()
        ]
    columns: dict[str, list[Any]] = {
        "request_id": [ctx.request_id] * n,
        "row_index": list(range(n)),
        "ts": [ctx.ts_us] * n,
        "model": [ctx.model] * n,
        "experiment": [ctx.experiment] * n,
        "strategy": [ctx.strategy] * n,
        "unit_id": [ctx.unit_id] * n,
        "unit_random": [ctx.unit_random] * n,
        "arm": [ctx.arm] * n,
        "role": [role] * n,
        "alias": [alias] * n,
        "version": [version] * n,
        "prediction": pred_text,
        "prediction_num": pred_num,
        "score": score,
        "confidence": confidence,
        "probabilities": probabilities,
        "latency_ms": [latency_ms] * n,
        "error": [error] * n,
        "features": list(features_json),
        "protocol": [ctx.protocol] * n,
        "forced": [ctx.forced] * n,
        "impression": [impression] * n,
    }
    assert tuple(columns) == PREDICTION_COLUMNS, "prediction_columns out of step with the schema"
    return columns


__all__ = ["RequestContext", "encode_features", "prediction_columns"]
