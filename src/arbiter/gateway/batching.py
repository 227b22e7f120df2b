"""Adaptive batching: concurrent requests for one model version share one model call.

A model like a gradient-boosting classifier spends most of a one-row call on per-call
overhead (input conversion, the estimator's checks, the tree walk's set-up), which a call of 32
rows pays once. The gateway therefore queues each request's already validated rows under a
*batch key* (model name, version and the shape of the input) and calls the model once for
everything queued, then splits the answer back, one slice per request, in order.

When a batch is called (``max_batch_size`` rows, ``max_batch_delay_ms``):

* at once when the queued rows reach ``max_batch_size`` (a request as large as that runs
  alone, and one that would overflow the queue sends the queue first);
* on the next event-loop turn when no call of this key is running: a lone request on an idle
  model waits microseconds, not the delay, while requests that arrived in the same turn (the
  loop read several sockets at once) still share the call. MLServer and Triton wait their full
  ``max_batch_time`` / ``max_queue_delay`` for a lone request; here nothing is gained by
  waiting when the model is idle;
* when a running call of this key returns (the model is free again: everything that queued
  meanwhile goes as one call), or ``max_batch_delay_ms`` after the first queued request,
  whichever comes first. The delay bounds what a request can lose to batching when the model
  is busy; it is not a wait imposed on every request.

What stays per request: routing, validation (before a request is queued, so a bad input is
its own 4xx and never joins a batch), the deadline (each request waits for its own slice at
most its arm's timeout, so a hung batch times out each of its requests on its own clock and
the champion fallback works as without batching), logging and the error. If the batched call
raises, or returns something that cannot be split row by row, every request of the batch is
scored again on its own in the same thread (:func:`score_parts`): the one whose rows make the
model fail gets that failure, the others their answers.

The model must score rows independently (every scikit-learn estimator does); a model whose
answer for a row depends on the other rows of its call should run with batching off.

This module holds the mechanics only: :class:`Batcher` (the queue, pure asyncio, no threads)
and :func:`score_parts` (merge, call, split; runs in a scoring thread or a shadow worker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from arbiter.servable import Scored, ServableModel

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """One model's batching settings (``max_batch_size``, ``max_batch_delay_ms``)."""

    max_rows: int
    max_delay_s: float

    @classmethod
    def of(cls, max_batch_size: int, max_batch_delay_ms: float) -> BatchLimits:
        return cls(max_batch_size, max_batch_delay_ms / 1000.0)

    @property
    def enabled(self) -> bool:
        """Off when either setting is 0 (or the size 1: a batch of one is no batch)."""
        return self.max_rows > 1 and self.max_delay_s > 0


@dataclass(frozen=True, slots=True)
class BatchPart:
    """One request's rows as its model takes them, ready to be merged with others.

    ``signature`` is what must be equal for two parts to share a call (their kind, and for
    frames the columns and dtypes, so concatenating them changes no value).
    """

    kind: Literal["rows", "frame"]
    data: Any
    n_rows: int
    finite: bool
    signature: Hashable


def batch_part(
    model: ServableModel,
    kind: str,
    data: Any,
    params: dict[str, Any] | None,
    *,
    finite: bool = True,
) -> BatchPart | None:
    """The part ``data`` would be in a batch for ``model``, or None if it must run alone.

    Alone: a model without a column signature (its inputs are not known to be rows), a call
    with ``params`` (they apply to a whole call), an input that is not a list of rows or a
    DataFrame with unique columns, and an empty one.
    """
    if model.schema is None or params:
        return None
    if kind == "rows":
        if not isinstance(data, list) or not data:
            return None
        return BatchPart("rows", data, len(data), finite, ("rows", finite))
    if kind != "frame":
        return None
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or len(data) == 0 or not data.columns.is_unique:
        return None
    signature = ("frame", finite, tuple(data.columns), tuple(map(str, data.dtypes)))
    return BatchPart("frame", data, len(data), finite, signature)


#: What scoring one part gave: ``(ok, Scored or the exception, start, end)`` with
#: ``time.perf_counter()`` times of the call that produced it.
PartResult = tuple[bool, Any, float, float]


def score_parts(model: ServableModel, parts: Sequence[BatchPart]) -> tuple[list[PartResult], bool]:
    """Score ``parts`` (all of one batch key) with one call, split back in order.

    A call that raises, or whose output cannot be split row by row, is followed by one call
    per part, so each part gets its own answer or its own error. Never raises. Returns the
    results and whether that happened (the batch was scored one part at a time).
    """
    if len(parts) == 1:
        return [_alone(model, parts[0])], False
    start = time.perf_counter()
    try:
        scored = _call(model, parts[0].kind, _merge(parts), parts[0].finite)
    except Exception:  # some part made the model fail: find which, one call each
        return [_alone(model, part) for part in parts], True
    end = time.perf_counter()
    slices = split_scored(scored, [part.n_rows for part in parts])
    if slices is None:
        return [_alone(model, part) for part in parts], True
    return [(True, piece, start, end) for piece in slices], False


def _alone(model: ServableModel, part: BatchPart) -> PartResult:
    start = time.perf_counter()
    try:
        scored = _call(model, part.kind, part.data, part.finite)
    except Exception as exc:  # handed to its request, which logs and answers it
        return False, exc, start, time.perf_counter()
    return True, scored, start, time.perf_counter()


def _call(model: ServableModel, kind: str, data: Any, finite: bool) -> Scored:
    if kind == "rows":
        return model.predict_rows(data, finite=finite)
    return model.predict_frame(data, None, finite=finite)


def _merge(parts: Sequence[BatchPart]) -> Any:
    if parts[0].kind == "rows":
        return [row for part in parts for row in part.data]
    import pandas as pd

    return pd.concat([part.data for part in parts], ignore_index=True)


