"""The columns of arbiter's event log.

Two tables:

``predictions``
    One row per model execution per input row. A request scored by the champion and shadowed by
    the challenger yields two rows per input row (``role`` = ``served`` and ``shadow``). A batch
    request of N rows yields N rows per model, told apart by ``row_index``.
``feedback``
    Ground truth that arrived later, keyed by ``(request_id, row_index)``.
``outcomes``
    Business events of a unit (a purchase, a session, a chargeback), keyed by ``unit_id`` and
    time, not by request: they are attributed to the arm a unit was exposed to at analysis
    time (:mod:`arbiter.analysis.metrics`), from its first exposure on.

Values are canonicalised by :func:`canonical_label` so a prediction ``1`` and a label ``1.0``
compare equal in SQL (both become ``"1"``).
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

PREDICTIONS_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),  # one id per HTTP request (or in-process call)
        ("row_index", pa.int32()),  # position of the input row in the request's batch
        ("ts", TS),  # when the request arrived, UTC, microseconds
        ("model", pa.string()),  # registered model name (the endpoint)
        ("experiment", pa.string()),  # experiment name from the home config
        ("strategy", pa.string()),  # "none" | "shadow" | "ab" | ...
        ("unit_id", pa.string()),  # the randomisation unit (user id); null when absent
        ("unit_random", pa.bool_()),  # true when no unit id came and the arm was drawn at random
        ("arm", pa.string()),  # the arm that answered the caller (champion, challenger, ...)
        ("role", pa.string()),  # "served" (its answer went back) or "shadow" (logged only)
        ("alias", pa.string()),  # registry alias of the model that ran (champion, challenger)
        ("version", pa.string()),  # registry version of the model that ran
        ("prediction", pa.string()),  # canonical text of the prediction (see canonical_label)
        ("prediction_num", pa.float64()),  # the prediction as a number, when it is one
        ("score", pa.float64()),  # P(positive class) for binary classifiers, else null
        ("confidence", pa.float64()),  # max class probability, else null
        ("probabilities", pa.string()),  # JSON object {class: probability}, else null
        ("latency_ms", pa.float64()),  # model time for the whole request (not per row)
        ("error", pa.string()),  # error message when this model failed, else null
        ("features", pa.string()),  # JSON object of the input row
        ("protocol", pa.string()),  # "arbiter" | "mlflow" | "v2" | "inprocess"
        ("forced", pa.bool_()),  # arm forced by a tester header: excluded from analysis
        # Interleaved rankings (/rank, strategy interleave): JSON {"method", "a_first", "k",
        # "items", "teams", "ranking_a", "ranking_b"}, everything credit needs to be recomputed
        # from the log alone; null for every other row. A column of its own rather than packed
        # into `prediction`: the merged list and its teams belong to neither ranker's row, and a
        # nullable column costs old segments nothing (views read them with union_by_name).
        ("impression", pa.string()),
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row_index", pa.int32()),
        ("ts", TS),  # when the label arrived
        ("label", pa.string()),  # canonical text of the label
        ("label_num", pa.float64()),  # the label as a number, when it is one
    ]
)

OUTCOMES_SCHEMA = pa.schema(
    [
        ("unit_id", pa.string()),  # the unit the event belongs to (the experiment's unit)
        ("event", pa.string()),  # event name, e.g. "purchase"; metrics select on it
        ("value", pa.float64()),  # amount (revenue, count...); 1.0 when the caller sent none
        ("ts", TS),  # when the event happened (attribution windows use it)
        ("request_id", pa.string()),  # optional: the prediction request that led to it
    ]
)

PREDICTION_COLUMNS: tuple[str, ...] = tuple(PREDICTIONS_SCHEMA.names)
FEEDBACK_COLUMNS: tuple[str, ...] = tuple(FEEDBACK_SCHEMA.names)
OUTCOME_COLUMNS: tuple[str, ...] = tuple(OUTCOMES_SCHEMA.names)


def canonical_label(value: Any) -> tuple[str | None, float | None]:
    """Return ``(text, number)`` for a prediction or label.

    Integral numbers print without a decimal point (``1.0`` -> ``"1"``), booleans as ``"1"``/``"0"``
    so that ``True`` matches a label of ``1``; strings stay as they are. ``number`` is ``None``
    for non-numeric values.
    """
    if value is None:
        return None, None
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return ("1" if value else "0"), float(value)
    if isinstance(value, int):
        return str(value), float(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value)), value
        return repr(value), value
    text = str(value)
    return text, None
