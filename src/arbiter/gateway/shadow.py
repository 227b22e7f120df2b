"""Shadow execution: score a request with the challenger off the request path.

The caller's response never waits for the shadow. Work is bounded: at most ``max_in_flight``
shadow calls per model are accepted at once; a request that finds every slot busy is dropped
and counted rather than queued, so a slow, hanging or failing challenger can never build a
backlog. A call that outlives ``timeout_s`` is logged as a timeout; its slot is freed only when
the call really returns. In the ``process`` executor a watchdog kills a worker whose call has
run for ``hang_s`` (or that died), starts a replacement, and frees the call's slot, so a hung
challenger costs one worker for ``hang_s`` at a time and the queue drains again; in the
``thread`` executor a hung call cannot be stopped, so it ends up holding every slot and further
shadows are dropped (and counted) until it returns.

Where the calls run:

``process`` (default)
    Worker processes at the lowest CPU priority (``nice 19``), each loading the challenger
    from the registry itself. A CPU-bound challenger holds the GIL; in a thread of the gateway
    it starves the event loop (champion p99 of seconds at half load, measured in
    ``benchmarks/gateway.py``), in a low-priority process it only gets the CPU the champion
    leaves.
``thread``
    Daemon threads in the gateway process: no start-up cost, for light challengers and tests.

Batching: a worker that takes a job also takes whatever is queued behind it, up to the model's
``max_batch_size`` rows, and scores the jobs of one version in one call
(:func:`arbiter.gateway.batching.score_parts`), so a challenger slower than the champion scores
the traffic that queued while it was busy instead of timing it out or dropping it. Each job
keeps its own result, error, deadline and log row (the batch's latency is each job's).

What a shadow costs the gateway is per job, on the core the champion needs, so the plumbing
moves jobs and results in groups (issue 13: at half of the gateway's saturation the shadow
machinery was about a third of the core): the jobs submitted during one turn of the event loop
go to the workers as one message, a worker sends the outcomes of one call back as one message,
and those outcomes reach the event loop in one wake-up. A job's deadline is a timer on the loop,
not a task of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from arbiter.gateway.batching import batch_part, score_parts
from arbiter.servable import Scored, ServableModel

log = logging.getLogger(__name__)

# Called with (scored or None, error or None, latency_ms) exactly once per accepted shadow.
ShadowDone = Callable[[Any, str | None, float], None]
Outcome = tuple[Any, str | None, float]
#: Called (from any thread) with ``(ticket, outcome)`` pairs: the outcomes of one call.
Settle = Callable[[list[tuple[Any, Outcome]]], None]
ExecutorKind = Literal["process", "thread"]


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One shadow prediction: which model version, and its input (rows or a frame)."""

    model: ServableModel
    kind: Literal["rows", "frame"]
    data: Any
    params: dict[str, Any] | None = None

    def run(self) -> Scored:
        return score(self.model, self.kind, self.data, self.params)


def score(model: ServableModel, kind: str, data: Any, params: dict[str, Any] | None) -> Scored:
    if kind == "rows":
        return model.predict_rows(data)
    return model.predict_frame(data, params)


def _timed(fn: Callable[[], Any]) -> Outcome:
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a failing challenger is logged, never raised to the caller
        return None, _describe(exc), (time.perf_counter() - start) * 1000.0
    return result, None, (time.perf_counter() - start) * 1000.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def score_jobs(
    model: ServableModel, kind: str, inputs: list[tuple[Any, dict[str, Any] | None]]
) -> list[Outcome]:
    """One outcome per ``(data, params)`` of ``model``, batched where they can share a call
    (same input signature, no params), each alone otherwise; in order."""
    outcomes: list[Outcome | None] = [None] * len(inputs)
    together: dict[Any, list[int]] = {}
    parts = [batch_part(model, kind, data, params) for data, params in inputs]
    for i, part in enumerate(parts):
        if part is None:
            data, params = inputs[i]
            outcomes[i] = _timed(lambda d=data, p=params: score(model, kind, d, p))
        else:
            together.setdefault(part.signature, []).append(i)
    for indexes in together.values():
        results, _alone = score_parts(model, [parts[i] for i in indexes])  # type: ignore[misc]
        for i, (ok, value, start, end) in zip(indexes, results, strict=True):
            latency_ms = (end - start) * 1000.0
            outcomes[i] = (value, None, latency_ms) if ok else (None, _describe(value), latency_ms)
    return outcomes  # type: ignore[return-value]