def split_scored(scored: Scored, sizes: Sequence[int]) -> list[Scored] | None:
    """``scored`` cut into consecutive pieces of ``sizes`` rows, or None when its output is
    not one entry per row (then the batch cannot be split and its parts run alone)."""
    total = sum(sizes)
    if len(scored.predictions) != total:
        return None
    if scored.proba is not None and len(scored.proba) != total:
        return None
    raw_slice = _raw_slicer(scored.raw, total)
    if raw_slice is None:
        return None
    pieces = []
    begin = 0
    for size in sizes:
        end = begin + size
        proba = scored.proba[begin:end] if scored.proba is not None else None
        pieces.append(
            Scored(scored.predictions[begin:end], proba, scored.classes, raw_slice(begin, end))
        )
        begin = end
    return pieces


def _raw_slicer(raw: Any, total: int) -> Callable[[int, int], Any] | None:
    """How to cut the model's own output (returned verbatim by /invocations and v2)."""
    import numpy as np
    import pandas as pd

    if raw is None:
        return lambda begin, end: None
    if isinstance(raw, np.ndarray) and raw.ndim >= 1 and raw.shape[0] == total:
        return lambda begin, end: raw[begin:end]
    if isinstance(raw, (pd.DataFrame, pd.Series)) and len(raw) == total:
        return lambda begin, end: raw.iloc[begin:end].reset_index(drop=True)
    if isinstance(raw, list) and len(raw) == total:
        return lambda begin, end: raw[begin:end]
    return None


@dataclass(slots=True)
class _Entry(Generic[Item]):
    item: Item
    rows: int
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Queue(Generic[Item]):
    """What waits for one batch key, and how many of its calls are running."""

    entries: list[_Entry[Item]] = field(default_factory=list)
    rows: int = 0
    running: int = 0
    handles: list[asyncio.Handle] = field(default_factory=list)


#: Starts one call for a batch key's items; the future's result is one ``(ok, value)`` per
#: item, in order (``ok`` False: ``value`` is that item's exception).
Launch = Callable[[Hashable, list[Item]], "asyncio.Future[list[tuple[bool, Any]]]"]


class Batcher(Generic[Item]):
    """Queues items per batch key and launches them together (the module docstring's rules).

    Event-loop only, no threads: ``launch`` starts the call elsewhere (a scoring thread) and
    returns an asyncio future. Each :meth:`submit` gets its own future, settled with its own
    result or exception; a submitter that stops waiting (its deadline passed) cancels it, and
    a cancelled item still queued is left out of its batch.
    """

    def __init__(self, launch: Launch[Item]) -> None:
        self._launch = launch
        self._queues: dict[Hashable, _Queue[Item]] = {}
        self.calls = 0  # launched calls, for tests and the curious

    def submit(
        self, key: Hashable, item: Item, rows: int, limits: BatchLimits
    ) -> asyncio.Future[Any]:
        """Queue ``item`` (``rows`` rows) under ``key``; the future settles with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        entry = _Entry(item, rows, future)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if rows >= limits.max_rows:  # a full batch on its own: nothing can join it
            self._start(key, queue, [entry])
            return future
        if queue.rows + rows > limits.max_rows:
            self._flush(key)
        queue.entries.append(entry)
        queue.rows += rows
        if queue.rows >= limits.max_rows:
            self._flush(key)
        elif len(queue.entries) == 1:
            if queue.running == 0:  # idle model: go on the next turn, with whoever came along
                queue.handles.append(loop.call_soon(self._flush, key))
            else:  # busy: until a call returns, at most the delay
                queue.handles.append(loop.call_later(limits.max_delay_s, self._flush, key))
        return future

    def pending(self, key: Hashable) -> int:
        """Items queued (not yet launched) under ``key``."""
        queue = self._queues.get(key)
        return len(queue.entries) if queue is not None else 0

    def _flush(self, key: Hashable) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        for handle in queue.handles:
            handle.cancel()
        queue.handles.clear()
        entries = [entry for entry in queue.entries if not entry.future.done()]
        queue.entries = []
        queue.rows = 0
        if entries:
            self._start(key, queue, entries)
        elif queue.running == 0:
            del self._queues[key]  # nothing left: versions come and go

    def _start(self, key: Hashable, queue: _Queue[Item], entries: list[_Entry[Item]]) -> None:
        queue.running += 1
        self.calls += 1
        try:
            call = self._launch(key, [entry.item for entry in entries])
        except BaseException as exc:  # could not even start: each request gets the error
            queue.running -= 1
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        call.add_done_callback(lambda done: self._finished(key, entries, done))

    def _finished(
        self,
        key: Hashable,
        entries: list[_Entry[Item]],
        call: asyncio.Future[list[tuple[bool, Any]]],
    ) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.running -= 1
        if call.cancelled():
            stopped = RuntimeError("the batched model call was cancelled")
            outcomes: list[tuple[bool, Any]] = [(False, stopped)] * len(entries)
        elif call.exception() is not None:
            outcomes = [(False, call.exception())] * len(entries)
        else:
            outcomes = call.result()
        for entry, (ok, value) in zip(entries, outcomes, strict=True):
            if entry.future.done():  # its request stopped waiting
                continue
            if ok:
                entry.future.set_result(value)
            else:
                entry.future.set_exception(value)
        if queue is not None:
            if queue.entries:  # the model is free again: what queued meanwhile goes now
                self._flush(key)
            elif queue.running == 0 and self._queues.get(key) is queue:
                del self._queues[key]


__all__ = [
    "BatchLimits",
    "BatchPart",
    "Batcher",
    "PartResult",
    "batch_part",
    "score_parts",
    "split_scored",
]
