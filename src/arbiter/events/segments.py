"""Immutable Parquet segment files: atomic write, listing, compaction.

A segment is written under a dot-prefixed temporary name in its final directory, fsynced, then
renamed into place and the directory fsynced. ``rename`` is atomic on POSIX, so a reader (or a
process restarted after ``kill -9``) sees either the whole segment or nothing, and any number of
processes on any number of hosts can append to the same directory without a lock: names carry
the host, the pid, a random token drawn when the process starts and a per-process sequence
number, so they never collide (:func:`segment_name`).

Two name prefixes::

    seg-<utc yyyymmddThhmmss.ffffff>-<host>-<pid>-<token>-<seq>.parquet   one writer's flush
    cmp-<utc yyyymmddThhmmss.ffffff>-<host>-<pid>-<token>-<seq>.parquet   compaction's merge

The timestamp comes first so that names sort by write time across hosts (the latest-label
rule breaks ``ts`` ties by file name, :mod:`arbiter.events.views`); older names without host
and token (``seg-<stamp>-<pid>-<seq>``) are still read, listed and compacted.

A compacted file lists its sources in its Parquet key-value metadata
(:data:`COMPACTED_FROM_KEY`). :func:`list_segments` leaves out every file a present compacted
file lists, so a source that has not been deleted yet (compaction is still running, crashed
between rename and delete, or is holding the sources for ``grace_s`` seconds so open readers
can finish) is never counted twice. Only ``cmp-`` footers are read, and compaction keeps those
files few, which keeps listing cheap.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from arbiter.errors import EventStoreError

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "seg-"
COMPACTED_PREFIX = "cmp-"
SUFFIX = ".parquet"
TEMP_PREFIX = "."
COMPACTED_FROM_KEY = b"arbiter.compacted_from"

# Zstandard at its default level compresses the JSON ``features`` column several times better
# than snappy for a few per cent more CPU; DuckDB reads it natively.
COMPRESSION = "zstd"

# Row-group size of compacted files: DuckDB parallelises scans per row group of ~122k rows.
COMPACTED_ROW_GROUP = 122_880

# Temporary files older than this belong to a writer that died mid-write; compaction removes them.
STALE_TEMP_S = 3600.0

# Process-wide on purpose: names must be unique across every writer in this process; the host,
# pid and token separate processes.
_SEQUENCE = itertools.count()

#: Environment variable that overrides the host part of segment names (default: the hostname).
HOST_ID_ENV = "ARBITER_HOST_ID"


# One random token per process, keyed by pid so a forked child draws its own: two containers
# with the same hostname both run as pid 1, and a restarted process may get an old pid back.
_TOKENS: dict[int, str] = {}


def _process_token() -> str:
    pid = os.getpid()
    token = _TOKENS.get(pid)
    if token is None:
        token = _TOKENS.setdefault(pid, secrets.token_hex(3))
    return token


def host_id() -> str:
    """The host part of segment names: ``$ARBITER_HOST_ID`` or the hostname, as ``[A-Za-z0-9_]``.

    ``-`` separates the parts of a name, so every other character becomes ``_``; at most 40
    characters are kept.
    """
    raw = os.environ.get(HOST_ID_ENV) or socket.gethostname() or "host"
    return re.sub(r"[^A-Za-z0-9_]", "_", raw)[:40]


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one :func:`compact_directory` call did.

    Attributes
    ----------
    merged_files : int
        Compacted files written.
    merged_segments : int
        Source segments folded into those files.
    deleted_files : int
        Source segments deleted (now, or held over from an earlier run or a crash).
    skipped : bool
        True when another process held the compaction lock and nothing was done.
    """

    merged_files: int = 0
    merged_segments: int = 0
    deleted_files: int = 0
    skipped: bool = False

    def __add__(self, other: CompactionResult) -> CompactionResult:
        return CompactionResult(
            self.merged_files + other.merged_files,
            self.merged_segments + other.merged_segments,
            self.deleted_files + other.deleted_files,
            self.skipped or other.skipped,
        )


