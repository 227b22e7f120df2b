"""Canary state in registered-model tags: compare-and-set, size bound, decision records."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

import arbiter.canary as canary_pkg
from arbiter.canary import (
    MAX_RECORDS,
    MAX_TAG_VALUE,
    STATE_TAG,
    CanaryConflictError,
    StoredCanary,
    plan_from_config,
    read_snapshot,
    write_record,
    write_state,
)
from arbiter.canary.store import bounded_state_json
from arbiter.config import CanaryConfig
from arbiter.registry import registry_for_home
from arbiter.routing.canary import (
    DEFAULT_STAGES,
    CanaryState,
    DecisionRecord,
    LinearRamp,
    advance,
    pause,
)


@pytest.fixture
def registry(make_home: Any) -> Any:
    return registry_for_home(make_home({}).root)


def test_all_is_sorted_and_complete() -> None:
    names = canary_pkg.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(canary_pkg, n) for n in names)


def test_compare_and_set_refuses_a_stale_write(registry: Any) -> None:
    start = write_state(
        registry, "fraud", StoredCanary("2", "1", CanaryState.start(100.0)), expected=None
    )
    assert len(start.writer) == 16  # the write's nonce, confirmed by the read-back
    with pytest.raises(CanaryConflictError, match="changed since it was read"):
        write_state(registry, "fraud", start, expected=None)  # someone started it already
    # two workers read version 0; the first transition wins, the second is refused
    paused = write_state(
        registry, "fraud", replace(start, state=pause(start.state, 110.0, "first")), expected=start
    )
    other = replace(start, state=pause(start.state, 111.0, "second"))
    with pytest.raises(CanaryConflictError):
        write_state(registry, "fraud", other, expected=start)
    # the same version written by another writer is another state: refused too
    with pytest.raises(CanaryConflictError):
        write_state(registry, "fraud", other, expected=replace(paused, writer="someone-else"))
    snap = read_snapshot(registry, "fraud")
    assert snap.stored == paused
    assert snap.stored.state.history[-1].reasons == ("first",)
    assert snap.aliases == {"champion": "1", "challenger": "2"}


def test_a_write_overwritten_before_its_read_back_is_a_conflict(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving the read-back exists for: another writer's write lands between ours
    and our read-back. It is made to land inside the settle delay itself (a timer racing the
    delay landed before our compare, or after our read-back, on a loaded machine)."""
    import arbiter.canary.store as store

    start = write_state(
        registry, "fraud", StoredCanary("2", "1", CanaryState.start(100.0)), expected=None
    )
    theirs = replace(start, state=pause(start.state, 110.0, "theirs"), writer="f" * 16)
    settle = store._settle

    def their_write_lands_while_we_settle(started: float, settle_s: float) -> None:
        registry.client.set_registered_model_tag("fraud", STATE_TAG, bounded_state_json(theirs))
        settle(started, settle_s)

    monkeypatch.setattr(store, "_settle", their_write_lands_while_we_settle)
    mine = replace(start, state=pause(start.state, 111.0, "mine"))
    with pytest.raises(CanaryConflictError, match="another writer stored the canary"):
        write_state(registry, "fraud", mine, expected=start, settle_s=0.0)
    assert read_snapshot(registry, "fraud").stored == theirs


def test_plan_fingerprint_and_old_states_without_it(registry: Any) -> None:
    from arbiter.canary.store import plan_fingerprint
    from arbiter.routing.canary import CanaryPlan, CanaryStage

    a = plan_fingerprint(CanaryPlan())
    assert a == plan_fingerprint(CanaryPlan(DEFAULT_STAGES, analysis_interval_s=5.0))
    assert a != plan_fingerprint(CanaryPlan((CanaryStage(0.5), CanaryStage(1.0))))
    old = StoredCanary("2", "1", CanaryState.start(1.0)).to_dict()
    del old["plan"], old["writer"]  # as an earlier arbiter stored it
    back = StoredCanary.from_dict(old)
    assert back.plan is None and back.writer == ""


