"""Tests for the canary plan, state machine and routing strategy."""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter.errors import InvalidInputError
from arbiter.routing.canary import (
    DEFAULT_STAGES,
    CanaryPlan,
    CanaryStage,
    CanaryState,
    CanaryStrategy,
    CheckpointInputs,
    LinearRamp,
    abort,
    advance,
    force_promote,
    pause,
    resume,
)
from arbiter.routing.strategies import CHALLENGER, CHAMPION
from arbiter.stats.sufficient import ProportionStatistic
from arbiter.stats.verdict import (
    ArmObservations,
    DecisionPolicy,
    Guardrail,
    GuardrailObservation,
    decide,
)

T0 = 1_000_000.0
PLAN = CanaryPlan(
    (
        CanaryStage(0.05, min_requests=100, min_duration_s=300.0),
        CanaryStage(0.25, min_requests=200, min_duration_s=600.0),
        CanaryStage(1.0, min_requests=500, min_duration_s=600.0),
    )
)


def _at(stage: int, status: str = "running") -> CanaryState:
    return CanaryState(status, stage, T0, T0)  # type: ignore[arg-type]


def _inputs(chal: int = 10_000, **kw: object) -> CheckpointInputs:
    kw.setdefault("primary_sample_reached", True)
    return CheckpointInputs(10_000, chal, **kw)  # type: ignore[arg-type]


# --- plan -------------------------------------------------------------------------------


def test_default_plan() -> None:
    plan = CanaryPlan()
    assert [s.share for s in plan.stages] == [0.01, 0.05, 0.25, 0.5, 1.0]
    assert plan.stages is DEFAULT_STAGES
    assert all(s.min_requests > 0 and s.min_duration_s > 0 for s in plan.stages)
    assert plan.analysis_interval_s == 60.0 and plan.require_primary_sample
    assert plan.last_stage == 4


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ((), "stages"),
        ((CanaryStage(0.5), CanaryStage(0.5), CanaryStage(1.0)), "stages[1].share"),
        ((CanaryStage(0.5), CanaryStage(0.1), CanaryStage(1.0)), "stages[1].share"),
        ((CanaryStage(0.1), CanaryStage(0.5)), "stages[1].share"),
        ([CanaryStage(1.0)], "stages"),
        ((0.5, CanaryStage(1.0)), "stages[0]"),
    ],
)
def test_plan_validation(stages: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        CanaryPlan(stages)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"share": 0.0}, "share"),
        ({"share": 1.5}, "share"),
        ({"share": 0.1, "min_requests": -1}, "min_requests"),
        ({"share": 0.1, "min_requests": 1.5}, "min_requests"),
        ({"share": 0.1, "min_duration_s": float("inf")}, "min_duration_s"),
        ({"share": 0.1, "min_duration_s": -1.0}, "min_duration_s"),
    ],
)
def test_stage_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        CanaryStage(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_plan_interval_validation() -> None:
    with pytest.raises(InvalidInputError) as info:
        CanaryPlan(analysis_interval_s=0)
    assert info.value.field == "analysis_interval_s"


# --- linear ramp ------------------------------------------------------------------------


def test_linear_ramp_values() -> None:
    ramp = LinearRamp(0.0, 0.5, duration_s=600.0, step_s=60.0)
    assert ramp.share_at(-5) == 0.0
    assert ramp.share_at(59.9) == 0.0
    assert ramp.share_at(60) == pytest.approx(0.05)
    assert ramp.share_at(299) == pytest.approx(0.2)
    assert ramp.share_at(600) == 0.5
    assert ramp.share_at(1e9) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start_share": 0.0, "target_share": 0.0, "duration_s": 10, "step_s": 1}, "target_share"),
        ({"start_share": 0.6, "target_share": 0.5, "duration_s": 10, "step_s": 1}, "start_share"),
        ({"start_share": 0.0, "target_share": 1.0, "duration_s": 0, "step_s": 1}, "duration_s"),
        ({"start_share": 0.0, "target_share": 1.0, "duration_s": 10, "step_s": 11}, "step_s"),
        ({"start_share": 0.0, "target_share": 1.0, "duration_s": 10, "step_s": 0}, "step_s"),
    ],
)
def test_linear_ramp_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        LinearRamp(**kwargs)
    assert info.value.field == field


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(0.0, 0.9),
    span=st.floats(0.01, 1.0),
    duration=st.floats(1.0, 1e6),
    step_frac=st.floats(1e-3, 1.0),
    times=st.lists(st.floats(-1e3, 2e6), min_size=2, max_size=30),
)
def test_linear_ramp_is_monotonic(
    start: float, span: float, duration: float, step_frac: float, times: list[float]
) -> None:
    target = min(1.0, start + span)
    ramp = LinearRamp(start, target, duration, duration * step_frac)
    shares = [ramp.share_at(t) for t in sorted(times)]
    assert all(a <= b for a, b in itertools.pairwise(shares))
    assert all(start <= s <= target for s in shares)
    assert ramp.share_at(duration) == target


