"""Recent labelled production traffic as a training set, read from the event log.

Rows come from the ``labeled`` view of :mod:`arbiter.events.query` (forced rows left out):
served predictions (``role = 'served'``, no error) of one model that received a label,
narrowed to a window by a :class:`~arbiter.events.query.Scope`. The ``features`` JSON is
expanded into columns by DuckDB in one query, so no Python loop touches the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.durations import parse_window
from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope

if TYPE_CHECKING:
    import pandas as pd

    from arbiter.events import EventStore

_NUMERIC_JSON = {"UBIGINT", "BIGINT", "DOUBLE", "BOOLEAN", "INTEGER", "FLOAT", "HUGEINT"}

_FILTER = "role = 'served' AND error IS NULL AND label IS NOT NULL AND features IS NOT NULL"


def _json_path(name: str) -> str:
    # The JSON path of key `name` (bound as a parameter), quoted so dots and spaces are literal.
    key = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'$."{key}"'


def _feature_types(con: Any, scope: Scope) -> dict[str, str]:
    """Key -> JSON type over the selected rows (``json_group_structure``), in first-seen order.

    Every row of the time window counts, not only the ``last`` ones.
    """
    scope = replace(scope, last=None)
    row = con.execute(
        "SELECT json_group_structure(features::JSON) FROM labeled "
        f"WHERE {scope.where()} AND {_FILTER}",
        scope.params,
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
        selected rows. Keys whose JSON values are all numbers become float64 columns, others
        strings (categories, text).
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
    start = None if span is None else (now or datetime.now(UTC)) - span
    scope = Scope(model, start=start, last=last)
    with store.connect() as con:
        types = _feature_types(con, scope)
        names = list(features) if features is not None else list(types)
        columns = []
        paths: dict[str, str] = {}
        for i, name in enumerate(names):
            paths[f"path{i}"] = _json_path(name)  # $path0, $path1, ...: generated names
            # A key never seen is all-missing (NaN); strings stay strings (categories, text).
            if types.get(name, "DOUBLE") in _NUMERIC_JSON:
                expr = f"TRY_CAST(json_extract(features, $path{i}) AS DOUBLE)"
            else:
                expr = f"json_extract_string(features, $path{i})"
            columns.append(f"{expr} AS f{i}")
        select = ", ".join([*columns, "label", "label_num"])
        # scope.newest(): newest first for LIMIT $last; then back to arrival order.
        # (ts, request_id, row_index) makes the order total, so the same log always gives the
        # same frame.
        query = f"""
            SELECT * EXCLUDE (ts, request_id, row_index) FROM (
                SELECT ts, request_id, row_index, {select} FROM labeled
                WHERE {scope.where()} AND {_FILTER}
                {scope.newest()}
            ) ORDER BY ts, request_id, row_index
        """
        frame = con.execute(query, {**scope.params, **paths}).df()
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
