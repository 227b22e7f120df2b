"""The named DuckDB views over the segment files: the one place that says which rows count.

:func:`connect` returns an in-memory DuckDB connection with these views. Every query in
arbiter reads them instead of repeating their filters.

``predictions``
    Every prediction row (:data:`~arbiter.events.schema.PREDICTIONS_SCHEMA`), forced rows
    included: for export, and for counts of everything that was logged.
``feedback``
    Every label ever posted (:data:`~arbiter.events.schema.FEEDBACK_SCHEMA`), duplicates included.
``latest_feedback``
    One row per labelled ``(request_id, row_index)``: its latest label, as ``label``,
    ``label_num`` and ``label_ts``. Latest means the largest ``ts``; on a tie, the label written
    later (later segment file name, then later row in the file). :func:`latest_labels_sql`
    writes the same rule for a restricted set of rows.
``unforced``
    ``predictions`` without the rows a tester forced to an arm (``X-Arbiter-Arm``):
    ``WHERE NOT coalesce(forced, false)``, every role (``served``, ``shadow``, ``interleaved``)
    but ``fallback``. The experiment-level queries (strategy, time span, per-role traffic) read
    it. A ``fallback`` row is the champion's answer to a request whose challenger failed
    (``experiment.fallback_to_champion``): the request is analysed by assignment, as the
    challenger's failed row (intention to treat), so the champion's stand-in answer is kept
    out of every analysis view and shows only in ``predictions`` (export).
``served``
    ``unforced`` rows with ``role = 'served'``: the answers that went back to the caller.
``shadowed``
    ``unforced`` rows with ``role = 'shadow'``: a shadow challenger's logged-only answers.
``labeled``
    ``unforced`` LEFT JOIN ``latest_feedback`` on ``(request_id, row_index)``: every unforced
    row with its latest label (``label``, ``label_num``, ``label_ts`` are null while no label
    came, so filter ``label IS NOT NULL`` for labelled rows).
``all_labeled``
    ``predictions`` LEFT JOIN ``latest_feedback``: as ``labeled`` but forced rows included
    (:func:`~arbiter.events.export.export` writes the whole log).
``outcomes``
    Every outcome event (:data:`~arbiter.events.schema.OUTCOMES_SCHEMA`): a unit's purchases,
    sessions, chargebacks... Duplicates are kept (two purchases are two events).

Each filtering view is a plain ``SELECT ... WHERE`` over ``read_parquet``, which DuckDB inlines
into the query that reads it: a caller's ``model = $model AND ts >= $start`` is still pushed
into the Parquet scan (row groups pruned on ``ts``, on ``model``).

The views read an explicit list of files taken at connect time, not a glob: the list can leave
out segments that compaction has already merged (so nothing is counted twice), and every query
on one connection sees the same snapshot. Connect again to see newer events; connecting is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA

Table = Literal["predictions", "feedback", "outcomes"]
TABLES: tuple[Table, ...] = ("predictions", "feedback", "outcomes")

# Every view connect() creates, in creation order (later ones read earlier ones by name).
VIEWS: tuple[str, ...] = (
    "predictions",
    "feedback",
    "latest_feedback",
    "unforced",
    "served",
    "shadowed",
    "labeled",
    "all_labeled",
    "outcomes",
)

# The label columns a latest-label query may keep (names interpolated into SQL: an allow-list).
_LABEL_FIELDS: dict[str, str] = {"label": "label", "label_num": "label_num", "label_ts": "ts"}

# The views every engine defines with the same SQL (arbiter.events.engines transpiles them to
# Spark and PostgreSQL); only latest_feedback, whose tie-break reads how each engine stores
# the labels, is written per engine.
DERIVED_VIEWS_SQL = """
CREATE VIEW unforced AS
SELECT * FROM predictions
WHERE NOT coalesce(forced, false) AND coalesce(role, '') <> 'fallback';

CREATE VIEW served AS
SELECT * FROM predictions WHERE role = 'served' AND NOT coalesce(forced, false);

CREATE VIEW shadowed AS
SELECT * FROM predictions WHERE role = 'shadow' AND NOT coalesce(forced, false);

CREATE VIEW labeled AS
SELECT p.*, f.label, f.label_num, f.label_ts
FROM unforced AS p
LEFT JOIN latest_feedback AS f
    ON p.request_id = f.request_id AND p.row_index = f.row_index;