def test_linear_ramp_to_plan() -> None:
    plan = LinearRamp(0.0, 0.5, 600.0, 60.0).to_plan(min_requests=10)
    shares = [s.share for s in plan.stages]
    assert shares[0] == pytest.approx(0.05) and shares[-2:] == [0.5, 1.0]
    assert len(shares) == 11
    # the zero-share first step is merged into the first stage (a stage needs a share > 0)
    assert [s.min_duration_s for s in plan.stages] == [120.0] + [60.0] * 10
    assert all(s.min_requests == 10 for s in plan.stages)
    full = LinearRamp(0.1, 1.0, 100.0, 50.0).to_plan()
    assert [s.share for s in full.stages] == pytest.approx([0.1, 0.55, 1.0])


@pytest.mark.parametrize(
    ("start", "target", "duration", "step"),
    [(0.0, 0.5, 600.0, 60.0), (0.0, 1.0, 100.0, 30.0), (0.1, 1.0, 100.0, 50.0),
     (0.0, 0.3, 10.0, 10.0), (0.2, 0.8, 95.0, 20.0)],
)  # fmt: skip
def test_linear_ramp_plan_never_runs_ahead_of_share_at(
    start: float, target: float, duration: float, step: float
) -> None:
    """With every stage lasting exactly its minimum, the plan's share at time t equals
    share_at(t) from the first step on (before it, the first positive share), and the
    target is reached at duration_s, not a step early."""
    ramp = LinearRamp(start, target, duration, step)
    plan = ramp.to_plan()
    begins = list(itertools.accumulate((s.min_duration_s for s in plan.stages), initial=0.0))
    ramp_stages = plan.stages if target == 1.0 else plan.stages[:-1]
    for i, stage in enumerate(ramp_stages):
        assert ramp.share_at(begins[i]) <= stage.share
        if i > 0 or start > 0:
            assert ramp.share_at(begins[i]) == pytest.approx(stage.share)
    if len(ramp_stages) > 1:  # a one-step ramp from 0 has nothing to wait for
        assert begins[len(ramp_stages) - 1] == pytest.approx(duration)
    assert ramp.share_at(begins[len(ramp_stages)]) == target


# --- state machine ----------------------------------------------------------------------

