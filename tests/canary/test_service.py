"""CanaryService against a real registry, no gateway: lifecycle across challenger versions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from arbiter.canary import CanaryConflictError, CanaryService
from arbiter.config import ModelConfig
from arbiter.errors import ConfigError, InvalidInputError
from arbiter.registry import registry_for_home
from tests.canary.conftest import canary_model


def _service(make_home: Any, on_rollback: str) -> CanaryService:
    home = make_home({})
    config = ModelConfig.model_validate(canary_model("raising", on_rollback=on_rollback))
    return CanaryService(registry_for_home(home.root), home.root, "faulty", config)


def test_flag_keeps_the_alias_and_a_new_version_starts_a_new_canary(
    make_home: Any, template_home: Any
) -> None:
    service = _service(make_home, "flag")
    v = template_home.versions["faulty"]
    snap, stored = service.ensure_started(service.snapshot())
    assert stored is not None and stored.challenger_version == v["raising"]
    assert service.share(snap, v["champion"]) == pytest.approx(0.2)
    with pytest.raises(InvalidInputError) as info:
        service.operate("explode")
    assert info.value.field == "action"
    service.operate("abort", "flag only")
    snap = service.snapshot()
    assert snap.aliases["raising"] == v["raising"]  # flag: the alias stays...
    tags = service.registry.model_version_tags("faulty", v["raising"])
    assert tags["arbiter.canary.outcome"] == "rolled_back" and "arbiter.archived" not in tags
    # ...and the terminal canary of this version stays terminal: 0 %, no restart
    snap, stored = service.ensure_started(snap)
    assert stored is not None and stored.state.status == "rolled_back"
    assert service.share(snap, v["champion"]) == 0.0
    assert service.checkpoint(store=None, snap=snap).action == "none"
    with pytest.raises(CanaryConflictError, match="cannot resume"):
        service.operate("resume")
    # the alias moves to another version: a new canary starts at stage 0
    service.registry.set_alias("faulty", "raising", v["hanging"])
    snap, stored = service.ensure_started(service.snapshot())
    assert stored is not None and stored.challenger_version == v["hanging"]
    assert stored.state.status == "running" and stored.state.stage == 0
    assert service.status(snap)["share"] == pytest.approx(0.2)


def test_force_promote_moves_the_aliases(make_home: Any, template_home: Any) -> None:
    service = _service(make_home, "archive")
    v = template_home.versions["faulty"]
    service.ensure_started(service.snapshot())
    out = service.operate("promote", "operator says so")
    assert out["record"]["registry"]["promoted"]
    aliases = service.registry.aliases("faulty")
    assert aliases["champion"] == v["raising"] and aliases["previous"] == v["champion"]
    assert "raising" not in aliases
    snap = service.snapshot()
    # promoted: 100 % challenger until this worker loaded the new champion, then champion only
    assert service.share(snap, v["champion"]) == 1.0
    assert service.share(snap, v["raising"]) == 0.0
    assert service.status(snap)["status"] == "promoted"
    with pytest.raises(CanaryConflictError):
        service.operate("abort")


def test_service_needs_a_canary_strategy(make_home: Any) -> None:
    home = make_home({})
    with pytest.raises(ConfigError, match="not 'canary'"):
        CanaryService(registry_for_home(home.root), home.root, "fraud", ModelConfig())
    with pytest.raises(ValidationError):
        ModelConfig.model_validate(
            {"experiment": {"strategy": "canary", "canary": {"stages": [{"share": 0.5}]}}}
        )


class _Clock:
    """A settable wall clock: lets a test step past analysis intervals and lease expiry."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _service_with(make_home: Any, clock: _Clock | None = None, **model: Any) -> CanaryService:
    home = make_home({})
    config = ModelConfig.model_validate(canary_model("raising", **model))
    kwargs = {} if clock is None else {"clock": clock}
    return CanaryService(registry_for_home(home.root), home.root, "faulty", config, **kwargs)