CREATE VIEW all_labeled AS
SELECT p.*, f.label, f.label_num, f.label_ts
FROM predictions AS p
LEFT JOIN latest_feedback AS f
    ON p.request_id = f.request_id AND p.row_index = f.row_index;
"""


# The order of a label among the labels of its row, as one HUGEINT: epoch microseconds (NULL
# ts as the largest int64, after every real time) times 2^64, plus the file's index (< 2^24
# files) times 2^40, plus the row within the file (< 2^40 rows): lexicographic on the three,
# and below 2^127 so it never overflows.
_LATEST_KEY_SQL = (
    "coalesce(epoch_us(ts), 9223372036854775807)::HUGEINT * 18446744073709551616 "
    "+ file_index::HUGEINT * 1099511627776 + file_row_number"
)


def latest_labels_sql(
    restrict: str = "", fields: Sequence[str] = ("label", "label_num", "label_ts")
) -> str:
    """A ``SELECT`` of the latest label of each ``(request_id, row_index)``, by the view's rule.

    ``latest_feedback`` aggregates every label ever posted. A query that needs the labels of
    a few requests only (one bandit experiment, one canary) restricts the raw labels *before*
    the aggregation, so its cost follows its own rows: pass that restriction as ``restrict``.

    Parameters
    ----------
    restrict : str, default ""
        SQL placed between ``FROM <raw labels>`` and ``GROUP BY``: a ``WHERE`` clause or a
        ``SEMI JOIN (...) USING (request_id, row_index)`` written by the caller, without values
        (bind them as parameters).
    fields : sequence of {"label", "label_num", "label_ts"}
        The label columns to return besides ``request_id`` and ``row_index``.

    Returns
    -------
    str
        SQL of a query with columns ``request_id, row_index, *fields``.
    """
    unknown = [f for f in fields if f not in _LABEL_FIELDS]
    if unknown or not fields:
        raise ValueError(f"fields must be among {sorted(_LABEL_FIELDS)}; got {list(fields)}")
    struct = ", ".join(f"'{_LABEL_FIELDS[f]}': {_LABEL_FIELDS[f]}" for f in fields)
    columns = ", ".join(f"latest.{_LABEL_FIELDS[f]} AS {f}" for f in fields)
    # Latest label wins. Ties on ts (two labels in the same microsecond) go to the one written
    # later: later segment name, then later row within the segment. arg_max over a row key is
    # a hash aggregate: about 1.6x faster than the equivalent row_number() window (5 M labels:
    # 1.0 s against 1.6 s on 2 cores), which must sort. The key is one HUGEINT packing
    # (ts, file, row), not a struct holding the file name: the files are listed in name order
    # (_source_sql), so the file's index orders them as the name did, and comparing one
    # integer instead of a struct with a string took the deduplication of 5 M labels from
    # 3.6-3.9 to 2.7-2.9 CPU s (busy 2-core box). A NULL ts sorts last, as it did in the struct.
    return f"""
SELECT request_id, row_index, {columns}
FROM (
    SELECT request_id, row_index, arg_max({{{struct}}}, {_LATEST_KEY_SQL}) AS latest
    FROM _feedback_raw
    {restrict}
    GROUP BY request_id, row_index
)"""


#: The temporary table :func:`snapshot_latest_labels` fills.
LATEST_LABELS_TABLE = "_latest_feedback_snapshot"


def snapshot_latest_labels(con: object) -> bool:
    """Deduplicate the labels once for this connection: ``latest_feedback`` becomes a table.

    ``latest_feedback`` is an aggregate over every label ever posted, and DuckDB recomputes a
    view in each query that reads it: an analysis reads ``labeled`` in four to six queries, so
    it deduplicated the same labels as often (the largest share of a 10 M-event analysis).
    This computes it once into a temporary table and points the view at it; ``labeled`` and
    ``all_labeled`` name the view, so every later query on the connection reads the table.
    The connection reads a fixed list of segment files (a snapshot), so the table holds what
    the view would have returned. Idempotent; a no-op (False) on other engines' connections,
    whose own planners handle the view.

    Returns
    -------
    bool
        Whether the labels are now read from the snapshot table.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return False
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = $name",
        {"name": LATEST_LABELS_TABLE},
    ).fetchone()
    if exists and exists[0]:
        return True
    con.execute(f"CREATE TEMP TABLE {LATEST_LABELS_TABLE} AS {latest_labels_sql()}")
    con.execute(f"CREATE OR REPLACE VIEW latest_feedback AS SELECT * FROM {LATEST_LABELS_TABLE}")
    return True


