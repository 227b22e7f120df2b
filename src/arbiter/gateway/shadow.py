"""Shadow execution: score a request with the challenger off the request path.

The caller's response never waits for the shadow. Work is bounded: at most ``max_in_flight``
shadow calls run at once per model (each in its own worker thread); a request that finds
every slot busy is dropped and counted rather than queued, so a slow, hanging or failing
challenger can never build a backlog that hurts the champion. A shadow call that outlives
``timeout_s`` is logged as a timeout; its slot is freed only when the call really returns, so a
hung challenger eventually holds every slot and all further shadows are dropped (and counted)
until it recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Called with (scored or None, error or None, latency_ms) exactly once per accepted shadow.
ShadowDone = Callable[[Any, str | None, float], None]


class ShadowExecutor:
    """Runs shadow predictions in a bounded pool of threads."""

    def __init__(self, name: str, *, max_in_flight: int, timeout_s: float) -> None:
        self.name = name
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        # Daemon threads, not a ThreadPoolExecutor: the executor joins its threads at exit, so
        # one hung challenger call would keep the process from ever shutting down.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.dropped = 0
        self.timeouts = 0
        self.failures = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        return self.max_in_flight - self._slots._value

    def submit(self, fn: Callable[[], Any], done: ShadowDone) -> bool:
        """Start ``fn`` in the background; False (and counted) when saturated or closed.

        Must be called from the event loop thread.
        """
        if self._closed or not self._slots.acquire(blocking=False):
            self.dropped += 1
            return False
        self.accepted += 1
        task = asyncio.get_running_loop().create_task(self._run(fn, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, loop, future = item
            outcome = self._call(fn)
            # The loop may close between the check and the call (shutdown): nothing to tell then.
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_set_result, future, outcome)

    def _start_thread(self) -> None:
        if len(self._threads) < self.max_in_flight:
            thread = threading.Thread(
                target=self._worker, name=f"shadow-{self.name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _call(self, fn: Callable[[], Any]) -> tuple[Any, str | None, float]:
        start = time.perf_counter()
        try:
            return fn(), None, (time.perf_counter() - start) * 1000.0
        except Exception as exc:  # a failing challenger is logged, never raised to the caller
            return None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - start) * 1000.0
        finally:
            self._slots.release()

    async def _run(self, fn: Callable[[], Any], done: ShadowDone) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, str | None, float]] = loop.create_future()
        if self.in_flight > len(self._threads):  # every thread is busy: add one (bounded)
            self._start_thread()
        self._queue.put((fn, loop, future))
        try:
            result, error, latency_ms = await asyncio.wait_for(
                asyncio.shield(future), self.timeout_s
            )
        except TimeoutError:
            self.timeouts += 1
            done(None, f"timeout after {self.timeout_s:g} s", self.timeout_s * 1000.0)
            return
        except asyncio.CancelledError:  # shutting down: the slot frees when the thread returns
            return
        if error is not None:
            self.failures += 1
        try:
            done(result, error, latency_ms)
        except Exception:
            log.exception("logging a shadow result for %s failed", self.name)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for running shadows to finish (graceful shutdown)."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in list(self._tasks):
            task.cancel()
        # Hung threads are daemons: they do not hold up the process's exit.
        for _ in self._threads:
            self._queue.put(None)


def _set_result(future: asyncio.Future[Any], outcome: Any) -> None:
    if not future.done():
        future.set_result(outcome)


__all__ = ["ShadowDone", "ShadowExecutor"]
