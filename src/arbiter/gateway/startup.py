"""Where a gateway's start-up time goes: one log line when it is ready to answer.

``arbiter serve`` spends its start-up importing (MLflow, pandas, scikit-learn, uvicorn),
reading the registry, loading each model version and opening the event store. The lifespan
marks each phase; :meth:`StartupTimeline.summary` says how long each took, and how long the
process had been running before the lifespan began (the imports and the app's construction),
read from the kernel's record of when the process started (Linux; elsewhere unknown).
"""

from __future__ import annotations

import os
import time


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
