"""A lease file: one holder at a time across hosts that share a directory, for a limited time.

Compaction deletes files, so only one process may run it over an event log at a time. An
``fcntl`` lock is not enough once several hosts write the same log on shared storage: on NFS
it depends on a lock manager that is often missing or unreliable, and on a mounted bucket it
does nothing. A lease needs only what every shared file system gives (NFSv3+, EFS, CephFS,
SMB): an exclusive create (``O_CREAT | O_EXCL``) and an atomic ``rename``. It also survives
its holder: a ``kill -9`` or a lost host leaves a file that expires, where a lock on another
host could never be released.

The file holds JSON ``{"holder", "host", "pid", "acquired_unix", "expires_unix"}``:

- **acquire**: create the file exclusively. If it exists and has expired (``expires_unix``
  plus :data:`CLOCK_SKEW_S` is in the past), take the takeover guard ``<lease>.takeover``
  (another exclusive create, so one process at a time breaks a lease), re-read the lease, and
  delete it only if it is still the expired one just read; then every contender creates again
  and the exclusive create picks one. Nobody ever moves or deletes a lease that might be
  fresh, so two contenders can never both win.
- **renew**: while holding, rewrite the file with a later expiry (temporary file, then
  ``rename`` over it) — only if the file still names this holder and has not expired.
- **check**: before every step that deletes or publishes, the holder checks the lease; once
  half its time is used that means re-reading the file and renewing it, and if another holder
  owns it, :class:`LeaseLostError` stops the work before it touches anything.
- **release**: delete the file if it still names this holder.

Why this is safe enough: a lease is taken over only after it has been expired for
:data:`CLOCK_SKEW_S`, and a holder never renews an expired lease, so as long as the hosts'
clocks agree within that margin (NTP), two live holders need a holder stalled past its expiry
*and* resuming exactly as it is taken over. Such a stall makes the holder's renewal due, so
its next :meth:`Lease.check` re-reads the file and stops it; what is left is a stall between
the last check and the step it guards. A taker that dies inside its guard leaves a
``.takeover`` file that is cleared when it is :data:`BREAKER_STALE_S` old.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from arbiter.errors import EventStoreError

#: How long a taken-over lease must have been expired: covers clock differences between hosts.
CLOCK_SKEW_S = 30.0

#: Default lease time; a holder renews it at half-time (every :meth:`Lease.check`).
DEFAULT_TTL_S = 300.0

#: The takeover guard next to the lease file, and how old it must be to count as abandoned.
BREAKER_SUFFIX = ".takeover"
BREAKER_STALE_S = 60.0


class LeaseLostError(EventStoreError):
    """Another holder owns the lease (this one expired and was taken over)."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """What a lease file says: who holds it, from where, and until when."""

    holder: str
    host: str
    pid: int
    acquired_unix: float
    expires_unix: float

    def expired(self, now: float) -> bool:
        """True once the lease may be taken over (past its expiry by :data:`CLOCK_SKEW_S`)."""
        return now > self.expires_unix + CLOCK_SKEW_S


def new_holder_id() -> str:
    """A holder id unique to this process on this host: ``host/pid/random``."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def read_lease(path: Path) -> LeaseInfo | None:
    """Return the lease at ``path``, or None when there is none (or it is unreadable)."""
    try:
        return parse_lease(path.read_bytes())
    except FileNotFoundError:
        return None


