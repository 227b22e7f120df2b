"""Where the event log lives (``events.url``), and the one factory every reader opens it with.

Every replica of a gateway and every command that reads events (report, analyze, drift,
canary checkpoints, bandit allocations, the loop, export, compact, outcome imports) calls
:func:`open_event_store` with its home, so they all see the same log: the embedded
``HOME/events`` by default, or the shared location ``events.url`` names.

``events.url`` forms (dispatched by scheme in :func:`open_event_store`)::

    (unset)                      HOME/events, as before
    /mnt/shared/arbiter-events   a directory: an NFS/EFS/CephFS mount, a mounted bucket
    relative/dir                 relative to the home
    file:///mnt/shared/events    the same as a file URL
    s3://bucket/prefix           object storage through pyarrow.fs (also gs://, abfs://, hdfs://)
    postgresql://host/db         the PostgreSQL store (arbiter.events.postgres_store)

A URL may carry credentials (``s3://key:secret@...``, ``postgresql://user:pass@...``): only
:attr:`EventLocation.display` (credentials and query removed) ever reaches a message or a log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from arbiter.errors import ConfigError

if TYPE_CHECKING:
    from arbiter.config import HomeConfig
    from arbiter.events.store import EventStore
    from arbiter.home import Home

Kind = Literal["directory", "object_store", "postgresql"]

_OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "hdfs"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


@dataclass(frozen=True, slots=True)
class EventLocation:
    """A parsed ``events.url``.

    Attributes
    ----------
    kind : {"directory", "object_store", "postgresql"}
        Which store opens it.
    url : str
        The URL as configured (may hold credentials: never print it; use :attr:`display`).
    path : Path or None
        The directory of a ``directory`` location (absolute); None for the others.
    display : str
        The location without credentials or query, for messages and logs.
    """

    kind: Kind
    url: str
    path: Path | None
    display: str

    @property
    def is_default(self) -> bool:
        """True for a home's own ``HOME/events`` (``events.url`` unset)."""
        return self.url == ""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_events_url(url: str | None, home_root: str | os.PathLike[str]) -> EventLocation:
    """Parse ``events.url`` against the home it belongs to.

    Parameters
    ----------
    url : str or None
        The configured value; None or empty means ``HOME/events``.
    home_root : path-like
        The home folder: the default location's parent, and the base of a relative path.

    Raises
    ------
    ConfigError
        The scheme is not one arbiter can open, or a ``file://`` URL names a remote host.
    """
    home = Path(home_root)
    if not url:
        path = home / "events"
        return EventLocation("directory", "", path, str(path))
    if "://" not in url:
        path = Path(url).expanduser()
        path = path if path.is_absolute() else home / path
        return EventLocation("directory", url, path, str(path))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"events.url: file:// URLs name a local path (file:///mnt/events), "
                f"not a host ({parts.netloc!r}); mount the share and give its path"
            )
        path = Path(unquote(parts.path))
        return EventLocation("directory", url, path, str(path))
    if scheme in _OBJECT_STORE_SCHEMES:
        return EventLocation("object_store", url, None, _redact(url))
    if scheme in _POSTGRES_SCHEMES:
        return EventLocation("postgresql", url, None, _redact(url))
    raise ConfigError(
        f"events.url: scheme {scheme!r} is not supported; use a directory, file://, "
        "s3://, gs://, abfs://, hdfs:// or postgresql://"
    )


def event_location(home: Home, config: HomeConfig | None = None) -> EventLocation:
    """The event log location of ``home`` (its ``events.url``, else ``HOME/events``)."""
    config = config or home.config()
    return parse_events_url(config.events.url, home.root)


def event_log_exists(home: Home, config: HomeConfig | None = None) -> bool:
    """Whether ``home``'s event log exists, without creating it (CLI: "serve traffic first").

    A shared location (a directory named by ``events.url``, object storage, PostgreSQL) is
    assumed to exist: opening it reports a precise error if it cannot be reached.
    """
    location = event_location(home, config)
    if location.kind == "directory" and location.path is not None:
        return location.path.is_dir() or not location.is_default
    return True


def open_event_store(
    home: Home,
    config: HomeConfig | None = None,
    *,
    fallback_dir: str | os.PathLike[str] | None = None,
    feedback_linger_s: float = 0.002,
) -> EventStore:
    """Open the event store ``home``'s configuration names. Every reader and writer uses this.

    Parameters
    ----------
    home : arbiter.home.Home
        The home (its ``arbiter.yaml`` is read unless ``config`` is given).
    config : HomeConfig, optional
        The parsed configuration, when the caller has it already.
    fallback_dir : path-like, optional
        Where a gateway spills predictions it could not write at shutdown
        (:meth:`arbiter.home.Home.spill_dir`); only the gateway and ``compact`` pass it.
    feedback_linger_s : float, default 0.002
        Group-commit window of feedback and outcome writes.

    Returns
    -------
    EventStore
        A store whose ``connect()`` returns a DuckDB connection with the views of
        :mod:`arbiter.events.views`.

    Raises
    ------
    ConfigError
        ``events.url`` names a store this installation cannot open.
    EventStoreError
        The location cannot be created or reached.
    """
    from arbiter.events.store import EventStore

    config = config or home.config()
    location = parse_events_url(config.events.url, home.root)
    lease_s = config.events.compaction_lease_s
    # One branch per kind of store: add a new store here, never at a call site.
    if location.kind == "directory":
        return EventStore(
            home.root,
            root=location.path,
            fallback_dir=fallback_dir,
            feedback_linger_s=feedback_linger_s,
            compaction_lease_s=lease_s,
        )
    if location.kind == "object_store":
        from arbiter.events.object_store import open_object_store

        return open_object_store(
            home.root,
            location.url,
            location.display,
            fallback_dir=fallback_dir,
            feedback_linger_s=feedback_linger_s,
            compaction_lease_s=lease_s,
        )
    # location.kind == "postgresql": the PostgreSQL store (docs/event-store-postgres.md).
    from arbiter.events.postgres_store import PostgresEventStore

    return PostgresEventStore(  # type: ignore[return-value]
        location.url, fallback_dir=fallback_dir, feedback_linger_s=feedback_linger_s
    )


__all__ = [
    "EventLocation",
    "event_location",
    "event_log_exists",
    "open_event_store",
    "parse_events_url",
]
