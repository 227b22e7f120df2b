"""The current window of served traffic, read from the event log (I/O shell).

Features are stored as one JSON text per row; DuckDB parses them in SQL (``json_transform``
into a struct of the profile's columns), vectorised: a million rows of 20 features take about
2 s and no Python code runs per row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope

if TYPE_CHECKING:
    import duckdb
    import pandas as pd


@dataclass(frozen=True)
class Window:
    """Served rows of one model in a window.

    Attributes
    ----------
    features : pandas.DataFrame
        One column per requested feature (float for numeric, text for categorical; missing
        keys are null).
    scores, predictions : pandas.Series
        The model's score (``score``, else ``prediction_num``) and label text, on rows served
        by ``version`` when one was given (null elsewhere, dropped by the drift check).
    start, end : datetime or None
        Time span of the rows read.
    """

    features: pd.DataFrame
    scores: pd.Series
    predictions: pd.Series
    start: datetime | None
    end: datetime | None

    @property
    def n(self) -> int:
        return len(self.features)


def read_window(
    con: duckdb.DuckDBPyConnection,
    model: str,
    columns: Mapping[str, str],
    *,
    window: timedelta | None = None,
    last: int | None = None,
    version: str | None = None,
    now: datetime | None = None,
) -> Window:
    """Read served, successful, unforced predictions of ``model``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From ``EventStore(home).connect()``.
    model : str
    columns : mapping of feature name to "numeric", "categorical" or "text" (text and
        categorical columns are read as VARCHAR; JSON null or an absent key is null)
    window : timedelta, optional
        Rows with ``ts >= now - window``.
    last : int, optional
        The most recent ``last`` rows (after the window filter, if both are given).
    version : str, optional
        Only rows served by this version contribute scores/predictions (features come from
        every served row: the inputs do not depend on the model that answered).
    now : datetime, optional
        End of the window and of ``last`` (default: the current time, UTC).

    Returns
    -------
    Window
    """
    if last is not None and last < 1:
        raise InvalidInputError(f"--last must be >= 1, got {last!r}", field="last")
    # json_transform parses each JSON text once into a struct of the wanted columns (values
    # that do not convert become NULL); extracting the keys one by one would parse it once
    # per column (18 s instead of 2.3 s for 1M rows × 20 features).
    spec = json.dumps(
        {name: "DOUBLE" if kind == "numeric" else "VARCHAR" for name, kind in columns.items()}
    )
    # The structure is a bound parameter, which DuckDB folds into the constant it needs.
    select = ["unnest(json_transform(features, $spec))"] if columns else []
    params: dict[str, Any] = {"spec": spec} if columns else {}
    if version is None:
        select += ["COALESCE(score, prediction_num) AS __score", "prediction AS __prediction"]
    else:
        select += [
            "CASE WHEN version = $version THEN COALESCE(score, prediction_num) END AS __score",
            "CASE WHEN version = $version THEN prediction END AS __prediction",
        ]
        params["version"] = version
    scope = Scope(
        model,
        start=None if window is None else (now or datetime.now(UTC)) - window,
        end=now,  # also bounds ``last``: the rows as they stood at ``now``
        last=last,
    )
    params.update(scope.params)
    sql = f"SELECT {', '.join(select) or '1 AS __none'}, ts AS __ts FROM served"
    sql += f" WHERE {scope.where()} AND error IS NULL {scope.newest()}"
    # Through Arrow: the DB-API ``.df()`` path makes an extra copy (and warns under pandas 3).
    frame = con.sql(sql, params=params).to_arrow_table().to_pandas()
    ts, scores, predictions = frame["__ts"], frame["__score"], frame["__prediction"]
    frame = frame[list(columns)]
    start = ts.min() if len(ts) else None
    end_ts = ts.max() if len(ts) else None
    return Window(
        frame,
        scores,
        predictions,
        None if start is None else start.to_pydatetime(),
        None if end_ts is None else end_ts.to_pydatetime(),
    )


__all__ = ["Window", "read_window"]