def parse_lease(raw: bytes) -> LeaseInfo | None:
    """Parse a lease file's bytes; None when they are not a complete lease."""
    try:
        data = json.loads(raw)
        return LeaseInfo(
            holder=str(data["holder"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            acquired_unix=float(data["acquired_unix"]),
            expires_unix=float(data["expires_unix"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a holder died between create and write: judged by the file's age


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lease:
    """An exclusive, expiring lease on ``path`` (see the module docstring).

    Parameters
    ----------
    path : Path
        The lease file, in the directory the holders share (``events/.compact.lease``).
    ttl_s : float, default 300
        How long an acquisition or renewal holds without another renewal.
    holder : str, optional
        This holder's id; a fresh :func:`new_holder_id` by default.

    Examples
    --------
    >>> with Lease(root / ".compact.lease") as lease:  # doctest: +SKIP
    ...     if lease.held:
    ...         lease.check()  # before each destructive step
    """

    def __init__(self, path: Path, *, ttl_s: float = DEFAULT_TTL_S, holder: str | None = None):
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.holder = holder or new_holder_id()
        self.held = False
        self._expires = 0.0
        self._acquired = 0.0

    def __repr__(self) -> str:
        return f"Lease({self.path.name!r}, holder={self.holder!r}, held={self.held})"

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _payload(self, now: float) -> bytes:
        return json.dumps(
            {
                "holder": self.holder,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "acquired_unix": self._acquired or now,
                "expires_unix": now + self.ttl_s,
            }
        ).encode()

    def acquire(self) -> bool:
        """Take the lease if it is free or expired; return whether this holder has it now."""
        for _ in range(4):  # a few rounds: a takeover races at most a couple of others
            now = time.time()
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                outcome = self._take_over_if_expired(now)
                if outcome is None:
                    continue  # moved aside (or vanished): create again
                return outcome
            try:
                os.write(fd, self._payload(now))
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.path.parent)
            self.held = True
            self._acquired = now
            self._expires = now + self.ttl_s
            return True
        return False

    def _take_over_if_expired(self, now: float) -> bool | None:
        """``False``: someone else holds it; ``True``: it is ours; ``None``: try creating."""
        try:
            raw = self.path.read_bytes()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        info = parse_lease(raw)
        if info is not None and info.holder == self.holder:
            self.held, self._expires = True, info.expires_unix
            self.renew_if_due(force=True)
            return True
        # An unparsable file is a holder that died mid-create: it expires by its age.
        expires = info.expires_unix if info is not None else mtime + self.ttl_s
        if now <= expires + CLOCK_SKEW_S:
            return False
        # Taking over: one breaker at a time (an exclusive create), so the expired file is
        # removed by exactly one process, which re-reads it first: if it changed, a takeover
        # already happened and the new lease stands.
        breaker = self.path.with_name(f"{self.path.name}{BREAKER_SUFFIX}")
        if not self._enter_breaker(breaker, now):
            return False
        try:
            try:
                if self.path.read_bytes() != raw:
                    return False
            except FileNotFoundError:
                return None
            self.path.unlink()
            return None
        finally:
            breaker.unlink(missing_ok=True)

    def _enter_breaker(self, breaker: Path, now: float) -> bool:
        """Create the takeover guard; clear it first if a taker died inside (it is old)."""
        for _ in range(2):
            try:
                os.close(os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                return True
            except FileExistsError:
                try:
                    age = now - breaker.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age <= BREAKER_STALE_S:
                    return False  # another process is taking over right now
                # A taker died in its few-microsecond window: a double fault, cleared by age.
                breaker.unlink(missing_ok=True)
        return False

    def renew_if_due(self, *, force: bool = False) -> bool:
        """Extend the lease when half its time is used (always with ``force``).

        Raises
        ------
        LeaseLostError
            The file names another holder, is gone, or this holder's lease already expired.
        """
        now = time.time()
        if not force and now < self._expires - self.ttl_s / 2:
            return True
        info = read_lease(self.path)
        if info is None or info.holder != self.holder:
            self.held = False
            raise LeaseLostError(
                "the compaction lease was taken over by another process "
                f"({info.holder if info else 'none left'}); stopping before any further change"
            )
        if now > info.expires_unix:
            self.held = False
            raise LeaseLostError(
                "the compaction lease expired before it was renewed; stopping before any "
                "further change"
            )
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(self._payload(now))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._expires = now + self.ttl_s
        return True

    def check(self) -> None:
        """Confirm this holder still has the lease, renewing it at half-time.

        Call before each step that changes shared state.

        Raises
        ------
        LeaseLostError
            This holder does not hold the lease (never acquired, or taken over).
        """
        if not self.held:
            raise LeaseLostError("the compaction lease is not held")
        self.renew_if_due()

    def release(self) -> None:
        """Give the lease up (delete the file) if this holder still has it."""
        if not self.held:
            return
        self.held = False
        info = read_lease(self.path)
        if info is not None and info.holder == self.holder:
            self.path.unlink(missing_ok=True)


__all__ = [
    "BREAKER_STALE_S",
    "BREAKER_SUFFIX",
    "CLOCK_SKEW_S",
    "DEFAULT_TTL_S",
    "Lease",
    "LeaseInfo",
    "LeaseLostError",
    "new_holder_id",
    "parse_lease",
    "read_lease",
]
