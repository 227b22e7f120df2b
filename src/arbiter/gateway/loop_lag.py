"""An opt-in event-loop stall recorder: what every thread was doing while the loop stood still.

Issue 13's open-loop runs showed a p99 far above the bare app's at half load: something stalls
the event loop for tens of milliseconds at a time. A sampling profiler sees where time goes on
average. It does not say what was running *during* the few stalls that make the tail. This
module records those stalls: ``ARBITER_LOOP_LAG_MS=10`` turns it on in ``arbiter serve``.

* A heartbeat task on the loop sleeps ``threshold / 2`` over and over and notes when it fell
  asleep. When it wakes ``threshold`` or more late, the loop was stalled that long.
* A watchdog thread looks at the heartbeat just as often. When the heartbeat is overdue by
  ``threshold``, the stall is still going on, so it takes the stacks of every thread
  (``sys._current_frames()``) once for that stall. The watchdog needs the GIL for that, and
  gets it within one switch interval (5 ms) from Python code. It waits out code that never
  lets the GIL go, and a garbage collection is such code.
* Each stall notes the loop thread's own CPU time over it (``time.thread_time``): close to the
  stall's length, the loop was busy itself (the stack says with what); far below, it waited
  for the GIL or for a CPU.
* ``gc.callbacks`` time every collection. Collections of ``threshold / 4`` or more are recorded
  with their start time, so stalls can be matched with the collections inside them.

Each stall is logged as one WARNING line (``arbiter.gateway.loop_lag``: its length and the loop
thread's innermost frames). With ``ARBITER_LOOP_LAG_FILE=PATH`` each stall and slow collection
is also appended to ``PATH`` as one JSON line, with every thread's stack (benchmarks/
tail_profile.py reads it). Off by default: nothing is started and nothing is registered.
When on, it costs a few hundred short wake-ups a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

ENV_MS = "ARBITER_LOOP_LAG_MS"
ENV_FILE = "ARBITER_LOOP_LAG_FILE"
#: Innermost frames kept per thread (the loop's outer frames are always uvicorn's and asyncio's).
MAX_FRAMES = 40


@dataclass(frozen=True)
class LoopLagSettings:
    """What ``arbiter serve`` was asked to record (from the environment, read once)."""

    threshold_ms: float
    path: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LoopLagSettings | None:
        raw = environ.get(ENV_MS, "").strip()
        if not raw:
            return None
        try:
            threshold = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_MS}={raw!r}: expected milliseconds, e.g. 10") from None
        if threshold <= 0:
            raise ValueError(f"{ENV_MS}={raw!r}: must be above 0")
        path = environ.get(ENV_FILE, "").strip()
        return cls(threshold, Path(path) if path else None)


def thread_stacks(skip: int | None = None) -> dict[str, list[str]]:
    """Every thread's stack, innermost frame last, as ``file:line function`` strings."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out: dict[str, list[str]] = {}
    for ident, frame in sys._current_frames().items():
        if ident == skip:
            continue
        frames = traceback.extract_stack(frame)[-MAX_FRAMES:]
        name = f"{names.get(ident, 'thread')}-{ident}"
        out[name] = [f"{f.filename}:{f.lineno} {f.name}" for f in frames]
    return out


class LoopLagMonitor:
    """Records loop stalls of ``threshold_ms`` or more; :meth:`start` on the loop, then
    :meth:`stop`."""

    def __init__(self, settings: LoopLagSettings) -> None:
        self.threshold_s = settings.threshold_ms / 1000.0
        self.tick_s = self.threshold_s / 2
        self.path = settings.path
        # (heartbeat number, perf_counter when the heartbeat went to sleep): one tuple, so the
        # watchdog never reads a number with another beat's time.
        self._beat: tuple[int, float] = (0, time.perf_counter())
        self._captured: dict[int, tuple[float, dict[str, list[str]]]] = {}
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._gc_started = 0.0
        self._loop_thread = ""
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self.stalls = 0

    def start(self) -> LoopLagMonitor:
        """Start recording (call on the event loop's thread)."""
        current = threading.current_thread()
        self._loop_thread = f"{current.name}-{current.ident}"
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(), name="loop-lag")
        self._thread = threading.Thread(target=self._watch, name="arbiter-loop-lag", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)
        log.info("recording event-loop stalls of %.0f ms or more", self.threshold_s * 1000)
        return self

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    async def _heartbeat(self) -> None:
        n = 0
        while True:
            n += 1
            asleep, cpu = time.perf_counter(), time.thread_time()
            self._beat = (n, asleep)
            await asyncio.sleep(self.tick_s)
            late = time.perf_counter() - asleep - self.tick_s
            if late >= self.threshold_s:
                began = time.time() - late - self.tick_s  # wall clock, for reading logs
                # The loop thread's own CPU meanwhile: near the stall's length, the loop was
                # busy itself; far below it, it waited (for the GIL, or for a CPU).
                loop_cpu_ms = (time.thread_time() - cpu) * 1000
                self._events.put(
                    {"kind": "stall", "beat": n, "t": began, "ms": late * 1000,
                     "loop_cpu_ms": loop_cpu_ms}
                )  # fmt: skip

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
            return
        took = now - self._gc_started
        if took >= self.threshold_s / 4:
            self._events.put(
                {
                    "kind": "gc",
                    "t": time.time() - took,
                    "ms": took * 1000,
                    "generation": info.get("generation"),
                    "collected": info.get("collected"),
                    "thread": threading.current_thread().name,
                }
            )

    def _watch(self) -> None:
        me = threading.get_ident()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(self.path, "a", encoding="utf-8", buffering=1)  # one line per record
            if self.path is not None
            else contextlib.nullcontext()
        ) as out:
            while not self._stop.wait(self.tick_s):
                n, asleep = self._beat
                overdue = time.perf_counter() - asleep - self.tick_s
                if overdue >= self.threshold_s and n not in self._captured:
                    self._captured[n] = (overdue * 1000, thread_stacks(skip=me))
                self._drain(out)
                # A capture whose beat ended under the threshold after all has no stall.
                for stale in [b for b in self._captured if b < n - 1]:
                    del self._captured[stale]
            self._drain(out)

    def _drain(self, out: TextIO | None) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event["kind"] == "stall":
                self.stalls += 1
                seen_ms, stacks = self._captured.pop(event.pop("beat"), (None, {}))
                event.update(seen_after_ms=seen_ms, loop_thread=self._loop_thread, stacks=stacks)
                top = stacks.get(self._loop_thread, ["(not caught while stalled)"])[-3:]
                log.warning(
                    "event loop stalled %.1f ms (%.1f ms of it on a CPU); loop thread at %s",
                    event["ms"],
                    event["loop_cpu_ms"],
                    " <- ".join(reversed(top)),
                )
            if out is not None:
                out.write(json.dumps(event) + "\n")


__all__ = ["ENV_FILE", "ENV_MS", "LoopLagMonitor", "LoopLagSettings", "thread_stacks"]
