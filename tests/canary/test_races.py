"""Concurrent writers against a real registry: the read-back and the lease at work.

MLflow has no conditional write, so these tests cannot prove the absence of a race; they show
that in the normal case (writers of similar speed, started together, as workers on one
checkpoint cadence or an operator racing a checkpoint) two different transitions never both
report success and never both run their side effects. The residual window (a writer stalled
longer than the settle delay between its compare and its write) is documented in
docs/canary.md and :mod:`arbiter.canary.store`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from arbiter.canary import STATE_TAG, CanaryConflictError, CanaryService, StoredCanary
from arbiter.canary.store import new_holder_id, read_snapshot, write_state
from arbiter.config import ModelConfig
from arbiter.errors import ArbiterError
from arbiter.registry import registry_for_home
from arbiter.routing.canary import CanaryState, abort, pause
from tests.canary.conftest import canary_model


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released together; each result or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # collected: the test counts successes and conflicts
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


ROUNDS = [pytest.param(12, id="12"), pytest.param(100, id="100", marks=pytest.mark.slow)]


@pytest.mark.parametrize("rounds", ROUNDS)
def test_two_writers_of_the_same_version_never_both_succeed(make_home: Any, rounds: int) -> None:
    """An operator's abort racing a checkpoint's transition from the same read, many times:
    at most one reports success, and the stored state is that one's."""
    registry = registry_for_home(make_home({}).root)
    current = write_state(
        registry, "fraud", StoredCanary("2", "1", CanaryState.start(0.0)), expected=None
    )
    outcomes = {"one": 0, "none": 0}
    for i in range(rounds):
        a = replace(current, state=pause(current.state, i + 0.1, "checkpoint"))
        b = replace(current, state=abort(current.state, i + 0.2, "operator"))
        results = _race(
            lambda a=a, seen=current: write_state(registry, "fraud", a, expected=seen),
            lambda b=b, seen=current: write_state(registry, "fraud", b, expected=seen),
        )
        won = [r for r in results if isinstance(r, StoredCanary)]
        assert all(isinstance(r, StoredCanary | ArbiterError) for r in results), results
        assert len(won) <= 1, f"round {i}: both writers reported success"
        stored = read_snapshot(registry, "fraud").stored
        if won:
            assert stored == won[0]  # the success reported is the state stored
            outcomes["one"] += 1
        else:
            outcomes["none"] += 1  # both stepped aside: safe, the caller retries
        # the next round starts from a fresh running canary
        current = write_state(
            registry,
            "fraud",
            StoredCanary("2", "1", CanaryState.start(float(i))),
            expected=stored,
        )
    assert outcomes["one"] > 0


def _reset(service: CanaryService, versions: dict[str, str]) -> None:
    registry = service.registry
    registry.set_alias("faulty", "champion", versions["champion"])
    registry.set_alias("faulty", "raising", versions["raising"])
    if "previous" in registry.aliases("faulty"):
        registry.delete_alias("faulty", "previous")
    tags = registry.model_version_tags("faulty", versions["raising"])
    for key in tags:
        if key.startswith("arbiter."):
            registry.client.delete_model_version_tag("faulty", versions["raising"], key)
    registry.client.delete_registered_model_tag("faulty", STATE_TAG)


@pytest.mark.parametrize(
    "rounds", [pytest.param(5, id="5"), pytest.param(40, id="40", marks=pytest.mark.slow)]
)
def test_promote_racing_abort_never_runs_both_side_effects(
    make_home: Any, template_home: Any, rounds: int
) -> None:
    """The worst pair: a promotion and a rollback of the same canary at the same moment.
    Side effects are counted where they run; at most one transition's run per round."""
    home = make_home({})
    config = ModelConfig.model_validate(canary_model("raising"))
    ran: list[str] = []
    lock = threading.Lock()

    class Counting(CanaryService):
        def _side_effects(self, new: Any, reason: str, evidence: Any) -> Any:
            with lock:
                ran.append(new.state.status)
            return super()._side_effects(new, reason, evidence)

    services = [Counting(registry_for_home(home.root), home.root, "faulty", config)
                for _ in range(2)]  # fmt: skip
    v = template_home.versions["faulty"]
    for i in range(rounds):
        _reset(services[0], v)
        services[0].ensure_started(services[0].snapshot())
        ran.clear()
        results = _race(
            lambda: services[0].operate("promote"), lambda: services[1].operate("abort")
        )
        won = [r for r in results if isinstance(r, dict)]
        conflicts = [r for r in results if isinstance(r, CanaryConflictError)]
        assert len(won) + len(conflicts) == 2, results
        assert len(won) <= 1 and len(ran) <= 1, f"round {i}: {results}, side effects {ran}"
        aliases = services[0].registry.aliases("faulty")
        tags = services[0].registry.model_version_tags("faulty", v["raising"])
        promoted = aliases["champion"] == v["raising"]
        rolled_back = tags.get("arbiter.canary.outcome") == "rolled_back"
        assert not (promoted and rolled_back), f"round {i}: both side effects ran"
        if won:
            status = won[0]["status"]["status"]
            assert promoted == (status == "promoted") and rolled_back == (status == "rolled_back")
            assert ran == [status]


def test_the_lease_admits_one_holder_until_it_expires(make_home: Any) -> None:
    home = make_home({})
    config = ModelConfig.model_validate(canary_model("challenger", analysis_interval_s=10.0))
    now = [1_000_000.0]

    def worker() -> CanaryService:
        registry = registry_for_home(home.root)
        return CanaryService(registry, home.root, "fraud", config, clock=lambda: now[0])

    a, b = worker(), worker()
    ha, hb = new_holder_id(), new_holder_id()
    assert a.lease_ttl_s == 30.0  # three analysis intervals
    assert a.try_lease(ha)
    assert not b.try_lease(hb)
    now[0] += 29.0
    assert a.try_lease(ha)  # renewed on its checkpoint: until +59
    now[0] += 29.0
    assert not b.try_lease(hb)  # still a's
    now[0] += 31.0  # a stopped renewing (died): the lease expired
    assert b.try_lease(hb) and not a.try_lease(ha)
    assert b.release_lease(hb) and a.try_lease(ha)  # released at shutdown: taken at once
    # the controller's entry point: b measures nothing while a holds the lease
    assert b.checkpoint_if_leased(None, hb).action == "not_leased"


@pytest.mark.parametrize("rounds", [10])
def test_workers_taking_a_free_lease_together_get_at_most_one(make_home: Any, rounds: int) -> None:
    home = make_home({})
    config = ModelConfig.model_validate(canary_model("challenger"))
    workers = [
        CanaryService(registry_for_home(home.root), home.root, "fraud", config) for _ in range(3)
    ]
    holders = [new_holder_id() for _ in workers]
    for i in range(rounds):
        results = _race(
            *(lambda w=w, h=h: w.try_lease(h) for w, h in zip(workers, holders, strict=True))
        )
        assert sum(r is True for r in results) <= 1, f"round {i}: {results}"
        assert all(isinstance(r, bool | ArbiterError) for r in results), results
        for w, h in zip(workers, holders, strict=True):
            w.release_lease(h)
