"""``loop schedule``: run ``loop run`` every so often in the foreground, for cron-less hosts.

One cycle step per tick (:func:`~arbiter.loop.run.run_cycle`), then sleep until the next tick.
SIGINT and SIGTERM end the sleep within :data:`STOP_POLL_S`; a tick in progress finishes its
current step first, so a stop never leaves a step half-recorded. The signal handler only
records the signal (a list append, no lock): setting a :class:`threading.Event` from a handler
deadlocks when the signal lands while the main thread holds that event's lock inside
``Event.wait`` (it did, now and then, on a loaded machine), so the sleep waits in short slices
and looks at what the handler recorded. A failed tick is logged and the schedule goes on
(the record holds the error and the next tick retries the step).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.loop.run import LoopOptions, LoopRun, run_cycle

log = logging.getLogger(__name__)

#: The longest a stop signal waits to be noticed during the sleep between ticks.
STOP_POLL_S = 0.2


@dataclass(frozen=True)
class ScheduleResult:
    """What a schedule did before it stopped."""

    ticks: int
    failures: int
    stopped_by: str  # "max_cycles" or the signal name
    runs: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "failures": self.failures,
            "stopped_by": self.stopped_by,
            "runs": list(self.runs),
        }


@contextmanager
def _stop_on_signals(reason: list[str]) -> Iterator[None]:
    """Append the signal's name to ``reason`` on SIGINT/SIGTERM (main thread only; elsewhere
    the caller stops the schedule with its event). Nothing else: see the module docstring."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        reason.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_schedule(
    home: str | Path,
    model: str,
    every_s: float,
    options: LoopOptions | None = None,
    *,
    max_cycles: int | None = None,
    stop: threading.Event | None = None,
    on_run: Callable[[LoopRun], None] | None = None,
) -> ScheduleResult:
    """Call :func:`run_cycle` every ``every_s`` seconds until stopped.

    Parameters
    ----------
    home, model, options
        As :func:`run_cycle`.
    every_s : float
        Seconds from the start of one tick to the start of the next.
    max_cycles : int, optional
        Stop after this many ticks (each tick is one ``loop run``).
    stop : threading.Event, optional
        Set it to stop (signals set it too when called from the main thread).
    on_run : callable, optional
        Called with each tick's :class:`LoopRun`.
    """
    if not every_s > 0:
        raise InvalidInputError(f"every must be positive, got {every_s}", field="every")
    if max_cycles is not None and max_cycles < 1:
        raise InvalidInputError(f"max_cycles must be >= 1, got {max_cycles}", field="max_cycles")
    stop = stop or threading.Event()
    reason: list[str] = []
    ticks = failures = 0
    runs: list[dict[str, Any]] = []

    def stopped() -> bool:
        if reason and not stop.is_set():
            log.info("%s received: stopping after the current step", reason[0])
            stop.set()
        return stop.is_set()

    with _stop_on_signals(reason):
        while not stopped():
            started = time.monotonic()
            ticks += 1
            log.info("tick %d: loop run --model %s", ticks, model)
            try:
                result = run_cycle(home, model, options)
            except ArbiterError as exc:
                failures += 1
                log.error("tick %d failed: %s", ticks, exc)
                runs.append({"tick": ticks, "error": str(exc)})
            else:
                rec = result.record
                log.info(
                    "tick %d: cycle %s %s%s; ran %s",
                    ticks,
                    rec.cycle_id,
                    rec.status,
                    f" ({rec.verdict})" if rec.verdict else "",
                    ", ".join(result.ran) or "nothing",
                )
                runs.append(
                    {
                        "tick": ticks,
                        "cycle_id": rec.cycle_id,
                        "status": rec.status,
                        "verdict": rec.verdict,
                        "ran": list(result.ran),
                    }
                )
                if on_run is not None:
                    on_run(result)
            if max_cycles is not None and ticks >= max_cycles:
                return ScheduleResult(ticks, failures, "max_cycles", tuple(runs))
            wait = max(0.0, every_s - (time.monotonic() - started))
            log.info("next tick in %.0f s", wait)
            until = time.monotonic() + wait
            while not stopped() and (left := until - time.monotonic()) > 0:
                stop.wait(min(left, STOP_POLL_S))
    return ScheduleResult(ticks, failures, reason[0] if reason else "stopped", tuple(runs))


__all__ = ["ScheduleResult", "run_schedule"]