def segment_name(prefix: str = SEGMENT_PREFIX) -> str:
    """Return a fresh segment file name with ``prefix``, unique across hosts and processes.

    ``<prefix><utc stamp>-<host>-<pid>-<token>-<seq>.parquet``: see the module docstring.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    return f"{prefix}{stamp}-{host_id()}-{os.getpid()}-{_process_token()}-{next(_SEQUENCE)}{SUFFIX}"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(directory: Path, table: pa.Table, *, prefix: str = SEGMENT_PREFIX) -> Path:
    """Write ``table`` as one new segment in ``directory``, durably and atomically.

    Parameters
    ----------
    directory : Path
        Existing table directory (``events/predictions`` or ``events/feedback``).
    table : pyarrow.Table
        Rows to write, already in the table's schema.
    prefix : str, default "seg-"
        File name prefix.

    Returns
    -------
    Path
        The final segment path. When this returns, the file and its directory entry are on disk.

    Raises
    ------
    OSError
        When writing, syncing or renaming failed; no final file is left behind.
    """
    name = segment_name(prefix)
    final = directory / name
    temp = directory / f"{TEMP_PREFIX}{name}.tmp"
    try:
        pq.write_table(table, temp, compression=COMPRESSION)
        _fsync_file(temp)
        os.rename(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def io_reason(exc: BaseException) -> str:
    """Why a write failed, in words that name no path (for /readyz, HTTP errors and logs).

    ``OSError.__str__`` includes the file name (an absolute path under the home); the errno's
    text ("No space left on device", "Read-only file system") says all an operator or a
    client needs, and the log lines name the table instead.
    """
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):  # a store that is not a folder says why itself (PostgreSQL)
        return reason
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    if isinstance(exc, pa.ArrowException):
        # Arrow wraps the errno in its message ("... [errno 28] No space left on device").
        text = str(exc)
        marker = text.rfind("] ")
        if "[errno" in text.lower() and marker >= 0:
            return text[marker + 2 :].strip().split(":")[0]
        return f"the Parquet writer failed ({type(exc).__name__})"
    return type(exc).__name__


def move_segments(source: Path, target: Path) -> tuple[int, int]:
    """Move every segment of ``source`` into ``target``; return ``(files, rows)`` moved.

    Used to bring back predictions spilled to the fallback folder at shutdown. Each file is
    copied under a temporary name, fsynced and renamed into ``target`` (so a reader never sees
    half a file, and a crash mid-way leaves at worst a duplicate-free leftover in ``source``:
    the source is deleted only after the copy is durable). Segment names are unique per
    process, so a moved file never overwrites one already there.

    Raises
    ------
    OSError
        A copy failed (e.g. ``target`` is still full); files not yet moved stay in ``source``.
    """
    import shutil

    try:
        names = sorted(e.name for e in os.scandir(source) if is_segment(e.name))
    except FileNotFoundError:
        return 0, 0
    files = rows = 0
    for name in names:
        src = source / name
        final = target / name
        if final.exists():
            # Moved before, and the source's unlink was lost to a crash: drop the leftover.
            src.unlink(missing_ok=True)
            continue
        temp = target / f"{TEMP_PREFIX}{name}.tmp"
        try:
            n = pq.ParquetFile(src).metadata.num_rows
            shutil.copyfile(src, temp)
            _fsync_file(temp)
            os.rename(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(target)
        src.unlink()
        files += 1
        rows += n
    if files:
        fsync_dir(source)
    return files, rows


def read_compacted_sources(path: Path) -> list[str]:
    """Return the source segment names listed in a compacted file's metadata."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(COMPACTED_FROM_KEY)
    return json.loads(raw) if raw else []


def is_segment(name: str) -> bool:
    """Whether ``name`` is a live segment's file name (``seg-``/``cmp-``, not a temporary)."""
    return name.endswith(SUFFIX) and name.startswith((SEGMENT_PREFIX, COMPACTED_PREFIX))


