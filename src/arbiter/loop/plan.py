"""What a cycle does next, decided from its decision record alone (no I/O).

The steps, in order::

    drift ──(drifted | retrain due | forced)──> retrain ──> gate ──(passed)──> shadow ──> online
      │                                                      │                             │
      └─ otherwise: finish "no_action"                       └─ failed: archive    promote │ archive

``shadow`` stages the candidate (the challenger alias); ``online`` is its shadow test, A/B test
or canary (``loop.online``, recorded as the staging step's ``mode``).

``online`` repeats, once per ``loop run``, while the analysis says ``continue`` and the
maximum wait has not elapsed; ``promote`` refuses (verdict ``aborted``) when the aliases moved
since the cycle started. Each completed step is recorded, so :func:`next_action` on a record
read back after a crash names the first step that did not finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from arbiter.durations import format_duration
from arbiter.loop.record import CycleRecord, Verdict, parse_iso


@dataclass(frozen=True)
class RunStep:
    """Run step ``name``; ``reason`` says why (recorded as the step's trigger)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Finish:
    """Close the cycle with ``verdict``."""

    verdict: Verdict
    reason: str


Action = RunStep | Finish


def retrain_trigger(record: CycleRecord, now: datetime) -> str | None:
    """Why this cycle retrains (drift, forced, or scheduled), or None when it should not."""
    drift = record.evidence("drift")
    if drift.get("drifted"):
        return f"drift: {drift.get('summary') or 'the served features drifted'}"
    inputs = record.inputs
    if inputs.get("force"):
        return "forced"
    every = inputs.get("every_s")
    if every:
        last = inputs.get("last_retrain_at")
        if last is None:
            return "scheduled: no earlier retrain recorded"
        age = (now - parse_iso(last)).total_seconds()
        if age >= every:
            return (
                f"scheduled: last retrain {format_duration(age)} ago "
                f"(every {format_duration(every)})"
            )
    return None


def _archive(record: CycleRecord, reason: str) -> Action:
    if not record.done("archive"):
        return RunStep("archive", reason)
    return Finish("archived", record.evidence("archive").get("reason") or reason)


def next_action(record: CycleRecord, now: datetime) -> Action:
    """The next thing the cycle must do, given everything it recorded so far.

    Parameters
    ----------
    record : CycleRecord
        The cycle's decision record.
    now : datetime
        The current time (aware); decides whether a retrain is due and whether the online
        test has waited too long.

    Returns
    -------
    RunStep or Finish
    """
    if record.finished:
        assert record.verdict is not None
        return Finish(record.verdict, record.reason or "")
    if not record.done("drift"):
        return RunStep("drift", "compare the served features with the reference profile")
    if not record.done("retrain"):
        trigger = retrain_trigger(record, now)
        if trigger is None:
            summary = record.evidence("drift").get("summary") or "no drift"
            return Finish("no_action", f"{summary}; no retrain due and not forced")
        return RunStep("retrain", trigger)
    if not record.done("gate"):
        return RunStep("gate", "check the candidate offline against the champion")
    gate = record.evidence("gate")
    if not gate.get("passed"):
        return _archive(record, f"offline gate failed: {gate.get('summary') or 'not passed'}")
    if not record.done("shadow"):
        return RunStep("shadow", "stage the candidate: point the challenger alias at it")
    online = record.step("online")
    if online is None or online.status != "done":
        shadow = record.step("shadow")
        assert shadow is not None and shadow.finished_at is not None
        waited = (now - parse_iso(shadow.finished_at)).total_seconds()
        max_wait = record.inputs.get("max_wait_s")
        if online is not None and max_wait is not None and waited >= max_wait:
            return _archive(
                record,
                f"no online verdict after {format_duration(waited)} "
                f"(max wait {format_duration(max_wait)})",
            )
        mode = record.evidence("shadow").get("mode") or "shadow"
        what = {"ab": "A/B test", "canary": "canary"}.get(mode, "shadow test")
        return RunStep("online", f"evaluate the {what} of the candidate")
    decision = online.evidence.get("decision")
    if decision == "promote":
        if not record.done("promote"):
            metric = online.evidence.get("metric")
            on = f" on {metric}" if metric and metric != "canary" else ""
            return RunStep(
                "promote",
                f"the online {online.evidence.get('mode') or 'shadow'} test says promote{on}",
            )
        promote = record.evidence("promote")
        if promote.get("refused"):
            return Finish("aborted", promote.get("reason") or "promotion refused")
        return Finish(
            "promoted",
            f"v{record.candidate_version} is champion; "
            f"v{promote.get('previous')} kept as alias previous",
        )
    return _archive(record, f"online verdict: {decision}")


__all__ = ["Action", "Finish", "RunStep", "next_action", "retrain_trigger"]
