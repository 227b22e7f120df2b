"""The decision record of one cycle: what the loop did, on what evidence, and what it decided.

One JSON file per cycle, ``HOME/loop/cycles/<cycle-id>.json``, rewritten atomically after every
step (:mod:`arbiter.loop.store`). The record is the cycle's whole state: a later ``loop run``
reads it and continues where the last one stopped. Format (``format`` 1)::

    {
      "format": 1,
      "cycle_id": "fraud-20260101T120000Z-3f2a1c",
      "model": "fraud",
      "status": "running" | "waiting" | "finished",
      "verdict": null | "no_action" | "promoted" | "archived" | "aborted",
      "reason": "why the cycle finished (or waits)",
      "created_at": "...", "updated_at": "...", "finished_at": null,
      "inputs": {"force": false, "every_s": 86400.0, "max_wait_s": 604800.0, "data": "...",
                 "label": "...", "holdout": null, "last_retrain_at": null},
      "aliases_at_start": {"champion": "1"},
      "candidate_version": "3",
      "steps": {"drift": {"status": "done", "started_at": "...", "finished_at": "...",
                          "attempts": 1, "error": null, "evidence": {...}}, ...}
    }

Timestamps are ISO 8601 in UTC. Everything here is pure: functions take a record and return
a new one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from arbiter.errors import InvalidInputError

FORMAT = 1
STEPS: tuple[str, ...] = ("drift", "retrain", "gate", "shadow", "online", "promote", "archive")

CycleStatus = Literal["running", "waiting", "finished"]
StepStatus = Literal["running", "done", "waiting", "failed"]
Verdict = Literal["no_action", "promoted", "archived", "aborted"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_cycle_id(model: str, now: datetime) -> str:
    """``MODEL-YYYYmmddTHHMMSSZ-xxxxxx``: sorts by start time, unique across processes."""
    return f"{model}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class StepRecord:
    """One step of a cycle.

    ``status`` is ``running`` while the step executes (a record left ``running`` means the
    process died inside it), ``done``, ``waiting`` (the online test has no verdict yet) or
    ``failed`` (``error`` says why; the next run retries it).
    """

    name: str
    status: StepStatus
    started_at: str
    finished_at: str | None = None
    attempts: int = 1
    error: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "error": self.error,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> StepRecord:
        return cls(
            name=name,
            status=raw["status"],
            started_at=raw["started_at"],
            finished_at=raw.get("finished_at"),
            attempts=int(raw.get("attempts", 1)),
            error=raw.get("error"),
            evidence=dict(raw.get("evidence") or {}),
        )


@dataclass(frozen=True)
class CycleRecord:
    """The state and evidence of one cycle (see the module docstring for the JSON form)."""

    cycle_id: str
    model: str
    created_at: str
    updated_at: str
    inputs: dict[str, Any]
    aliases_at_start: dict[str, str]
    status: CycleStatus = "running"
    verdict: Verdict | None = None
    reason: str | None = None
    finished_at: str | None = None
    candidate_version: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def step(self, name: str) -> StepRecord | None:
        return self.steps.get(name)

    def done(self, name: str) -> bool:
        s = self.steps.get(name)
        return s is not None and s.status == "done"

    def evidence(self, name: str) -> dict[str, Any]:
        s = self.steps.get(name)
        return s.evidence if s is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "cycle_id": self.cycle_id,
            "model": self.model,
            "status": self.status,
            "verdict": self.verdict,
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "inputs": self.inputs,
            "aliases_at_start": self.aliases_at_start,
            "candidate_version": self.candidate_version,
            "steps": {name: s.to_dict() for name, s in self.steps.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CycleRecord:
        if raw.get("format") != FORMAT:
            raise InvalidInputError(
                f"decision record {raw.get('cycle_id')!r} has format {raw.get('format')!r}; "
                f"this arbiter reads format {FORMAT}",
                field="format",
            )
        return cls(
            cycle_id=raw["cycle_id"],
            model=raw["model"],
            created_at=raw["created_at"],
            updated_at=raw["updated_at"],
            inputs=dict(raw.get("inputs") or {}),
            aliases_at_start=dict(raw.get("aliases_at_start") or {}),
            status=raw.get("status", "running"),
            verdict=raw.get("verdict"),
            reason=raw.get("reason"),
            finished_at=raw.get("finished_at"),
            candidate_version=raw.get("candidate_version"),
            # Files list steps alphabetically (sorted keys); keep them in the loop's order.
            steps={
                name: StepRecord.from_dict(name, s)
                for name, s in sorted(
                    (raw.get("steps") or {}).items(), key=lambda item: STEPS.index(item[0])
                )
            },
        )


def new_cycle(
    model: str,
    *,
    inputs: dict[str, Any],
    aliases: dict[str, str],
    now: datetime,
    cycle_id: str | None = None,
) -> CycleRecord:
    """A fresh record: no step run yet."""
    stamp = iso(now)
    return CycleRecord(
        cycle_id=cycle_id or new_cycle_id(model, now),
        model=model,
        created_at=stamp,
        updated_at=stamp,
        inputs=dict(inputs),
        aliases_at_start=dict(aliases),
    )


def start_step(record: CycleRecord, name: str, now: datetime) -> CycleRecord:
    """Mark ``name`` as running (counting attempts); written before the step's side effects."""
    previous = record.steps.get(name)
    attempts = (previous.attempts + 1) if previous is not None else 1
    step = StepRecord(
        name=name,
        status="running",
        started_at=iso(now),
        attempts=attempts,
        # A waiting online test keeps its evidence (the history of its checks) across attempts.
        evidence=previous.evidence if previous is not None else {},
    )
    return replace(
        record,
        status="running",
        updated_at=iso(now),
        steps={**record.steps, name: step},
    )


def finish_step(
    record: CycleRecord,
    name: str,
    evidence: dict[str, Any],
    now: datetime,
    *,
    status: StepStatus = "done",
) -> CycleRecord:
    """Record the outcome of ``name``; a retrain's version becomes the cycle's candidate."""
    step = record.steps[name]
    step = replace(step, status=status, finished_at=iso(now), error=None, evidence=evidence)
    candidate = record.candidate_version
    if name == "retrain" and evidence.get("version") is not None:
        candidate = str(evidence["version"])
    return replace(
        record,
        updated_at=iso(now),
        candidate_version=candidate,
        status="waiting" if status == "waiting" else "running",
        reason=evidence.get("summary") if status == "waiting" else record.reason,
        steps={**record.steps, name: step},
    )


def fail_step(record: CycleRecord, name: str, error: str, now: datetime) -> CycleRecord:
    """Record that ``name`` raised; the next run retries it."""
    step = replace(record.steps[name], status="failed", finished_at=iso(now), error=error)
    return replace(record, updated_at=iso(now), steps={**record.steps, name: step})


def finish_cycle(record: CycleRecord, verdict: Verdict, reason: str, now: datetime) -> CycleRecord:
    """Close the cycle with its final verdict."""
    return replace(
        record,
        status="finished",
        verdict=verdict,
        reason=reason,
        finished_at=iso(now),
        updated_at=iso(now),
    )


__all__ = [
    "FORMAT",
    "STEPS",
    "CycleRecord",
    "StepRecord",
    "fail_step",
    "finish_cycle",
    "finish_step",
    "iso",
    "new_cycle",
    "new_cycle_id",
    "parse_iso",
    "start_step",
    "utc_now",
]
