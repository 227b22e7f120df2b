"""DuckDB views over the segment files, and counting queries.

:func:`connect` returns an in-memory DuckDB connection with three views:

``predictions``
    Every prediction row (:data:`~arbiter.events.schema.PREDICTIONS_SCHEMA`).
``feedback``
    Every label ever posted (:data:`~arbiter.events.schema.FEEDBACK_SCHEMA`), duplicates included.
``labeled``
    ``predictions`` LEFT JOIN the latest label per ``(request_id, row_index)``, adding ``label``,
    ``label_num`` and ``label_ts`` (null when no label came).

The views read an explicit list of files taken at connect time, not a glob: the list can leave
out segments that compaction has already merged (so nothing is counted twice), and every query
on one connection sees the same snapshot. Connect again to see newer events; connecting is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb
import pyarrow as pa

from arbiter.errors import InvalidInputError
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

Table = Literal["predictions", "feedback"]
TABLES: tuple[Table, ...] = ("predictions", "feedback")

# Latest label wins. Ties on ts (two labels in the same microsecond) go to the one written
# later: later segment name, then later row within the segment.
_LABELED_SQL = """
CREATE VIEW latest_feedback AS
SELECT request_id, row_index, latest.label AS label, latest.label_num AS label_num,
       latest.ts AS label_ts
FROM (
    -- arg_max over a row key is a hash aggregate: about 1.6x faster than the equivalent
    -- row_number() window (5 M labels: 1.0 s against 1.6 s on 2 cores), which must sort.
    SELECT request_id, row_index,
           arg_max({'label': label, 'label_num': label_num, 'ts': ts},
                   (ts, filename, file_row_number)) AS latest
    FROM _feedback_raw
    GROUP BY request_id, row_index
);

CREATE VIEW labeled AS
SELECT p.*, f.label, f.label_num, f.label_ts
FROM predictions AS p
LEFT JOIN latest_feedback AS f
    ON p.request_id = f.request_id AND p.row_index = f.row_index;
"""


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _source_sql(name: str, files: Sequence[Path], *, with_file_columns: bool) -> str:
    if not files:
        return f"SELECT * FROM _empty_{name}"
    listing = ", ".join(_sql_string(str(f)) for f in files)
    extra = ", filename = true, file_row_number = true" if with_file_columns else ""
    # union_by_name: segments written before a column was added simply lack it.
    return f"SELECT * FROM read_parquet([{listing}], union_by_name = true{extra})"


def connect(
    prediction_files: Sequence[Path],
    feedback_files: Sequence[Path],
    *,
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with the ``predictions``, ``feedback`` and ``labeled`` views.

    Parameters
    ----------
    prediction_files, feedback_files : sequence of Path
        Live segment files of each table (see :func:`~arbiter.events.segments.list_segments`).
        An empty list gives a view with the table's columns and no rows.
    database : str, default ":memory:"
        DuckDB database for the connection; views are created in it.

    Returns
    -------
    duckdb.DuckDBPyConnection
        Time zone set to UTC so exported timestamps do not depend on the host.
    """
    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")
    # Empty tables carry the exact schema, so views exist with the right types before the
    # first event is written.
    con.register("_empty_predictions", PREDICTIONS_SCHEMA.empty_table())
    empty_feedback = FEEDBACK_SCHEMA.empty_table()
    empty_feedback = empty_feedback.append_column("filename", pa.array([], pa.string()))
    empty_feedback = empty_feedback.append_column("file_row_number", pa.array([], pa.int64()))
    con.register("_empty_feedback", empty_feedback)

    con.execute(
        "CREATE VIEW predictions AS "
        + _source_sql("predictions", prediction_files, with_file_columns=False)
    )
    con.execute(
        "CREATE VIEW _feedback_raw AS "
        + _source_sql("feedback", feedback_files, with_file_columns=True)
    )
    con.execute(
        "CREATE VIEW feedback AS SELECT * EXCLUDE (filename, file_row_number) FROM _feedback_raw"
    )
    con.execute(_LABELED_SQL)
    return con


def count_events(
    store: EventStore,
    table: Table = "predictions",
    *,
    model: str | None = None,
) -> int:
    """Count the rows of one table, optionally for one model.

    Parameters
    ----------
    store : EventStore
        The store to read.
    table : {"predictions", "feedback"}, default "predictions"
        Which table to count.
    model : str, optional
        Only predictions of this model (``predictions`` only).

    Returns
    -------
    int
        Number of rows; 0 for an empty store.

    Raises
    ------
    InvalidInputError
        Unknown ``table``, or ``model`` given for ``feedback``.
    """
    if table not in TABLES:
        raise InvalidInputError(
            f"unknown table {table!r}; expected one of {', '.join(TABLES)}", field="table"
        )
    if model is not None and table != "predictions":
        raise InvalidInputError("model filters predictions only", field="model")
    con = store.connect()
    try:
        if model is None:
            ((count,),) = con.sql(f"SELECT count(*) FROM {table}").fetchall()
        else:
            ((count,),) = con.sql(
                "SELECT count(*) FROM predictions WHERE model = $model", params={"model": model}
            ).fetchall()
    finally:
        con.close()
    return int(count)
