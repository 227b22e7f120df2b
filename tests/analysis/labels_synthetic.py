"""Synthetic labelled logs for the label-metric tests: in-memory tables, known truth.

:func:`classifier_log` draws units that send several rows each, a binary (or multi-class)
classifier's probabilities, predictions at a threshold and labels, with some rows unlabelled,
some without probabilities and some failed, and returns the DuckDB connection (the views of
:func:`arbiter.events.views.connect_tables`) plus the rows as numpy arrays for the references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from arbiter.analysis.label_metrics import label_row_sql
from arbiter.events.query import Scope
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables
from arbiter.metric_definitions import LabelMetric
from arbiter.stats.sufficient import RatioStatistic

T0_US = 1_790_000_000_000_000
SCOPE = Scope("fraud", "fraud-ab")


@dataclass
class Rows:
    """The rows of one log, aligned: what the references compute on."""

    arm: np.ndarray
    unit: np.ndarray
    label: np.ndarray  # canonical text, None when unlabelled
    prediction: np.ndarray  # canonical text, None when the model failed
    proba: np.ndarray  # (n, k) class probabilities
    classes: list[str]
    has_proba: np.ndarray  # whether the row logged probabilities
    role: np.ndarray


def table(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    n = max(len(v) for v in columns.values())
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        empty = value is None or len(value) == 0
        arrays.append(pa.nulls(n, f.type) if empty else pa.array(list(value), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def classifier_log(
    rng: np.random.Generator,
    *,
    n_units: int = 300,
    rows_per_unit: float = 3.0,
    positive_rate: float = 0.1,
    arms: tuple[str, ...] = ("champion", "challenger"),
    skill: tuple[float, ...] = (1.0, 1.5),
    classes: tuple[str, ...] = ("0", "1"),
    unit_effect: float = 1.0,
    shadow: bool = False,
    missing: bool = True,
    score_only: bool = True,
) -> tuple[duckdb.DuckDBPyConnection, Rows]:
    """A log of ``n_units`` units, each on one arm (or shadowed), with correlated rows.

    A unit's rows share a random effect (``unit_effect``) on the log-odds of the positive
    class, so rows of a unit are correlated and per-unit analysis matters. With ``shadow``,
    every row is served by the champion and also scored by the challenger (role ``shadow``).
    With ``score_only``, half the scored rows of a binary model log ``score`` without
    ``probabilities`` (a log written by another tool; the gateway logs both).
    """
    k = len(classes)
    counts = 1 + rng.poisson(rows_per_unit - 1, n_units)
    unit_arm = rng.integers(0, len(arms), n_units)
    effect = rng.normal(0, unit_effect, n_units)
    unit = np.repeat(np.arange(n_units), counts)
    n = unit.size
    base = np.log(positive_rate / (1 - positive_rate)) + effect[unit]
    binary_y = (rng.random(n) < 1 / (1 + np.exp(-base))).astype(int)
    y = binary_y if k == 2 else rng.integers(0, k, n)
    sides = ["champion", "challenger"] if shadow else [None]
    cols: dict[str, list[Any]] = {c: [] for c in PREDICTIONS_SCHEMA.names}
    out = {"arm": [], "unit": [], "label": [], "prediction": [], "proba": [], "has": [], "role": []}
    labelled = rng.random(n) > (0.1 if missing else 0.0)
    for side in sides:
        arm_ix = unit_arm[unit] if side is None else np.full(n, arms.index(side))
        s = np.asarray(skill)[arm_ix]
        # Scores: informative logits plus noise; probabilities via softmax.
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), y] += s
        if k == 2:
            logits[:, 1] += base  # the model knows the base rate and the unit effect
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        proba = np.clip(proba, 1e-6, 1 - 1e-6)
        proba /= proba.sum(axis=1, keepdims=True)
        # Predict the positive class at a 0.3 threshold for binary, argmax otherwise.
        pred_ix = (proba[:, 1] > 0.3).astype(int) if k == 2 else proba.argmax(axis=1)
        failed = rng.random(n) < (0.03 if missing else 0.0)
        has_proba = (rng.random(n) > (0.05 if missing else 0.0)) & ~failed
        role = "served" if side in (None, "champion") else "shadow"
        for i in range(n):
            cols["request_id"].append(f"r{i}")
            cols["row_index"].append(0)
            cols["ts"].append(T0_US + i * 1_000_000)
            cols["model"].append("fraud")
            cols["experiment"].append("fraud-ab")
            cols["strategy"].append("shadow" if shadow else "ab")
            cols["unit_id"].append(f"u{unit[i]}")
            cols["unit_random"].append(False)
            cols["arm"].append("champion" if shadow else arms[arm_ix[i]])
            cols["role"].append(role)
            cols["prediction"].append(None if failed[i] else classes[pred_ix[i]])
            cols["prediction_num"].append(None)
            cols["score"].append(float(proba[i, 1]) if k == 2 and has_proba[i] else None)
            cols["confidence"].append(float(proba[i].max()) if has_proba[i] else None)
            cols["probabilities"].append(
                orjson.dumps(dict(zip(classes, proba[i].tolist(), strict=True))).decode()
                if has_proba[i] and (k > 2 or i % 2 == 0 or not score_only)
                else None
            )
            cols["error"].append("boom" if failed[i] else None)
            cols["forced"].append(False)
        out["arm"].append(
            np.asarray([arms[j] for j in arm_ix]) if side is None else np.full(n, side)
        )
        out["unit"].append(unit)
        out["label"].append(np.where(labelled, np.asarray(classes)[y], None))
        out["prediction"].append(np.where(failed, None, np.asarray(classes)[pred_ix]))
        out["proba"].append(proba)
        out["has"].append(has_proba)
        out["role"].append(np.full(n, role))
    predictions = table(cols, PREDICTIONS_SCHEMA)
    keep = np.flatnonzero(labelled)
    feedback = table(
        {
            "request_id": [f"r{i}" for i in keep],
            "row_index": [0] * keep.size,
            "ts": [T0_US + int(i) * 1_000_000 + 1000 for i in keep],
            "label": [classes[y[i]] for i in keep],
            "label_num": [None] * keep.size,
        },
        FEEDBACK_SCHEMA,
    )
    rows = Rows(
        arm=np.concatenate(out["arm"]),
        unit=np.concatenate(out["unit"]),
        label=np.concatenate(out["label"]),
        prediction=np.concatenate(out["prediction"]),
        proba=np.concatenate(out["proba"]),
        classes=list(classes),
        has_proba=np.concatenate(out["has"]),
        role=np.concatenate(out["role"]),
    )
    return connect_tables(predictions, feedback), rows


def per_unit_statistics(
    con: duckdb.DuckDBPyConnection, metric: LabelMetric, scope: Scope = SCOPE
) -> dict[str, RatioStatistic]:
    """The metric per served arm, as o2's engine computes it: row SQL summed per unit.

    One GROUP BY unit (per arm), then the sufficient statistics of the ratio: exactly what a
    :class:`RatioStatistic` needs for the delta method.
    """
    num, den, params = label_row_sql(metric)
    rows = con.execute(
        f"""
        SELECT arm, count(*), sum(m), sum(m * m), sum(d), sum(d * d), sum(m * d) FROM (
            SELECT arm, coalesce(unit_id, request_id) AS unit, sum({num}) AS m, sum({den}) AS d
            FROM labeled
            WHERE {scope.where()} AND role = 'served' AND error IS NULL AND label IS NOT NULL
            GROUP BY arm, unit
        ) GROUP BY arm
        """,
        {**scope.params, **params},
    ).fetchall()
    return {r[0]: RatioStatistic(int(r[1]), *(float(v) for v in r[2:])) for r in rows}


def per_unit_sums(
    con: duckdb.DuckDBPyConnection, metric: LabelMetric, arm: str, scope: Scope = SCOPE
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit numerator and denominator sums of one arm (for the unit bootstrap)."""
    num, den, params = label_row_sql(metric)
    data = con.execute(
        f"""
        SELECT sum({num}) AS m, sum({den}) AS d FROM labeled
        WHERE {scope.where()} AND role = 'served' AND error IS NULL AND label IS NOT NULL
          AND arm = $arm
        GROUP BY coalesce(unit_id, request_id)
        """,
        {**scope.params, **params, "arm": arm},
    ).fetchnumpy()
    return np.asarray(data["m"], dtype=float), np.asarray(data["d"], dtype=float)
