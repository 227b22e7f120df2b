"""Who is using a home: ``arbiter serve`` holds a shared lock, ``arbiter demo`` an exclusive one.

Why: rebuilding a home under a running server broke both (the rebuild failed with "disk I/O
error", the server logged "malformed database schema", and every earlier result was gone).
An advisory ``flock`` on ``HOME/.serve.lock`` is released by the kernel when its process
exits, even on ``kill -9``, so a crashed server never leaves a stale lock behind. Servers take
it shared (several replicas may serve one home); the demo takes it exclusive and gives up at
once when a server holds it. POSIX only (``fcntl``), like the rest of the serving stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from arbiter.errors import ConfigError

LOCK_NAME = ".serve.lock"


def lock_path(root: Path) -> Path:
    return Path(root) / LOCK_NAME


def _try_lock(handle: IO[str], mode: int) -> bool:
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holders(path: Path) -> str:
    """The pids written by the lock's holders, for the message (best effort)."""
    try:
        pids = sorted({int(p) for p in path.read_text(encoding="utf-8").split() if p.isdigit()})
    except OSError:
        return ""
    pids = [p for p in pids if _alive(p)]
    return f" (pid {', '.join(map(str, pids))})" if pids else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _holding(root: Path, mode: int, refusal: str) -> Iterator[None]:
    """Hold ``root``'s lock in ``mode`` (its pid written beside the others'), or refuse."""
    path = lock_path(root)
    with open(path, "a+", encoding="utf-8") as handle:
        if not _try_lock(handle, mode):
            raise ConfigError(refusal.format(holders=_holders(path)))
        if mode == fcntl.LOCK_EX:  # the only holder: earlier pids are gone
            handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def serving(root: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``root``'s lock shared while a server runs; refuse while a demo rebuilds it."""
    return _holding(
        root,
        fcntl.LOCK_SH,
        f"{root} is being rebuilt by `arbiter demo`{{holders}}; serve it when the demo has "
        "finished",
    )


def rebuilding(root: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``root``'s lock exclusively (the demo); refuse while any server uses the home."""
    root.mkdir(parents=True, exist_ok=True)
    return _holding(
        root,
        fcntl.LOCK_EX,
        f"{root} is in use by `arbiter serve`{{holders}}; stop the server first "
        "(rebuilding a home under a running server corrupts its registry)",
    )


__all__ = ["LOCK_NAME", "lock_path", "rebuilding", "serving"]
