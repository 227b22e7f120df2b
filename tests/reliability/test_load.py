"""Under load (issue 14 item 10, issue 17 item 2): wait for evidence, never for luck.

A busy machine changes *when* things happen, never *what*: a gateway picks up a new challenger
late and its shadow workers load it later still (shadows of a version still loading are
dropped), and a signal can land at any bytecode. These tests pin the exact interleavings that
made the suite flaky, against a real gateway on 127.0.0.1 and a real registry.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from arbiter.demo.traffic import (
    EvidenceTimeoutError,
    arms_loaded,
    describe_model,
    send_until,
    wait_for_arms_loaded,
    wait_until,
)
from arbiter.events import EventStore
from arbiter.registry import MLflowRegistry


@pytest.fixture
def alarm() -> Iterator[None]:
    """Turn a hang into a failure: SIGALRM after 20 s raises in the main thread (a blocked
    ``Lock.acquire`` is interrupted by it), so a deadlock fails the test instead of the run."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError("deadlocked: still blocked after 20 s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_sigterm_landing_inside_the_schedules_wait_stops_it(
    alarm: None, loop_home_factory: Any
) -> None:
    """The signal arrives while the main thread holds the schedule's stop event's lock (as
    when it lands between ``Event.wait`` taking its lock and releasing it). The handler used
    to call ``stop.set()``, which takes that non-reentrant lock again: a deadlock."""
    from arbiter.loop import run_schedule

    home = loop_home_factory()
    stop = threading.Event()

    def on_run(run: Any) -> None:
        with stop._cond:  # the lock Event.wait holds for a moment
            os.kill(os.getpid(), signal.SIGTERM)  # handled right here, lock held

    result = run_schedule(home.root, "fraud", 3600.0, stop=stop, on_run=on_run)
    assert result.stopped_by == "SIGTERM" and result.ticks == 1


def test_traffic_counts_only_once_the_shadow_workers_loaded_the_challenger(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    """A challenger set after start-up: requests sent before its shadow workers loaded it are
    dropped (not queued), so a fixed count sent at once may test nothing. After
    ``wait_for_arms_loaded(..., shadow=True)`` every request is shadowed."""
    server, home = running(
        {"faulty": {"experiment": {"strategy": "shadow", "challenger_alias": "late",
                                   "shadow_max_in_flight": 64}}},
        registry={"poll_interval_s": 0.2},
        events={"flush_interval_s": 0.1},
    )  # fmt: skip
    entry = describe_model(server.url, "faulty")
    assert entry["experiment"]["state"] == "waiting_for_challenger"
    assert not arms_loaded(entry, shadow=True)
    with pytest.raises(EvidenceTimeoutError, match="the gateway loading every arm of 'faulty'"):
        wait_for_arms_loaded(server.url, "faulty", shadow=True, timeout_s=0.5)

    MLflowRegistry(home.tracking_uri()).set_alias("faulty", "late", "1")
    entry = wait_for_arms_loaded(server.url, "faulty", versions={"late": "1"}, shadow=True)
    assert entry["experiment"]["state"] == "running" and entry["experiment"]["shadow"]["ready"]
    dropped_before = entry["experiment"]["shadow"]["dropped"]

    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for row in fraud_rows[:20]:
            assert client.post("/models/faulty/predict", json={"features": row}).status_code == 200
    wait_until(lambda: shadow_rows(home) >= 20, timeout_s=60.0, what="20 shadow rows")
    after = describe_model(server.url, "faulty")["experiment"]["shadow"]
    assert after["dropped"] == dropped_before  # nothing sent after the wait was dropped
    assert shadow_rows(home) == 20


def test_send_until_stops_at_the_evidence_or_the_bound() -> None:
    sent: list[tuple[int, int]] = []
    rounds = send_until(
        lambda start, n: sent.append((start, n)),
        lambda: sum(n for _, n in sent) >= 250,
        first_round=200,
        round_size=30,
        max_requests=1_000,
        timeout_s=60.0,
    )
    assert sent == [(0, 200), (200, 30), (230, 30)]
    assert rounds.reached and rounds.sent == 260 and rounds.rounds == 3
    capped = send_until(lambda s, n: None, lambda: False, round_size=30, max_requests=100,
                        timeout_s=60.0)  # fmt: skip
    assert not capped.reached and capped.sent == 100 and capped.rounds == 4


def shadow_rows(home: Any) -> int:
    with EventStore(home.root).connect() as con:
        ((n,),) = con.execute("SELECT count(*) FROM predictions WHERE role = 'shadow'").fetchall()
    return int(n)


@pytest.fixture
def loop_home_factory(tmp_path: Any, make_home: Any) -> Any:
    """A home with a champion for the schedule (its cycles find no traffic: no action)."""
    return lambda: make_home({"fraud": {}})
