"""``loop run``: advance the model's open cycle as far as it can go now, or start a new one.

The runner is a small loop: ask :func:`~arbiter.loop.plan.next_action` what to do, mark the
step running, run its function, record the evidence, save the record, repeat. It stops when
the cycle finishes, when a step would run a second time in one invocation (the online test
waits for more traffic: the next ``loop run`` checks again), or after ``stop_after``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from arbiter.errors import NotFoundError
from arbiter.home import Home
from arbiter.loop.context import LoopContext, StepFunction
from arbiter.loop.plan import Finish, RunStep, next_action
from arbiter.loop.record import (
    STEPS,
    CycleRecord,
    fail_step,
    finish_cycle,
    finish_step,
    new_cycle,
    start_step,
    utc_now,
)
from arbiter.loop.steps import DEFAULT_STEPS
from arbiter.loop.store import CycleStore

log = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_S = 7 * 86400.0
DEFAULT_TRAFFIC_WINDOW = "30d"
DEFAULT_DRIFT_WINDOW = "7d"


@dataclass(frozen=True)
class LoopOptions:
    """Inputs of a new cycle (recorded in it; a resumed cycle keeps its own).

    Parameters
    ----------
    force : bool
        Retrain even without drift.
    every_s : float, optional
        Retrain when this long has passed since the loop last retrained, drift or not.
    max_wait_s : float
        Give up on an online test without a verdict after this long (archive the candidate).
    data : path, optional
        Training file (CSV or Parquet) with the label column ``label``.
    label : str, optional
        Label column of ``data`` and ``holdout``.
    holdout : path, optional
        Holdout file for the offline gate.
    traffic_window : str, optional
        Also train on labelled traffic of this window (``"30d"``, ``"5000 rows"``; see
        :func:`arbiter.durations.parse_window`); None to use the file only.
    trials, cv, seed, search
        Passed to :func:`arbiter.retrain.retrain`.
    drift_window : str, optional
        Window of served traffic compared with the champion's reference profile (``"7d"``,
        ``"5000 rows"``); None for every served row.
    categorical, text, time_column
        Column kinds and time-ordered validation, passed to :func:`arbiter.retrain.retrain`
        (a training file with a time column needs ``time_column``: dates are not features).
    """

    force: bool = False
    every_s: float | None = None
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    data: str | Path | None = None
    label: str | None = None
    holdout: str | Path | None = None
    traffic_window: str | None = DEFAULT_TRAFFIC_WINDOW
    trials: int = 20
    cv: int = 5
    seed: int = 0
    search: str = "sklearn"
    drift_window: str | None = DEFAULT_DRIFT_WINDOW
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    time_column: str | None = None

    def to_inputs(self) -> dict[str, Any]:
        def path(p: str | Path | None) -> str | None:
            return None if p is None else str(Path(p).expanduser().resolve())

        return {
            "force": self.force,
            "every_s": self.every_s,
            "max_wait_s": self.max_wait_s,
            "data": path(self.data),
            "label": self.label,
            "holdout": path(self.holdout),
            "traffic_window": self.traffic_window,
            "trials": self.trials,
            "cv": self.cv,
            "seed": self.seed,
            "search": self.search,
            "drift_window": self.drift_window,
            "categorical": list(self.categorical),
            "text": list(self.text),
            "time_column": self.time_column,
        }


@dataclass(frozen=True)
class LoopRun:
    """What one ``loop run`` did: the record as it stands and the steps run this time."""

    record: CycleRecord
    ran: tuple[str, ...] = ()
    resumed: bool = False
    next: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "cycle": self.record.to_dict(),
            "ran": list(self.ran),
            "resumed": self.resumed,
            "next": self.next,
            "notes": list(self.notes),
        }


def _fill_inputs(record: CycleRecord, new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The record's inputs, with values it lacks taken from this invocation."""
    merged = dict(record.inputs)
    notes = []
    for key, value in new.items():
        if value is None or value == record.inputs.get(key):
            continue
        if record.inputs.get(key) is None:
            merged[key] = value
            notes.append(f"input {key} set to {value!r} for the resumed cycle")
    return merged, notes


def _describe(action: RunStep | Finish) -> str:
    if isinstance(action, Finish):
        return f"finish: {action.verdict}"
    return f"{action.name}: {action.reason}"


