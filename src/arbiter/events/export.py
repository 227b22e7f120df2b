"""Export one model's labelled prediction log, and its units' outcome events, to CSV or Parquet.

Two layouts of the prediction log:

``long`` (default)
    One row per model per input row: the log as stored (``role`` says which model answered
    the caller and which only shadowed it), with the latest label.
``wide``
    One row per input row (a request of N rows gives N): request id, row index, time, unit,
    experiment, one column per feature, then per side its ``_prediction``, ``_confidence``
    and ``_version`` (champion first; a shadow challenger is ``challenger``, an A/B/n arm is
    named by its arm), ``has_discrepancy`` and the label. The shape people expect when
    comparing two models side by side in a spreadsheet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from arbiter.errors import EventStoreError, InvalidInputError, NotFoundError
from arbiter.events.query import Scope
from arbiter.events.segments import fsync_dir

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

ExportFormat = Literal["csv", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet")
ExportLayout = Literal["long", "wide"]
LAYOUTS: tuple[ExportLayout, ...] = ("long", "wide")

#: The side a prediction row stands for in the wide layout: a shadow row is the challenger's
#: answer; a fallback row (the champion standing in for a failed challenger) is its own side.
_SIDE_SQL = (
    "CASE WHEN role = 'shadow' THEN 'challenger' WHEN role = 'fallback' THEN 'fallback' "
    "ELSE coalesce(arm, 'champion') END"
)
#: The per-side columns of the wide layout.
SIDE_COLUMNS = ("prediction", "confidence", "version")


def export(
    store: EventStore,
    model: str,
    path: str | os.PathLike[str],
    format: ExportFormat = "csv",
    *,
    layout: ExportLayout = "long",
) -> int:
    """Write every prediction of ``model``, with its latest label, to ``path``.

    The rows are those of the ``all_labeled`` view, forced rows included (prediction columns
    plus ``label``, ``label_num``, ``label_ts``), ordered by ``ts``, ``request_id``,
    ``row_index``, ``role``.
    The file is written under a temporary name next to ``path`` and renamed, so ``path`` is
    either the complete export or untouched.

    Parameters
    ----------
    store : EventStore
        The store to read.
    model : str
        Registered model name.
    path : str or os.PathLike
        Destination file; its directory must exist. Overwritten if present.
    format : {"csv", "parquet"}, default "csv"
        CSV has a header row and UTC timestamps.
    layout : {"long", "wide"}, default "long"
        ``long``: one row per model per input row, as above. ``wide``: one row per input
        row with every model's answer side by side (module docstring).

    Returns
    -------
    int
        Number of rows written.

    Raises
    ------
    InvalidInputError
        Unknown ``format`` or ``layout``.
    NotFoundError
        ``model`` has no events (the message lists the models that do), or the destination
        directory does not exist.
    EventStoreError
        Writing the file failed.
    """
    dest = _destination(path, format)
    if layout not in LAYOUTS:
        raise InvalidInputError(
            f"unknown export layout {layout!r}; expected one of {', '.join(LAYOUTS)}",
            field="layout",
        )
    scope = Scope(model)
    con = store.connect()
    try:
        ((rows,),) = con.sql(
            f"SELECT count(*) FROM predictions WHERE {scope.where()}", params=scope.params
        ).fetchall()
        if rows == 0:
            known = [
                r[0]
                for r in con.sql(
                    "SELECT DISTINCT model FROM predictions WHERE model IS NOT NULL ORDER BY 1"
                ).fetchall()
            ]
            raise NotFoundError(
                f"model {model!r} has no events in the event log; "
                f"models with events: {', '.join(map(repr, known)) or 'none'}"
            )
        if layout == "wide":
            sql, params = wide_sql(con, scope)
            ((rows,),) = con.sql(f"SELECT count(*) FROM ({sql})", params=params).fetchall()
            relation = con.sql(sql, params=params)
        else:
            relation = con.sql(
                f"SELECT * FROM all_labeled WHERE {scope.where()} "
                "ORDER BY ts, request_id, row_index, role",
                params=scope.params,
            )
        _write(relation, dest, format, f"exporting model {model!r}")
    finally:
        con.close()
    return int(rows)


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a feature name comes from the client)."""
    return '"' + name.replace('"', '""') + '"'