CASES = [
    # (id, state, inputs, elapsed_s, action, status, stage)
    ("hold-min-requests", _at(0), _inputs(99), 1e4, "hold", "running", 0),
    ("hold-min-duration", _at(0), _inputs(), 299.0, "hold", "running", 0),
    ("advance", _at(0), _inputs(100), 300.0, "advance", "running", 1),
    ("advance-verdict-continue", _at(1), _inputs(verdict_decision="continue"), 600, "advance",
     "running", 2),
    ("advance-verdict-keep", _at(1), _inputs(verdict_decision="keep_champion"), 600, "advance",
     "running", 2),
    ("guardrail-rollback", _at(0), _inputs(0, guardrail_breaches=("error_rate",)), 0.0,
     "rollback", "rolled_back", 0),
    ("harm-rollback", _at(1), _inputs(5, verdict_decision="rollback"), 1.0, "rollback",
     "rolled_back", 1),
    ("promote", _at(2), _inputs(500), 600.0, "promote", "promoted", 2),
    ("promote-when-better", _at(2), _inputs(verdict_decision="promote"), 600, "promote",
     "promoted", 2),
    ("last-holds-without-primary-sample", _at(2), _inputs(primary_sample_reached=False), 1e4,
     "hold", "running", 2),
    ("last-holds-when-unknown", _at(2), _inputs(primary_sample_reached=None), 1e4, "hold",
     "running", 2),
    ("last-hold-min-requests", _at(2), _inputs(499), 1e4, "hold", "running", 2),
    ("paused-none", _at(1, "paused"), _inputs(guardrail_breaches=("x",)), 1e4, "none", "paused",
     1),
    ("promoted-stays", _at(2, "promoted"), _inputs(verdict_decision="rollback"), 1e4, "none",
     "promoted", 2),
    ("rolled-back-stays", _at(1, "rolled_back"), _inputs(), 1e4, "none", "rolled_back", 1),
    ("aborted-stays", _at(0, "aborted"), _inputs(), 1e4, "none", "aborted", 0),
    ("clock-skew-holds", _at(0), _inputs(), -50.0, "hold", "running", 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "inputs", "elapsed", "action", "status", "stage"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_state_machine(
    state: CanaryState,
    inputs: CheckpointInputs,
    elapsed: float,
    action: str,
    status: str,
    stage: int,
) -> None:
    now = T0 + elapsed
    new, got = advance(state, PLAN, inputs, now)
    assert (got, new.status, new.stage) == (action, status, stage)
    if action in ("hold", "none"):
        assert new is state
    else:
        assert new.version == state.version + 1
        record = new.history[-1]
        assert (record.at, record.from_stage, record.to_stage, record.action) == (
            now,
            state.stage,
            stage,
            action,
        )
        assert record.reasons
    if action == "advance":
        assert new.stage_started_at == now


def test_rollback_reasons_name_the_cause() -> None:
    new, _ = advance(_at(0), PLAN, _inputs(guardrail_breaches=("error_rate",)), T0)
    assert new.history[-1].reasons == ("guardrail breached: error_rate",)
    new, _ = advance(_at(0), PLAN, _inputs(verdict_decision="rollback"), T0)
    assert "significant harm" in new.history[-1].reasons[0]


def test_plan_without_primary_sample_promotes_on_guardrails_only() -> None:
    plan = CanaryPlan(PLAN.stages, require_primary_sample=False)
    new, action = advance(_at(2), plan, CheckpointInputs(0, 500), T0 + 600)
    assert (action, new.status) == ("promote", "promoted")


def test_full_run_from_start_to_promotion() -> None:
    state, now = CanaryState.start(T0), T0
    actions = []
    while not state.terminal:
        now += 60.0
        state, action = advance(state, PLAN, _inputs(), now)
        actions.append(action)
    assert actions.count("advance") == 2 and actions[-1] == "promote"
    assert [r.action for r in state.history] == ["start", "advance", "advance", "promote"]
    assert state.version == 3


def test_stage_outside_plan_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as info:
        advance(_at(7), PLAN, _inputs(), T0)
    assert info.value.field == "stage"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"champion_requests": -1, "challenger_requests": 0}, "champion_requests"),
        ({"champion_requests": 0, "challenger_requests": 1.5}, "challenger_requests"),
        ({"champion_requests": 0, "challenger_requests": 0, "verdict_decision": "x"},
         "verdict_decision"),
    ],
)  # fmt: skip
def test_inputs_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        CheckpointInputs(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_inputs_from_verdict() -> None:
    policy = DecisionPolicy(mode="canary", guardrails=(Guardrail("error_rate", 0.02),))
    breach = ArmObservations(
        ProportionStatistic(5000, 4250),
        ProportionStatistic(5000, 4250),
        guardrails=(GuardrailObservation("error_rate", 0.2),),
    )
    inputs = CheckpointInputs.from_verdict(
        decide(breach, policy), champion_requests=5000, challenger_requests=5000
    )
    assert inputs.verdict_decision == "rollback"
    assert len(inputs.guardrail_breaches) == 1
    assert inputs.guardrail_breaches[0].startswith("error_rate:")

    harm = ArmObservations(
        ProportionStatistic(20_000, 17_000),
        ProportionStatistic(20_000, 16_000),
        guardrails=(GuardrailObservation("error_rate", 0.0),),
    )
    inputs = CheckpointInputs.from_verdict(
        decide(harm, policy), champion_requests=1, challenger_requests=2
    )
    assert (inputs.verdict_decision, inputs.guardrail_breaches) == ("rollback", ())
    # Harm is tested at every look in canary mode, before (and whatever) the minimum sample.
    assert any(r.startswith("primary:") for r in inputs.verdict_reasons)

    small = ArmObservations(
        ProportionStatistic(10, 8),
        ProportionStatistic(10, 8),
        guardrails=(GuardrailObservation("error_rate", 0.0),),
    )
    inputs = CheckpointInputs.from_verdict(
        decide(small, policy), champion_requests=10, challenger_requests=10
    )
    assert inputs.verdict_decision == "continue" and inputs.primary_sample_reached is False
    assert any(r.startswith("min_sample:") for r in inputs.verdict_reasons)


# --- manual operations ------------------------------------------------------------------


def test_pause_and_resume_restart_the_stage_clock() -> None:
    state = CanaryState.start(T0)
    paused = pause(state, T0 + 100)
    assert paused.status == "paused" and paused.stage_started_at == T0
    assert advance(paused, PLAN, _inputs(), T0 + 1e4) == (paused, "none")
    resumed = resume(paused, T0 + 500, reason="incident closed")
    assert (resumed.status, resumed.stage_started_at) == ("running", T0 + 500)
    assert resumed.history[-1].reasons == ("incident closed",)
    assert advance(resumed, PLAN, _inputs(), T0 + 700)[1] == "hold"
    assert advance(resumed, PLAN, _inputs(), T0 + 800)[1] == "advance"
    assert [r.action for r in resumed.history] == ["start", "pause", "resume"]
    assert resumed.version == 2


def test_force_promote_and_abort() -> None:
    state = CanaryState.start(T0)
    promoted = force_promote(state, PLAN, T0 + 1)
    assert (promoted.status, promoted.stage) == ("promoted", PLAN.last_stage)
    assert promoted.history[-1].reasons == ("promoted by operator",)
    aborted = abort(pause(state, T0 + 1), T0 + 2, reason="bad release notes")
    assert aborted.status == "rolled_back"
    assert aborted.history[-1].reasons == ("aborted by operator", "bad release notes")
    assert aborted.share(PLAN) == 0.0


def test_share_true_is_not_a_share() -> None:
    with pytest.raises(InvalidInputError) as info:
        CanaryStage(True)  # type: ignore[arg-type]
    assert info.value.field == "share"


def test_share_of_a_stage_the_plan_lacks_is_zero() -> None:
    """The plan changed under a running canary: route nothing rather than raise IndexError."""
    assert _at(len(PLAN.stages)).share(PLAN) == 0.0
    assert _at(len(PLAN.stages), "paused").share(PLAN) == 0.0


def test_supersede_ends_a_live_canary_at_zero() -> None:
    from arbiter.routing.canary import supersede

    for status in ("running", "paused", "promoted"):
        state = supersede(_at(1, status), T0 + 5, "champion moved")
        assert state.status == "superseded" and state.terminal and state.share(PLAN) == 0.0
        assert state.history[-1].action == "supersede"
        assert CanaryState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(InvalidInputError, match="that is rolled_back"):
        supersede(_at(1, "rolled_back"), T0, "x")


@pytest.mark.parametrize("status", ["promoted", "rolled_back", "aborted", "superseded"])
def test_manual_operations_refuse_terminal_states(status: str) -> None:
    state = _at(1, status)
    for op in (
        lambda: pause(state, T0),
        lambda: resume(state, T0),
        lambda: force_promote(state, PLAN, T0),
        lambda: abort(state, T0),
    ):
        with pytest.raises(InvalidInputError, match=f"that is {status}"):
            op()


def test_pause_requires_running_and_resume_requires_paused() -> None:
    with pytest.raises(InvalidInputError):
        resume(_at(0), T0)
    with pytest.raises(InvalidInputError):
        pause(_at(0, "paused"), T0)


# --- storage ----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    state = CanaryState.start(T0)
    state, _ = advance(state, PLAN, _inputs(), T0 + 600)
    state = pause(state, T0 + 700, reason="looking into a spike")
    state = abort(state, T0 + 800)
    text = json.dumps(state.to_dict())
    back = CanaryState.from_dict(json.loads(text))
    assert back == state
    assert back.history[-1].reasons == ("aborted by operator",)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(schema=99), "schema"),
        (lambda d: d.update(status="exploded"), "status"),
        (lambda d: d.update(stage="1"), "stage"),
        (lambda d: d.pop("version"), "state"),
        (lambda d: d["history"][0].update(action="launch"), "history[0].action"),
    ],
)
def test_from_dict_rejects_bad_data(mutate: object, field: str) -> None:
    data = CanaryState.start(T0).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(InvalidInputError) as info:
        CanaryState.from_dict(data)
    assert info.value.field == field


