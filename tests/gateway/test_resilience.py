"""Shadow isolation, hot alias swaps under traffic, and security defaults."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from arbiter.errors import ConfigError
from arbiter.events import EventStore
from arbiter.gateway.server import check_bind, is_loopback
from arbiter.registry import MLflowRegistry


def _poll(condition: Any, what: str, timeout_s: float = 60.0) -> Any:
    """Wait for evidence with a generous bound (a loaded machine is slow, not different)."""
    from arbiter.demo.traffic import wait_until

    return wait_until(condition, timeout_s=timeout_s, what=what, interval_s=0.05)


def _wait_for_metric(client: httpx.Client, line: str) -> str:
    """The /metrics text once it contains ``line`` (counters of background shadow calls)."""
    found: list[str] = []

    def has() -> bool:
        found[:] = [client.get("/metrics").text]
        return line in found[0]

    _poll(has, line)
    return found[0]


def _shadow_outcomes(client: httpx.Client, *outcomes: str) -> float:
    """The sum of ``arbiter_shadow_total`` of model ``faulty`` over ``outcomes``."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('arbiter_shadow_total{model="faulty"') and any(
            f'outcome="{o}"' in line for o in outcomes
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _shadow(alias: str, **extra: Any) -> dict[str, Any]:
    return {
        "faulty": {
            "experiment": {"strategy": "shadow", "challenger_alias": alias, **extra},
        }
    }