def _scan(directory: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Return all segment names (sorted) and, per compacted file, the sources it lists."""
    try:
        names = sorted(e.name for e in os.scandir(directory) if is_segment(e.name))
    except FileNotFoundError:
        return [], {}
    sources: dict[str, list[str]] = {}
    for name in names:
        if name.startswith(COMPACTED_PREFIX):
            try:
                sources[name] = read_compacted_sources(directory / name)
            except FileNotFoundError:
                # Removed after our scandir: a compacted file is deleted only after its own
                # sources are gone, so there is nothing left for it to hide.
                continue
    return names, sources


def list_segments(directory: Path) -> list[Path]:
    """Return the live segments of one table directory, oldest name first.

    Files that a present compacted file lists as its sources are left out, so each row is
    counted once even while compaction has not deleted its sources yet.
    """
    names, sources = _scan(directory)
    hidden = {s for listed in sources.values() for s in listed}
    return [directory / n for n in names if n not in hidden]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table`` to ``schema``: reorder, add missing columns as nulls, drop unknown ones."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _merge(
    directory: Path, sources: Sequence[Path], schema: pa.Schema, check: Callable[[], None]
) -> Path:
    """Write the rows of ``sources`` into one compacted file (temp + fsync + rename).

    ``check`` runs just before the rename publishes the file: a compactor that lost its lease
    while merging leaves only a temporary file (removed as stale later).
    """
    names = [p.name for p in sources]
    meta_schema = schema.with_metadata({COMPACTED_FROM_KEY: json.dumps(names).encode()})
    name = segment_name(COMPACTED_PREFIX)
    final = directory / name
    temp = directory / f"{TEMP_PREFIX}{name}.tmp"
    try:
        with pq.ParquetWriter(temp, meta_schema, compression=COMPRESSION) as writer:
            pending: list[pa.Table] = []
            rows = 0
            for src in sources:
                table = conform(pq.read_table(src), schema)
                pending.append(table)
                rows += table.num_rows
                if rows >= COMPACTED_ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending), COMPACTED_ROW_GROUP)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), COMPACTED_ROW_GROUP)
        _fsync_file(temp)
        check()
        os.rename(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def _unlink_all(directory: Path, names: Iterable[str]) -> int:
    deleted = 0
    for name in names:
        try:
            (directory / name).unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    if deleted:
        fsync_dir(directory)
    return deleted


def compact_directory(
    directory: Path,
    schema: pa.Schema,
    *,
    min_age_s: float,
    grace_s: float,
    small_bytes: int,
    target_bytes: int,
    check: Callable[[], None] = lambda: None,
) -> CompactionResult:
    """Merge old small segments of one table directory. The caller holds the compaction lease.

    Steps: (1) delete the sources of compacted files older than ``grace_s`` (this is also the
    crash recovery: a run that died between rename and delete left them behind); (2) remove
    stale temporary files; (3) merge live segments older than ``min_age_s`` and smaller than
    ``small_bytes`` into files of about ``target_bytes``; their sources are deleted at once when
    ``grace_s`` is 0, else by a later run.

    A compacted file only becomes a merge candidate once its own sources are gone, so deleting
    it can never un-hide a source and double count it.

    ``check`` runs before every delete and every merge (:meth:`arbiter.events.lease.Lease.check`):
    it raises when the lease was lost, so a stalled compactor stops before touching anything.
    """
    now = time.time()
    names, sources = _scan(directory)
    present = set(names)
    deleted = 0
    for cmp_name, listed in sources.items():
        pending = [s for s in listed if s in present]
        if not pending:
            continue
        try:
            age = now - (directory / cmp_name).stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= grace_s:
            check()
            deleted += _unlink_all(directory, pending)
            present.difference_update(pending)
    for entry in os.scandir(directory):
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMP_S:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass

    hidden = {s for listed in sources.values() for s in listed}
    unsettled = {c for c, listed in sources.items() if any(s in present for s in listed)}
    candidates: list[tuple[Path, int]] = []
    for name in names:
        if name not in present or name in hidden or name in unsettled:
            continue
        path = directory / name
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime >= min_age_s and st.st_size < small_bytes:
            candidates.append((path, st.st_size))

    groups: list[list[Path]] = []
    group: list[Path] = []
    size = 0
    for path, nbytes in candidates:
        if group and size + nbytes > target_bytes:
            groups.append(group)
            group, size = [], 0
        group.append(path)
        size += nbytes
    groups.append(group)

    merged_files = merged_segments = 0
    for group in groups:
        if len(group) < 2:
            continue  # rewriting a single file would gain nothing
        try:
            out = _merge(directory, group, schema, check)
        except (OSError, pa.ArrowException) as exc:
            raise EventStoreError(
                f"compacting {len(group)} segments in {directory} failed: {exc}; "
                "the sources are untouched and the next compaction will retry"
            ) from exc
        logger.info("compacted %d segments into %s", len(group), out.name)
        merged_files += 1
        merged_segments += len(group)
        if grace_s <= 0:
            check()
            deleted += _unlink_all(directory, (p.name for p in group))
    return CompactionResult(merged_files, merged_segments, deleted)
