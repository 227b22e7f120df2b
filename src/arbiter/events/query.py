"""The query layer: which rows a query reads, as named views and a scope with bound parameters.

Every query in arbiter reads one of the views of :func:`arbiter.events.views.connect` (opened
by :meth:`arbiter.events.EventStore.connect`) and narrows it with a :class:`Scope`:

``predictions``
    Every prediction row, forced rows included (export, raw counts).
``feedback``
    Every label ever posted, duplicates included.
``latest_feedback``
    The latest label of each ``(request_id, row_index)`` (largest ``ts``; on a tie the later
    segment file, then the later row): ``label``, ``label_num``, ``label_ts``.
``unforced``
    ``predictions`` without the rows a tester forced to an arm, every role.
``served``
    ``unforced`` rows with ``role = 'served'``.
``shadowed``
    ``unforced`` rows with ``role = 'shadow'``.
``labeled``
    ``unforced`` LEFT JOIN ``latest_feedback`` (label columns null until a label came).
``all_labeled``
    ``predictions`` LEFT JOIN ``latest_feedback`` (forced rows included: export).

No module writes ``NOT coalesce(forced, false)`` or ``model = '...'`` itself: the views say
which rows count, :class:`Scope` which model, experiment and window, and every value reaches
DuckDB as a bound ``$name`` parameter, never as text in the SQL::

    scope = Scope("fraud", "fraud-ab", start=since)
    con.execute(f"SELECT arm, count(*) FROM served WHERE {scope.where()} GROUP BY arm",
                scope.params)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from arbiter.errors import InvalidInputError
from arbiter.events.views import (
    TABLES,
    VIEWS,
    Table,
    latest_labels_sql,
    snapshot_latest_labels,
)

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Rows of one request share ts, so request_id and row_index make "the last N rows" one set.
_NEWEST_FIRST = "ts DESC, request_id DESC, row_index DESC"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows of a view a query reads: one model, optionally one experiment and a window.

    :meth:`where` renders the filter with bound parameters (``$model``, ``$experiment``,
    ``$start``, ``$end``; :meth:`newest` adds ``$last``) and :attr:`params` holds their values,
    so a model name with a quote in it is just a value. The time bounds stay plain comparisons
    on ``ts``, which DuckDB pushes into the Parquet scan.

    Parameters
    ----------
    model : str
        The endpoint whose rows to read.
    experiment : str, optional
        Only this experiment's rows.
    start, end : datetime, optional
        Only rows with ``start <= ts`` and ``ts <= end`` (both inclusive: ``end`` is "the log as
        it stood then").
    last : int, optional
        Only the ``last`` most recent rows (after the time bounds), rendered by
        :meth:`newest`: newest first by ``ts``, then ``request_id``, then ``row_index``, so the
        same log always gives the same rows.

    Raises
    ------
    InvalidInputError
        ``last`` below 1.
    """

    model: str
    experiment: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    last: int | None = None

    def __post_init__(self) -> None:
        if self.last is not None and self.last < 1:
            raise InvalidInputError(f"last must be >= 1, got {self.last!r}", field="last")

    def where(self, alias: str | None = None) -> str:
        """The filter as SQL (no leading ``WHERE``), reading columns of ``alias`` if given.

        ``alias`` is a table alias of the caller's query (an identifier, checked), for joins
        where the bare column names would be ambiguous.
        """
        if alias is not None and not _IDENTIFIER.match(alias):
            raise ValueError(f"alias must be an SQL identifier, got {alias!r}")
        col = f"{alias}." if alias else ""
        parts = [f"{col}model = $model"]
        if self.experiment is not None:
            parts.append(f"{col}experiment = $experiment")
        if self.start is not None:
            parts.append(f"{col}ts >= $start")
        if self.end is not None:
            parts.append(f"{col}ts <= $end")
        return " AND ".join(parts)

    def newest(self) -> str:
        """``ORDER BY ... LIMIT $last`` keeping the ``last`` newest rows; ``""`` without it."""
        return "" if self.last is None else f"ORDER BY {_NEWEST_FIRST} LIMIT $last"

    @property
    def params(self) -> dict[str, Any]:
        """The values of the parameters :meth:`where` and :meth:`newest` render, by name."""
        values: dict[str, Any] = {"model": self.model}
        if self.experiment is not None:
            values["experiment"] = self.experiment
        if self.start is not None:
            values["start"] = self.start
        if self.end is not None:
            values["end"] = self.end
        if self.last is not None:
            values["last"] = int(self.last)
        return values


def restrict_predictions(
    con: duckdb.DuckDBPyConnection, predicate: str, params: Mapping[str, Any]
) -> None:
    """Narrow the ``predictions`` view of ``con`` to the rows ``predicate`` keeps.

    Every view reads ``predictions`` by name, so ``served``, ``labeled`` and the rest follow,
    and code that reads them runs unchanged on the narrowed log (the loop judges one candidate
    of a shadow experiment this way). The unrestricted rows stay readable as
    ``_all_predictions``.

    A view cannot hold parameters, so each ``$name`` of ``predicate`` is stored as a DuckDB
    variable of the connection (``SET VARIABLE``, bound) and read with ``getvariable``, which
    DuckDB folds into a constant: filters are still pushed into the scan. Variables belong to
    the connection: a ``con.cursor()`` does not see them.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`; changed in place.
    predicate : str
        A boolean SQL expression over the columns of ``predictions`` with ``$name`` parameters.
    params : mapping of str to value
        A value (``None`` is SQL NULL) for every ``$name`` in ``predicate``.
    """
    names = set(_PARAMETER.findall(predicate))
    missing = names - set(params)
    if missing:
        raise ValueError(f"no value for parameters {sorted(missing)}")
    con.execute("ALTER VIEW predictions RENAME TO _all_predictions")
    for name in sorted(names):  # identifiers matched by _PARAMETER, values bound
        con.execute(f"SET VARIABLE arbiter_{name} = $value", {"value": params[name]})
    body = _PARAMETER.sub(lambda m: f"getvariable('arbiter_{m.group(1)}')", predicate)
    con.execute(f"CREATE VIEW predictions AS SELECT * FROM _all_predictions WHERE {body}")


def count_events(
    store: EventStore,
    table: Table = "predictions",
    *,
    model: str | None = None,
) -> int:
    """Count the rows of one table (forced rows included), optionally for one model.

    Parameters
    ----------
    store : EventStore
        The store to read.
    table : {"predictions", "feedback", "outcomes"}, default "predictions"
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
        Unknown ``table``, or ``model`` given for ``feedback`` or ``outcomes``.
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
            # table is one of TABLES (checked above): an identifier from a fixed list.
            ((count,),) = con.sql(f"SELECT count(*) FROM {table}").fetchall()
        else:
            scope = Scope(model)
            ((count,),) = con.sql(
                f"SELECT count(*) FROM predictions WHERE {scope.where()}", params=scope.params
            ).fetchall()
    finally:
        con.close()
    return int(count)


__all__ = [
    "TABLES",
    "VIEWS",
    "Scope",
    "Table",
    "count_events",
    "latest_labels_sql",
    "restrict_predictions",
    "snapshot_latest_labels",
]
