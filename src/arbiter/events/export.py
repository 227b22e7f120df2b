"""Export one model's labelled prediction log, and its units' outcome events, to CSV or Parquet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb

from arbiter.errors import EventStoreError, InvalidInputError, NotFoundError
from arbiter.events.query import Scope
from arbiter.events.segments import fsync_dir

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

ExportFormat = Literal["csv", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet")


def export(
    store: EventStore,
    model: str,
    path: str | os.PathLike[str],
    format: ExportFormat = "csv",
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

    Returns
    -------
    int
        Number of rows written.

    Raises
    ------
    InvalidInputError
        Unknown ``format``.
    NotFoundError
        ``model`` has no events (the message lists the models that do), or the destination
        directory does not exist.
    EventStoreError
        Writing the file failed.
    """
    dest = _destination(path, format)
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
                f"model {model!r} has no events in {store.root}; "
                f"models with events: {', '.join(map(repr, known)) or 'none'}"
            )
        relation = con.sql(
            f"SELECT * FROM all_labeled WHERE {scope.where()} "
            "ORDER BY ts, request_id, row_index, role",
            params=scope.params,
        )
        _write(relation, dest, format, f"exporting model {model!r}")
    finally:
        con.close()
    return rows


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


__all__ = ["FORMATS", "ExportFormat", "export", "export_outcomes"]
