"""The requests this worker served recently, so ``/feedback`` can check labels against them.

A label is only useful if it fits the request it names: a row that exists, a value of the
model's task (a class of the classifier's type, a finite number for a regressor), clicks only
on a ``/rank`` answer. The gateway knows these facts for the requests it logged itself, so it
keeps a bounded, insertion-ordered index of them (request id -> :class:`LoggedRequest`), filled
by observing the prediction rows on their way to the event writer.

It cannot know every request: with several workers a label may reach a worker that did not
serve the request, the request may still sit in another worker's write buffer, or it may
predate this process. Such labels are not refused (that would lose real ground truth under
``--workers 2``); they are stored durably like any other, counted as *unverified* in the
answer, and reported by the analysis as feedback that matches no logged prediction
(:func:`arbiter.events.feedback.unmatched_feedback`). Acknowledged therefore still means
durable, and nothing unknown is silently joined.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arbiter.errors import InvalidInputError

#: How many request ids one worker remembers (about 250 bytes each: 100 000 take ~25 MB).
DEFAULT_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """What ``/feedback`` needs to know about one served request."""

    model: str
    version: str | None
    rows: int  # input rows in the request: valid row_index values are 0 .. rows - 1
    ranking: bool  # a /rank answer: it takes clicks, not labels
    numeric: bool  # every served prediction was a number


class RecentRequests:
    """A bounded index of the requests this worker served (oldest forgotten first).

    Parameters
    ----------
    capacity : int
        Request ids kept; the oldest are dropped beyond it.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, LoggedRequest] = OrderedDict()
        self._lock = threading.Lock()  # appended from model threads, read on the loop

    def __len__(self) -> int:
        return len(self._items)

    def get(self, request_id: str) -> LoggedRequest | None:
        return self._items.get(request_id)

    def record(self, columns: Mapping[str, Any]) -> None:
        """Remember the request of one :func:`~arbiter.prediction_log.prediction_columns` call.

        Only the rows answered to the caller count (``served``, or ``interleaved`` for a
        merged ranking); a shadow's rows describe the same request and add nothing.
        """
        request_id = _first(columns.get("request_id"))
        role = _first(columns.get("role"))
        if not isinstance(request_id, str) or role == "shadow":
            return
        rows = columns.get("row_index")
        n = len(rows) if isinstance(rows, Sequence) and not isinstance(rows, str) else 1
        numbers = columns.get("prediction_num")
        numeric = (
            isinstance(numbers, Sequence)
            and len(numbers) > 0
            and all(isinstance(x, float) for x in numbers)
        )
        entry = LoggedRequest(
            model=str(_first(columns.get("model"))),
            version=_first(columns.get("version")),
            rows=n,
            ranking=_first(columns.get("protocol")) == "rank",
            numeric=numeric,
        )
        with self._lock:
            self._items[request_id] = entry
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def observe(self, sink: Any) -> _ObservedSink:
        """``sink`` (the event writer) with every prediction batch also recorded here."""
        return _ObservedSink(sink, self)


class _ObservedSink:
    """Forwards everything to the event writer; records each prediction batch first."""

    def __init__(self, sink: Any, index: RecentRequests) -> None:
        self._sink = sink
        self._index = index

    def append_predictions(self, columns: Mapping[str, Any]) -> Any:
        result = self._sink.append_predictions(columns)
        self._index.record(columns)  # after: a refused append is no served request
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


def _first(value: Any) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value[0] if len(value) else None
    return value


def check_row(
    row: Mapping[str, Any], where: str, logged: LoggedRequest, classes: Sequence[Any] | None
) -> None:
    """Refuse a feedback row that does not fit the request it names.

    Parameters
    ----------
    row : mapping
        A feedback row after the shape checks (``request_id``, ``row_index``, and ``label``
        or ``clicks``).
    where : str
        The row's path in errors, e.g. ``rows[3]``.
    logged : LoggedRequest
        The request, as this worker served it.
    classes : sequence or None
        The classes of the model version that answered (``None`` if it is no classifier).

    Raises
    ------
    InvalidInputError
        ``row_index`` beyond the request's rows; clicks on a request that is no ranking, or a
        label on one that is; a label of another type than the model's classes; a label that
        is not a finite number for a model predicting numbers.
    """
    row_index = row.get("row_index", 0)
    if isinstance(row_index, int) and row_index >= logged.rows:
        raise InvalidInputError(
            f"request {row['request_id']!r} has {logged.rows} row(s); row_index must be below",
            field=f"{where}.row_index",
        )
    if logged.ranking:
        if "clicks" not in row:
            raise InvalidInputError(
                "this request was a /rank answer: send the clicked item ids as clicks",
                field=f"{where}.clicks",
            )
        return
    if "clicks" in row:
        raise InvalidInputError(
            f"clicks belong to /rank answers; request {row['request_id']!r} was a prediction "
            f"of model {logged.model!r}: send its label",
            field=f"{where}.clicks",
        )
    label = row.get("label")
    if isinstance(label, float) and not math.isfinite(label):
        raise InvalidInputError("label must be finite", field=f"{where}.label")
    if classes:
        kind = "string" if all(isinstance(c, str) for c in classes) else "number"
        if kind != ("string" if isinstance(label, str) else "number"):
            raise InvalidInputError(
                f"model {logged.model!r} predicts the classes {list(classes)[:10]}: the label "
                f"must be one of them (a {kind}), got {type(label).__name__}",
                field=f"{where}.label",
            )
        return
    if logged.numeric and (isinstance(label, bool) or not isinstance(label, int | float)):
        raise InvalidInputError(
            f"model {logged.model!r} predicts numbers: the label must be a finite number, "
            f"got {type(label).__name__}",
            field=f"{where}.label",
        )


__all__ = ["DEFAULT_CAPACITY", "LoggedRequest", "RecentRequests", "check_row"]
