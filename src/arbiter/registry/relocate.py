"""A home that was copied, moved or restored serves its own artifacts.

MLflow stores absolute artifact URIs: the experiment's ``artifact_location``, each run's
``artifact_uri``, each logged model's ``artifact_location`` and each model version's
``storage_location`` all start with ``file:///old/home/artifacts``. A home copied with
``cp -a`` (or restored from a backup elsewhere) would go on reading, and logging new versions
into, the original's folder, or fail once it is gone.

So a home records the path it lives at in a marker file (``HOME/.arbiter-home``). When the
embedded registry is opened and the marker names another path, the home was relocated: every
URI of MLflow's SQLite store that points under ``OLD/artifacts`` is rewritten to
``HOME/artifacts``, in one transaction, and the marker is updated. From then on MLflow works
natively: old versions load from the copy, and new ones are logged into it. URIs pointing
anywhere else (a shared artifact store, another home) are left alone.

A home created before the marker existed gets one the first time it is opened. If it was copied
before that, the old path is inferred from the experiments' ``artifact_location`` (the one
``file://OLD/artifacts`` outside this home), and only when this home has an ``artifacts/``
folder of its own: a home holding only a copy of ``mlflow.db`` (the test suite's homes) keeps
reading the artifacts where they are.

Only SQLite and the standard library are used here: no MLflow import, so opening a home stays
cheap when nothing moved (one small file read under a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".arbiter-home"

# The columns of MLflow's SQLite schema (MLflow 2 and 3) that hold artifact URIs or paths.
URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _prefixes(artifacts: Path) -> list[str]:
    """The spellings MLflow may have stored for a folder: URI (encoded or not) and bare path."""
    spellings = [artifacts.as_uri(), f"file://{artifacts}", str(artifacts)]
    return list(dict.fromkeys(spellings))


@contextlib.contextmanager
def _locked_marker(root: Path) -> Iterator[int]:
    """Open the marker (creating it) under an exclusive lock: one process relocates at a time."""
    fd = os.open(root / MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read_marker(fd: int) -> Path | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    try:
        root = json.loads(raw)["root"]
    except (ValueError, KeyError, TypeError):
        return None  # absent, empty or torn by a crash: infer instead
    return Path(root) if isinstance(root, str) else None


def _write_marker(fd: int, root: Path) -> None:
    data = json.dumps({"root": str(root)}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _tables(con: sqlite3.Connection) -> set[str]:
    return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _infer_old_root(con: sqlite3.Connection, root: Path) -> Path | None:
    """The one ``OLD`` such that an experiment keeps its artifacts in ``file://OLD/artifacts``."""
    if "experiments" not in _tables(con):
        return None
    candidates = set()
    for (location,) in con.execute("SELECT artifact_location FROM experiments"):
        if not isinstance(location, str):
            continue
        path = location.removeprefix("file://") if location.startswith("file://") else location
        if not path.startswith("/"):
            continue
        folder = Path(path)
        if folder.name == "artifacts" and folder.parent != root:
            candidates.add(folder.parent)
    return candidates.pop() if len(candidates) == 1 else None


def rewrite_artifact_prefix(con: sqlite3.Connection, old: Path, new: Path) -> int:
    """Point every artifact URI under ``old`` at the same place under ``new``; return rows changed.

    Matches whole path components (``OLD/artifacts`` or ``OLD/artifacts/...``, never
    ``OLD/artifacts-2``). The caller commits.
    """
    tables = _tables(con)
    changed = 0
    old_spellings = _prefixes(old)
    new_spellings = _prefixes(new)
    for table, column in URI_COLUMNS:
        if table not in tables:
            continue
        columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            continue
        for before, after in zip(old_spellings, new_spellings, strict=True):
            cursor = con.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, length(?) + 1) "
                f"WHERE {column} = ? OR substr({column}, 1, length(?) + 1) = ? || '/'",
                (after, before, before, before, before),
            )
            changed += cursor.rowcount
    return changed


def relocate_home(root: Path, db: Path) -> int:
    """Make the embedded registry of the home at ``root`` point at this home's artifacts.

    Cheap and idempotent: when the marker names ``root`` it only reads it. Safe to call from
    several processes at once (an exclusive lock on the marker). A read-only home is left as
    it is (its artifacts resolve where the database says).

    Parameters
    ----------
    root : Path
        The home folder (resolved).
    db : Path
        Its embedded MLflow store (``HOME/mlflow.db``).

    Returns
    -------
    int
        Artifact URIs rewritten (0 when the home did not move).
    """
    try:
        with _locked_marker(root) as fd:
            recorded = _read_marker(fd)
            if recorded == root:
                return 0
            changed = 0
            if db.exists():
                changed = _rebase(root, db, recorded)
            _write_marker(fd, root)
            return changed
    except (OSError, sqlite3.Error) as exc:
        # Read-only media, a locked database: serve what the database says, as before.
        log.warning("could not check whether this home was moved (%s)", type(exc).__name__)
        return 0


def _rebase(root: Path, db: Path, recorded: Path | None) -> int:
    con = sqlite3.connect(db, timeout=30.0)
    try:
        old = recorded if recorded is not None else _infer_old_root(con, root)
        if old is None or old == root or not (root / "artifacts").is_dir():
            return 0
        with con:  # one transaction: all URIs move, or none
            changed = rewrite_artifact_prefix(con, old / "artifacts", root / "artifacts")
    finally:
        con.close()
    if changed:
        log.info("this home was moved or copied: %d artifact URIs now point into it", changed)
    return changed


__all__ = ["MARKER", "URI_COLUMNS", "relocate_home", "rewrite_artifact_prefix"]
