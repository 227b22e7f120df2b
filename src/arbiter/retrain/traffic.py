"""Recent labelled production traffic as a training set, read from the event log.

Rows come from the ``labeled`` view: served predictions (``role = 'served'``, no error, not
forced by a tester header) of one model that received a label. The ``features`` JSON is
expanded into columns by DuckDB in one query, so no Python loop touches the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.durations import parse_window
from arbiter.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from arbiter.events import EventStore

_NUMERIC_JSON = {"UBIGINT", "BIGINT", "DOUBLE", "BOOLEAN", "INTEGER", "FLOAT", "HUGEINT"}

_FILTER = """
    model = ? AND role = 'served' AND error IS NULL AND NOT coalesce(forced, false)
    AND label IS NOT NULL AND features IS NOT NULL
"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_path(name: str) -> str:
    # A JSON path string literal for key `name`, quoted so dots and spaces are literal.
    key = name.replace("\\", "\\\\").replace('"', '\\"')
    return "'" + f'$."{key}"'.replace("'", "''") + "'"


def _feature_types(con: Any, where: str, args: list[Any]) -> dict[str, str]:
    """Key -> JSON type over the selected rows (``json_group_structure``), in first-seen order."""
    row = con.execute(
        f"SELECT json_group_structure(features::JSON) FROM labeled WHERE {where}", args
    ).fetchone()
    if row is None or row[0] is None:
        return {}
    import json

    structure = json.loads(row[0])
    if not isinstance(structure, dict):
        raise InvalidInputError("features in the event log are not JSON objects", field="features")
    return {str(k): str(v) for k, v in structure.items()}


def labelled_traffic(
    store: EventStore,
    model: str,
    *,
    window: timedelta | str | None = None,
    last: int | None = None,
    features: Sequence[str] | None = None,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and labels of the served, labelled predictions of ``model``.

    Parameters
    ----------
    store : EventStore
        The home's event log.
    model : str
        Registered model name (the endpoint the rows were sent to).
    window : timedelta or str, optional
        Only rows whose request arrived within this period before ``now``; a string is a
        window as :func:`arbiter.durations.parse_window` reads it (``"7d"``, or
        ``"5000 rows"``: the most recent rows, as ``last``).
    last : int, optional
        Only the most recent ``last`` rows (after ``window``, if both are given).
    features : sequence of str, optional
        Columns to extract, in order; missing keys become NaN. Default: every key seen in the
        selected rows, numeric JSON values as float64 and others as strings.
    now : datetime, optional
        End of ``window`` (default: the current time, UTC).

    Returns
    -------
    X : pandas.DataFrame
        One column per feature, oldest row first.
    y : numpy.ndarray
        The labels: float64 when every label is numeric, else strings.
    """
    import pandas as pd

    if last is not None and last < 1:
        raise InvalidInputError(f"last must be >= 1, got {last}", field="last")
    span = window
    if isinstance(window, str):
        spec = parse_window(window, field="window")
        span = spec.period
        if spec.rows is not None:
            last = spec.rows if last is None else min(last, spec.rows)
    where, args = _FILTER, [model]
    if span is not None:
        where += " AND ts >= ?"
        args.append((now or datetime.now(UTC)) - span)
    with store.connect() as con:
        types = _feature_types(con, where, args)
        names = list(features) if features is not None else list(types)
        columns = []
        for i, name in enumerate(names):
            path = _json_path(name)
            if features is not None or types.get(name, "DOUBLE") in _NUMERIC_JSON:
                expr = f"TRY_CAST(json_extract(features, {path}) AS DOUBLE)"
            else:
                expr = f"json_extract_string(features, {path})"
            columns.append(f"{expr} AS f{i}")
        select = ", ".join([*columns, "label", "label_num"])
        limit = f" LIMIT {int(last)}" if last is not None else ""
        # Newest first for LIMIT, then back to arrival order; (ts, request_id, row_index) makes
        # the order total, so the same log always gives the same frame.
        query = f"""
            SELECT * EXCLUDE (ts, request_id, row_index) FROM (
                SELECT ts, request_id, row_index, {select} FROM labeled WHERE {where}
                ORDER BY ts DESC, request_id DESC, row_index DESC{limit}
            ) ORDER BY ts, request_id, row_index
        """
        frame = con.execute(query, args).df()
    label_num = frame.pop("label_num")
    label = frame.pop("label")
    frame.columns = names
    frame = frame.reset_index(drop=True)
    numeric = not label_num.isna().any()  # also true of no rows: y is then empty int64
    y = label_num.to_numpy(np.float64) if numeric else label.to_numpy(dtype=object).astype(str)
    if numeric and np.all(np.mod(y, 1.0) == 0.0):
        y = y.astype(np.int64)  # integral labels (0/1) stay integers, as in the training data
    return pd.DataFrame(frame), y


__all__ = ["labelled_traffic"]