def _sql_string(value: str) -> str:
    # File paths only: read_parquet needs a constant list, which a parameter cannot give a view.
    return "'" + value.replace("'", "''") + "'"


def _source_sql(name: str, files: Sequence[Path], *, with_file_columns: bool) -> str:
    if not files:
        return f"SELECT * FROM _empty_{name}"
    if not with_file_columns:
        listing = ", ".join(_sql_string(str(f)) for f in files)
        # union_by_name: segments written before a column was added simply lack it.
        return f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
    # The label tie-break orders files by name: listed in that order, read_parquet's
    # file_index (a virtual column, selected by name) orders them the same way.
    listing = ", ".join(_sql_string(str(f)) for f in sorted(files, key=str))
    return (
        f"SELECT *, file_index FROM read_parquet([{listing}], union_by_name = true, "
        "filename = true, file_row_number = true)"
    )


def connect(
    prediction_files: Sequence[Path],
    feedback_files: Sequence[Path],
    *,
    outcome_files: Sequence[Path] = (),
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with the views of this module (see the module docstring).

    Parameters
    ----------
    prediction_files, feedback_files, outcome_files : sequence of Path
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
    # Empty tables carry the exact schema, so views exist with the right types before the
    # first event is written.
    con.register("_empty_predictions", PREDICTIONS_SCHEMA.empty_table())
    con.register("_empty_feedback", _with_file_columns(FEEDBACK_SCHEMA.empty_table()))
    con.register("_empty_outcomes", OUTCOMES_SCHEMA.empty_table())
    _create_views(
        con,
        _source_sql("predictions", prediction_files, with_file_columns=False),
        _source_sql("feedback", feedback_files, with_file_columns=True),
        _source_sql("outcomes", outcome_files, with_file_columns=False),
    )
    return con


def connect_tables(
    predictions: pa.Table, feedback: pa.Table, outcomes: pa.Table | None = None
) -> duckdb.DuckDBPyConnection:
    """Return a connection with the same views as :func:`connect`, over in-memory tables.

    For logs built in memory (tests, simulations) rather than read from segment files. The
    rows of ``feedback`` count as written in table order (a later row wins a ``ts`` tie).

    Parameters
    ----------
    predictions, feedback : pyarrow.Table
        Rows with the columns of :data:`~arbiter.events.schema.PREDICTIONS_SCHEMA` and
        :data:`~arbiter.events.schema.FEEDBACK_SCHEMA`.
    outcomes : pyarrow.Table, optional
        Rows with the columns of :data:`~arbiter.events.schema.OUTCOMES_SCHEMA`; none when
        omitted.

    Returns
    -------
    duckdb.DuckDBPyConnection
        Time zone set to UTC.
    """
    con = duckdb.connect()
    con.register("_predictions_table", predictions)
    con.register("_feedback_table", _with_file_columns(feedback))
    con.register("_outcomes_table", OUTCOMES_SCHEMA.empty_table() if outcomes is None else outcomes)
    _create_views(
        con,
        "SELECT * FROM _predictions_table",
        "SELECT * FROM _feedback_table",
        "SELECT * FROM _outcomes_table",
    )
    return con


def _with_file_columns(feedback: pa.Table) -> pa.Table:
    # The columns read_parquet adds (filename, file_row_number, file_index), which the label
    # rule reads: one "file", rows in table order.
    n = feedback.num_rows
    feedback = feedback.append_column("filename", pa.array([""] * n, pa.string()))
    feedback = feedback.append_column("file_row_number", pa.array(range(n), pa.int64()))
    return feedback.append_column("file_index", pa.array([0] * n, pa.uint64()))


def _create_views(
    con: duckdb.DuckDBPyConnection, predictions: str, feedback_raw: str, outcomes: str
) -> None:
    """Create every view of :data:`VIEWS` from the three source queries."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE VIEW predictions AS " + predictions)
    con.execute("CREATE VIEW _feedback_raw AS " + feedback_raw)
    con.execute(
        "CREATE VIEW feedback AS SELECT * EXCLUDE (filename, file_row_number, file_index) "
        "FROM _feedback_raw"
    )
    con.execute(f"CREATE VIEW latest_feedback AS {latest_labels_sql()};" + DERIVED_VIEWS_SQL)
    con.execute("CREATE VIEW outcomes AS " + outcomes)