def _rows_of(kind: str, data: Any) -> int:
    """Rows of a job's input, for the batch size (an unknown shape counts as one)."""
    if kind in ("rows", "frame"):
        try:
            return max(1, len(data))
        except TypeError:
            return 1
    return 1


class _Inbox:
    """A shadow worker's side of its task queue, one call's tasks at a time (a worker process,
    or a thread of the ``thread`` executor).

    A message is a list of tasks (for a worker process, the shadows submitted in one turn of
    the gateway's event loop) or None (stop). A call takes tasks up to ``max_rows`` rows,
    across messages; tasks of a message that do not fit wait for the next call. Every task
    taken before the stop message is still handed out.
    """

    def __init__(self, get: Callable[[], Any], get_nowait: Callable[[], Any]) -> None:
        self._get = get
        self._get_nowait = get_nowait
        self._backlog: collections.deque[Any] = collections.deque()
        self._stopping = False

    def _next(self, block: bool) -> Any:
        while not self._backlog:
            if self._stopping:
                raise queue.Empty
            message = self._get() if block else self._get_nowait()
            if message is None:
                self._stopping = True
            else:
                self._backlog.extend(message)
        return self._backlog.popleft()

    def next_call(self, rows_of: Callable[[Any], int], max_rows: int) -> list[Any] | None:
        """The tasks of the next call (waits for the first); None once stopped and empty.

        The first task always goes, whatever its rows; the next ones while they fit."""
        try:
            first = self._next(block=True)
        except queue.Empty:
            return None
        items, rows = [first], rows_of(first)
        while rows < max_rows:
            try:
                item = self._next(block=False)
            except queue.Empty:
                break
            if rows + rows_of(item) > max_rows:
                self._backlog.appendleft(item)  # the first of the next call
                break
            items.append(item)
            rows += rows_of(item)
        return items


