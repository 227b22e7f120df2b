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
from typing import Any

import orjson
import pyarrow as pa

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events.outcomes import MAX_FUTURE_US, parse_ts
from arbiter.events.schema import FEEDBACK_SCHEMA, canonical_label

_ALLOWED = frozenset({"request_id", "row_index", "label", "clicks", "ts"})
_INT32_MAX = 2**31 - 1
MAX_CLICKS = 1_000
#: The longest label text: a class name or a number, not a document.
MAX_LABEL_CHARS = 1_024
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


def scalar_label(value: Any, field: str) -> tuple[str, float | None]:
    """``value`` as ``(text, number)`` (:func:`canonical_label`) if it can be a label at all.

    A label is one value compared with one prediction: a non-empty string of at most
    :data:`MAX_LABEL_CHARS` characters, a boolean, or a number. Objects and arrays used to be
    stored as their Python text (``{'a': 1}``), which matches no prediction and silently
    shrinks the labelled sample, so they are refused here.

    Raises
    ------
    InvalidInputError
        ``value`` is missing, a container, an empty or too long string, or an integer beyond
        the float range.
    """
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if value is None:
        raise InvalidInputError("label (or clicks) is required", field=field)
    if isinstance(value, str):
        if not value or len(value) > MAX_LABEL_CHARS:
            raise InvalidInputError(
                f"a label string must have 1 to {MAX_LABEL_CHARS} characters", field=field
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise InvalidInputError(
                "label is an integer beyond the float range", field=field
            ) from None
    elif not isinstance(value, bool | float):
        raise InvalidInputError(
            f"a label is a string, a number or a boolean, got {type(value).__name__}",
            field=field,
        )
    text, number = canonical_label(value)
    assert text is not None  # value is not None
    return text, number


def feedback_columns(
    rows: Sequence[Mapping[str, Any]], *, max_future_us: int = MAX_FUTURE_US
) -> dict[str, list[Any]]:
    """Validate feedback rows and return them as columns of :data:`FEEDBACK_SCHEMA`.

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``request_id`` (non-empty str), ``row_index`` (int >= 0), ``label`` (any
        non-null value, canonicalised by :func:`canonical_label`, whose text must not start
        with :data:`CLICKS_PREFIX`) or ``clicks`` (item ids clicked in a ranked list, stored by
        :func:`clicks_label`; ``row_index`` must be 0), and optionally ``ts``
        (timezone-aware datetime, ISO 8601 text with a zone, or int microseconds since the
        epoch; default now; see :func:`~arbiter.events.outcomes.parse_ts`).
    max_future_us : int, default one day
        How far past now a ``ts`` may lie (clock skew between hosts). Without a bound, a label
        dated far in the future would beat every later correction forever (latest ``ts`` wins).

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
            label, label_num = scalar_label(row.get("label"), f"rows[{i}].label")
            if label.startswith(CLICKS_PREFIX):
                # Stored, it would be read back as clicks on a ranked list.
                raise InvalidInputError(
                    f"a label must not start with {CLICKS_PREFIX!r}, which marks clicks; "
                    "send clicks as the clicks field",
                    field=f"rows[{i}].label",
                )
        ts = (
            parse_ts(row["ts"], f"rows[{i}].ts", now_us, max_future_us=max_future_us)
            if row.get("ts") is not None
            else now_us
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


def unmatched_feedback(con: Any) -> int:
    """How many labelled ``(request_id, row_index)`` pairs match no logged prediction.

    ``/feedback`` stores labels for requests the answering worker did not serve itself
    (another worker's, an earlier process's) without checking them, so acknowledged labels
    stay durable. Those that never match a prediction (a wrong id, a ``row_index`` beyond the
    request, a prediction lost in a crash) join nothing; this count makes them visible
    instead of silently shrinking the labelled sample.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    """
    row = con.execute(
        """
        SELECT count(*) FROM latest_feedback AS f
        WHERE NOT EXISTS (
            SELECT 1 FROM predictions AS p
            WHERE p.request_id = f.request_id AND p.row_index = f.row_index
        )
        """
    ).fetchone()
    return int(row[0]) if row else 0
