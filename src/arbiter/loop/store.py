"""Decision records on disk: ``HOME/loop/cycles/<cycle-id>.json``, one file per cycle.

Each save writes a temporary file in the same folder, fsyncs it and renames it over the
record, so a crash leaves either the previous record or the new one, never half of one. A
per-model lock file (``HOME/loop/<model>.lock``, ``fcntl``) keeps two ``loop run`` processes
(cron and a person, say) from driving the same model at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from arbiter.errors import ArbiterError, EventStoreError, NotFoundError
from arbiter.loop.record import CycleRecord


class CycleStore:
    """The decision records of one home folder.

    Parameters
    ----------
    home : str or os.PathLike
        The arbiter home; records go to ``HOME/loop/cycles``.
    """

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.root = Path(home) / "loop"
        self.cycles = self.root / "cycles"

    def path(self, cycle_id: str) -> Path:
        return self.cycles / f"{cycle_id}.json"

    def save(self, record: CycleRecord) -> Path:
        """Write ``record`` atomically (temporary file, fsync, rename)."""
        self.cycles.mkdir(parents=True, exist_ok=True)
        target = self.path(record.cycle_id)
        data = json.dumps(record.to_dict(), indent=2, sort_keys=True, allow_nan=False)
        fd, tmp = tempfile.mkstemp(dir=self.cycles, prefix=f".{record.cycle_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise EventStoreError(f"cannot write the decision record {target}: {exc}") from exc
        dir_fd = os.open(self.cycles, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def load(self, cycle_id: str) -> CycleRecord:
        path = self.path(cycle_id)
        if not path.exists():
            raise NotFoundError(f"no decision record {cycle_id!r} in {self.cycles}")
        return CycleRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def records(self, model: str | None = None) -> list[CycleRecord]:
        """Every record (of ``model``), oldest first."""
        if not self.cycles.exists():
            return []
        out = []
        for path in self.cycles.glob("*.json"):
            record = CycleRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if model is None or record.model == model:
                out.append(record)
        return sorted(out, key=lambda r: (r.created_at, r.cycle_id))

    def open_cycle(self, model: str) -> CycleRecord | None:
        """The unfinished cycle of ``model`` (the newest, should there be several)."""
        pending = [r for r in self.records(model) if not r.finished]
        return pending[-1] if pending else None

    def last_retrain_at(self, model: str) -> str | None:
        """When ``model`` was last retrained by the loop (ISO time), or None."""
        times = [
            step.finished_at
            for r in self.records(model)
            if (step := r.step("retrain")) is not None
            and step.status == "done"
            and step.finished_at is not None
        ]
        return max(times) if times else None

    @contextlib.contextmanager
    def lock(self, model: str) -> Iterator[None]:
        """Hold the model's loop lock; raise at once if another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{model}.lock"
        with open(path, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ArbiterError(
                    f"another `arbiter loop` process is driving model {model!r} "
                    f"(lock {path}); wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = ["CycleStore"]