def test_advance_is_deterministic_and_reads_no_clock() -> None:
    state = CanaryState.start(T0)
    runs = [advance(state, PLAN, _inputs(), T0 + 300.0) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][0].history[-1].at == T0 + 300.0
    # No hidden clock or randomness anywhere in the module.
    source = Path(__import__("arbiter.routing.canary").routing.canary.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"time", "datetime", "random", "secrets", "uuid", "os"}


# --- routing ----------------------------------------------------------------------------


def test_strategy_share_follows_state() -> None:
    kw = {"champion_alias": "champion", "challenger_alias": "challenger", "salt": "m"}
    running = CanaryStrategy.from_state(_at(1), PLAN, **kw)
    assert running.weights() == {CHALLENGER: 0.25, CHAMPION: 0.75}
    assert running.name == "canary"
    rolled = CanaryStrategy.from_state(_at(1, "rolled_back"), PLAN, **kw)
    assert rolled.weights() == {CHALLENGER: 0.0, CHAMPION: 1.0}
    assert {rolled.route(f"u{i}", 0.5).arm for i in range(500)} == {CHAMPION}
    assert rolled.route(None, 0.0).alias == "champion"
    promoted = CanaryStrategy.from_state(_at(2, "promoted"), PLAN, **kw)
    assert {promoted.route(f"u{i}", 0.5).alias for i in range(500)} == {"challenger"}


