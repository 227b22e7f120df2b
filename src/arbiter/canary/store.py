"""Where a canary's state lives: tags on the MLflow registered model, shared by every worker.

One registry round trip (``get_registered_model``) returns the model's aliases *and* its tags,
so a gateway worker learns in a single call which challenger version is being tested and where
its canary stands. The layout:

``arbiter.canary.state``
    JSON of :class:`StoredCanary`: the :class:`~arbiter.routing.canary.CanaryState` plus the
    challenger and champion versions it tests. A state keyed to other versions belongs to an
    earlier canary: a new challenger version starts a new one.
``arbiter.canary.lease``
    JSON of :class:`Lease`: which worker runs this model's checkpoints until when (see
    *Checkpoint lease* below).
``arbiter.canary.record.<ts_us>``
    One decision record per transition (checkpoint evidence, operator reason, registry side
    effects), readable by every replica; the oldest are pruned beyond :data:`MAX_RECORDS`.
    The same records, never truncated, are written as JSON files under
    ``HOME/canary/<model>/`` for humans.

Writing the state: compare, write, read back
---------------------------------------------
MLflow has no conditional tag write (no compare-and-set, no transactions across calls), so two
writers cannot be fully serialised through it. :func:`write_state` narrows the race in three
steps:

1. *compare*: re-read the tag and refuse (:class:`CanaryConflictError`) when it is no longer
   the state the caller read (its versions, ``CanaryState.version`` and writer nonce);
2. *write* the new state carrying a fresh random ``writer`` nonce;
3. *settle and read back*: wait :data:`SETTLE_S` (or twice this writer's own compare-to-write
   time, if longer, at most :data:`MAX_SETTLE_S`), re-read, and report success only if the
   stored nonce is still ours; otherwise :class:`CanaryConflictError`, and the caller runs no
   side effect.

Of two writers that both read version *n*, the later write overwrites the earlier one, and the
earlier writer's read-back sees the foreign nonce and steps aside. **The residual window**: if
the later writer's write lands only *after* the earlier writer's read-back (its compare-to-write
gap exceeded the settle delay: a stalled process, a registry round trip slower than the delay),
both read back their own nonce and both report success; the later state is the one stored and
the earlier writer's transition is lost although it was reported, and for two terminal
transitions both side effects run. Callers re-check the nonce once more right before a side
effect, and the side effects compare before they move (:mod:`arbiter.canary.actions`), which
shrinks but does not remove that window. The checkpoint lease below makes it rare: normally
only one worker per model writes from checkpoints, so the race is left to an operator action
colliding with that worker's checkpoint within tens of milliseconds.

Checkpoint lease
----------------
Every worker polls the state, but only the holder of ``arbiter.canary.lease`` runs checkpoints.
:func:`try_lease` takes the lease when it is free, expired or already ours (renewing it) and
confirms by the same nonce read-back; its length is about three analysis intervals, so a dead
holder is replaced within that time. It relies on the workers' wall clocks agreeing to within a
fraction of the lease length. Two workers taking an expired lease inside the residual window
both believe they hold it until the next renewal; the state write protocol above still applies
to their checkpoints.

Size
----
MLflow validates registry tag values up to 100,000 characters, but its SQL schema declares the
column ``VARCHAR(5000)`` (enforced by PostgreSQL and MySQL, not by SQLite), so every value
written here is kept within :data:`MAX_TAG_VALUE` = 5,000 characters: reasons are shortened
and, for a very long-lived canary, middle history records dropped from the *stored* state (the
full records stay in the record tags and files).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from arbiter.errors import ArbiterError, NotFoundError, RegistryError
from arbiter.routing.canary import CanaryPlan, CanaryState, DecisionRecord

STATE_TAG = "arbiter.canary.state"
LEASE_TAG = "arbiter.canary.lease"
SETTLE_S = 0.05  # wait before the read-back that confirms a write (see the module docstring)
MAX_SETTLE_S = 2.0
RECORD_PREFIX = "arbiter.canary.record."
MAX_TAG_VALUE = 5000  # MLflow's registered_model_tags.value is VARCHAR(5000)
MAX_RECORDS = 50  # record tags kept per model; older ones live on as files only
_MAX_REASON = 300


class CanaryConflictError(ArbiterError):
    """The canary changed under the caller, or the action does not apply to its status.

    Raised when the stored state is no longer the one the caller read, or when another writer
    overwrote the caller's write before its read-back (another worker or an operator: re-read
    and decide again), and for an operator action the current status does not allow (aborting
    a promoted canary). HTTP 409.
    """


def plan_fingerprint(plan: CanaryPlan) -> str:
    """A short hash of the plan's stages, stored with the state.

    A stored stage index means something only for the plan it was reached under; a changed
    plan (different shares, counts or durations) is detected by comparing fingerprints.
    """
    stages = [[s.share, s.min_requests, s.min_duration_s] for s in plan.stages]
    return hashlib.sha256(json.dumps(stages).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredCanary:
    """A canary's state, the pair of versions it tests, its writer and its plan.

    ``writer`` is the random nonce of the write that stored it (set by :func:`write_state`);
    ``plan`` the :func:`plan_fingerprint` of the plan it runs (``None`` in states written by
    an older arbiter).
    """

    challenger_version: str
    champion_version: str | None
    state: CanaryState
    plan: str | None = None
    writer: str = ""

    def key(self) -> tuple[str, str | None, int, str]:
        """What the compare step compares: two states at the same version differ by writer."""
        return (self.challenger_version, self.champion_version, self.state.version, self.writer)

    def tests(self, challenger_version: str | None, champion_version: str | None) -> bool:
        """Whether this canary is the one for the current aliases."""
        return (
            self.challenger_version == challenger_version
            and self.champion_version == champion_version
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "state": self.state.to_dict(),
            "plan": self.plan,
            "writer": self.writer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredCanary:
        return cls(
            str(data["challenger_version"]),
            None if data.get("champion_version") is None else str(data["champion_version"]),
            CanaryState.from_dict(data["state"]),
            None if data.get("plan") is None else str(data["plan"]),
            str(data.get("writer") or ""),
        )


@dataclass(frozen=True)
class Lease:
    """Who runs a model's checkpoints (``holder``) until ``expires_at`` (wall-clock seconds)."""

    holder: str
    expires_at: float
    nonce: str

    def to_json(self) -> str:
        return json.dumps(
            {"holder": self.holder, "expires_at": self.expires_at, "nonce": self.nonce},
            sort_keys=True,
        )

    @classmethod
    def parse(cls, raw: str | None) -> Lease | None:
        """The stored lease, or None when absent or unreadable (an unreadable lease is free)."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(str(data["holder"]), float(data["expires_at"]), str(data["nonce"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Snapshot:
    """One read of a registered model: aliases, stored canary, decision records (oldest first)."""

    model: str
    aliases: dict[str, str]
    stored: StoredCanary | None
    records: tuple[dict[str, Any], ...]
    record_keys: tuple[str, ...]
    read_at: float


def _registry_error(exc: Exception, what: str) -> ArbiterError:
    code = getattr(exc, "error_code", None)
    if code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
        return NotFoundError(f"{what}: {getattr(exc, 'message', exc)}")
    return RegistryError(f"{what}: {exc}")


def _parse_stored(raw: str | None, model: str) -> StoredCanary | None:
    if raw is None:
        return None
    try:
        return StoredCanary.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        # A corrupt tag must not take the gateway down; it is reported, and the next start
        # of a canary overwrites it (its compare step expects "nothing readable").
        raise RegistryError(
            f"{model}: the tag {STATE_TAG} does not hold a canary state ({exc}); "
            f"delete it to start over"
        ) from exc


def read_snapshot(registry: Any, model: str) -> Snapshot:
    """Read aliases, canary state and records of ``model`` in one registry call.

    Raises
    ------
    NotFoundError
        No such registered model.
    RegistryError
        The registry failed, or the state tag is corrupt.
    """
    try:
        found = registry.client.get_registered_model(model)
    except Exception as exc:
        raise _registry_error(exc, f"registered model {model!r}") from exc
    tags = dict(found.tags or {})
    keys = sorted(k for k in tags if k.startswith(RECORD_PREFIX))
    records = []
    for key in keys:
        try:
            records.append(json.loads(tags[key]))
        except ValueError:
            records.append({"key": key, "unreadable": tags[key][:200]})
    return Snapshot(
        model=model,
        aliases={a: str(v) for a, v in (found.aliases or {}).items()},
        stored=_parse_stored(tags.get(STATE_TAG), model),
        records=tuple(records),
        record_keys=tuple(keys),
        read_at=time.time(),
    )


def _shorten(text: str, limit: int = _MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_state_json(stored: StoredCanary, limit: int = MAX_TAG_VALUE) -> str:
    """JSON of ``stored`` within ``limit`` characters.

    Reasons are shortened first; then middle history records are dropped (the start and the
    latest ones stay), which keeps the state's meaning: only ``history`` is for display.
    """
    text = json.dumps(stored.to_dict(), sort_keys=True)
    if len(text) <= limit:
        return text
    state = stored.state
    history = tuple(
        replace(r, reasons=tuple(_shorten(x) for x in r.reasons)) for r in state.history
    )
    while True:
        candidate = replace(stored, state=replace(state, history=history))
        text = json.dumps(candidate.to_dict(), sort_keys=True)
        if len(text) <= limit or len(history) <= 2:
            break
        history = (history[0], *history[2:])
    if len(text) > limit:  # two records with huge reasons: keep only the reasons' heads
        history = tuple(
            replace(r, reasons=tuple(_shorten(x, 80) for x in r.reasons)) for r in history
        )
        text = json.dumps(
            replace(stored, state=replace(state, history=history)).to_dict(), sort_keys=True
        )
    return text


def _read_tag(registry: Any, model: str, tag: str) -> str | None:
    try:
        return (registry.client.get_registered_model(model).tags or {}).get(tag)
    except Exception as exc:
        raise _registry_error(exc, f"registered model {model!r}") from exc


def _settle(started: float, settle_s: float) -> None:
    """Wait before a read-back: ``settle_s``, or twice our own compare-to-write time.

    A competing writer whose compare-to-write gap is like ours lands within that time; one
    slower than the wait is the residual window described in the module docstring.
    """
    own = time.monotonic() - started
    time.sleep(min(max(settle_s, 2.0 * own), MAX_SETTLE_S))


def write_state(
    registry: Any,
    model: str,
    new: StoredCanary,
    *,
    expected: StoredCanary | None,
    settle_s: float = SETTLE_S,
) -> StoredCanary:
    """Store ``new`` if the stored canary is still ``expected`` (``None``: none stored), then
    confirm by reading back this write's nonce.

    Returns
    -------
    StoredCanary
        ``new`` with the nonce it was stored under: what the caller compares against next.

    Raises
    ------
    CanaryConflictError
        The stored canary changed since the caller read it, or another writer overwrote this
        write before the read-back. The caller must not run side effects. (For the residual
        window in which both writers succeed, see the module docstring.)
    RegistryError
        The registry failed.
    """
    started = time.monotonic()
    raw = _read_tag(registry, model, STATE_TAG)
    try:
        current = _parse_stored(raw, model)
    except RegistryError:
        current = None  # a corrupt tag may be overwritten by a fresh start
        if expected is not None:
            raise
    if (current.key() if current else None) != (expected.key() if expected else None):
        raise CanaryConflictError(
            f"{model}: the canary changed since it was read (stored "
            f"{_describe(current)}, expected {_describe(expected)}); re-read and decide again"
        )
    new = replace(new, writer=secrets.token_hex(8))
    try:
        registry.client.set_registered_model_tag(model, STATE_TAG, bounded_state_json(new))
    except Exception as exc:
        raise _registry_error(exc, f"writing the canary state of {model!r}") from exc
    _settle(started, settle_s)
    confirm_state(registry, model, new)
    return new


def confirm_state(registry: Any, model: str, written: StoredCanary) -> None:
    """Raise :class:`CanaryConflictError` unless the stored state is still ``written``.

    Called after :func:`write_state`'s settle delay, and again by the service right before a
    promotion's or rollback's side effects.
    """
    raw = _read_tag(registry, model, STATE_TAG)
    try:
        back = _parse_stored(raw, model)
    except RegistryError:
        back = None
    if back is None or back.writer != written.writer:
        raise CanaryConflictError(
            f"{model}: another writer stored the canary at the same time (now "
            f"{_describe(back)}); this {written.state.status} was not applied, re-read and "
            "decide again"
        )


def new_holder_id() -> str:
    """A lease holder id for this process: ``pid@host/random`` (unique across restarts)."""
    return f"{os.getpid()}@{socket.gethostname()}/{secrets.token_hex(4)}"


def read_lease(registry: Any, model: str) -> Lease | None:
    """The stored checkpoint lease of ``model`` (None: free)."""
    return Lease.parse(_read_tag(registry, model, LEASE_TAG))


def try_lease(
    registry: Any,
    model: str,
    holder: str,
    *,
    ttl_s: float,
    now: float,
    settle_s: float = SETTLE_S,
) -> bool:
    """Take or renew the checkpoint lease of ``model`` for ``holder``; whether it holds it.

    The lease is taken when it is free, expired (``expires_at <= now``) or already
    ``holder``'s, for ``ttl_s`` seconds from ``now``, and confirmed by reading back the
    write's nonce after the settle delay (two takers at once: the later write wins, the
    earlier sees the foreign nonce and gets False).

    Raises
    ------
    RegistryError
        The registry failed (the caller should not run a checkpoint then).
    """
    started = time.monotonic()
    current = read_lease(registry, model)
    if current is not None and current.holder != holder and current.expires_at > now:
        return False
    lease = Lease(holder, now + ttl_s, secrets.token_hex(8))
    try:
        registry.client.set_registered_model_tag(model, LEASE_TAG, lease.to_json())
    except Exception as exc:
        raise _registry_error(exc, f"writing the canary lease of {model!r}") from exc
    _settle(started, settle_s)
    back = read_lease(registry, model)
    return back is not None and back.nonce == lease.nonce


def release_lease(registry: Any, model: str, holder: str) -> bool:
    """Give the lease up (at shutdown) if ``holder`` holds it, so another worker takes it at
    once rather than after expiry; whether it was released."""
    current = read_lease(registry, model)
    if current is None or current.holder != holder:
        return False
    try:
        registry.client.delete_registered_model_tag(model, LEASE_TAG)
    except Exception as exc:
        raise _registry_error(exc, f"deleting the canary lease of {model!r}") from exc
    return True


def _describe(stored: StoredCanary | None) -> str:
    if stored is None:
        return "nothing"
    return (
        f"v{stored.challenger_version} vs champion v{stored.champion_version}, "
        f"{stored.state.status} at state version {stored.state.version}"
        + (f" by writer {stored.writer}" if stored.writer else "")
    )


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no NaN; other tools reject it)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bounded_record_json(record: dict[str, Any], limit: int = MAX_TAG_VALUE) -> str:
    """JSON of a decision record within ``limit`` characters (the file keeps it whole)."""
    record = json_safe(record)
    text = json.dumps(record, sort_keys=True, default=str)
    if len(text) <= limit:
        return text
    slim = dict(record)
    slim["reasons"] = [_shorten(str(r), 200) for r in record.get("reasons", [])][:10]
    evidence = slim.pop("evidence", None)
    if isinstance(evidence, dict):
        slim["evidence"] = {k: evidence[k] for k in ("arms", "stage_requests") if k in evidence}
    slim["truncated"] = True
    text = json.dumps(slim, sort_keys=True, default=str)
    if len(text) <= limit:
        return text
    keep = ("ts_us", "at", "action", "model", "challenger_version", "champion_version", "file")
    return json.dumps(
        {**{k: record.get(k) for k in keep}, "truncated": True}, sort_keys=True, default=str
    )


def write_record(
    registry: Any, home_root: Path, model: str, record: dict[str, Any], *, prune: tuple[str, ...]
) -> dict[str, Any]:
    """Store one decision record as a registry tag and as a file; prune old record tags.

    Parameters
    ----------
    record : dict
        JSON-able; ``ts_us`` is added when missing.
    prune : tuple of str
        The record tag keys known before this write (from a :class:`Snapshot`); the oldest
        are deleted so that at most :data:`MAX_RECORDS` remain.
    """
    record = json_safe(record)
    ts_us = int(record.setdefault("ts_us", time.time_ns() // 1000))
    folder = Path(home_root) / "canary" / model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ts_us:020d}-{record.get('action', 'record')}.json"
    record["file"] = str(path)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")
    key = f"{RECORD_PREFIX}{ts_us:020d}"
    try:
        registry.client.set_registered_model_tag(model, key, bounded_record_json(record))
        excess = len(prune) + 1 - MAX_RECORDS
        for old in sorted(prune)[: max(excess, 0)]:
            registry.client.delete_registered_model_tag(model, old)
    except Exception as exc:
        raise _registry_error(exc, f"writing a canary record of {model!r}") from exc
    return record


def history_records(state: CanaryState) -> list[dict[str, Any]]:
    """The state's history as plain dicts (for status output)."""
    return [_record_dict(r) for r in state.history]


def _record_dict(r: DecisionRecord) -> dict[str, Any]:
    return {
        "at": r.at,
        "from_stage": r.from_stage,
        "to_stage": r.to_stage,
        "action": r.action,
        "reasons": list(r.reasons),
    }


__all__ = [
    "LEASE_TAG",
    "MAX_RECORDS",
    "MAX_SETTLE_S",
    "MAX_TAG_VALUE",
    "RECORD_PREFIX",
    "SETTLE_S",
    "STATE_TAG",
    "CanaryConflictError",
    "Lease",
    "Snapshot",
    "StoredCanary",
    "bounded_record_json",
    "bounded_state_json",
    "confirm_state",
    "history_records",
    "json_safe",
    "new_holder_id",
    "plan_fingerprint",
    "read_lease",
    "read_snapshot",
    "release_lease",
    "try_lease",
    "write_record",
    "write_state",
]