def run_cycle(
    home: str | Path,
    model: str,
    options: LoopOptions | None = None,
    *,
    stop_after: str | None = None,
    steps: Mapping[str, StepFunction] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> LoopRun:
    """Advance ``model``'s open cycle, or start one; return what was done.

    Parameters
    ----------
    home : path
        The arbiter home.
    model : str
        Registered model name; it must have a champion alias.
    options : LoopOptions, optional
        Inputs of a new cycle. A resumed cycle keeps the inputs it recorded, taking from
        ``options`` only those it lacked (a training file given late, say).
    stop_after : str, optional
        Do not start any step after this one (in the order of
        :data:`arbiter.loop.record.STEPS`); orchestrators run a cycle step by step this way.
    steps : mapping, optional
        Step functions by name, replacing the defaults (tests inject failures this way).
    clock : callable
        Returns the current time (aware).

    Returns
    -------
    LoopRun

    Raises
    ------
    NotFoundError
        The model is not registered or has no champion.
    ArbiterError
        Another process is driving the model, or a step failed (its error is recorded and the
        next run retries it).
    """
    from arbiter.alerts import open_alerts
    from arbiter.events.location import open_event_store
    from arbiter.registry import registry_for_home

    if stop_after is not None and stop_after not in STEPS:
        from arbiter.errors import InvalidInputError

        raise InvalidInputError(
            f"unknown step {stop_after!r}; use one of {', '.join(STEPS)}", field="stop_after"
        )
    options = options or LoopOptions()
    functions = {**DEFAULT_STEPS, **(steps or {})}
    h = Home.at(home)
    config = h.config()
    store = CycleStore(h.root)
    # Alerts (loop decisions, drift) leave from a background thread, flushed (bounded) at exit.
    with store.lock(model), open_alerts(h.root, config, component="loop") as alerts:
        registry = registry_for_home(h.root)
        ctx = LoopContext(h, model, config, registry, open_event_store(h, config))
        notes: list[str] = []
        record = store.open_cycle(model)
        resumed = record is not None
        if record is None:
            aliases = registry.aliases(model)
            if ctx.champion_alias not in aliases:
                raise NotFoundError(
                    f"model {model!r} has no {ctx.champion_alias!r} alias; the loop improves "
                    "on a champion, so register one first"
                )
            inputs = {**options.to_inputs(), "last_retrain_at": store.last_retrain_at(model)}
            record = new_cycle(model, inputs=inputs, aliases=aliases, now=clock())
            store.save(record)
            champion = aliases[ctx.champion_alias]
            log.info("cycle %s started (champion v%s)", record.cycle_id, champion)
        else:
            inputs, notes = _fill_inputs(record, options.to_inputs())
            if inputs != record.inputs:
                from dataclasses import replace

                record = replace(record, inputs=inputs)
                store.save(record)
            log.info("cycle %s resumed", record.cycle_id)

        ran: list[str] = []
        limit = STEPS.index(stop_after) if stop_after is not None else len(STEPS)
        while True:
            action = next_action(record, clock())
            if isinstance(action, Finish):
                if not record.finished:
                    record = finish_cycle(record, action.verdict, action.reason, clock())
                    store.save(record)
                    log.info(
                        "cycle %s finished: %s (%s)", record.cycle_id, action.verdict, action.reason
                    )
                    alerts.notify(
                        "loop_decision",
                        f"{model}: loop cycle {record.cycle_id} finished: {action.verdict} "
                        f"({action.reason})",
                        model=model,
                        details={"cycle_id": record.cycle_id, "verdict": action.verdict,
                                 "reason": action.reason},
                    )  # fmt: skip
                break
            if action.name in ran or STEPS.index(action.name) > limit:
                break
            record = start_step(record, action.name, clock())
            store.save(record)
            log.info("cycle %s: %s (%s)", record.cycle_id, action.name, action.reason)
            try:
                outcome = functions[action.name](ctx, record, action.reason)
            except Exception as exc:
                record = fail_step(record, action.name, f"{type(exc).__name__}: {exc}", clock())
                store.save(record)
                raise
            status = "waiting" if outcome.waiting else "done"
            record = finish_step(record, action.name, outcome.evidence, clock(), status=status)
            store.save(record)
            ran.append(action.name)
            summary = outcome.evidence.get("summary", "")
            if action.name == "drift" and outcome.evidence.get("drifted"):
                alerts.notify(
                    "drift_detected",
                    f"{model}: drift detected by loop cycle {record.cycle_id}: {summary}",
                    model=model,
                    details={"cycle_id": record.cycle_id, "source": "loop",
                             "n_drifted": outcome.evidence.get("n_drifted"),
                             "n_tested": outcome.evidence.get("n_tested")},
                )  # fmt: skip
            log.info("cycle %s: %s %s: %s", record.cycle_id, action.name, status, summary)
        upcoming = None if record.finished else _describe(next_action(record, clock()))
        return LoopRun(record, tuple(ran), resumed, upcoming, tuple(notes))


__all__ = [
    "DEFAULT_DRIFT_WINDOW",
    "DEFAULT_MAX_WAIT_S",
    "DEFAULT_TRAFFIC_WINDOW",
    "LoopOptions",
    "LoopRun",
    "run_cycle",
]