def test_a_rolled_back_version_is_not_restarted_when_the_champion_moves(
    make_home: Any, template_home: Any
) -> None:
    """S1: with on_rollback=flag the alias stays; a later champion move must not give the
    rolled-back version a new canary."""
    service = _service_with(make_home, on_rollback="flag")
    v = template_home.versions["faulty"]
    service.ensure_started(service.snapshot())
    service.operate("abort", "broken")
    service.registry.set_alias("faulty", "champion", v["hanging"])
    snap, stored = service.ensure_started(service.snapshot())
    assert stored is None and snap.stored is not None
    assert snap.stored.state.status == "rolled_back"  # not replaced by a new start
    status = service.status(snap)
    assert status["status"] == "none" and status["share"] == 0.0
    assert "rolled back by an earlier canary" in status["detail"]
    with pytest.raises(CanaryConflictError, match="rolled back by an earlier canary"):
        service.operate("pause")
    # an archived version is refused the same way
    service.registry.set_alias("faulty", "champion", v["champion"])
    service.registry.set_model_version_tags("faulty", v["hanging"], {"arbiter.archived": "true"})
    service.registry.set_alias("faulty", "raising", v["hanging"])
    assert service.ensure_started(service.snapshot())[1] is None
    assert "archived" in service.status()["detail"]


def test_a_champion_move_mid_canary_supersedes_it(make_home: Any, template_home: Any) -> None:
    service = _service_with(make_home)
    v = template_home.versions["faulty"]
    _, first = service.ensure_started(service.snapshot())
    assert first is not None and first.plan == service.plan_fingerprint
    service.registry.set_alias("faulty", "champion", v["hanging"])
    snap, stored = service.ensure_started(service.snapshot())
    assert stored is not None and stored.champion_version == v["hanging"]
    assert stored.state.status == "running" and stored.state.version == 0
    actions = [r["action"] for r in snap.records]
    assert actions == ["start", "supersede", "start"]
    superseded = snap.records[1]
    assert superseded["status"] == "superseded" and superseded["share"] == 0.0
    assert f"moved from v{v['champion']} to v{v['hanging']}" in superseded["reasons"][0]
    assert superseded["champion_version"] == v["champion"]


def test_operator_actions_are_idempotent_and_survive_side_effect_failures(
    make_home: Any, template_home: Any
) -> None:
    from arbiter.errors import RegistryError

    class Failing(CanaryService):
        def _side_effects(self, new: Any, reason: str, evidence: Any) -> Any:
            if new.state.terminal:
                raise RegistryError("registry down while archiving")
            return super()._side_effects(new, reason, evidence)

    home = make_home({})
    config = ModelConfig.model_validate(canary_model("raising"))
    service = Failing(registry_for_home(home.root), home.root, "faulty", config)
    service.ensure_started(service.snapshot())
    assert service.operate("pause")["record"]["action"] == "pause"
    again = service.operate("pause")  # a retry after a timeout: success, nothing written
    assert again["record"] is None and "already paused" in again["unchanged"]
    out = service.operate("abort", "bad")
    assert out["status"]["status"] == "rolled_back"  # the state write took effect...
    assert out["record"]["registry"] == {"error": "RegistryError: registry down while archiving"}
    assert service.operate("abort")["unchanged"] == "the canary is already rolled_back"
    with pytest.raises(CanaryConflictError, match="cannot force-promote"):
        service.operate("promote")


def test_a_crash_between_the_champion_move_and_the_alias_removal_is_finished(
    make_home: Any, template_home: Any
) -> None:
    """S10: champion = challenger = the promoted version, challenger alias still there."""
    from dataclasses import replace

    from arbiter.routing.canary import force_promote

    clock = _Clock()
    service = _service_with(make_home, clock)
    v = template_home.versions["faulty"]
    _, stored = service.ensure_started(service.snapshot())
    promoted = replace(stored, state=force_promote(stored.state, service.plan, clock(), "go"))
    service._write(promoted, stored)
    service.registry.set_alias("faulty", "champion", v["raising"])  # ...then the worker died
    snap = service.snapshot()
    assert service.status(snap)["status"] == "promoted"  # not "none" forever
    assert service.ensure_started(snap)[1].state.status == "promoted"  # no new canary
    assert service.share(snap, v["raising"]) == 0.0
    clock.now += service.plan.analysis_interval_s + 1
    assert service.checkpoint(store=None).action == "none"
    aliases = service.registry.aliases("faulty")
    assert "raising" not in aliases and aliases["champion"] == v["raising"]
    tags = service.registry.model_version_tags("faulty", v["raising"])
    assert tags["arbiter.canary.outcome"] == "promoted"
    assert service.status()["status"] == "promoted"