def wide_sql(con: duckdb.DuckDBPyConnection, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The wide layout's query over ``all_labeled`` and its parameters (module docstring).

    Two small queries find the columns first: the sides that answered (champion first, then
    by name) and the feature names (in the order the first rows list them) with whether
    every value of each is a number (then a DOUBLE column, else text). Feature names and
    sides reach the SQL as bound parameters; only their column names are quoted
    identifiers. A feature named like a fixed column gets the prefix ``feature_``.
    """
    where = scope.where()
    sides = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {_SIDE_SQL} AS side FROM all_labeled WHERE {where} "
            "ORDER BY side <> 'champion', side",
            scope.params,
        ).fetchall()
    ]
    keys = con.execute(
        f"""
        SELECT key, min(list_position(json_keys(features), key)) AS position
        FROM (SELECT features, unnest(json_keys(features)) AS key
              FROM all_labeled WHERE {where} AND json_valid(features)
                  AND json_type(features) = 'OBJECT')
        GROUP BY key ORDER BY position, key
        """,
        scope.params,
    ).fetchall()
    features = [str(k) for k, _ in keys]
    params: dict[str, Any] = dict(scope.params)
    for i, name in enumerate(features):
        params[f"f{i}"] = "$." + json.dumps(name)
    numeric: list[bool] = []
    if features:
        checks = ", ".join(
            f"bool_and(coalesce(json_type(features, $f{i}) IN "
            "('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL'), true))"
            for i in range(len(features))
        )
        (row,) = con.execute(
            f"SELECT {checks} FROM all_labeled WHERE {where} AND json_valid(features)",
            params,
        ).fetchall()
        numeric = [bool(v) if v is not None else True for v in (row or ())]
    for i, side in enumerate(sides):
        params[f"s{i}"] = side
    fixed = {"request_id", "row_index", "ts", "unit_id", "experiment", "has_discrepancy", "label"}
    fixed |= {f"{side}_{c}" for side in sides for c in SIDE_COLUMNS}
    feature_columns = []
    for i, name in enumerate(features):
        column = _identifier(f"feature_{name}" if name in fixed else name)
        value = f"json_extract_string(features, $f{i})"
        feature_columns.append(
            f"TRY_CAST({value} AS DOUBLE) AS {column}" if numeric[i] else f"{value} AS {column}"
        )
    side_columns = [
        f"first({column}) FILTER (WHERE side = $s{i}) AS {_identifier(f'{side}_{column}')}"
        for i, side in enumerate(sides)
        for column in SIDE_COLUMNS
    ]
    champion = "champion" in sides
    others = [s for s in sides if s not in ("champion", "fallback")]
    if champion and others:
        differs = " OR ".join(
            f"{_identifier(f'{s}_prediction')} IS DISTINCT FROM champion_prediction" for s in others
        )
        present = " OR ".join(f"{_identifier(f'{s}_prediction')} IS NOT NULL" for s in others)
        # Null when only one model answered this row (an A/B request: nothing to compare).
        discrepancy = (
            f"CASE WHEN champion_prediction IS NULL OR NOT ({present}) THEN NULL "
            f"ELSE ({differs}) END"
        )
    else:
        discrepancy = "NULL::BOOLEAN"
    side_names = [_identifier(f"{side}_{column}") for side in sides for column in SIDE_COLUMNS]
    sql = f"""
        SELECT request_id, row_index, ts, unit_id, experiment,
               {"".join(c + ", " for c in feature_columns)}
               {"".join(c + ", " for c in side_names)}
               {discrepancy} AS has_discrepancy, label
        FROM (
            SELECT request_id, row_index, min(ts) AS ts, any_value(unit_id) AS unit_id,
                   any_value(experiment) AS experiment, any_value(features) AS features,
                   any_value(label) AS label
                   {"".join(", " + c for c in side_columns)}
            FROM (SELECT *, {_SIDE_SQL} AS side FROM all_labeled WHERE {where})
            GROUP BY request_id, row_index
        )
        ORDER BY ts, request_id, row_index
    """
    return sql, params


def export_outcomes(
    store: EventStore,
    model: str,
    path: str | os.PathLike[str],
    format: ExportFormat = "csv",
) -> int:
    """Write the outcome events of every unit ``model`` served to ``path``.

    The rows are those of the ``outcomes`` view (``unit_id``, ``event``, ``value``, ``ts``,
    ``request_id``) whose ``unit_id`` appears in ``model``'s predictions (forced rows
    included, as in :func:`export`), ordered by ``ts``, ``unit_id``, ``event``. Outcomes before
    a unit's first exposure are kept (CUPED uses them). With :func:`export`'s file, this is
    what an analysis of the model's metrics reads. Written atomically, as :func:`export`.
    Nothing is written when no unit of ``model`` has an outcome event.

    Returns
    -------
    int
        Number of rows written (0: no file written).

    Raises
    ------
    InvalidInputError
        Unknown ``format``.
    NotFoundError
        The destination directory does not exist.
    EventStoreError
        Writing the file failed.
    """
    dest = _destination(path, format)
    scope = Scope(model)
    units = (
        f"unit_id IN (SELECT unit_id FROM predictions WHERE {scope.where()} "
        "AND unit_id IS NOT NULL)"
    )
    con = store.connect()
    try:
        ((rows,),) = con.sql(
            f"SELECT count(*) FROM outcomes WHERE {units}", params=scope.params
        ).fetchall()
        if rows:
            relation = con.sql(
                f"SELECT * FROM outcomes WHERE {units} ORDER BY ts, unit_id, event",
                params=scope.params,
            )
            _write(relation, dest, format, f"exporting the outcomes of model {model!r}")
    finally:
        con.close()
    return int(rows)


def _destination(path: str | os.PathLike[str], format: str) -> Path:
    """``path`` as a Path, once ``format`` is known and the destination directory exists."""
    if format not in FORMATS:
        raise InvalidInputError(
            f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}",
            field="format",
        )
    dest = Path(path)
    if not dest.parent.is_dir():
        raise NotFoundError(f"cannot export to {dest}: directory {dest.parent} does not exist")
    return dest


def _write(relation: duckdb.DuckDBPyRelation, dest: Path, format: ExportFormat, what: str) -> None:
    """Write ``relation`` to ``dest`` under a temporary name, fsync, and rename into place."""
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if format == "csv":
            relation.write_csv(str(temp), header=True)
        else:
            relation.write_parquet(str(temp), compression="zstd")
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, dest)
        fsync_dir(dest.parent)
    except (OSError, duckdb.Error) as exc:
        temp.unlink(missing_ok=True)
        raise EventStoreError(f"{what} to {dest} failed: {exc}") from exc


__all__ = ["FORMATS", "LAYOUTS", "SIDE_COLUMNS", "ExportFormat", "ExportLayout", "export",
           "export_outcomes", "wide_sql"]  # fmt: skip
