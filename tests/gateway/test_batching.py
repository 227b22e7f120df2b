"""Adaptive batching through a real gateway on 127.0.0.1 (docs/batching.md).

The served model is :class:`arbiter.testing.EchoModel`: each answer is ``"<x>@<call id>"``,
the row's own value and the id of the model call that scored it. So a test sees, from the
responses alone, that each request got its own rows' answers and which requests shared a
call. Whether concurrent requests happen to share a call depends on the scheduler, so the
tests that need a shared call send rounds of concurrent requests until one shows it (bounded),
and check every round's answers.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

FAIL = -1.0  # the echo model raises on a call with this value
STALL = -2.0  # ... and hangs 60 s on a call with this one
ROUNDS = 15


@pytest.fixture(scope="module")
def echo_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with ``echo`` v1 (aliases ``echo``, ``same``: 50 ms a call, fails on
    FAIL, hangs on STALL) and v2 (alias ``slow``: 300 ms a call)."""
    from arbiter.registry import registry_for_home
    from arbiter.testing import EchoModel

    root = tmp_path_factory.mktemp("echo-registry")
    registry = registry_for_home(root)
    example = pd.DataFrame({"x": [1.0, 2.0]})
    model = EchoModel("x", seconds=0.05, fail_value=FAIL, stall_value=STALL, stall_s=60.0)
    registry.log_pyfunc_model("echo", model, example, aliases=("echo", "same"))
    registry.log_pyfunc_model("echo", EchoModel("x", seconds=0.3), example, aliases=("slow",))
    return root


