"""Durable feedback writes: validation and group commit.

``/feedback`` is acknowledged only after its rows are on disk, so each call writes a segment
synchronously. Concurrent callers share one segment (group commit): the first caller becomes the
leader, waits ``linger_s`` for others to join, writes everyone's rows with one fsync + rename,
then wakes them all. Callers that arrive while a write is in flight form the next group, so
under load one fsync serves many requests and a lone caller waits only ``linger_s`` extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events.schema import FEEDBACK_SCHEMA, canonical_label

_ALLOWED = frozenset({"request_id", "row_index", "label", "clicks", "ts"})
_INT32_MAX = 2**31 - 1
MAX_CLICKS = 1_000
CLICKS_PREFIX = '{"clicks":'  # every clicks label starts so (see clicks_label)


def clicks_label(clicks: Any, field: str) -> str:
    """The label text storing clicks on a ranked list: ``{"clicks": [item ids]}``.

    Clicks on an interleaved ``/rank`` impression are stored as a label of its request, so
    they are durable and exported like any label. Whether each clicked item was shown is
    checked at analysis time (:mod:`arbiter.analysis.interleave`), where the impression is
    read back from the event log; here only the shape is checked.

    Raises
    ------
    InvalidInputError
        ``clicks`` is not a list of at most :data:`MAX_CLICKS` string or integer item ids.
    """
    if not isinstance(clicks, list | tuple):
        raise InvalidInputError(
            f"clicks must be a list of item ids, got {type(clicks).__name__}", field=field
        )
    if len(clicks) > MAX_CLICKS:
        raise InvalidInputError(
            f"{len(clicks)} clicks in one row; the limit is {MAX_CLICKS}", field=field
        )
    for j, item in enumerate(clicks):
        if isinstance(item, bool) or not isinstance(item, str | int) or item == "":
            raise InvalidInputError(
                f"item ids are non-empty strings or integers, got {item!r}",
                field=f"{field}[{j}]",
            )
    return orjson.dumps({"clicks": list(clicks)}).decode()


def feedback_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Validate feedback rows and return them as columns of :data:`FEEDBACK_SCHEMA`.

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``request_id`` (non-empty str), ``row_index`` (int >= 0), ``label`` (any
        non-null value, canonicalised by :func:`canonical_label`, whose text must not start
        with :data:`CLICKS_PREFIX`) or ``clicks`` (item ids clicked in a ranked list, stored by
        :func:`clicks_label`; ``row_index`` must be 0), and optionally ``ts``
        (timezone-aware datetime or int microseconds since the epoch; default now).

    Returns
    -------
    dict of str to list
        One list per schema column.

    Raises
    ------
    InvalidInputError
        On the first invalid row; ``field`` is its path, e.g. ``rows[3].row_index``. Nothing is
        returned, so a caller writes all rows or none.
    """
    now_us = time.time_ns() // 1000
    cols: dict[str, list[Any]] = {name: [] for name in FEEDBACK_SCHEMA.names}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"feedback row {i} is not an object", field=f"rows[{i}]")
        unknown = row.keys() - _ALLOWED
        if unknown:
            name = sorted(map(str, unknown))[0]
            raise InvalidInputError(
                f"unknown feedback field {name!r}; allowed: {', '.join(sorted(_ALLOWED))}",
                field=f"rows[{i}].{name}",
            )
        request_id = row.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError(
                f"request_id must be a non-empty string, got {request_id!r}",
                field=f"rows[{i}].request_id",
            )
        row_index = row.get("row_index")
        if (
            isinstance(row_index, bool)
            or not isinstance(row_index, int)
            or not 0 <= row_index <= _INT32_MAX
        ):
            raise InvalidInputError(
                f"row_index must be an integer >= 0, got {row_index!r}",
                field=f"rows[{i}].row_index",
            )
        if "clicks" in row:
            if "label" in row:
                raise InvalidInputError(
                    "send either label or clicks, not both", field=f"rows[{i}].clicks"
                )
            if row_index != 0:
                # The analysis reads clicks from row 0 only; storing others would lose them.
                raise InvalidInputError(
                    f"clicks belong to row 0 of a /rank request, got row_index {row_index}",
                    field=f"rows[{i}].row_index",
                )
            label, label_num = clicks_label(row["clicks"], f"rows[{i}].clicks"), None
        else:
            label, label_num = canonical_label(row.get("label"))
            if label is not None and label.startswith(CLICKS_PREFIX):
                # Stored, it would be read back as clicks on a ranked list.
                raise InvalidInputError(
                    f"a label must not start with {CLICKS_PREFIX!r}, which marks clicks; "
                    "send clicks as the clicks field",
                    field=f"rows[{i}].label",
                )
        if label is None:
            raise InvalidInputError("label (or clicks) is required", field=f"rows[{i}].label")
        ts = row.get("ts", now_us)
        if isinstance(ts, datetime) and ts.tzinfo is None:
            raise InvalidInputError("ts must be timezone-aware (e.g. UTC)", field=f"rows[{i}].ts")
        if not isinstance(ts, datetime | int) or isinstance(ts, bool):
            raise InvalidInputError(
                f"ts must be a datetime, got {type(ts).__name__}", field=f"rows[{i}].ts"
            )
        cols["request_id"].append(request_id)
        cols["row_index"].append(row_index)
        cols["ts"].append(ts)
        cols["label"].append(label)
        cols["label_num"].append(label_num)
    return cols


