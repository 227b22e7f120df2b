"""The pure part: decision records, the next-step function, the record store."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.loop import CycleRecord, CycleStore, Finish, RunStep, next_action, retrain_trigger
from arbiter.loop.record import fail_step, finish_cycle, finish_step, new_cycle, start_step

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _record(**inputs: object) -> CycleRecord:
    base = {"force": False, "every_s": None, "max_wait_s": 3600.0, "last_retrain_at": None}
    return new_cycle("fraud", inputs={**base, **inputs}, aliases={"champion": "1"}, now=T0)


def _do(record: CycleRecord, step: str, evidence: dict, *, at: datetime = T0) -> CycleRecord:
    record = start_step(record, step, at)
    status = "waiting" if evidence.get("decision") == "continue" else "done"
    return finish_step(record, step, evidence, at, status=status)


def _through_shadow(gate_passed: bool = True) -> CycleRecord:
    r = _do(_record(), "drift", {"drifted": True, "summary": "3/8 features drifted"})
    r = _do(r, "retrain", {"version": "3"})
    r = _do(r, "gate", {"passed": gate_passed, "summary": "roc_auc 0.76 -> 0.83"})
    return _do(r, "shadow", {"challenger_version": "3"}) if gate_passed else r


def test_the_happy_path_in_order() -> None:
    r = _record()
    assert next_action(r, T0) == RunStep("drift", next_action(r, T0).reason)
    r = _do(r, "drift", {"drifted": True, "summary": "3/8 features drifted"})
    action = next_action(r, T0)
    assert isinstance(action, RunStep) and action.name == "retrain"
    assert action.reason.startswith("drift: 3/8")
    r = _do(r, "retrain", {"version": "3"})
    assert r.candidate_version == "3"
    assert next_action(r, T0).name == "gate"  # type: ignore[union-attr]
    r = _do(r, "gate", {"passed": True})
    assert next_action(r, T0).name == "shadow"  # type: ignore[union-attr]
    r = _do(r, "shadow", {})
    assert next_action(r, T0).name == "online"  # type: ignore[union-attr]
    r = _do(r, "online", {"decision": "continue"})
    assert r.status == "waiting"
    assert next_action(r, T0 + timedelta(minutes=5)).name == "online"  # type: ignore[union-attr]
    r = _do(r, "online", {"decision": "promote"})
    assert next_action(r, T0).name == "promote"  # type: ignore[union-attr]
    r = _do(r, "promote", {"refused": False, "previous": "1"})
    action = next_action(r, T0)
    assert isinstance(action, Finish) and action.verdict == "promoted"
    done = finish_cycle(r, action.verdict, action.reason, T0)
    assert next_action(done, T0) == Finish("promoted", action.reason)


def test_no_drift_no_retrain_finishes_without_action() -> None:
    r = _do(_record(), "drift", {"drifted": False, "summary": "0/8 features drifted"})
    action = next_action(r, T0)
    assert isinstance(action, Finish) and action.verdict == "no_action"
    assert "0/8 features drifted" in action.reason


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"force": True}, "forced"),
        ({"every_s": 3600.0}, "scheduled: no earlier retrain recorded"),
        (
            {"every_s": 3600.0, "last_retrain_at": (T0 - timedelta(hours=2)).isoformat()},
            "scheduled: last retrain 2h ago (every 1h)",
        ),
        ({"every_s": 3600.0, "last_retrain_at": (T0 - timedelta(minutes=10)).isoformat()}, None),
    ],
)
def test_retrain_triggers(inputs: dict, expected: str | None) -> None:
    r = _do(_record(**inputs), "drift", {"drifted": False})
    assert retrain_trigger(r, T0) == expected


def test_gate_failure_archives_then_finishes() -> None:
    r = _through_shadow(gate_passed=False)
    action = next_action(r, T0)
    assert isinstance(action, RunStep) and action.name == "archive"
    assert action.reason.startswith("offline gate failed: roc_auc")
    r = _do(r, "archive", {"reason": action.reason})
    assert next_action(r, T0) == Finish("archived", action.reason)


@pytest.mark.parametrize("decision", ["keep_champion", "rollback"])
def test_online_no_win_archives(decision: str) -> None:
    r = _do(_through_shadow(), "online", {"decision": decision})
    assert next_action(r, T0) == RunStep("archive", f"online verdict: {decision}")


def test_online_gives_up_after_max_wait() -> None:
    r = _do(_through_shadow(), "online", {"decision": "continue"})
    assert next_action(r, T0 + timedelta(minutes=59)).name == "online"  # type: ignore[union-attr]
    action = next_action(r, T0 + timedelta(hours=1))
    assert isinstance(action, RunStep) and action.name == "archive"
    assert action.reason == "no online verdict after 1h (max wait 1h)"


def test_refused_promotion_aborts() -> None:
    r = _do(_through_shadow(), "online", {"decision": "promote"})
    r = _do(r, "promote", {"refused": True, "reason": "champion moved from v1 to v7"})
    assert next_action(r, T0) == Finish("aborted", "champion moved from v1 to v7")


def test_failed_step_is_retried_and_counts_attempts() -> None:
    r = start_step(_record(), "drift", T0)
    r = fail_step(r, "drift", "RegistryError: down", T0)
    assert r.steps["drift"].status == "failed" and r.steps["drift"].error == "RegistryError: down"
    assert next_action(r, T0).name == "drift"  # type: ignore[union-attr]
    assert start_step(r, "drift", T0).steps["drift"].attempts == 2


def test_record_round_trips_through_json_in_step_order() -> None:
    r = _do(_through_shadow(), "online", {"decision": "continue", "checks": [{"n": 1}]})
    raw = json.loads(json.dumps(r.to_dict(), sort_keys=True))
    back = CycleRecord.from_dict(raw)
    assert back == r
    assert list(back.steps) == ["drift", "retrain", "gate", "shadow", "online"]
    with pytest.raises(InvalidInputError, match="format"):
        CycleRecord.from_dict({**raw, "format": 99})


def test_store_saves_atomically_and_lists(tmp_path: Path) -> None:
    store = CycleStore(tmp_path)
    first = _do(_record(), "drift", {"drifted": False})
    first = finish_cycle(first, "no_action", "no drift", T0)
    second = new_cycle("fraud", inputs={}, aliases={"champion": "1"}, now=T0 + timedelta(hours=1))
    second = _do(second, "drift", {"drifted": True}, at=T0 + timedelta(hours=1))
    second = _do(second, "retrain", {"version": "3"}, at=T0 + timedelta(hours=1))
    other = new_cycle("churn", inputs={}, aliases={"champion": "4"}, now=T0)
    for r in (second, first, other):
        store.save(r)
    assert [p.name for p in store.cycles.iterdir() if not p.name.endswith(".json")] == []
    assert [r.cycle_id for r in store.records("fraud")] == [first.cycle_id, second.cycle_id]
    assert store.open_cycle("fraud") == second
    assert store.last_retrain_at("fraud") == (T0 + timedelta(hours=1)).isoformat()
    assert store.last_retrain_at("churn") is None
    assert store.load(first.cycle_id) == first


def test_store_lock_refuses_a_second_driver(tmp_path: Path) -> None:
    store = CycleStore(tmp_path)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock("fraud"):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        with (
            pytest.raises(ArbiterError, match="another `arbiter loop` process"),
            CycleStore(tmp_path).lock("fraud"),
        ):
            pass
        with CycleStore(tmp_path).lock("churn"):  # other models are not blocked
            pass
    finally:
        release.set()
        thread.join()


def test_all_lists_the_public_names() -> None:
    import arbiter.loop as mod

    assert mod.__all__ == sorted(mod.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(mod, name) for name in mod.__all__)
    imported = {
        name
        for name, value in vars(mod).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "").startswith("arbiter.loop")
    }
    assert imported <= set(mod.__all__), imported - set(mod.__all__)