def test_strategy_share_is_about_right() -> None:
    strategy = CanaryStrategy("a", "b", 0.05, salt="exp")
    hits = sum(strategy.route(f"user-{i}", 0.0).arm == CHALLENGER for i in range(20_000))
    assert abs(hits / 20_000 - 0.05) < 0.006
    route = strategy.route(None, 0.01)
    assert route.unit_random and route.arm == CHALLENGER


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
    salt=st.text(min_size=1, max_size=8),
    shares=st.lists(st.floats(0.001, 1.0), min_size=2, max_size=5),
)
def test_challenger_units_stay_in_the_challenger_as_the_share_grows(
    ids: list[str], salt: str, shares: list[float]
) -> None:
    shares = sorted(shares)
    seen: set[str] = set()
    for share in shares:
        strategy = CanaryStrategy("champ", "chal", share, salt)
        now = {u for u in ids if strategy.route(u, 0.5).arm == CHALLENGER}
        assert seen <= now  # whoever saw the challenger keeps seeing it
        seen = now


def test_units_at_5_percent_remain_at_25_percent_along_the_default_plan() -> None:
    kw = {"champion_alias": "c", "challenger_alias": "t", "salt": "model-x"}
    ids = [f"user-{i}" for i in range(5000)]
    state = CanaryState.start(T0)
    plan = CanaryPlan()
    previous: set[str] = set()
    while not state.terminal:
        strategy = CanaryStrategy.from_state(state, plan, **kw)
        current = {u for u in ids if strategy.route(u, 0.5).arm == CHALLENGER}
        assert previous <= current
        previous = current
        state, _ = advance(state, plan, _inputs(), state.stage_started_at + 1e4)
    assert state.status == "promoted"


def test_an_srm_alarm_holds_the_canary_but_guardrails_still_roll_back() -> None:
    """decide() stops at an SRM alarm without testing the primary metric, so advancing would
    ramp a challenger whose quality was never checked."""
    from arbiter.routing.canary import CanaryPlan, CanaryStage, CanaryState, CheckpointInputs
    from arbiter.routing.canary import advance as step
    from arbiter.stats.verdict import Criterion, Verdict

    plan = CanaryPlan((CanaryStage(0.1), CanaryStage(1.0)), require_primary_sample=False)
    state = CanaryState.start(0.0)
    srm = Criterion("srm", False, 1e-6, 0.001, "chi-square p=1e-06: assignment is broken")
    inputs = CheckpointInputs.from_verdict(
        Verdict("continue", (srm,)), champion_requests=900, challenger_requests=100
    )
    assert inputs.blockers and "srm" in inputs.blockers[0]
    assert step(state, plan, inputs, 10.0) == (state, "hold")
    breached = CheckpointInputs(900, 100, "continue", (), ("error_rate: 0.2",), None, ("srm",))
    assert step(state, plan, breached, 10.0)[1] == "rollback"


# --- holdback and non-inferiority (issue 15) ----------------------------------------------