def test_a_promotion_refused_by_a_champion_move_is_recorded_and_superseded(
    make_home: Any, template_home: Any
) -> None:
    from dataclasses import replace

    from arbiter.routing.canary import force_promote

    service = _service_with(make_home)
    v = template_home.versions["faulty"]
    snap, stored = service.ensure_started(service.snapshot())
    promoted = service._write(
        replace(stored, state=force_promote(stored.state, service.plan, service.clock(), "go")),
        stored,
    )
    service.registry.set_alias("faulty", "champion", v["hanging"])  # another actor, meanwhile
    record = service._act(promoted, evidence=None, snap=snap)
    assert record["registry"]["promoted"] is False
    assert record["registry"]["champion_conflict"] == v["hanging"]
    snap = service.snapshot()
    assert snap.stored.state.status == "superseded"
    assert snap.records[-1]["action"] == "supersede"
    assert "promotion of v" in snap.records[-1]["reasons"][0]
    assert service.registry.aliases("faulty")["champion"] == v["hanging"]  # untouched
    # the challenger is tested again, against the champion actually in place
    _, fresh = service.ensure_started(snap)
    assert fresh.champion_version == v["hanging"] and fresh.state.status == "running"


def test_a_plan_change_under_a_running_canary_stops_it_at_zero(
    make_home: Any, template_home: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """S11: stage beyond the new plan, or another plan's fingerprint: share 0, a clear
    problem, logged once; only abort is allowed."""
    from dataclasses import replace

    from arbiter.routing.canary import CanaryState

    three = [
        {"share": 0.1, "min_requests": 1},
        {"share": 0.5, "min_requests": 1},
        {"share": 1.0, "min_requests": 1},
    ]
    home = make_home({})
    registry = registry_for_home(home.root)
    old = CanaryService(
        registry,
        home.root,
        "faulty",
        ModelConfig.model_validate(canary_model("raising", stages=three)),
    )
    _, stored = old.ensure_started(old.snapshot())
    at_two = replace(stored, state=replace(stored.state, stage=2, version=1))
    old._write(at_two, stored)
    new = CanaryService(
        registry, home.root, "faulty", ModelConfig.model_validate(canary_model("raising"))
    )
    snap = new.snapshot()
    for _ in range(3):
        assert new.share(snap) == 0.0
    status = new.status(snap)
    assert status["share"] == 0.0 and "the plan changed under a running canary" in status["problem"]
    assert caplog.text.count("the plan changed under a running canary") == 1
    assert new.checkpoint(store=None, snap=snap).action == "none"
    with pytest.raises(CanaryConflictError, match="plan changed"):
        new.operate("pause")
    assert new.operate("abort", "plan changed")["status"]["status"] == "rolled_back"
    # a stage the new plan has, but the old plan's fingerprint: the same
    fresh = CanaryState.start(new.clock())
    registry.client.delete_registered_model_tag("faulty", "arbiter.canary.state")
    registry.set_alias("faulty", "raising", template_home.versions["faulty"]["raising"])
    old._write(type(stored)(stored.challenger_version, stored.champion_version, fresh), None)
    assert new.plan_problem(new.snapshot().stored) is not None
    assert new.share(new.snapshot()) == 0.0 and old.share(old.snapshot()) == pytest.approx(0.1)


def test_a_failed_move_record_is_a_registry_error(make_home: Any, template_home: Any) -> None:
    from arbiter.errors import RegistryError
    from arbiter.registry.history import move_alias

    registry = registry_for_home(make_home({}).root)
    v = template_home.versions["faulty"]
    with pytest.raises(RegistryError, match="recording the move failed"):
        move_alias(
            registry,
            "faulty",
            "hanging",
            None,
            expected_version=v["hanging"],
            reason="x" * 200_000,  # beyond MLflow's tag value limit
        )
