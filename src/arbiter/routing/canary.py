"""Canary releases: a challenger's share of traffic grows in stages while it stays healthy.

Pure core, like the rest of :mod:`arbiter.routing`: no I/O, no clock reads, no random state.
Time is passed in as ``now`` (seconds, any epoch, as long as it is monotonic for one canary);
the state is a frozen value that the shell stores (registry tags or a file) and replaces.

The pieces:

* :class:`CanaryPlan` — the stages (share, minimum challenger requests, minimum duration).
  :data:`DEFAULT_STAGES` is 1 % → 5 % → 25 % → 50 % → 100 %; :class:`LinearRamp` builds a
  time-based plan instead.
* :class:`CanaryState` — where a canary is (status, stage, when the stage started, history).
* :func:`advance` — the transition run at every checkpoint, from :class:`CheckpointInputs`.
  Rules, first that fires decides:

  1. status is not ``running`` (paused or terminal) → ``none``, state unchanged;
  2. a guardrail breached → ``rollback``;
  3. the verdict is ``rollback`` (significant harm on the primary metric, or an SRM alarm
     with ``on_srm="rollback"``) → ``rollback``;
  3b. a blocker (an SRM alarm with ``on_srm="continue"``: the data cannot be trusted) → ``hold``;
  4. the stage's ``min_requests`` challenger requests or ``min_duration_s`` not yet reached
     → ``hold``, state unchanged;
  5. last stage: the primary metric has reached its minimum sample (when
     ``plan.require_primary_sample``) and, with a ``max_harm`` margin, the challenger was
     shown not worse than it (``inputs.non_inferior``) → ``promote``, else ``hold``;
  6. otherwise → ``advance`` to the next stage, whose clock starts at ``now``.

* :func:`pause`, :func:`resume`, :func:`force_promote`, :func:`abort` — operator actions;
  :func:`supersede` — the shell's terminal record when the aliases moved under a canary.
* :class:`CanaryStrategy` — the routing :class:`~arbiter.routing.strategies.Strategy` for the
  current share. It uses one :class:`~arbiter.routing.split.Split` salt for the whole canary,
  so growing the share only extends the challenger's bucket range: a unit that saw the
  challenger keeps seeing it at every later stage. The last stage routes
  ``1 - plan.holdback``: a small champion holdback keeps concurrent champion rows for the
  harm test (:meth:`CanaryPlan.routed_share`).

Holds do not touch the state (no record, no version bump), so the shell writes only on a
transition and the stored history stays a few records long.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from arbiter.errors import InvalidInputError
from arbiter.routing.split import Split
from arbiter.routing.strategies import ABTest, Route
from arbiter.stats.verdict import Decision, Verdict

CanaryStatus = Literal["running", "paused", "promoted", "rolled_back", "aborted", "superseded"]
Action = Literal["hold", "advance", "rollback", "promote", "none"]
RecordAction = Literal[
    "start",
    "advance",
    "rollback",
    "promote",
    "pause",
    "resume",
    "force_promote",
    "abort",
    "supersede",
]

TERMINAL_STATUSES: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted", "superseded"})
STATE_SCHEMA = 1  # bump when CanaryState.to_dict() changes shape

_STATUSES: tuple[str, ...] = get_args(CanaryStatus)
_RECORD_ACTIONS: tuple[str, ...] = get_args(RecordAction)
_DECISIONS: tuple[str, ...] = get_args(Decision)


@dataclass(frozen=True, slots=True)
class CanaryStage:
    """One step of a canary.

    Parameters
    ----------
    share : float
        Fraction of units routed to the challenger during the stage, in (0, 1].
    min_requests : int, default=0
        Challenger requests served *in this stage* before it may end. Counted on the
        challenger only: at 100 % the champion serves nothing.
    min_duration_s : float, default=0.0
        Seconds the stage lasts at least (catches slow failures: leaks, cold caches, a
        daily-traffic pattern), whatever the request count.
    """

    share: float
    min_requests: int = 0
    min_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if not (
            isinstance(self.share, int | float)
            and not isinstance(self.share, bool)  # True is an int: share=True is a typo
            and 0.0 < self.share <= 1.0
        ):
            raise InvalidInputError(
                f"CanaryStage.share must be in (0, 1], got {self.share!r}", field="share"
            )
        if not (
            isinstance(self.min_requests, int)
            and not isinstance(self.min_requests, bool)
            and self.min_requests >= 0
        ):
            raise InvalidInputError(
                f"CanaryStage.min_requests must be an int >= 0, got {self.min_requests!r}",
                field="min_requests",
            )
        if not (math.isfinite(self.min_duration_s) and self.min_duration_s >= 0.0):
            raise InvalidInputError(
                f"CanaryStage.min_duration_s must be finite and >= 0, got {self.min_duration_s!r}",
                field="min_duration_s",
            )


#: 1 % → 5 % → 25 % → 50 % → 100 %. The 1 % stage needs only 100 challenger requests over
#: 5 minutes: enough to catch a broken model (at a 20 % error rate, 100 requests with no
#: error have probability 2e-10) while exposing few users. Later stages need more requests
#: and 10–15 minutes so that slower failures surface before the share grows. The 100 % stage
#: is the bake before promotion: 10 minutes and 1,000 requests with the champion idle.
DEFAULT_STAGES: tuple[CanaryStage, ...] = (
    CanaryStage(0.01, min_requests=100, min_duration_s=300.0),
    CanaryStage(0.05, min_requests=250, min_duration_s=600.0),
    CanaryStage(0.25, min_requests=500, min_duration_s=600.0),
    CanaryStage(0.50, min_requests=1000, min_duration_s=900.0),
    CanaryStage(1.00, min_requests=1000, min_duration_s=600.0),
)


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """The stages of a canary and how often it is checked.

    Parameters
    ----------
    stages : tuple of CanaryStage, default=DEFAULT_STAGES
        Shares strictly increasing; the last must be 1.0, the promotion stage.
    analysis_interval_s : float, default=60.0
        Seconds between checkpoints (calls to :func:`advance`); the shell's schedule.
    require_primary_sample : bool, default=True
        Promote only once the primary metric has reached the decision policy's minimum
        sample (the verdict's ``min_sample`` criterion is met). With delayed labels this
        keeps the last stage holding until quality could have been judged at all. Set False
        for models with no labelled metric (guardrails only).
    holdback : float, default=0.0
        Share of units the champion keeps during the last stage (in [0, 0.5)): the last
        stage routes ``1 - holdback`` to the challenger, so harm is still measured on
        *concurrent* champion rows while the challenger bakes at (nearly) full traffic.
        0 disables it: the last stage is 100 % and the harm test has no concurrent rows
        there (it then tests the earlier stages only). Promotion routes 100 %.
    """

    stages: tuple[CanaryStage, ...] = DEFAULT_STAGES
    analysis_interval_s: float = 60.0
    require_primary_sample: bool = True
    holdback: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple) or not self.stages:
            raise InvalidInputError(
                "CanaryPlan.stages must be a non-empty tuple of CanaryStage", field="stages"
            )
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, CanaryStage):
                raise InvalidInputError(
                    f"CanaryPlan.stages[{i}] must be a CanaryStage, got {type(stage).__name__}",
                    field=f"stages[{i}]",
                )
            if i and stage.share <= self.stages[i - 1].share:
                raise InvalidInputError(
                    f"CanaryPlan shares must be strictly increasing, stage {i} has "
                    f"{stage.share} after {self.stages[i - 1].share}",
                    field=f"stages[{i}].share",
                )
        if self.stages[-1].share != 1.0:
            raise InvalidInputError(
                f"the last stage is the promotion stage and must have share 1.0, got "
                f"{self.stages[-1].share}; append CanaryStage(1.0, ...)",
                field=f"stages[{len(self.stages) - 1}].share",
            )
        if not (
            isinstance(self.holdback, int | float)
            and not isinstance(self.holdback, bool)
            and 0.0 <= self.holdback < 0.5
        ):
            raise InvalidInputError(
                f"CanaryPlan.holdback must be in [0, 0.5), got {self.holdback!r}",
                field="holdback",
            )
        if not (math.isfinite(self.analysis_interval_s) and self.analysis_interval_s > 0):
            raise InvalidInputError(
                f"CanaryPlan.analysis_interval_s must be > 0, got {self.analysis_interval_s!r}",
                field="analysis_interval_s",
            )

    @property
    def last_stage(self) -> int:
        """Index of the promotion stage."""
        return len(self.stages) - 1

    def routed_share(self, stage: int) -> float:
        """Challenger share routed during ``stage``: the stage's, minus the holdback at the
        last stage.

        The holdback is capped at half the gap to the previous stage's share, so the last
        stage still routes more than the one before it (a fine ramp ending at 99 %).
        """
        share = self.stages[stage].share
        if stage != self.last_stage or not self.holdback:
            return share
        previous = self.stages[stage - 1].share if stage else 0.0
        return share - min(self.holdback, (share - previous) / 2.0)


@dataclass(frozen=True, slots=True)
class LinearRamp:
    """A time-based ramp: the share grows linearly, in steps, from start to target.

    Parameters
    ----------
    start_share : float
        Share at ``t = 0``, in [0, target_share).
    target_share : float
        Share from ``t = duration_s`` on, in (0, 1].
    duration_s : float
        Length of the ramp, > 0.
    step_s : float
        The share changes every ``step_s`` seconds (0 < step_s <= duration_s), so routing
        changes a bounded number of times.
    """

    start_share: float
    target_share: float
    duration_s: float
    step_s: float

    def __post_init__(self) -> None:
        if not (0.0 < self.target_share <= 1.0):
            raise InvalidInputError(
                f"LinearRamp.target_share must be in (0, 1], got {self.target_share!r}",
                field="target_share",
            )
        if not (0.0 <= self.start_share < self.target_share):
            raise InvalidInputError(
                f"LinearRamp.start_share must be in [0, target_share), got {self.start_share!r}",
                field="start_share",
            )
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise InvalidInputError(
                f"LinearRamp.duration_s must be > 0, got {self.duration_s!r}", field="duration_s"
            )
        if not (math.isfinite(self.step_s) and 0 < self.step_s <= self.duration_s):
            raise InvalidInputError(
                f"LinearRamp.step_s must be in (0, duration_s], got {self.step_s!r}",
                field="step_s",
            )

    def share_at(self, elapsed_s: float) -> float:
        """Share after ``elapsed_s`` seconds: non-decreasing in ``elapsed_s``.

        The share jumps at each multiple of ``step_s`` and reaches ``target_share`` exactly
        at ``duration_s``; before 0 it is ``start_share``.
        """
        if elapsed_s >= self.duration_s:
            return self.target_share
        if elapsed_s <= 0:
            return self.start_share
        stepped = math.floor(elapsed_s / self.step_s) * self.step_s
        share = self.start_share + (self.target_share - self.start_share) * (
            stepped / self.duration_s
        )
        return min(share, self.target_share)

    def to_plan(
        self, *, min_requests: int = 0, analysis_interval_s: float = 60.0, **plan_options: Any
    ) -> CanaryPlan:
        """The ramp as a :class:`CanaryPlan`, so it is gated by the same rules.

        One stage per distinct positive share at ``0, step_s, 2 step_s, ...``, each lasting at
        least until the next step (the last step may be shorter) and ``min_requests``. A 100 %
        stage is appended when ``target_share < 1``: promotion always goes through full
        traffic.

        A stage needs a positive share, so with ``start_share=0`` the first step (share 0 in
        :meth:`share_at`) cannot be a stage of its own: it is merged into the first positive
        stage, which then lasts two steps. Every later stage therefore starts (at the
        earliest) when :meth:`share_at` reaches its share and the target is reached at
        ``duration_s``, not one step early; only the first step routes ``share_at(step_s)``
        instead of nothing.
        """
        times = [k * self.step_s for k in range(math.ceil(self.duration_s / self.step_s))]
        times.append(self.duration_s)
        stages: list[CanaryStage] = []
        begins: list[float] = []  # when share_at reaches each stage's share
        for t in times:
            share = self.share_at(t)
            if share <= 0.0 or (stages and share <= stages[-1].share):
                continue
            stages.append(CanaryStage(share, min_requests, 0.0))
            begins.append(t)
        begins[0] = 0.0  # the canary starts at once, on its first positive share
        for i, stage in enumerate(stages):
            until = begins[i + 1] if i + 1 < len(stages) else begins[i] + self.step_s
            stages[i] = replace(stage, min_duration_s=until - begins[i])
        if stages[-1].share < 1.0:
            stages.append(CanaryStage(1.0, min_requests, self.step_s))
        return CanaryPlan(tuple(stages), analysis_interval_s, **plan_options)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One transition of a canary, for the audit trail."""

    at: float
    from_stage: int
    to_stage: int
    action: RecordAction
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CanaryState:
    """Where a canary is. Frozen: every transition returns a new state.

    Attributes
    ----------
    status : {"running", "paused", "promoted", "rolled_back", "aborted", "superseded"}
        All but ``running`` and ``paused`` are terminal. :func:`abort` records an operator
        abort as ``rolled_back`` (the challenger stops serving, which is what a rollback is);
        ``aborted`` is never produced, only accepted from storage and treated as terminal at
        0 %. ``superseded`` (:func:`supersede`): the aliases moved under the canary.
    stage : int
        Index into the plan's stages.
    stage_started_at : float
        ``now`` when the current stage started (or was resumed).
    started_at : float
        ``now`` when the canary started.
    version : int
        Incremented by every transition. The shell writes a new state only if the stored
        one still has ``version - 1``; with a store lacking a conditional write (MLflow) this
        narrows but does not close the race, see :mod:`arbiter.canary.store`.
    history : tuple of DecisionRecord
        Every transition, oldest first.
    """

    status: CanaryStatus
    stage: int
    stage_started_at: float
    started_at: float
    version: int = 0
    history: tuple[DecisionRecord, ...] = ()

    @classmethod
    def start(cls, now: float) -> CanaryState:
        """A new canary at stage 0, started at ``now``."""
        return cls("running", 0, now, now, 0, (DecisionRecord(now, 0, 0, "start"),))

    @property
    def terminal(self) -> bool:
        """Whether no further transition is possible."""
        return self.status in TERMINAL_STATUSES

    def share(self, plan: CanaryPlan) -> float:
        """Challenger share now: the stage's while running or paused, 1 once promoted, else 0.

        A stage the plan does not have (the plan changed under a running canary) gives 0: the
        champion serves everything until an operator aborts the canary. Raising here would
        make every reader (status, routing) fail instead of the one place that can say why.
        """
        if self.status == "promoted":
            return 1.0
        if self.status != "running" and self.status != "paused":
            return 0.0
        if not 0 <= self.stage < len(plan.stages):
            return 0.0
        return plan.routed_share(self.stage)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists), with a ``schema`` number."""
        return {
            "schema": STATE_SCHEMA,
            "status": self.status,
            "stage": self.stage,
            "stage_started_at": self.stage_started_at,
            "started_at": self.started_at,
            "version": self.version,
            "history": [
                {
                    "at": r.at,
                    "from_stage": r.from_stage,
                    "to_stage": r.to_stage,
                    "action": r.action,
                    "reasons": list(r.reasons),
                }
                for r in self.history
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryState:
        """Rebuild a state from :meth:`to_dict` output, validating every field."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"canary state must be a mapping, got {type(data).__name__}", field="state"
            )
        if data.get("schema") != STATE_SCHEMA:
            raise InvalidInputError(
                f"unsupported canary state schema {data.get('schema')!r} "
                f"(this arbiter reads {STATE_SCHEMA})",
                field="schema",
            )
        try:
            history = tuple(
                DecisionRecord(
                    float(r["at"]),
                    _int(r["from_stage"], f"history[{i}].from_stage"),
                    _int(r["to_stage"], f"history[{i}].to_stage"),
                    _choice(r["action"], _RECORD_ACTIONS, f"history[{i}].action"),
                    tuple(str(x) for x in r["reasons"]),
                )
                for i, r in enumerate(data["history"])
            )
            return cls(
                _choice(data["status"], _STATUSES, "status"),
                _int(data["stage"], "stage"),
                float(data["stage_started_at"]),
                float(data["started_at"]),
                _int(data["version"], "version"),
                history,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"malformed canary state: {exc!r}", field="state") from exc