def test_lease_is_exclusive_until_it_expires(registry: Any) -> None:
    from arbiter.canary.store import (
        LEASE_TAG,
        new_holder_id,
        read_lease,
        release_lease,
        try_lease,
    )

    a, b = new_holder_id(), new_holder_id()
    assert a != b and a.split("/")[0] == b.split("/")[0]  # same pid@host, other random id
    assert try_lease(registry, "fraud", a, ttl_s=30.0, now=1000.0)
    assert not try_lease(registry, "fraud", b, ttl_s=30.0, now=1010.0)  # held by a
    assert try_lease(registry, "fraud", a, ttl_s=30.0, now=1020.0)  # a renews: until 1050
    assert not try_lease(registry, "fraud", b, ttl_s=30.0, now=1049.0)
    assert read_lease(registry, "fraud").holder == a
    assert try_lease(registry, "fraud", b, ttl_s=30.0, now=1050.0)  # expired: b takes it
    assert not try_lease(registry, "fraud", a, ttl_s=30.0, now=1051.0)  # a lost it
    assert not release_lease(registry, "fraud", a)  # not a's to release
    assert release_lease(registry, "fraud", b)
    assert LEASE_TAG not in registry.client.get_registered_model("fraud").tags
    assert try_lease(registry, "fraud", a, ttl_s=30.0, now=1052.0)  # free again
    registry.client.set_registered_model_tag("fraud", LEASE_TAG, "{garbage")
    assert try_lease(registry, "fraud", b, ttl_s=30.0, now=1053.0)  # unreadable = free


def test_corrupt_state_tag_is_a_registry_error(registry: Any) -> None:
    from arbiter.errors import RegistryError

    registry.client.set_registered_model_tag("fraud", STATE_TAG, "{not json")
    with pytest.raises(RegistryError, match="delete it to start over"):
        read_snapshot(registry, "fraud")
    # a fresh start may overwrite it (nothing readable was expected)
    write_state(registry, "fraud", StoredCanary("2", "1", CanaryState.start(1.0)), expected=None)
    assert read_snapshot(registry, "fraud").stored is not None


def test_state_stays_within_the_tag_limit(registry: Any) -> None:
    state = CanaryState.start(0.0)
    long = "x" * 2000
    history = tuple(DecisionRecord(float(i), 0, 0, "pause", (long,)) for i in range(40))
    stored = StoredCanary("2", "1", replace(state, history=(*state.history, *history)))
    text = bounded_state_json(stored)
    assert len(text) <= MAX_TAG_VALUE
    back = StoredCanary.from_dict(json.loads(text))
    assert back.state.history[0].action == "start" and back.state.history[-1].at == 39.0
    assert back.key() == stored.key()
    write_state(registry, "fraud", stored, expected=None)  # stored bounded
    raw = registry.client.get_registered_model("fraud").tags[STATE_TAG]
    assert len(raw) <= MAX_TAG_VALUE


def test_records_are_tags_and_files_and_pruned(registry: Any, tmp_path: Any) -> None:
    keys: tuple[str, ...] = ()
    for i in range(MAX_RECORDS + 3):
        record = {"ts_us": 1000 + i, "action": "advance", "reasons": ["r" * 9000], "i": i}
        write_record(registry, tmp_path, "fraud", record, prune=keys)
        keys = read_snapshot(registry, "fraud").record_keys
    snap = read_snapshot(registry, "fraud")
    assert len(snap.records) == MAX_RECORDS
    assert snap.records[0]["i"] == 3 and snap.records[-1]["i"] == MAX_RECORDS + 2
    assert snap.records[-1]["truncated"] is True
    files = sorted((tmp_path / "canary" / "fraud").glob("*.json"))
    assert len(files) == MAX_RECORDS + 3  # files are kept whole, for humans
    assert json.loads(files[-1].read_text())["reasons"] == ["r" * 9000]


def test_plan_from_config() -> None:
    assert plan_from_config(CanaryConfig()).stages == DEFAULT_STAGES
    staged = plan_from_config(
        CanaryConfig.model_validate(
            {"stages": [{"share": 0.1, "min_requests": 5}, {"share": 1.0}],
             "analysis_interval_s": 2, "require_primary_sample": False}
        )
    )  # fmt: skip
    assert [s.share for s in staged.stages] == [0.1, 1.0]
    assert staged.stages[0].min_requests == 5 and staged.analysis_interval_s == 2
    assert not staged.require_primary_sample
    ramp = plan_from_config(
        CanaryConfig.model_validate(
            {"ramp": {"target_share": 0.5, "duration_s": 60, "step_s": 20, "min_requests": 3}}
        )
    )
    # the config's default 5 % champion holdback reaches the plan (issue 15)
    assert ramp == LinearRamp(0.0, 0.5, 60, 20).to_plan(min_requests=3, holdback=0.05)
    assert plan_from_config(CanaryConfig(holdback=0.0)).holdback == 0.0
    # the plan built drives the core state machine as usual
    state, action = advance(CanaryState.start(0.0), ramp, _inputs(3), 100.0)
    assert action == "advance" and state.stage == 1


def _inputs(challenger: int) -> Any:
    from arbiter.routing.canary import CheckpointInputs

    return CheckpointInputs(0, challenger, "continue", (), (), False)