class _Group:
    """Rows of the callers that will share one segment, and the outcome they wait for."""

    __slots__ = ("columns", "done", "error", "rows")

    def __init__(self, schema: pa.Schema) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.rows = 0
        self.done = False
        self.error: BaseException | None = None


class GroupCommitter:
    """Merge concurrent durable writes into one segment each.

    Parameters
    ----------
    write : callable
        ``write(table)`` writes one segment durably, raising on failure.
    linger_s : float, default 0.002
        How long a leader waits for more callers before writing.
    schema : pyarrow.Schema, default FEEDBACK_SCHEMA
        The columns of the rows committed (feedback, outcomes).
    what : str, default "feedback"
        What the rows are, for error messages.
    """

    def __init__(
        self,
        write: Callable[[pa.Table], object],
        *,
        linger_s: float = 0.002,
        schema: pa.Schema = FEEDBACK_SCHEMA,
        what: str = "feedback",
    ) -> None:
        self._write = write
        self._linger_s = linger_s
        self._schema = schema
        self._what = what
        self._cond = threading.Condition()
        self._current = _Group(schema)
        self._busy = False

    def commit(self, columns: Mapping[str, list[Any]], rows: int) -> None:
        """Add ``rows`` rows and return once the segment holding them is durable.

        Raises
        ------
        EventStoreError
            The segment could not be written; none of this group's rows were stored.
        """
        with self._cond:
            group = self._current
            for name, values in columns.items():
                group.columns[name].extend(values)
            group.rows += rows
            while not group.done:
                if self._busy:
                    self._cond.wait()
                else:
                    # Not busy and our group not done means it is still the open one: lead it.
                    self._lead()
        if group.error is not None:
            raise EventStoreError(
                f"could not durably write {group.rows} {self._what} rows: {group.error}"
            ) from group.error

    def _lead(self) -> None:
        """Write the open group. Called and returns with the condition's lock held."""
        self._busy = True
        if self._linger_s > 0:
            # Releases the lock so other callers can join the open group meanwhile.
            self._cond.wait(self._linger_s)
        group, self._current = self._current, _Group(self._schema)
        self._cond.release()
        error: BaseException | None = None
        try:
            table = pa.Table.from_pydict(group.columns, schema=self._schema)
            self._write(table)
        except BaseException as exc:
            # Every waiter in the group must learn it failed, whatever the exception; only
            # write failures are turned into EventStoreError, anything else is a bug: re-raise.
            error = exc
            if not isinstance(exc, OSError | pa.ArrowException):
                raise
        finally:
            self._cond.acquire()
            group.error = error
            group.done = True
            self._busy = False
            self._cond.notify_all()
