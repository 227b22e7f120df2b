"""The dispatcher against a real receiver: signed delivery, retries, backoff, dead letter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from arbiter.alerts import AlertDispatcher, read_dead_letters, verify
from arbiter.config import AlertsConfig
from tests.alerts.conftest import SECRET, Receiver
from tests.canary.conftest import wait_for


def _dispatcher(
    url: str, tmp_path: Path, registry: CollectorRegistry, **settings: object
) -> AlertDispatcher:
    config = AlertsConfig.model_validate(
        {
            "webhooks": [{"name": "ops", "url": url, "secret_env": "ARBITER_TEST_ALERT_SECRET"}],
            **settings,
        }
    )
    return AlertDispatcher(
        config, dead_letter_path=tmp_path / "dead.jsonl", registry=registry, component="cli"
    )


def _count(registry: CollectorRegistry, name: str, event: str) -> float:
    return registry.get_sample_value(name, {"event": event, "webhook": "ops"}) or 0.0


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_TEST_ALERT_SECRET", SECRET)


def test_a_signed_alert_reaches_the_receiver(receiver: Receiver, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with _dispatcher(receiver.url, tmp_path, registry) as alerts:
        alerts.notify("drift_detected", "fraud: 3/8 features drifted", model="fraud")
        (got,) = wait_for(lambda: list(receiver.deliveries), timeout_s=20)
    assert got.path == "/hooks/arbiter"
    assert got.headers["x-arbiter-event"] == "drift_detected"
    assert verify(SECRET, got.headers["x-arbiter-timestamp"], got.body,
                  got.headers["x-arbiter-signature"], now=time.time())  # fmt: skip
    doc = json.loads(got.body)
    assert doc["model"] == "fraud" and doc["source"]["component"] == "cli"
    assert doc["id"] == got.headers["x-arbiter-delivery"]
    assert _count(registry, "arbiter_alerts_sent_total", "drift_detected") == 1
    assert not (tmp_path / "dead.jsonl").exists()


def test_a_down_receiver_is_retried_then_dead_lettered(closed_url: str, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    alerts = _dispatcher(
        closed_url, tmp_path, registry, max_attempts=4, backoff_s=0.05, max_backoff_s=0.2
    )
    try:
        alerts.notify("canary_rollback", "faulty: canary of v2 rolled back", model="faulty")
        wait_for(lambda: read_dead_letters(tmp_path / "dead.jsonl"), timeout_s=20)
    finally:
        alerts.close(0)
    (entry,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert entry["attempts"] == 4 and entry["reason"] == "4 attempts failed"
    assert entry["last_error"] == "ConnectError"
    assert entry["webhook"] == "ops" and entry["alert"]["event"] == "canary_rollback"
    assert closed_url not in json.dumps(entry)  # a URL can be a credential (Slack)
    assert _count(registry, "arbiter_alerts_failed_total", "canary_rollback") == 4
    assert _count(registry, "arbiter_alerts_dead_lettered_total", "canary_rollback") == 1


def test_retries_recover_when_the_receiver_comes_back(receiver: Receiver, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    receiver.status = 503
    with _dispatcher(receiver.url, tmp_path, registry, backoff_s=0.05, max_backoff_s=0.5) as alerts:
        alerts.notify("srm_detected", "fraud: sample ratio mismatch", model="fraud")
        wait_for(lambda: receiver.attempts >= 2, timeout_s=20)
        receiver.status = 200
        wait_for(lambda: receiver.deliveries, timeout_s=20)
    assert _count(registry, "arbiter_alerts_failed_total", "srm_detected") >= 2
    assert _count(registry, "arbiter_alerts_sent_total", "srm_detected") == 1
    assert not (tmp_path / "dead.jsonl").exists()


def test_a_refusal_is_not_retried(receiver: Receiver, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    receiver.status = 400
    with _dispatcher(receiver.url, tmp_path, registry, backoff_s=0.05) as alerts:
        alerts.notify("loop_decision", "fraud: loop cycle finished: promote", model="fraud")
        (entry,) = wait_for(lambda: read_dead_letters(tmp_path / "dead.jsonl"), timeout_s=20)
    assert entry["reason"] == "refused: HTTP 400" and entry["attempts"] == 1
    assert receiver.attempts == 1


def test_close_is_bounded_with_a_hanging_receiver(receiver: Receiver, tmp_path: Path) -> None:
    """A receiver that never answers costs at most flush + one HTTP timeout at exit, and
    what was not delivered is dead-lettered, not lost."""
    registry = CollectorRegistry()
    release = receiver.hang_until_released()
    alerts = _dispatcher(receiver.url, tmp_path, registry, timeout_s=1.0, flush_timeout_s=0.5)
    emitted = time.perf_counter()
    for i in range(50):
        alerts.notify("canary_advance", f"fraud: advanced {i}", model="fraud")
    assert time.perf_counter() - emitted < 0.5  # emitting never waits for the network
    wait_for(lambda: receiver.attempts >= 1, timeout_s=20)
    start = time.perf_counter()
    alerts.close()
    took = time.perf_counter() - start
    release.set()
    assert took < 0.5 + 1.0 + 1.0 + 2.0  # flush + one HTTP timeout + join slack + busy box
    dead = read_dead_letters(tmp_path / "dead.jsonl")
    assert len(dead) == 50
    assert _count(registry, "arbiter_alerts_dead_lettered_total", "canary_advance") == 50


def test_filters_by_event_and_model(receiver: Receiver, tmp_path: Path) -> None:
    config = AlertsConfig.model_validate(
        {
            "webhooks": [
                {
                    "name": "ops",
                    "url": receiver.url,
                    "events": ["canary_rollback"],
                    "models": ["fraud"],
                }
            ]
        }
    )
    with AlertDispatcher(config, dead_letter_path=tmp_path / "d.jsonl") as alerts:
        alerts.notify("canary_advance", "fraud advanced", model="fraud")  # other event
        alerts.notify("canary_rollback", "other rolled back", model="other")  # other model
        alerts.notify("canary_rollback", "fraud rolled back", model="fraud")
        wait_for(lambda: receiver.deliveries, timeout_s=20)
        assert alerts.pending() == 0
    assert [json.loads(d.body)["summary"] for d in receiver.deliveries] == ["fraud rolled back"]