class _ThreadRunner:
    """Daemon threads, not a ThreadPoolExecutor: the executor joins its threads at exit, so one
    hung challenger call would keep the process from ever shutting down."""

    def __init__(
        self,
        name: str,
        size: int,
        settle: Settle,
        max_rows: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self.settle = settle
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self, preload: list[tuple[str, str]]) -> None:
        return None

    def is_ready(self, name: str, version: str) -> bool:
        return True  # the model object travels with the job

    def ensure_loading(self, name: str, version: str) -> None:
        return None

    def run(self, job: ShadowJob, ticket: Any, in_flight: int) -> None:
        if in_flight > len(self._threads) and len(self._threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"shadow-{self.name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._queue.put([(job, ticket)])

    def _work(self) -> None:
        inbox = _Inbox(self._queue.get, self._queue.get_nowait)
        while True:
            items = inbox.next_call(lambda it: _rows_of(it[0].kind, it[0].data), self.max_rows)
            if items is None:
                return  # stopped, and nothing left
            groups: dict[tuple[int, str], list[Any]] = {}
            for job, ticket in items:  # one call per model version and kind
                groups.setdefault((id(job.model), job.kind), []).append((job, ticket))
            for group in groups.values():
                model, kind = group[0][0].model, group[0][0].kind
                if self.on_batch is not None:
                    self.on_batch(len(group))
                outcomes = score_jobs(model, kind, [(job.data, job.params) for job, _ in group])
                pairs = zip(group, outcomes, strict=True)
                self.settle([(ticket, outcome) for (_, ticket), outcome in pairs])

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


#: ``busy[i]`` while worker ``i`` is idle or loading a model (loading is never "hung").
_IDLE = -1.0


def _process_main(
    tracking_uri: str,
    registry_uri: str | None,
    tasks: Any,
    results: Any,
    index: int = 0,
    busy: Any = None,
    current: Any = None,
    preload: list[tuple[str, str]] | None = None,
    max_rows: int = 1,
) -> None:
    """A shadow worker process: lowest priority, loads models itself, scores jobs forever.

    ``busy[index]`` (shared memory) holds the ``time.monotonic()`` at which the current call
    started scoring, or :data:`_IDLE`, and ``current[index * max_rows + j]`` the ids of the
    tasks it took (-1 for none): the watchdog reads them to find a hung call and the tasks to
    fail. ``preload`` is loaded before the first task: a replacement worker loads the ready
    challenger first. A task taken also takes what is queued behind it, up to ``max_rows``
    rows, scored in one call per version (:func:`score_jobs`).
    """
    # Start-up (the imports of MLflow, pandas and scikit-learn: seconds of CPU, and the models
    # known now) runs at normal priority, scoring at the lowest. At nice 19 a worker gets
    # about 1.5 % of a core beside one busy process at nice 0, so a worker that started at
    # nice 19 on a busy host took minutes to load and never shadowed (seen under
    # `stress-ng --cpu 2`). Priority cannot be raised again without privileges.
    from arbiter.registry import MLflowRegistry

    registry = MLflowRegistry(tracking_uri, registry_uri=registry_uri)
    models: dict[tuple[str, str], ServableModel] = {}

    def model(name: str, version: str) -> ServableModel:
        key = (name, version)
        if key not in models:
            models.clear()  # keep one version: the challenger moved on
            models[key] = registry.load(name, version)
        return models[key]

    def run_group(name: str, version: str, kind: str, group: list[Any]) -> list[Outcome]:
        """Outcomes of the tasks ``(task_id, name, version, kind, data, params)`` of one
        version and kind."""
        if busy is not None:
            busy[index] = _IDLE  # loading is never "hung" (a batch may hold two versions)
        try:
            loaded = model(name, version)
        except Exception as exc:  # every task of the version fails alike
            return [(None, _describe(exc), 0.0)] * len(group)
        if kind == "preload":
            return [(None, None, 0.0)] * len(group)
        if busy is not None:
            busy[index] = time.monotonic()  # the model is loaded: the call's clock starts
        outcomes = score_jobs(loaded, kind, [(task[4], task[5]) for task in group])
        return [
            (_strip(scored) if scored is not None else None, error, ms)
            for scored, error, ms in outcomes
        ]

    for name, version in preload or []:
        with contextlib.suppress(Exception):  # a failure shows again on the first task
            model(name, version)
    _import_model_stack()  # so that a challenger registered later loads quickly at nice 19
    with contextlib.suppress(OSError):
        os.nice(19)
    slots = max(1, max_rows)
    inbox = _Inbox(tasks.get, tasks.get_nowait)
    while True:
        taken = inbox.next_call(lambda t: 1 if t[3] == "preload" else _rows_of(t[3], t[4]), slots)
        if taken is None:
            return  # stopped, and nothing left
        if current is not None:
            for j, item in enumerate(taken):
                current[index * slots + j] = item[0]
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for item in taken:
            groups.setdefault((item[1], item[2], item[3]), []).append(item)
        sent: list[tuple[int, Outcome, int]] = []
        for (name, version, kind), group in groups.items():
            outcomes = run_group(name, version, kind, group)
            batch = len(group) if kind != "preload" else 0
            for j, (item, outcome) in enumerate(zip(group, outcomes, strict=True)):
                sent.append((item[0], outcome, batch if j == 0 else 0))
        if busy is not None:
            busy[index] = _IDLE  # before the results are sent: never killed while sending
            for j in range(len(taken)):
                current[index * slots + j] = -1
        results.put(sent)  # one message per call


def _import_model_stack() -> None:
    """Import what loading and scoring a model needs (MLflow's pyfunc and scikit-learn
    flavors, pandas, scikit-learn), the bulk of a load's CPU time, while the worker still runs
    at normal priority."""
    import importlib

    for module in ("pandas", "sklearn", "mlflow.pyfunc", "mlflow.sklearn", "mlflow.artifacts"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def _strip(scored: Scored) -> Scored:
    return Scored(scored.predictions, scored.proba, scored.classes, None)  # raw stays here


class _ProcessRunner:
    """Worker processes fed through a queue; a reader thread hands results back, and a
    watchdog thread replaces a worker whose call hangs (see :meth:`_watch`)."""

    def __init__(
        self,
        name: str,
        size: int,
        tracking_uri: str,
        registry_uri: str | None,
        hang_s: float = 60.0,
        on_restart: Callable[[], None] | None = None,
        max_rows: int = 1,
        on_batch: Callable[[int], None] | None = None,
        settle: Settle | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self.settle = settle
        self.max_rows = max(1, max_rows)
        self.on_batch = on_batch
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.hang_s = hang_s
        self.on_restart = on_restart
        self.restarts = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._tasks: Any = self._ctx.Queue()
        self._results: Any = self._ctx.Queue()
        # Per worker: when its current call started scoring (time.monotonic), or _IDLE.
        self._busy: Any = self._ctx.Array("d", [_IDLE] * size, lock=False)
        # Per worker, max_rows slots: the ids of the tasks of its current call (-1: none).
        self._current: Any = self._ctx.Array("q", [-1] * (size * self.max_rows), lock=False)
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        # Per task id: the executor's ticket of a shadow job, or a callable for a preload.
        self._pending: dict[int, Any] = {}
        self._ids = itertools.count()
        # Shadow jobs submitted during this turn of the event loop, sent as one message.
        self._outbox: list[tuple[Any, ...]] = []
        self._workers: list[Any] = []
        self._reader: threading.Thread | None = None
        # Versions every worker has loaded, and those being loaded. Jobs for a version that is
        # not ready are dropped, not queued: a worker loading a model for seconds would make
        # every queued shadow time out and read as a failing challenger.
        self._ready: set[tuple[str, str]] = set()
        self._loading: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def start(self, preload: list[tuple[str, str]]) -> None:
        # Workers load the models known now before they lower their priority (_process_main).
        self._workers = [self._spawn(i, list(preload)) for i in range(self.size)]
        self._reader = threading.Thread(
            target=self._read, name=f"shadow-{self.name}-results", daemon=True
        )
        self._reader.start()
        self._watchdog = threading.Thread(
            target=self._watch, name=f"shadow-{self.name}-watchdog", daemon=True
        )
        self._watchdog.start()
        # Load the challenger before traffic arrives, so the first shadows do not time out.
        events = [self.ensure_loading(name, version) for name, version in preload]
        for event in events:
            if not event.wait(120):
                log.warning("shadow workers of %s still loading after 120 s", self.name)

    def _spawn(self, index: int, preload: list[tuple[str, str]]) -> Any:
        self._busy[index] = _IDLE
        process = self._ctx.Process(
            target=_process_main,
            args=(self.tracking_uri, self.registry_uri, self._tasks, self._results),
            kwargs={
                "index": index,
                "busy": self._busy,
                "current": self._current,
                "preload": preload,
                "max_rows": self.max_rows,
            },
            name=f"arbiter-shadow-{self.name}-{index}",
            daemon=True,
        )
        process.start()
        return process

    def _watch(self) -> None:
        """Replace a worker whose call has scored for ``hang_s``, or that died.

        Killing the worker ends the call; the task it held (``current``) never answers, so it
        is settled here with an error, which frees its slot (the caller has usually logged it
        as a timeout already, at ``timeout_s``). A dead worker's task is settled the same way.
        """
        period = min(1.0, max(0.05, self.hang_s / 4))
        while not self._stopping.wait(period):
            now = time.monotonic()
            for i, process in enumerate(self._workers):
                started = self._busy[i]
                hung = started != _IDLE and now - started >= self.hang_s
                if not hung and process.is_alive():
                    continue
                if self._stopping.is_set():
                    return
                why = (
                    f"a call ran for {now - started:.1f} s (shadow_hang_s={self.hang_s:g})"
                    if hung
                    else f"it exited with code {process.exitcode}"
                )
                self._replace(i, process, why)

    def _replace(self, index: int, process: Any, why: str) -> None:
        with contextlib.suppress(Exception):
            process.kill()  # SIGKILL: a hung C extension may ignore SIGTERM
            process.join(5)
        slots = range(index * self.max_rows, (index + 1) * self.max_rows)
        held = [int(self._current[i]) for i in slots]
        for i in slots:
            self._current[i] = -1
        self._workers[index] = self._spawn(index, sorted(self._ready))
        self.restarts += 1
        log.warning("shadow worker %d of %s replaced: %s", index, self.name, why)
        # Every task of the call it was killed in (one that answered just before the kill
        # is no longer pending).
        self._answer([(t, (None, f"worker replaced: {why}", self.hang_s * 1000.0)) for t in held])
        if self.on_restart is not None:
            self.on_restart()

    def is_ready(self, name: str, version: str) -> bool:
        return (name, version) in self._ready

    def ensure_loading(self, name: str, version: str) -> threading.Event:
        """Have every worker load ``version`` (once); the event is set when they all have."""
        key = (name, version)
        done = threading.Event()
        with self._lock:
            if key in self._ready:
                done.set()
                return done
            if key in self._loading:
                return done  # someone else is waiting on the first request's event
            self._loading.add(key)
        remaining = {"n": self.size, "failed": False}

        def loaded(outcome: Outcome) -> None:
            with self._lock:
                if outcome[1] is not None:
                    remaining["failed"] = True
                    log.error("shadow worker could not load %s v%s: %s", name, version, outcome[1])
                remaining["n"] -= 1
                if remaining["n"] > 0:
                    return
                self._loading.discard(key)
                if not remaining["failed"]:
                    self._ready = {k for k in self._ready if k[0] != name} | {key}
            done.set()

        for _ in range(self.size):
            self._send(name, version, "preload", None, None, loaded)
        return done

    def _send(
        self,
        name: str,
        version: str,
        kind: str,
        data: Any,
        params: Any,
        deliver: Callable[[Outcome], None],
    ) -> None:
        """Send one task now (a preload: from any thread; ``deliver`` runs in the reader)."""
        task_id = next(self._ids)
        self._pending[task_id] = deliver
        self._tasks.put([(task_id, name, version, kind, data, params)])

    def run(self, job: ShadowJob, ticket: Any, in_flight: int) -> None:
        """Queue a shadow job (event loop thread only); the loop's turn sends them all."""
        task_id = next(self._ids)
        self._pending[task_id] = ticket
        self._outbox.append(
            (task_id, job.model.name, job.model.version, job.kind, job.data, job.params)
        )
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        jobs, self._outbox = self._outbox, []
        if jobs:
            self._tasks.put(jobs)

    def _read(self) -> None:
        while True:
            try:
                message = self._results.get()
            except (EOFError, OSError, TypeError, ValueError):  # queue closed under us
                return
            if message is None:
                return
            for _task_id, _outcome, batch in message:
                if batch and self.on_batch is not None:
                    self.on_batch(batch)
            self._answer([(task_id, outcome) for task_id, outcome, _ in message])

    def _answer(self, outcomes: list[tuple[int, Outcome]]) -> None:
        """Hand each task's outcome to whoever waits for it: a preload's callable, or the
        executor's ticket (all of one message together)."""
        tickets = []
        for task_id, outcome in outcomes:
            waiting = self._pending.pop(task_id, None) if task_id >= 0 else None
            if waiting is None:
                continue  # settled already (a killed worker's task that had answered)
            if callable(waiting):
                waiting(outcome)
            else:
                tickets.append((waiting, outcome))
        if tickets and self.settle is not None:
            self.settle(tickets)

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(5)
        for process in self._workers:
            if process.is_alive():
                process.terminate()  # a hung challenger must not hold up shutdown
        for process in self._workers:
            process.join(5)
        with contextlib.suppress(Exception):
            self._results.put(None)  # wakes the reader thread, which then exits
        if self._reader is not None:
            self._reader.join(5)
        for q in (self._tasks, self._results):
            q.close()
            q.cancel_join_thread()


class ShadowExecutor:
    """Bounded, isolated shadow predictions for one served model."""

    def __init__(
        self,
        name: str,
        *,
        max_in_flight: int,
        timeout_s: float,
        kind: ExecutorKind = "thread",
        workers: int = 1,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        hang_s: float | None = None,
        on_restart: Callable[[], None] | None = None,
        max_batch_size: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """``hang_s`` (process executor): a worker whose call has scored this long is killed
        and replaced (default: 3 × ``timeout_s``); ``on_restart`` is called for each one.
        ``max_batch_size``: the most queued rows a worker scores in one call (≤ 1: one job per
        call); ``on_batch`` is called with the number of jobs of each call."""
        self.name = name
        self.kind = kind
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        if kind == "process":
            if tracking_uri is None:
                raise ValueError("a process shadow executor needs the registry's tracking URI")
            self._runner: Any = _ProcessRunner(
                name,
                workers,
                tracking_uri,
                registry_uri,
                hang_s=hang_s if hang_s is not None else 3 * timeout_s,
                on_restart=on_restart,
                max_rows=max_batch_size,
                on_batch=on_batch,
                settle=self._settle,
            )
        else:
            self._runner = _ThreadRunner(
                name, max_in_flight, self._settle, max_batch_size, on_batch
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: set[_Ticket] = set()  # accepted, not yet answered nor timed out
        self._all_answered: asyncio.Event | None = None  # set by drain()
        self.accepted = 0
        self.dropped = 0
        self.timeouts = 0
        self.failures = 0
        self._closed = False

    def start(self, preload: list[tuple[str, str]] | None = None) -> ShadowExecutor:
        """Start the workers; load the given ``(model, version)`` pairs before returning."""
        self._runner.start(preload or [])
        return self

    def ensure_loading(self, name: str, version: str) -> None:
        """Start loading a new challenger version in the workers (no wait)."""
        self._runner.ensure_loading(name, version)

    def is_ready(self, name: str, version: str) -> bool:
        """Whether shadows of ``version`` run now (else they are dropped while it loads)."""
        return bool(self._runner.is_ready(name, version))

    def describe(self, name: str, version: str | None) -> dict[str, object]:
        """What ``GET /models`` shows about this executor."""
        return {
            "executor": self.kind,
            "ready": version is not None and self.is_ready(name, version),
            "in_flight": self.in_flight,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "timeouts": self.timeouts,
            "failures": self.failures,
            "restarts": getattr(self._runner, "restarts", 0),
        }

    @property
    def in_flight(self) -> int:
        return self.max_in_flight - self._slots._value  # a read-only peek

    def submit(self, job: ShadowJob, done: ShadowDone) -> bool:
        """Start ``job`` in the background; False (and counted) when saturated or closed.

        Must be called from the event loop thread.
        """
        if not self._runner.is_ready(job.model.name, job.model.version):
            self._runner.ensure_loading(job.model.name, job.model.version)
            self.dropped += 1  # the new challenger is still loading in the workers
            return False
        if self._closed or not self._slots.acquire(blocking=False):
            self.dropped += 1
            return False
        self.accepted += 1
        loop = self._loop = self._loop or asyncio.get_running_loop()
        ticket = _Ticket(self, done)
        # The deadline is a timer, not a task: a task, a shield and a wait_for per job were
        # much of the loop's cost of a shadow (issue 13).
        ticket.timer = loop.call_later(self.timeout_s, ticket.expire)
        self._open.add(ticket)
        self._runner.run(job, ticket, self.in_flight)
        return True

    def _settle(self, outcomes: list[tuple[Any, Outcome]]) -> None:
        """Outcomes of one call, from a worker's reader or a shadow thread: each frees its
        slot now (the call has really returned), and the loop hears of them in one wake-up."""
        for _ in outcomes:
            self._slots.release()
        loop = self._loop
        # The loop may close between the check and the call (shutdown): nobody listens.
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._answer, outcomes)

    def _answer(self, outcomes: list[tuple[Any, Outcome]]) -> None:
        for ticket, outcome in outcomes:
            ticket.answer(outcome)

    def _closed_ticket(self, ticket: _Ticket) -> None:
        self._open.discard(ticket)
        if not self._open and self._all_answered is not None:
            self._all_answered.set()

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for running shadows to finish, then stop the workers.

        Shadows still out after that are abandoned unlogged, as a cancelled request is."""
        self._closed = True
        if self._open:
            self._all_answered = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_answered.wait(), timeout_s)
        for ticket in list(self._open):
            ticket.abandon()
        await asyncio.to_thread(self._runner.stop)


class _Ticket:
    """One accepted shadow job on the event loop: answered by its outcome or by its deadline,
    whichever comes first, exactly once (``done`` is called once)."""

    __slots__ = ("done", "executor", "timer")

    def __init__(self, executor: ShadowExecutor, done: ShadowDone) -> None:
        self.executor = executor
        self.done: ShadowDone | None = done
        self.timer: asyncio.TimerHandle | None = None

    def answer(self, outcome: Outcome) -> None:
        done = self._close()
        if done is None:
            return  # timed out (logged as such) or abandoned: the late outcome is dropped
        result, error, latency_ms = outcome
        if error is not None:
            self.executor.failures += 1
        try:
            done(result, error, latency_ms)
        except Exception:
            log.exception("logging a shadow result for %s failed", self.executor.name)

    def expire(self) -> None:
        done = self._close()
        if done is None:
            return
        executor = self.executor
        executor.timeouts += 1
        try:
            done(None, f"timeout after {executor.timeout_s:g} s", executor.timeout_s * 1000.0)
        except Exception:
            log.exception("logging a shadow timeout for %s failed", executor.name)

    def abandon(self) -> None:
        self._close()

    def _close(self) -> ShadowDone | None:
        done, self.done = self.done, None
        if done is not None:
            if self.timer is not None:
                self.timer.cancel()
            self.executor._closed_ticket(self)
        return done


__all__ = ["ExecutorKind", "ShadowDone", "ShadowExecutor", "ShadowJob"]