@dataclass(frozen=True, slots=True)
class CheckpointInputs:
    """What :func:`advance` looks at, measured by the shell since the stage started.

    Parameters
    ----------
    champion_requests, challenger_requests : int
        Requests served by each arm in the current stage.
    verdict_decision : {"promote", "keep_champion", "continue", "rollback"} or None
        Decision of :func:`arbiter.stats.verdict.decide` with ``mode="canary"``; ``None``
        when no verdict was computed. Only ``"rollback"`` stops a canary.
    verdict_reasons : tuple of str, default=()
        Why, in words (failed criteria of the verdict).
    guardrail_breaches : tuple of str, default=()
        Names (or descriptions) of breached guardrails; any one rolls back.
    primary_sample_reached : bool or None, default=None
        Whether the primary metric reached the policy's minimum sample; ``None`` = unknown
        (treated as not reached when the plan requires it).
    blockers : tuple of str, default=()
        Reasons the evidence cannot be trusted right now (a sample-ratio mismatch): the canary
        neither advances nor promotes while any is present, but guardrails still roll back.
    non_inferior : bool or None, default=None
        With a non-inferiority margin (``max_harm``): whether the challenger was shown not
        worse than the margin; ``False`` holds the last stage (no promotion), ``None`` = no
        margin configured.
    """

    champion_requests: int
    challenger_requests: int
    verdict_decision: Decision | None = None
    verdict_reasons: tuple[str, ...] = ()
    guardrail_breaches: tuple[str, ...] = ()
    primary_sample_reached: bool | None = None
    blockers: tuple[str, ...] = ()
    non_inferior: bool | None = None

    def __post_init__(self) -> None:
        for name in ("champion_requests", "challenger_requests"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise InvalidInputError(
                    f"CheckpointInputs.{name} must be an int >= 0, got {value!r}", field=name
                )
        if self.verdict_decision is not None and self.verdict_decision not in _DECISIONS:
            raise InvalidInputError(
                f"CheckpointInputs.verdict_decision must be one of {_DECISIONS} or None, "
                f"got {self.verdict_decision!r}",
                field="verdict_decision",
            )

    @classmethod
    def from_verdict(
        cls,
        verdict: Verdict,
        *,
        champion_requests: int,
        challenger_requests: int,
        guardrail_breaches: tuple[str, ...] = (),
    ) -> CheckpointInputs:
        """Build inputs from a :class:`~arbiter.stats.verdict.Verdict`.

        Guardrail criteria of the verdict that were observed and not met are added to
        ``guardrail_breaches``; the details of failed criteria become ``verdict_reasons``.
        """
        breaches = list(guardrail_breaches)
        reasons: list[str] = []
        blockers: list[str] = []
        sample_reached = False
        non_inferior: bool | None = None
        for c in verdict.reasons:
            if c.name == "min_sample":
                sample_reached = c.met
            if c.name == "non_inferiority":
                non_inferior = c.met
            if c.met:
                continue
            if c.name == "srm":
                # The verdict stops at an SRM alarm without testing the primary metric: moving
                # on would ramp a challenger whose quality was never checked.
                blockers.append(f"srm: {c.detail}")
            if c.name.startswith("guardrail:") and c.observed is not None:
                breaches.append(f"{c.name.removeprefix('guardrail:')}: {c.detail}")
            else:
                reasons.append(f"{c.name}: {c.detail}")
        if verdict.primary is not None:
            p = verdict.primary
            reasons.append(
                f"primary: estimate {p.estimate:+.4g} [{p.ci_low:.4g}, {p.ci_high:.4g}], "
                f"p={p.p_value:.3g}"
            )
        return cls(
            champion_requests,
            challenger_requests,
            verdict.decision,
            tuple(reasons),
            tuple(breaches),
            sample_reached,
            tuple(blockers),
            non_inferior,
        )


def advance(
    state: CanaryState, plan: CanaryPlan, inputs: CheckpointInputs, now: float
) -> tuple[CanaryState, Action]:
    """Run one checkpoint: the next state and what happened.

    Parameters
    ----------
    state : CanaryState
        Current state.
    plan : CanaryPlan
        The stages.
    inputs : CheckpointInputs
        Requests and verdict measured since ``state.stage_started_at``.
    now : float
        Current time (same clock as the state's timestamps). A ``now`` before the stage
        start (clock skew) counts as zero elapsed time.

    Returns
    -------
    (CanaryState, {"hold", "advance", "rollback", "promote", "none"})
        On ``hold`` and ``none`` the state is returned unchanged (same object).

    Notes
    -----
    Promotion requires *no significant harm and the minimum sample*, not a significant
    improvement: that is what Flagger and Argo Rollouts do (promote once every analysis
    run stayed within its thresholds through the last step). A canary answers "is this
    release safe?", not "is it better?": most releases (retrains, refactors, dependency
    bumps) are meant to be equivalent, and demanding significance would stall them at 100 %
    forever. Whether a challenger is *better* is the A/B test's question. The minimum
    sample (each stage's requests and duration, plus the primary metric's
    ``min_sample_per_arm`` when ``plan.require_primary_sample``) is what gives "no harm
    detected" its power. A significant improvement does not skip stages either: exposure
    grows at the planned pace whatever the early data say.
    """
    if not isinstance(state, CanaryState) or not isinstance(plan, CanaryPlan):
        raise InvalidInputError("advance() needs a CanaryState and a CanaryPlan", field="state")
    if not isinstance(inputs, CheckpointInputs):
        raise InvalidInputError(
            f"inputs must be a CheckpointInputs, got {type(inputs).__name__}", field="inputs"
        )
    if state.status != "running":
        return state, "none"
    _check_stage(state, plan)
    i = state.stage
    if inputs.guardrail_breaches:
        reasons = tuple(f"guardrail breached: {b}" for b in inputs.guardrail_breaches)
        return _transition(state, now, "rollback", "rolled_back", i, reasons), "rollback"
    if inputs.verdict_decision == "rollback":
        reasons = ("verdict: rollback (significant harm)", *inputs.verdict_reasons)
        return _transition(state, now, "rollback", "rolled_back", i, reasons), "rollback"
    if inputs.blockers:
        return state, "hold"
    stage = plan.stages[i]
    elapsed = max(0.0, now - state.stage_started_at)
    if inputs.challenger_requests < stage.min_requests or elapsed < stage.min_duration_s:
        return state, "hold"
    met = (
        f"stage {i} ({stage.share:.0%}): {inputs.challenger_requests} challenger requests "
        f"in {elapsed:.0f} s, no guardrail breached, no significant harm"
    )
    if i == plan.last_stage:
        if plan.require_primary_sample and not inputs.primary_sample_reached:
            return state, "hold"
        if inputs.non_inferior is False:
            return state, "hold"
        if inputs.non_inferior:
            met += ", shown not worse than max_harm"
        held = 1.0 - plan.routed_share(i)
        met += (
            f"; harm tested on concurrent rows (champion holdback {held:.1%})"
            if held > 0
            else "; no champion holdback: harm tested on the earlier stages"
        )
        return _transition(state, now, "promote", "promoted", i, (met,)), "promote"
    return _transition(state, now, "advance", "running", i + 1, (met,)), "advance"


def pause(state: CanaryState, now: float, reason: str | None = None) -> CanaryState:
    """Freeze a running canary at its share: :func:`advance` does nothing until resumed."""
    _require(state, ("running",), "pause")
    return _transition(state, now, "pause", "paused", state.stage, _why(reason, "paused"))


def resume(state: CanaryState, now: float, reason: str | None = None) -> CanaryState:
    """Resume a paused canary. The stage restarts at ``now``.

    Its minimum duration and requests are measured again from the resume, so the stage
    still sees that much *live* time under the automated rules (the shell counts requests
    from ``stage_started_at``).
    """
    _require(state, ("paused",), "resume")
    return _transition(state, now, "resume", "running", state.stage, _why(reason, "resumed"))


def force_promote(
    state: CanaryState, plan: CanaryPlan, now: float, reason: str | None = None
) -> CanaryState:
    """Promote now, skipping the remaining stages (running or paused canaries only)."""
    _require(state, ("running", "paused"), "force-promote")
    _check_stage(state, plan)
    why = _why(reason, "promoted by operator")
    return _transition(state, now, "force_promote", "promoted", plan.last_stage, why)


def abort(state: CanaryState, now: float, reason: str | None = None) -> CanaryState:
    """Stop the canary: status ``rolled_back``, reason ``"aborted by operator"``."""
    _require(state, ("running", "paused"), "abort")
    why = ("aborted by operator", *((reason,) if reason else ()))
    return _transition(state, now, "abort", "rolled_back", state.stage, why)


def supersede(state: CanaryState, now: float, reason: str) -> CanaryState:
    """End a canary whose aliases moved under it: status ``superseded``, share 0.

    The shell calls it when the champion (or challenger) alias points elsewhere than the
    versions the canary compares, or when a promotion could not be applied because the
    champion moved: the comparison it was running no longer exists, and replacing it
    silently would lose its history. Allowed from ``running``, ``paused`` and ``promoted``
    (a promotion whose alias move failed).
    """
    _require(state, ("running", "paused", "promoted"), "supersede")
    return _transition(state, now, "supersede", "superseded", state.stage, (reason,))


@dataclass(frozen=True, slots=True)
class CanaryStrategy:
    """Route units to the challenger at the canary's current share.

    The split's salt must stay the same for the whole canary: the challenger owns buckets
    ``[0, share * buckets)``, so a larger share only adds units. Build it with
    :meth:`from_state`, which gives 0 % after a rollback and 100 % once promoted.
    """

    champion_alias: str
    challenger_alias: str
    share: float
    salt: str
    name: str = "canary"

    split: Split = field(init=False, repr=False, compare=False)
    _ab: ABTest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A canary stage routes exactly like an A/B test at the stage's share: one routing
        # implementation serves both.
        ab = ABTest(self.champion_alias, self.challenger_alias, self.share, self.salt)
        object.__setattr__(self, "_ab", ab)
        object.__setattr__(self, "split", ab.split)

    @classmethod
    def from_state(
        cls,
        state: CanaryState,
        plan: CanaryPlan,
        *,
        champion_alias: str,
        challenger_alias: str,
        salt: str,
    ) -> CanaryStrategy:
        """The strategy for ``state``'s share (see :meth:`CanaryState.share`)."""
        if state.status in ("running", "paused"):
            _check_stage(state, plan)
        return cls(champion_alias, challenger_alias, state.share(plan), salt)

    def route(self, unit_id: str | None, draw: float) -> Route:
        return self._ab.route(unit_id, draw)

    def weights(self) -> dict[str, float]:
        return self._ab.weights()


# --- private helpers ---------------------------------------------------------------------


def _transition(
    state: CanaryState,
    now: float,
    action: RecordAction,
    status: CanaryStatus,
    to_stage: int,
    reasons: tuple[str, ...],
) -> CanaryState:
    record = DecisionRecord(now, state.stage, to_stage, action, reasons)
    new_stage_clock = to_stage != state.stage or action == "resume"
    return replace(
        state,
        status=status,
        stage=to_stage,
        stage_started_at=now if new_stage_clock else state.stage_started_at,
        version=state.version + 1,
        history=(*state.history, record),
    )


def _require(state: CanaryState, allowed: tuple[str, ...], verb: str) -> None:
    if not isinstance(state, CanaryState):
        raise InvalidInputError(
            f"state must be a CanaryState, got {type(state).__name__}", field="state"
        )
    if state.status not in allowed:
        raise InvalidInputError(
            f"cannot {verb} a canary that is {state.status}; only a "
            f"{' or '.join(allowed)} canary can be",
            field="status",
        )


def _check_stage(state: CanaryState, plan: CanaryPlan) -> None:
    if not 0 <= state.stage < len(plan.stages):
        raise InvalidInputError(
            f"canary is at stage {state.stage} but the plan has {len(plan.stages)} stages; "
            "the plan changed under a running canary, abort it and start a new one",
            field="stage",
        )


def _why(reason: str | None, default: str) -> tuple[str, ...]:
    return (reason,) if reason else (default,)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {value!r}", field=name)
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> Any:
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {allowed}, got {value!r}", field=name)
    return value


__all__ = [
    "DEFAULT_STAGES",
    "STATE_SCHEMA",
    "TERMINAL_STATUSES",
    "Action",
    "CanaryPlan",
    "CanaryStage",
    "CanaryState",
    "CanaryStatus",
    "CanaryStrategy",
    "CheckpointInputs",
    "DecisionRecord",
    "LinearRamp",
    "RecordAction",
    "abort",
    "advance",
    "force_promote",
    "pause",
    "resume",
    "supersede",
]
