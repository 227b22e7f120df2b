"""Alerts from a real gateway (uvicorn on 127.0.0.1) to a real receiver.

The rollback of a faulty canary reaches the receiver, signed, within seconds; and a receiver
that hangs does not slow the requests the gateway serves meanwhile.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

import httpx
import pytest

from arbiter.alerts import verify
from tests.alerts.conftest import SECRET, Receiver
from tests.canary.conftest import FAST, canary_model, send, wait_for

SECRET_ENV = "ARBITER_TEST_ALERT_SECRET"


def _alerts(url: str, **settings: Any) -> dict[str, Any]:
    return {"webhooks": [{"name": "ops", "url": url, "secret_env": SECRET_ENV}], **settings}


def _canary(client: httpx.Client, model: str) -> dict[str, Any]:
    items = {m["name"]: m for m in client.get("/models").json()["models"]}
    return items[model]["experiment"]["canary"]


def test_rollback_alert_reaches_the_receiver_signed_within_seconds(
    running: Any, fraud_rows: list[dict[str, float]], receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(SECRET_ENV, SECRET)
    server, _ = running(
        {"faulty": canary_model("raising")}, **FAST, alerts=_alerts(receiver.url, backoff_s=0.2)
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client, "faulty")["status"] == "running")
        sent = 0

        def rolled_back() -> bool:
            nonlocal sent
            send(client, "faulty", fraud_rows, sent, 30)
            sent += 30
            return _canary(client, "faulty")["status"] == "rolled_back"

        wait_for(rolled_back, timeout_s=60, interval_s=0.1)
        seen_at = time.time()
        wait_for(lambda: "canary_rollback" in receiver.events(), timeout_s=15)
    (got,) = [d for d in receiver.deliveries if d.headers["x-arbiter-event"] == "canary_rollback"]
    print(f"rollback alert received {got.received_at - seen_at:+.2f} s after /models showed it")
    headers = got.headers
    assert verify(SECRET, headers["x-arbiter-timestamp"], got.body,
                  headers["x-arbiter-signature"], now=time.time())  # fmt: skip
    assert not verify("wrong-secret", headers["x-arbiter-timestamp"], got.body,
                      headers["x-arbiter-signature"], now=time.time())  # fmt: skip
    doc = json.loads(got.body)
    assert doc["model"] == "faulty" and doc["severity"] == "critical"
    assert doc["source"]["component"] == "gateway"
    assert doc["details"]["action"] == "rollback" and doc["details"]["status"] == "rolled_back"
    assert any("error_rate" in b for b in doc["details"]["breaches"])
    assert "rolled back" in doc["summary"]
    # one alert per transition, however many workers apply it
    assert receiver.events().count("canary_rollback") == 1


def _latencies(client: httpx.Client, rows: list[dict[str, float]], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        r = client.post("/models/fraud/predict", json={"unit_id": f"u{i}", "features": rows[i]})
        out.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return out


def _flood(sink: Any, n: int) -> threading.Thread:
    """Emit ``n`` alerts from another thread while requests are served (what a burst of
    canary and monitor alerts does)."""

    def run() -> None:
        for i in range(n):
            sink.notify("canary_advance", f"fraud: advance {i}", model="fraud")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_serving_latency_is_unchanged_while_the_receiver_hangs(
    running: Any, fraud_rows: list[dict[str, float]], receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(SECRET_ENV, SECRET)
    n = 150
    settings = {"timeout_s": 30, "flush_timeout_s": 1}
    server, _ = running({"fraud": {}}, alerts=_alerts(receiver.url, **settings))
    sink = server.config.app.state.arbiter.alerts
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _latencies(client, fraud_rows, 30)  # warm-up: first calls load caches
        quiet = _latencies(client, fraud_rows, n)  # no alerts at all
        flood = _flood(sink, 100)
        answering = _latencies(client, fraud_rows, n)
        flood.join()
        wait_for(lambda: len(receiver.deliveries) == 100, timeout_s=60)
        release = receiver.hang_until_released()
        flood = _flood(sink, 100)
        wait_for(lambda: receiver.attempts > 100)  # the sender now waits on the receiver
        hanging = _latencies(client, fraud_rows, n)
        flood.join()
        # evidence it hung throughout: nothing more delivered, the rest still queued
        assert len(receiver.deliveries) == 100 and sink.pending() >= 98
        metrics = client.get("/metrics").text
        release.set()
    base, hung = statistics.median(quiet), statistics.median(hanging)
    ms = {
        name: (statistics.median(v) * 1000, statistics.quantiles(v, n=10)[-1] * 1000)
        for name, v in (("no alerts", quiet), ("receiver answering", answering),
                        ("receiver hanging", hanging))
    }  # fmt: skip
    print(f"{n} requests each, median / p90 ms: " + "; ".join(
        f"{name} {m:.2f} / {p:.2f}" for name, (m, p) in ms.items()
    ))  # fmt: skip
    # Generous for a busy 2-core box: what must not happen is requests waiting on the
    # receiver (30 s timeout) or on the queue.
    assert hung < 2 * base + 0.025
    assert max(hanging) < 5.0
    sent = 'arbiter_alerts_sent_total{event="canary_advance",webhook="ops"} 100.0'
    assert sent in metrics