def test_raising_challenger_never_affects_the_response(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = running(_shadow("raising", shadow_max_in_flight=64))
    with httpx.Client(base_url=server.url) as client:
        for row in fraud_rows[:30]:
            r = client.post("/models/faulty/predict", json={"features": row})
            assert r.status_code == 200 and r.json()["arm"] == "champion"
        # Every shadow call fails: it raises, or (at nice 19 beside a busy CPU) times out.
        _poll(
            lambda: _shadow_outcomes(client, "error", "timeout") >= 30,
            "30 failed shadows",
            timeout_s=180.0,
        )
        assert _shadow_outcomes(client, "ok", "dropped") == 0
    server.stop()
    with EventStore(home.root).connect() as con:
        rows = con.execute(
            "SELECT role, count(*), count(error) FROM predictions GROUP BY role ORDER BY role"
        ).fetchall()
    assert rows == [("served", 30, 0), ("shadow", 30, 30)]


def test_hanging_challenger_is_bounded(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    """A challenger that sleeps 30 s: responses stay fast; shadows time out, then are dropped."""
    server, home = running(_shadow("hanging", shadow_max_in_flight=2, shadow_timeout_s=0.3))
    latencies = []
    with httpx.Client(base_url=server.url) as client:
        for row in fraud_rows[:40]:
            start = time.perf_counter()
            r = client.post("/models/faulty/predict", json={"features": row})
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200
        # the two accepted shadows reach their timeout
        metrics = _wait_for_metric(
            client, 'arbiter_shadow_total{model="faulty",outcome="timeout"} 2.0'
        )
    # Far below the 30 s hang: no response waited for it (0.25 s on a quiet machine; a busy
    # 2-core one stalls any request for a second now and then).
    assert max(latencies) < 5.0, max(latencies)
    assert 'arbiter_shadow_total{model="faulty",outcome="timeout"} 2.0' in metrics
    assert 'arbiter_shadow_total{model="faulty",outcome="dropped"} 38.0' in metrics
    server.stop()  # must not wait 30 s for the hung threads
    with EventStore(home.root).connect() as con:
        rows = con.execute(
            "SELECT role, count(*) FROM predictions GROUP BY role ORDER BY role"
        ).fetchall()
    assert rows == [("served", 40), ("shadow", 2)]


def test_hot_alias_swap_under_traffic(
    running: Any, template_home: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = running({"fraud": {}}, registry={"poll_interval_s": 0.2})
    versions: list[str] = []
    failures: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server.url) as client:
            i = 0
            while not stop.is_set():
                r = client.post("/models/fraud/predict", json={"features": fraud_rows[i % 500]})
                if r.status_code == 200:
                    versions.append(r.json()["version"])
                else:
                    failures.append(r.status_code)
                i += 1

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        _poll(lambda: len(versions) >= 20, "traffic on v1")  # traffic before the swap
        registry = MLflowRegistry(home.tracking_uri())
        registry.set_alias("fraud", "champion", template_home.versions["fraud"]["challenger"])
        # ... and after it: the swap (next poll), then enough answers to see any flapping back.
        _poll(lambda: "2" in versions and len(versions) - versions.index("2") >= 50, "v2 traffic")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert versions[0] == "1" and versions[-1] == "2"
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"}  # a clean switch: no flapping back
    assert "arbiter_model_swaps_total" in httpx.get(server.url + "/metrics").text


def test_unknown_alias_waits_and_champion_serves(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, _ = running(
        {"fraud": {"experiment": {"strategy": "ab", "challenger_alias": "missing"}}}
    )
    models = httpx.get(server.url + "/models").json()["models"]
    assert models[0]["experiment"]["state"] == "waiting_for_challenger"
    r = httpx.post(
        server.url + "/models/fraud/predict", json={"unit_id": "a", "features": fraud_rows[0]}
    )
    assert r.status_code == 200 and r.json()["arm"] == "champion"


def test_loopback_detection_and_bind_refusal() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError, match="API token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "a-long-enough-secret")
    check_bind("127.0.0.1", None)


def test_token_protects_feedback(
    running: Any, fraud_rows: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", "s3cret")
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
        assert r.status_code == 200  # predictions stay open on loopback
        label = {"request_id": r.json()["request_id"], "label": 1}
        assert client.post("/feedback", json=label).status_code == 401
        wrong = client.post("/feedback", json=label, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        ok = client.post("/feedback", json=label, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    with EventStore(home.root).connect() as con:
        assert con.execute("SELECT count(*) FROM feedback").fetchone() == (1,)


def test_forced_arm_needs_the_token_and_is_excluded_from_reports(
    running: Any, fraud_rows: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", "s3cret")
    server, home = running({"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.0}}})
    url = server.url + "/models/fraud/predict"
    body = {"features": fraud_rows[0]}
    force = {"X-Arbiter-Arm": "challenger"}
    assert httpx.post(url, json=body, headers=force).status_code == 401
    auth = {**force, "Authorization": "Bearer s3cret"}
    forced = httpx.post(url, json=body, headers=auth)
    assert forced.status_code == 200 and forced.json()["arm"] == "challenger"
    assert forced.json()["version"] == "2"
    bad = httpx.post(url, json=body, headers={**auth, "X-Arbiter-Arm": "nobody"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "X-Arbiter-Arm"
    normal = httpx.post(url, json=body)
    assert normal.json()["arm"] == "champion"  # share 0: nobody else sees the challenger
    server.stop()
    with EventStore(home.root).connect() as con:
        rows = con.execute(
            "SELECT arm, forced, count(*) FROM predictions GROUP BY ALL ORDER BY arm"
        ).fetchall()
    assert rows == [("challenger", True, 1), ("champion", False, 1)]
    from arbiter.report.summary import summarize

    with EventStore(home.root).connect() as con:
        arms = summarize(con, "fraud")["experiments"][0]["arms"]
    assert [a["arm"] for a in arms] == ["champion"]


def test_forcing_without_a_configured_token_is_forbidden(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, _ = running({"fraud": {"experiment": {"strategy": "ab"}}})
    r = httpx.post(
        server.url + "/models/fraud/predict",
        json={"features": fraud_rows[0]},
        headers={"X-Arbiter-Arm": "challenger"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_new_challenger_is_loaded_by_shadow_workers_before_it_is_mirrored(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    """A challenger that appears after start-up: shadows wait for the workers to load it
    (dropped meanwhile, never timed out), then run."""
    server, home = running(
        {"faulty": {"experiment": {"strategy": "shadow", "challenger_alias": "late"}}},
        registry={"poll_interval_s": 0.2},
    )
    MLflowRegistry(home.tracking_uri()).set_alias("faulty", "late", "1")
    with httpx.Client(base_url=server.url) as client:
        # A bound, not a wait: the workers load at nice 19, slow beside a busy CPU.
        deadline = time.monotonic() + 240
        ok = 0.0
        while time.monotonic() < deadline and ok < 5:
            assert (
                client.post("/models/faulty/predict", json={"features": fraud_rows[0]}).status_code
                == 200
            )
            time.sleep(0.2)
            metrics = client.get("/metrics").text
            for line in metrics.splitlines():
                if line.startswith('arbiter_shadow_total{model="faulty",outcome="ok"}'):
                    ok = float(line.split()[-1])
        assert ok >= 5
        assert 'outcome="timeout"' not in client.get("/metrics").text
