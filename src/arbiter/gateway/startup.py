"""Where a gateway's start-up time goes (one log line when it is ready), and keeping it short.

``arbiter serve`` spends its start-up importing (MLflow, pandas, scikit-learn, uvicorn),
reading the registry, loading each model version and opening the event store. The lifespan
marks each phase; :meth:`StartupTimeline.summary` says how long each took, and how long the
process had been running before the lifespan began (the imports and the app's construction),
read from the kernel's record of when the process started (Linux; elsewhere unknown).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator


def pause_collection() -> None:
    """Stop the cyclic garbage collector until :func:`collection_paused` ends.

    For ``arbiter serve`` and its worker processes, called before the gateway's imports: those
    build hundreds of thousands of long-lived objects (MLflow, SQLAlchemy, pandas,
    scikit-learn), and each full collection during them walks all of those objects again.
    """
    gc.disable()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """The gateway's start-up, with the cyclic collector off; it is on again afterwards.

    Start-up ends in ``gc.collect()`` and ``gc.freeze()``, which move everything start-up
    kept into a generation the collector no longer scans. Collections before that point only
    re-walk objects that will live as long as the process: 5-7 full collections, about 0.3 s
    of CPU of a 4.6 s start-up here (issue 13). The collector is switched on again on the way
    out, whether start-up succeeded or failed, so a gateway embedded in a longer-lived
    process (tests, notebooks) never leaves it off.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def process_age_s() -> float | None:
    """Seconds since this process started (``/proc/self/stat``; None where there is none)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            # Field 22 (starttime, in clock ticks after boot); the command name (field 2) may
            # hold spaces, so count from its closing parenthesis.
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class StartupTimeline:
    """Phases of the lifespan's start-up, in order, with their durations."""

    def __init__(self) -> None:
        self.before_s = process_age_s()  # imports, create_app, uvicorn's own start
        self._last = time.perf_counter()
        self._start = self._last
        self.phases: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        """``phase`` ended now (it began at the previous mark)."""
        now = time.perf_counter()
        self.phases.append((phase, now - self._last))
        self._last = now

    @property
    def total_s(self) -> float | None:
        """Process start to the last mark (None when the process's start is unknown)."""
        if self.before_s is None:
            return None
        return self.before_s + (self._last - self._start)

    def as_dict(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"process_to_lifespan_s": self.before_s}
        out.update({f"{name}_s": round(seconds, 4) for name, seconds in self.phases})
        out["total_s"] = self.total_s
        return out

    def summary(self) -> str:
        parts = [f"{name} {seconds:.2f} s" for name, seconds in self.phases]
        if self.before_s is None:
            return "start-up: " + ", ".join(parts)
        return (
            f"ready {self.total_s:.2f} s after the process started: imports and app "
            f"{self.before_s:.2f} s, " + ", ".join(parts)
        )


__all__ = ["StartupTimeline", "process_age_s"]