@pytest.fixture
def serve_echo(echo_registry: Path, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a real gateway serving ``echo`` with the given model config."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    servers: list[ServerThread] = []

    def start(model: dict[str, Any]) -> tuple[ServerThread, Home]:
        home = Home.at(tmp_path / f"home{len(servers)}", create=True)
        shutil.copy(echo_registry / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate({"models": {"echo": model}})
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        server = ServerThread(create_app(home)).start()
        servers.append(server)
        return server, home

    yield start
    for server in servers:
        server.stop()


def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every body to /models/echo/predict at once."""

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return list(
                await asyncio.gather(
                    *(client.post("/models/echo/predict", json=body) for body in bodies)
                )
            )

    return asyncio.run(main())


def _answers(response: httpx.Response) -> list[tuple[float, str]]:
    """``(x, call id)`` per row of a 200 response."""
    return [
        (float(value), call)
        for value, call in (p.split("@") for p in response.json()["predictions"])
    ]


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the /metrics text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", line)
        if match and match[1] == name and (match[2] or "") == want:
            return float(match[3])
    return 0.0


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


def _rows_values(rows: list[float]) -> dict[str, Any]:
    return {"features": [{"x": x} for x in rows]}


def test_concurrent_requests_share_calls_and_each_gets_its_own_rows(
    serve_echo: Callable[..., Any],
) -> None:
    server, _home = serve_echo({"champion_alias": "echo", "max_batch_delay_ms": 1000})
    sent_requests = sent_rows = 0
    calls_seen: set[str] = set()
    shared = False
    for round_ in range(ROUNDS):
        # 15 one-row requests and one of 3 rows (a batch body: its rows count toward the size).
        bodies = [{"features": {"x": round_ * 100.0 + i}} for i in range(15)]
        bodies.append(_rows_values([round_ * 100.0 + 50 + j for j in range(3)]))
        responses = _post_all(server.url, bodies)
        by_call: dict[str, int] = {}
        for body, response in zip(bodies, responses, strict=True):
            assert response.status_code == 200, response.text
            rows = body["features"] if isinstance(body["features"], list) else [body["features"]]
            answers = _answers(response)
            assert [x for x, _ in answers] == [row["x"] for row in rows]  # its own rows, in order
            assert len({call for _, call in answers}) == 1  # a request is never split
            by_call[answers[0][1]] = by_call.get(answers[0][1], 0) + 1
        sent_requests += len(bodies)
        sent_rows += 18
        calls_seen |= set(by_call)
        if max(by_call.values()) > 1:
            shared = True
            break
    assert shared, "no two concurrent requests ever shared a model call"
    metrics = _metrics(server.url)
    # Every model call went through the batcher: calls counted = distinct call ids; the rows
    # and requests it saw = those sent.
    assert _metric(metrics, "arbiter_batch_requests_count", model="echo") == len(calls_seen)
    assert _metric(metrics, "arbiter_batch_requests_sum", model="echo") == sent_requests
    assert _metric(metrics, "arbiter_batch_size_sum", model="echo") == sent_rows
    assert len(calls_seen) < sent_requests


def test_batching_off_gives_every_request_its_own_call(serve_echo: Callable[..., Any]) -> None:
    server, _home = serve_echo({"champion_alias": "echo", "max_batch_delay_ms": 0})
    bodies = [{"features": {"x": float(i)}} for i in range(16)]
    responses = _post_all(server.url, bodies)
    calls = [_answers(r)[0] for r in responses]
    assert [x for x, _ in calls] == [float(i) for i in range(16)]
    assert len({call for _, call in calls}) == 16
    assert _metric(_metrics(server.url), "arbiter_batch_requests_count", model="echo") == 0


def test_a_request_the_model_fails_on_fails_alone(serve_echo: Callable[..., Any]) -> None:
    """The model raises on the row x = FAIL: that request gets 500 model_error, every other
    request of its batch its own answer (the batch is scored again one request at a time)."""
    server, home = serve_echo({"champion_alias": "echo", "max_batch_delay_ms": 1000})
    retried = 0.0
    for round_ in range(ROUNDS):
        bodies = [{"features": {"x": round_ * 100.0 + i}} for i in range(1, 12)]
        bodies.insert(5, {"features": {"x": FAIL}})
        responses = _post_all(server.url, bodies)
        for body, response in zip(bodies, responses, strict=True):
            if body["features"]["x"] == FAIL:
                assert response.status_code == 500, response.text
                assert response.json()["error"]["code"] == "model_error"
            else:
                assert response.status_code == 200, response.text
                assert _answers(response)[0][0] == body["features"]["x"]
        retried = _metric(_metrics(server.url), "arbiter_batch_retries_total", model="echo")
        if retried:  # the failing request shared a call with others at least once
            break
    assert retried >= 1
    server.stop()
    store = _store(home)
    errors = store.execute("SELECT count(*) FROM predictions WHERE error IS NOT NULL").fetchone()
    assert errors[0] == round_ + 1  # one per round: the failing request's own row


def _store(home: Home) -> Any:
    from arbiter.events import EventStore

    return EventStore(home.root).connect()


def test_a_hung_batch_answers_each_of_its_requests_at_its_deadline(
    serve_echo: Callable[..., Any],
) -> None:
    """All units go to the challenger (v1), which hangs 60 s on x = STALL; past
    challenger_timeout_s the champion (v2) answers in its place. A good request that shared
    the hung call falls back too, at its own deadline, not after the hang."""
    config = {
        "champion_alias": "slow",
        "max_batch_delay_ms": 1000,
        "experiment": {
            "strategy": "ab",
            "challenger_alias": "echo",
            "challenger_share": 1.0,
            "challenger_timeout_s": 3.0,
        },
    }
    server, home = serve_echo(config)
    started = time.monotonic()
    good_fell_back = 0
    for round_ in range(2):  # each round leaves one or two challenger threads hung
        base = round_ * 100.0

        async def round_trip(base: float = base) -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

                def post(value: float, unit: str) -> Any:
                    body = {"features": {"x": value}, "unit_id": unit}
                    return client.post("/models/echo/predict", json=body)

                first = asyncio.ensure_future(post(STALL, f"p{base}"))
                await asyncio.sleep(0.2)  # odds, not a bound: the others queue behind it
                rest = [post(STALL, f"q{base}")] + [post(base + i, f"u{i}") for i in range(1, 6)]
                return [await first, *await asyncio.gather(*rest)]

        responses = asyncio.run(round_trip())
        for response in responses:
            assert response.status_code == 200, response.text
            body = response.json()
            x = _answers(response)[0][0]
            if x == STALL:
                assert body["arm"] == "champion"  # the challenger hung: the champion answered
            elif body["arm"] == "champion":
                good_fell_back += 1
        if good_fell_back:
            break
    assert good_fell_back >= 1, "no good request shared a call with the stalled one"
    assert time.monotonic() - started < 50  # the deadlines answered, not the 60 s hang
    server.stop()
    store = _store(home)
    timeouts = store.execute(
        "SELECT count(*) FROM predictions WHERE error LIKE '%did not answer within 3 s%'"
    ).fetchone()[0]
    fallbacks = store.execute("SELECT count(*) FROM predictions WHERE role = 'fallback'")
    assert timeouts >= 2 + good_fell_back
    assert fallbacks.fetchone()[0] == timeouts  # each timed-out request: its own fallback row


def test_two_arms_on_one_version_share_calls_and_keep_their_own_assignment(
    serve_echo: Callable[..., Any],
) -> None:
    """``echo`` and ``same`` are one version: A/B requests of both arms may share a call;
    each response and log row keeps its own arm."""
    config = {
        "champion_alias": "echo",
        "max_batch_delay_ms": 1000,
        "experiment": {"strategy": "ab", "challenger_alias": "same", "challenger_share": 0.5},
    }
    server, home = serve_echo(config)
    mixed = False
    answered: dict[str, tuple[str, float]] = {}  # request id -> (arm, x)
    for round_ in range(ROUNDS):
        bodies = [
            {"features": {"x": round_ * 100.0 + i}, "unit_id": f"user-{i}"} for i in range(16)
        ]
        responses = _post_all(server.url, bodies)
        arms_by_call: dict[str, set[str]] = {}
        for body, response in zip(bodies, responses, strict=True):
            assert response.status_code == 200, response.text
            payload = response.json()
            ((x, call),) = _answers(response)
            assert x == body["features"]["x"]
            arms_by_call.setdefault(call, set()).add(payload["arm"])
            answered[payload["request_id"]] = (payload["arm"], x)
        if any(len(arms) == 2 for arms in arms_by_call.values()):
            mixed = True
            break
    assert mixed, "requests of the two arms never shared a call"
    server.stop()
    logged = (
        _store(home).execute("SELECT request_id, arm, role, prediction FROM predictions").fetchall()
    )
    assert len(logged) == len(answered)
    for request_id, arm, role, prediction in logged:
        assert role == "served"
        assert (arm, float(prediction.split("@")[0])) == answered[request_id]


def test_queued_shadows_share_a_call_in_the_shadow_worker(serve_echo: Callable[..., Any]) -> None:
    """A challenger six times slower than the champion, in a worker process: shadows that
    queue while it scores go as one call, and each is logged beside its own request."""
    config = {
        "champion_alias": "echo",
        "experiment": {
            "strategy": "shadow",
            "challenger_alias": "slow",
            "shadow_max_in_flight": 64,
            "shadow_timeout_s": 120.0,
            "shadow_executor": "process",
        },
    }
    server, home = serve_echo(config)
    sent = 0
    for round_ in range(5):
        bodies = [{"features": {"x": round_ * 100.0 + i}} for i in range(16)]
        assert all(r.status_code == 200 for r in _post_all(server.url, bodies))
        sent += len(bodies)
        deadline = time.monotonic() + 120
        while True:  # every shadow of the round has finished
            metrics = _metrics(server.url)
            done = sum(
                _metric(metrics, "arbiter_shadow_total", model="echo", outcome=o)
                for o in ("ok", "error", "timeout", "dropped")
            )
            if done >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        calls = _metric(metrics, "arbiter_shadow_batch_requests_count", model="echo")
        jobs = _metric(metrics, "arbiter_shadow_batch_requests_sum", model="echo")
        if calls < jobs:
            break
    assert _metric(metrics, "arbiter_shadow_total", model="echo", outcome="ok") == sent
    assert jobs == sent and calls < jobs  # fewer worker calls than shadows: batched
    server.stop()
    rows = (
        _store(home)
        .execute("SELECT request_id, role, features, prediction FROM predictions")
        .fetchall()
    )
    served = {r[0]: json.loads(r[2])["x"] for r in rows if r[1] == "served"}
    shadows = [(r[0], r[3]) for r in rows if r[1] == "shadow"]
    assert len(served) == len(shadows) == sent
    shadow_calls: dict[str, int] = {}
    for request_id, prediction in shadows:
        value, call = prediction.split("@")
        assert float(value) == served[request_id]  # paired with its own request
        shadow_calls[call] = shadow_calls.get(call, 0) + 1
    assert max(shadow_calls.values()) > 1


def test_a_hung_shadow_batch_frees_every_slot_it_held(serve_echo: Callable[..., Any]) -> None:
    """The challenger (v1) hangs 60 s on x = STALL. The watchdog kills the worker after
    shadow_hang_s and settles every job of the call it was killed in, so no slot stays held:
    the executor drains to zero in flight and the next shadows are scored."""
    config = {
        "champion_alias": "slow",
        "experiment": {
            "strategy": "shadow",
            "challenger_alias": "echo",
            "shadow_max_in_flight": 16,
            "shadow_timeout_s": 1.0,
            "shadow_hang_s": 2.0,
            "shadow_executor": "process",
        },
    }
    server, _home = serve_echo(config)

    def shadow_state() -> dict[str, Any]:
        models = httpx.get(server.url + "/models", timeout=30).json()["models"]
        return dict(models[0]["experiment"]["shadow"])

    bodies = [{"features": {"x": STALL}}] + [{"features": {"x": float(i)}} for i in range(1, 8)]
    assert all(r.status_code == 200 for r in _post_all(server.url, bodies))
    deadline = time.monotonic() + 120
    while not (shadow_state()["restarts"] >= 1 and shadow_state()["in_flight"] == 0):
        assert time.monotonic() < deadline, shadow_state()
        time.sleep(0.2)
    # The replacement worker answers again: later shadows are accepted and their slots come
    # back without another restart (whether within shadow_timeout_s depends on how much CPU a
    # nice-19 worker gets on a busy machine, so timeouts count too).
    state = shadow_state()
    assert all(r.status_code == 200 for r in _post_all(server.url, bodies[1:4]))
    while True:
        now = shadow_state()
        if now["accepted"] == state["accepted"] + 3 and now["in_flight"] == 0:
            break
        assert time.monotonic() < deadline + 120, now
        time.sleep(0.2)
    assert now["restarts"] == state["restarts"]


def test_default_shadow_slots_let_a_slow_challenger_see_a_burst(
    serve_echo: Callable[..., Any],
) -> None:
    """shadow_max_in_flight unset, process executor, batching on: a burst of 40 concurrent
    requests is mirrored in full to a challenger six times slower than the champion (with
    the old fixed default of 8 slots, 32 of them were dropped)."""
    config = {
        "champion_alias": "echo",
        "experiment": {
            "strategy": "shadow",
            "challenger_alias": "slow",
            "shadow_timeout_s": 120.0,
            "shadow_executor": "process",
        },
    }
    server, _home = serve_echo(config)
    shadow = httpx.get(server.url + "/models", timeout=30).json()["models"][0]["experiment"]
    assert shadow["shadow"]["ready"]
    bodies = [{"features": {"x": float(i)}} for i in range(40)]
    assert all(r.status_code == 200 for r in _post_all(server.url, bodies))
    deadline = time.monotonic() + 120
    while True:
        metrics = _metrics(server.url)
        outcomes = {
            o: _metric(metrics, "arbiter_shadow_total", model="echo", outcome=o)
            for o in ("ok", "error", "timeout", "dropped")
        }
        if sum(outcomes.values()) >= len(bodies) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert outcomes == {"ok": 40, "error": 0, "timeout": 0, "dropped": 0}


def test_shadow_slots_follow_the_batch_size_unless_set() -> None:
    from arbiter.gateway.app import shadow_slots
    from arbiter.gateway.batching import BatchLimits
    from arbiter.strategies.shadow import ShadowExperimentConfig

    on, off = BatchLimits.of(32, 2.0), BatchLimits.of(0, 2.0)
    default = ShadowExperimentConfig(challenger_alias="c")
    assert shadow_slots(default, on) == 64
    assert shadow_slots(default, off) == 8
    assert shadow_slots(ShadowExperimentConfig(challenger_alias="c", shadow_workers=2), on) == 128
    assert (
        shadow_slots(ShadowExperimentConfig(challenger_alias="c", shadow_max_in_flight=3), on) == 3
    )
    thread = ShadowExperimentConfig(challenger_alias="c", shadow_executor="thread")
    assert shadow_slots(thread, on) == 8
