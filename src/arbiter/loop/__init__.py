"""The closed loop: drift → retrain → offline gate → online shadow test → promote or archive.

:func:`run_cycle` advances a model's cycle as far as it can go now and records every step in a
JSON decision record (:class:`CycleRecord`, stored by :class:`CycleStore` under
``HOME/loop/cycles``); running it again continues where it stopped. :func:`next_action` is the
pure decision over a record; the step functions in :mod:`arbiter.loop.steps` do the I/O.
:func:`run_schedule` repeats :func:`run_cycle` in the foreground. See ``docs/loop.md``.
"""

from __future__ import annotations

from arbiter.loop.context import LoopContext, StepOutcome
from arbiter.loop.plan import Finish, RunStep, next_action, retrain_trigger
from arbiter.loop.record import STEPS, CycleRecord, StepRecord
from arbiter.loop.run import LoopOptions, LoopRun, run_cycle
from arbiter.loop.schedule import ScheduleResult, run_schedule
from arbiter.loop.steps import CANDIDATE_ALIAS, DEFAULT_STEPS, PREVIOUS_ALIAS
from arbiter.loop.store import CycleStore

__all__ = [
    "CANDIDATE_ALIAS",
    "DEFAULT_STEPS",
    "PREVIOUS_ALIAS",
    "STEPS",
    "CycleRecord",
    "CycleStore",
    "Finish",
    "LoopContext",
    "LoopOptions",
    "LoopRun",
    "RunStep",
    "ScheduleResult",
    "StepOutcome",
    "StepRecord",
    "next_action",
    "retrain_trigger",
    "run_cycle",
    "run_schedule",
]