def test_holdback_keeps_champion_units_at_the_last_stage_only() -> None:
    plan = CanaryPlan(PLAN.stages, holdback=0.05)
    assert [plan.routed_share(i) for i in range(3)] == [0.05, 0.25, pytest.approx(0.95)]
    assert _at(2).share(plan) == pytest.approx(0.95)
    assert _at(2, "promoted").share(plan) == 1.0  # a promotion routes everything
    kw = {"champion_alias": "champion", "challenger_alias": "challenger", "salt": "m"}
    last = CanaryStrategy.from_state(_at(2), plan, **kw)
    held = sum(last.route(f"u{i}", 0.5).arm == CHAMPION for i in range(20_000)) / 20_000
    assert held == pytest.approx(0.05, abs=0.01)
    # units of the 25 % stage stay with the challenger at 95 %
    before = CanaryStrategy.from_state(_at(1), plan, **kw)
    moved = [f"u{i}" for i in range(2000) if before.route(f"u{i}", 0.5).arm == CHALLENGER]
    assert all(last.route(u, 0.5).arm == CHALLENGER for u in moved)


def test_holdback_is_capped_below_the_previous_stage() -> None:
    fine = CanaryPlan((CanaryStage(0.5), CanaryStage(0.99), CanaryStage(1.0)), holdback=0.05)
    assert 0.99 < fine.routed_share(2) < 1.0


@pytest.mark.parametrize("holdback", [-0.1, 0.5, True])
def test_holdback_validation(holdback: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        CanaryPlan(PLAN.stages, holdback=holdback)  # type: ignore[arg-type]
    assert info.value.field == "holdback"


def test_non_inferiority_gates_promotion_but_not_advance() -> None:
    new, action = advance(_at(1), PLAN, _inputs(non_inferior=False), T0 + 600)
    assert action == "advance"
    new, action = advance(_at(2), PLAN, _inputs(non_inferior=False), T0 + 600)
    assert (action, new.status) == ("hold", "running")
    new, action = advance(_at(2), PLAN, _inputs(non_inferior=True), T0 + 600)
    assert action == "promote"
    assert "not worse than max_harm" in new.history[-1].reasons[0]


def test_non_inferiority_criterion_reaches_the_inputs() -> None:
    """decide's ``non_inferiority`` criterion (with strata and max_harm) -> inputs."""
    from arbiter.stats.sufficient import RatioStatistic

    def cell(n: int, right: int) -> RatioStatistic:
        return RatioStatistic(n, right, right, n, n, right)

    strata = ((cell(20_000, 17_000), cell(20_000, 17_020)),)
    for margin, shown in ((0.02, True), (0.0005, False)):
        policy = DecisionPolicy(mode="canary", check_srm=False, max_harm=margin)
        verdict = decide(
            ArmObservations(
                ProportionStatistic(20_000, 17_000),
                ProportionStatistic(20_000, 17_020),
                strata=strata,
            ),
            policy,
        )
        inputs = CheckpointInputs.from_verdict(verdict, champion_requests=1, challenger_requests=1)
        assert inputs.non_inferior is shown
    plain = CheckpointInputs.from_verdict(
        decide(ArmObservations(*strata[0]), DecisionPolicy(mode="canary", check_srm=False)),
        champion_requests=1,
        challenger_requests=1,
    )
    assert plain.non_inferior is None


def test_promotion_record_says_how_harm_was_tested_at_the_last_stage() -> None:
    plain, _ = advance(_at(2), PLAN, _inputs(), T0 + 600)
    assert "no champion holdback" in plain.history[-1].reasons[0]
    held, _ = advance(_at(2), CanaryPlan(PLAN.stages, holdback=0.05), _inputs(), T0 + 600)
    assert "champion holdback 5.0%" in held.history[-1].reasons[0]


def test_a_loss_metric_waits_for_30_concurrent_units_then_detects_harm() -> None:
    """metric_kind="mean", lower is better: a loss 0.5 higher for the challenger."""
    import numpy as np

    from arbiter.stats.sufficient import RatioStatistic

    rng = np.random.default_rng(9)

    def cell(m: np.ndarray) -> RatioStatistic:
        n = float(len(m))
        return RatioStatistic(len(m), m.sum(), (m * m).sum(), n, n, m.sum())

    policy = DecisionPolicy(
        metric_kind="mean", higher_is_better=False, mode="canary", check_srm=False
    )
    for n_b, expected in ((20, "insufficient_data"), (2000, "ok")):
        a, b = rng.exponential(1.0, 4000), rng.exponential(1.5, n_b)
        verdict = decide(ArmObservations(cell(a), cell(b), strata=((cell(a), cell(b)),)), policy)
        assert verdict.primary is not None and verdict.primary.status == expected
    assert verdict.decision == "rollback"
    assert verdict.primary.ci_high == np.inf and verdict.primary.ci_low > 0
