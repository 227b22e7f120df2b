"""The event log on object storage (``events.url: s3://…``, ``gs://…``, ``abfs://…``).

The same segment layout as a directory (:mod:`arbiter.events.store`), through
``pyarrow.fs``, so every replica on every host writes one bucket prefix directly, without a
mount. What changes with object storage, and why it stays correct:

- **Writes.** An object appears whole when its upload completes and never before (S3, GCS and
  Azure Blob all guarantee it), so a segment is uploaded straight to its final key: there is
  no rename to make it atomic, and none is needed. Names are unique across hosts
  (:func:`arbiter.events.segments.segment_name`), so no write overwrites another.
  "Acknowledged = durable" holds: ``/feedback`` answers after the upload completed.
- **Reads.** DuckDB reads the live segments as a pyarrow dataset (predictions and outcomes:
  columns and row groups pruned as with local files); feedback is read whole, in segment name
  order, because the latest-label rule breaks ties by write order
  (:func:`arbiter.events.views.connect_tables`). Listing and hiding compacted sources work as
  on a directory.
- **Compaction.** A merged file is written to a local temporary file first, the lease is
  checked, then it is uploaded: a compactor that lost its lease publishes nothing.
- **The lease.** pyarrow.fs has no create-if-absent, so :class:`ObjectLease` writes its claim
  and reads it back after ``settle_s``: of claims written within that window the last one
  wins, and every other claimant sees it and backs off (the registry-tag lease of the canary
  controller works the same way, :mod:`arbiter.canary.store`). It assumes a claimant's read
  and write of the lease are less than ``settle_s`` apart, which a host stalled between them
  could break (two holders could then merge the same segments twice): run one scheduled
  compaction per log, not one per replica.

Credentials come from where pyarrow finds them (environment, instance role, the URL); only
:attr:`~arbiter.events.location.EventLocation.display` (no credentials) reaches a message.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from arbiter.errors import ConfigError, EventStoreError, InvalidInputError
from arbiter.events import segments
from arbiter.events.lease import DEFAULT_TTL_S, LeaseLostError, new_holder_id, parse_lease
from arbiter.events.schema import FEEDBACK_SCHEMA, OUTCOMES_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.store import LEASE_FILE, EventStore
from arbiter.events.views import TABLES, Table, connect_tables

logger = logging.getLogger(__name__)

#: How long a lease claim waits before reading itself back (see the module docstring).
DEFAULT_SETTLE_S = 1.0

_SCHEMAS: dict[str, pa.Schema] = {
    "predictions": PREDICTIONS_SCHEMA,
    "feedback": FEEDBACK_SCHEMA,
    "outcomes": OUTCOMES_SCHEMA,
}


class ObjectLease:
    """The compaction lease as one object: claim, settle, read back (module docstring).

    Same interface as :class:`arbiter.events.lease.Lease` (``acquire``, ``check``,
    ``renew_if_due``, ``release``, ``held``), so compaction runs unchanged over either.
    """

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        path: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        settle_s: float = DEFAULT_SETTLE_S,
        holder: str | None = None,
    ) -> None:
        self.filesystem = filesystem
        self.path = path
        self.ttl_s = ttl_s
        self.settle_s = settle_s
        self.holder = holder or new_holder_id()
        self.held = False
        self._expires = 0.0
        self._acquired = 0.0

    def __enter__(self) -> ObjectLease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _read(self) -> Any:
        try:
            with self.filesystem.open_input_stream(self.path) as f:
                return parse_lease(f.read())
        except FileNotFoundError:
            return None

    def _write(self, now: float) -> None:
        payload = {
            "holder": self.holder,
            "host": segments.host_id(),
            "pid": os.getpid(),
            "acquired_unix": self._acquired or now,
            "expires_unix": now + self.ttl_s,
        }
        with self.filesystem.open_output_stream(self.path) as f:
            f.write(json.dumps(payload).encode())
        self._expires = now + self.ttl_s

    def acquire(self) -> bool:
        """Claim the lease if it is free, expired or ours; whether this holder has it now."""
        now = time.time()
        info = self._read()
        if info is not None and info.holder != self.holder and not info.expired(now):
            return False
        self._acquired = now
        self._write(now)
        time.sleep(self.settle_s)  # other claims written meanwhile land before the read-back
        info = self._read()
        self.held = info is not None and info.holder == self.holder
        return self.held

    def renew_if_due(self, *, force: bool = False) -> bool:
        """Extend the lease at half-time (always with ``force``); raise when it was lost."""
        now = time.time()
        if not force and now < self._expires - self.ttl_s / 2:
            return True
        info = self._read()
        if info is None or info.holder != self.holder or now > info.expires_unix:
            self.held = False
            raise LeaseLostError(
                "the compaction lease was taken over or expired; stopping before any further change"
            )
        self._write(now)
        return True

    def check(self) -> None:
        """Confirm the lease before a change (:meth:`arbiter.events.lease.Lease.check`)."""
        if not self.held:
            raise LeaseLostError("the compaction lease is not held")
        self.renew_if_due()

    def release(self) -> None:
        """Delete the lease object if it still names this holder."""
        if not self.held:
            return
        self.held = False
        info = self._read()
        if info is not None and info.holder == self.holder:
            self.filesystem.delete_file(self.path)


class ObjectEventStore(EventStore):
    """An :class:`~arbiter.events.store.EventStore` whose segments live under an object prefix.

    Parameters
    ----------
    home : path-like
        The arbiter home (only its spill folder is local).
    filesystem : pyarrow.fs.FileSystem
        From :func:`pyarrow.fs.FileSystem.from_uri` of ``events.url``.
    base : str
        The prefix inside ``filesystem`` (``bucket/prefix``).
    display : str
        The location without credentials, for messages.
    settle_s : float, default 1.0
        The lease claim's read-back delay (:class:`ObjectLease`).
    **kwargs
        ``fallback_dir``, ``feedback_linger_s``, ``compaction_lease_s`` as for
        :class:`EventStore`.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        filesystem: pafs.FileSystem,
        base: str,
        *,
        display: str,
        settle_s: float = DEFAULT_SETTLE_S,
        **kwargs: Any,
    ) -> None:
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        self.display = display
        self.settle_s = settle_s
        super().__init__(home, root=base, **kwargs)

    def __repr__(self) -> str:
        return f"ObjectEventStore({self.display!r})"

    def _create_layout(self) -> None:
        try:
            for table in TABLES:
                self.filesystem.create_dir(f"{self.base}/{table}", recursive=True)
        except OSError as exc:
            raise EventStoreError(
                f"cannot open the event store at {self.display} ({segments.io_reason(exc)})"
            ) from exc

    def table_dir(self, table: Table) -> str:  # type: ignore[override]
        """The prefix holding ``table``'s segments (``bucket/prefix/table``)."""
        if table not in TABLES:
            raise InvalidInputError(
                f"unknown table {table!r}; expected one of {', '.join(TABLES)}", field="table"
            )
        return f"{self.base}/{table}"

    @property
    def predictions_dir(self) -> str:  # type: ignore[override]
        return self.table_dir("predictions")

    @property
    def feedback_dir(self) -> str:  # type: ignore[override]
        return self.table_dir("feedback")

    @property
    def outcomes_dir(self) -> str:  # type: ignore[override]
        return self.table_dir("outcomes")

    def compaction_lease(self) -> ObjectLease:  # type: ignore[override]
        return ObjectLease(
            self.filesystem,
            f"{self.base}/{LEASE_FILE}",
            ttl_s=self.compaction_lease_s,
            settle_s=self.settle_s,
        )

    # -- writing -------------------------------------------------------------------------

    def append_segment(self, table: Table, data: pa.Table) -> str:
        """Upload ``data`` as one new segment of ``table``; visible once the upload completes."""
        name = segments.segment_name()
        # Serialised first, uploaded in one piece: a failure while encoding must not close
        # (and so publish) a half-written object.
        buffer = pa.BufferOutputStream()
        pq.write_table(data, buffer, compression=segments.COMPRESSION)
        with self.filesystem.open_output_stream(f"{self.table_dir(table)}/{name}") as out:
            out.write(buffer.getvalue())
        return name

    def _probe(self) -> bool:
        probe = f"{self.feedback_dir}/{segments.TEMP_PREFIX}probe-{os.getpid()}.tmp"
        try:
            with self.filesystem.open_output_stream(probe) as f:
                f.write(b"\0" * 1024)
            self.filesystem.delete_file(probe)
            return True
        except OSError:
            return False

    def _recover_locked(self) -> tuple[int, int]:
        """Upload spilled predictions from the local fallback folder, then delete them."""
        if self.fallback_dir is None:
            return 0, 0
        source = self.fallback_dir / "predictions"
        try:
            names = sorted(e.name for e in os.scandir(source) if segments.is_segment(e.name))
        except FileNotFoundError:
            return 0, 0
        present = set(self._names(self.predictions_dir))
        files = rows = 0
        for name in names:
            local = source / name
            if name not in present:  # else uploaded before a crash lost the local unlink
                try:
                    pafs.copy_files(
                        str(local),
                        f"{self.predictions_dir}/{name}",
                        source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem,
                    )
                except OSError as exc:
                    raise EventStoreError(
                        "uploading spilled predictions from events.fallback_dir failed "
                        f"({segments.io_reason(exc)}); they stay there for the next attempt"
                    ) from exc
                files += 1
                rows += pq.ParquetFile(local).metadata.num_rows
            local.unlink()
        return files, rows

    # -- reading -------------------------------------------------------------------------

    def _infos(self, directory: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(directory, allow_not_found=True)
        return [
            i
            for i in self.filesystem.get_file_info(selector)
            if i.type == pafs.FileType.File and segments.is_segment(i.base_name)
        ]

    def _names(self, directory: str) -> list[str]:
        return sorted(i.base_name for i in self._infos(directory))

    def _sources(self, directory: str, names: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in names:
            if name.startswith(segments.COMPACTED_PREFIX):
                try:
                    schema = pq.read_schema(f"{directory}/{name}", filesystem=self.filesystem)
                except FileNotFoundError:
                    continue  # deleted after the listing: its sources went first
                raw = (schema.metadata or {}).get(segments.COMPACTED_FROM_KEY)
                out[name] = json.loads(raw) if raw else []
        return out

    def segments(self, table: Table) -> list[str]:  # type: ignore[override]
        """``table``'s live segment paths (compacted sources left out), oldest name first."""
        directory = self.table_dir(table)
        names = self._names(directory)
        hidden = {s for listed in self._sources(directory, names).values() for s in listed}
        return [f"{directory}/{n}" for n in names if n not in hidden]

    def _dataset(self, table: Table) -> pa.Table | ds.Dataset:
        paths = self.segments(table)
        if not paths:
            return _SCHEMAS[table].empty_table()
        return ds.dataset(
            paths, schema=_SCHEMAS[table], format="parquet", filesystem=self.filesystem
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the views of :mod:`arbiter.events.views` over the bucket.

        Predictions and outcomes are scanned lazily through pyarrow datasets; feedback is
        read in segment order so the latest-label tie-break is the directory store's.
        """
        feedback_paths = self.segments("feedback")
        feedback = pa.concat_tables(
            [
                segments.conform(pq.read_table(p, filesystem=self.filesystem), FEEDBACK_SCHEMA)
                for p in feedback_paths
            ]
            or [FEEDBACK_SCHEMA.empty_table()]
        )
        return connect_tables(self._dataset("predictions"), feedback, self._dataset("outcomes"))

    # -- compaction ----------------------------------------------------------------------

    def _compact_table(
        self,
        table: Table,
        *,
        min_age_s: float,
        grace_s: float,
        small_bytes: int,
        target_bytes: int,
        check: Callable[[], None],
    ) -> segments.CompactionResult:
        """:func:`arbiter.events.segments.compact_directory`'s steps, on objects."""
        directory = self.table_dir(table)
        now = time.time()
        infos = {i.base_name: i for i in self._infos(directory)}
        names = sorted(infos)
        sources = self._sources(directory, names)
        present = set(names)
        deleted = 0
        for cmp_name, listed in sources.items():
            pending = [s for s in listed if s in present]
            if pending and now - infos[cmp_name].mtime.timestamp() >= grace_s:
                check()
                deleted += self._delete(directory, pending)
                present.difference_update(pending)
        hidden = {s for listed in sources.values() for s in listed}
        unsettled = {c for c, listed in sources.items() if any(s in present for s in listed)}
        groups: list[list[str]] = [[]]
        size = 0
        for name in names:
            info = infos[name]
            if name not in present or name in hidden or name in unsettled:
                continue
            if now - info.mtime.timestamp() < min_age_s or info.size >= small_bytes:
                continue
            if groups[-1] and size + info.size > target_bytes:
                groups.append([])
                size = 0
            groups[-1].append(name)
            size += info.size
        merged_files = merged_segments = 0
        for group in groups:
            if len(group) < 2:
                continue
            try:
                out = self._merge(directory, group, _SCHEMAS[table], check)
            except (OSError, pa.ArrowException) as exc:
                raise EventStoreError(
                    f"compacting {len(group)} segments of {table} at {self.display} failed "
                    f"({segments.io_reason(exc)}); the sources are untouched and the next "
                    "compaction will retry"
                ) from exc
            logger.info("compacted %d segments of %s into %s", len(group), table, out)
            merged_files += 1
            merged_segments += len(group)
            if grace_s <= 0:
                check()
                deleted += self._delete(directory, group)
        return segments.CompactionResult(merged_files, merged_segments, deleted)

    def _merge(
        self, directory: str, names: list[str], schema: pa.Schema, check: Callable[[], None]
    ) -> str:
        """Merge ``names`` into a local temporary file, check the lease, upload it."""
        meta_schema = schema.with_metadata(
            {segments.COMPACTED_FROM_KEY: json.dumps(names).encode()}
        )
        name = segments.segment_name(segments.COMPACTED_PREFIX)
        with tempfile.TemporaryDirectory(prefix="arbiter-compact-") as tmp:
            local = Path(tmp) / name
            with pq.ParquetWriter(local, meta_schema, compression=segments.COMPRESSION) as w:
                for source in names:
                    data = pq.read_table(f"{directory}/{source}", filesystem=self.filesystem)
                    w.write_table(segments.conform(data, schema), segments.COMPACTED_ROW_GROUP)
            check()  # a compactor that lost its lease uploads nothing
            pafs.copy_files(
                str(local),
                f"{directory}/{name}",
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.filesystem,
            )
        return name

    def _delete(self, directory: str, names: list[str]) -> int:
        deleted = 0
        for name in names:
            try:
                self.filesystem.delete_file(f"{directory}/{name}")
                deleted += 1
            except FileNotFoundError:
                pass
        return deleted


def open_object_store(
    home: str | os.PathLike[str], url: str, display: str, **kwargs: Any
) -> ObjectEventStore:
    """Open ``url`` (``s3://``, ``gs://``, ``abfs://`` or ``hdfs://``) with pyarrow.

    ``display`` is the URL without credentials
    (:attr:`arbiter.events.location.EventLocation.display`), the only form a message shows.

    Raises
    ------
    ConfigError
        pyarrow cannot open that URL (unknown scheme for this build, bad options); the
        message names the location without its credentials.
    """
    try:
        filesystem, base = pafs.FileSystem.from_uri(url)
    except (pa.ArrowException, ValueError, OSError) as exc:
        # The exception text may echo the URL, credentials included: name its type only.
        raise ConfigError(
            f"events.url: pyarrow cannot open {display} ({type(exc).__name__}); "
            "check the scheme, bucket and options"
        ) from None
    return ObjectEventStore(home, filesystem, base, display=display, **kwargs)


__all__ = ["DEFAULT_SETTLE_S", "ObjectEventStore", "ObjectLease", "open_object_store"]
