"""Canary releases through a real gateway on 127.0.0.1: rollback, promotion, admin API, CLI."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from arbiter.canary import read_snapshot
from arbiter.registry import registry_for_home
from tests.canary.conftest import FAST, TOKEN, canary_model, send, wait_for


def _canary(client: httpx.Client, model: str) -> dict[str, Any]:
    items = {m["name"]: m for m in client.get("/models").json()["models"]}
    return items[model]["experiment"]["canary"]


def test_faulty_challenger_is_rolled_back_and_archived(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = running({"faulty": canary_model("raising")}, **FAST)
    registry = registry_for_home(home.root)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert wait_for(lambda: _canary(client, "faulty")["status"] == "running")
        assert _canary(client, "faulty")["share"] == pytest.approx(0.2)
        answers = send(client, "faulty", fraud_rows, 0, 150)
        failed = [a for a in answers if a["status"] == 500]
        # Units of the raising challenger get 500s until a checkpoint rolls it back; how many
        # depends on when that checkpoint runs (a few dozen on a quiet machine, fewer when
        # the checkpoint comes early on a busy one), so only their presence is evidence.
        assert failed and all(a["error"]["code"] == "model_error" for a in failed)
        state = wait_for(lambda: _canary(client, "faulty")["status"] == "rolled_back" or None)
        assert state
        # the rolled-back state and its 0 % share are applied together (same snapshot)
        assert _canary(client, "faulty")["share"] == 0.0
        after = send(client, "faulty", fraud_rows, 150, 60)
    assert all(a["status"] == 200 and a["arm"] == "champion" for a in after)
    # The state is written (and applied) first; the registry side effects and the decision
    # record follow once the write is confirmed (read back after the settle delay).
    snap = wait_for(
        lambda: (
            (s := read_snapshot(registry, "faulty")).records
            and s.records[-1]["action"] == "rollback"
            and s
        )
    )
    assert "raising" not in snap.aliases  # archived: alias removed
    assert snap.stored is not None and snap.stored.state.status == "rolled_back"
    tags = registry.model_version_tags("faulty", snap.stored.challenger_version)
    assert tags["arbiter.archived"] == "true" and "guardrail" in tags["arbiter.archived_reason"]
    rollback = [r for r in snap.records if r["action"] == "rollback"]
    assert len(rollback) == 1
    evidence = rollback[0]["evidence"]
    assert evidence["arms"]["challenger"]["error_rate"] == 1.0
    assert any("error_rate" in b for b in evidence["breaches"])
    files = sorted((home.root / "canary" / "faulty").glob("*-rollback.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["evidence"]["arms"]


def _label(
    client: httpx.Client, answers: list[dict[str, Any]], labels: list[int], start: int
) -> None:
    rows = [
        {"request_id": a["request_id"], "label": labels[(start + i) % len(labels)]}
        for i, a in enumerate(answers)
    ]
    r = client.post(
        "/feedback", json={"feedback": rows}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 200, r.text


def test_healthy_challenger_is_promoted_with_labels(
    running: Any, template_home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    # This test is about the labelled path: the PSI guardrail is off so that only the
    # primary metric and the plan decide.
    model = canary_model(
        "challenger", require_primary_sample=True, min_sample_per_arm=15, max_prediction_psi=None
    )
    server, home = running({"fraud": model}, **FAST)
    registry = registry_for_home(home.root)
    rows, labels = template_home.rows, template_home.labels
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client, "fraud")["status"] == "running")
        sent = 0

        def traffic() -> str | None:
            nonlocal sent
            answers = send(client, "fraud", rows, sent, 40)
            assert all(a["status"] == 200 for a in answers)
            _label(client, answers, labels, sent)
            sent += 40
            status = _canary(client, "fraud")["status"]
            return status if status != "running" else None

        assert wait_for(traffic, timeout_s=30, interval_s=0.3) == "promoted"
        # the champion alias moved: every worker then routes all traffic to the new champion
        wait_for(lambda: _canary(client, "fraud")["share"] == 0.0)
        after = send(client, "fraud", rows, 0, 20)
    aliases = registry.aliases("fraud")
    assert aliases["champion"] == template_home.versions["fraud"]["challenger"]
    assert aliases["previous"] == template_home.versions["fraud"]["champion"]
    assert "challenger" not in aliases
    assert {a["version"] for a in after} == {aliases["champion"]}
    snap = read_snapshot(registry, "fraud")
    actions = [r["action"] for r in snap.records]
    assert actions == ["start", "advance", "promote"]
    promote = snap.records[-1]
    assert promote["registry"]["promoted"] and promote["registry"]["alias_removed"]
    assert promote["evidence"]["arms"]["challenger"]["labelled"] >= 15
    assert promote["evidence"]["primary"] is not None


def test_admin_api_and_cli_steer_a_canary(
    running: Any,
    fraud_rows: list[dict[str, float]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from typer.testing import CliRunner

    from arbiter.cli import app, main

    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    slow = [{"share": 0.1, "min_requests": 10_000}, {"share": 1.0, "min_requests": 10_000}]
    models = {"fraud": canary_model("challenger", stages=slow), "faulty": {}}
    server, home = running(models, **FAST)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client, "fraud")["status"] == "running")
        # auth: no token 401, wrong token 401, right token 200
        assert client.get("/admin/canary/fraud").status_code == 401
        bad = client.get("/admin/canary/fraud", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        status = client.get("/admin/canary/fraud", headers=auth).json()
        assert status["status"] == "running" and status["share"] == pytest.approx(0.1)
        assert status["plan"]["stages"][0]["min_requests"] == 10_000
        assert status["latest_decision"]["action"] == "start"
        assert client.get("/admin/canary/nope", headers=auth).status_code == 404
        not_canary = client.get("/admin/canary/faulty", headers=auth)
        assert not_canary.status_code == 409 and "not a canary" in not_canary.text
        # bad input names the field
        r = client.post("/admin/canary/fraud/explode", headers=auth)
        assert r.status_code == 422 and r.json()["error"]["field"] == "action"
        r = client.post("/admin/canary/fraud/pause", headers=auth, json={"reason": 5})
        assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
        r = client.post("/admin/canary/fraud/pause", headers=auth, json={"why": "x"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "why"
        r = client.post("/admin/canary/fraud/pause", headers=auth, content=b"{nope")
        assert r.status_code == 400 and r.json()["error"]["field"] == "body"
        big = b'{"reason": "' + b"x" * (64 * 1024) + b'"}'
        r = client.post("/admin/canary/fraud/pause", headers=auth, content=big)
        assert r.status_code == 413 and r.json()["error"]["field"] == "body"
        # pause, then pausing again is an idempotent success (nothing written)
        r = client.post("/admin/canary/fraud/pause", headers=auth, json={"reason": "look"})
        assert r.status_code == 200, r.text
        assert r.json()["status"]["status"] == "paused"
        assert r.json()["record"]["reasons"] == ["look"]
        r = client.post("/admin/canary/fraud/pause", headers=auth)
        assert r.status_code == 200 and r.json()["unchanged"] == "the canary is already paused"
        assert _canary(client, "fraud")["status"] == "paused"  # applied in this worker at once

        # the CLI reads and writes the same state
        runner = CliRunner()
        out = runner.invoke(app, ["canary", "status", "--home", str(home.root), "-m", "fraud",
                                  "--json"])  # fmt: skip
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["status"] == "paused"
        table = runner.invoke(app, ["canary", "status", "--home", str(home.root), "-m", "fraud"])
        assert table.exit_code == 0 and "paused" in table.stdout and "plan" in table.stdout
        out = runner.invoke(app, ["canary", "resume", "--home", str(home.root), "-m", "fraud",
                                  "--reason", "ok", "--json"])  # fmt: skip
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["status"]["status"] == "running"
        wait_for(lambda: _canary(client, "fraud")["status"] == "running")
        out = runner.invoke(app, ["canary", "abort", "--home", str(home.root), "-m", "fraud",
                                  "--reason", "bad idea", "--json"])  # fmt: skip
        assert out.exit_code == 0, out.output
        # applied by the next poll (0.2 s); generous timeout, no wall-clock assertion
        wait_for(lambda: _canary(client, "fraud")["share"] == 0.0, timeout_s=20)
        answers = send(client, "fraud", fraud_rows, 0, 30)
        assert {a["arm"] for a in answers} == {"champion"}
        out = runner.invoke(app, ["canary", "abort", "--home", str(home.root), "-m", "fraud"])
        assert out.exit_code == 0 and "nothing to do" in out.stdout  # a retry is idempotent
        with pytest.raises(SystemExit) as info:  # promoting it: a clear one-line error
            main(["canary", "promote", "--home", str(home.root), "-m", "fraud"])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert "cannot force-promote a canary that is rolled_back" in err
        assert "Traceback" not in err
        r = client.post("/admin/canary/fraud/resume", headers=auth)
        assert r.status_code == 409

    monkeypatch.delenv("ARBITER_API_TOKEN")
    server2, _ = running(models, **FAST)  # same home, no token configured
    with httpx.Client(base_url=server2.url, timeout=30) as client:
        r = client.get("/admin/canary/fraud")
        assert r.status_code == 403 and "token" in r.json()["error"]["message"]
        assert client.post("/admin/canary/fraud/pause", headers=auth).status_code == 403


def test_unreadable_state_keeps_the_last_share(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from arbiter.canary import STATE_TAG

    slow = [{"share": 0.3, "min_requests": 10_000}, {"share": 1.0, "min_requests": 10_000}]
    server, home = running({"fraud": canary_model("challenger", stages=slow)}, **FAST)
    registry = registry_for_home(home.root)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client, "fraud")["status"] == "running")
        good = registry.client.get_registered_model("fraud").tags[STATE_TAG]
        registry.client.set_registered_model_tag("fraud", STATE_TAG, "{garbage")
        wait_for(lambda: "keeping the last share" in caplog.text, timeout_s=5)
        time.sleep(1.0)  # five polls and two checkpoints fail: the share stays
        assert _canary(client, "fraud")["share"] == pytest.approx(0.3)
        registry.client.set_registered_model_tag("fraud", STATE_TAG, good)
        wait_for(lambda: _canary(client, "fraud")["read_at"] > time.time() - 0.5)
        assert _canary(client, "fraud")["share"] == pytest.approx(0.3)


# --- the controller in-process: real registry, pool and event store, no server ------------


def _worker(home: Any) -> Any:
    """The parts of a gateway worker the canary controller uses (real pool and store)."""
    from types import SimpleNamespace

    from arbiter.events import EventStore
    from arbiter.gateway.pool import ModelPool

    config = home.config()
    pool = ModelPool(registry_for_home(home.root), config)
    pool.refresh()
    return SimpleNamespace(
        pool=pool, config=config, home=home, store=EventStore(home.root), metrics=None
    )


def test_a_newly_loaded_challenger_gets_no_share_before_its_canary(
    make_home: Any, template_home: Any
) -> None:
    """The pool loads a new challenger (or champion) version before the controller re-reads
    the state: the share stored for the tested pair must not reach the new version."""
    from arbiter.canary import CanaryService
    from arbiter.gateway.canary import apply_snapshot

    home = make_home({"faulty": canary_model("raising")}, **FAST)
    worker = _worker(home)
    registry = worker.pool.registry
    service = CanaryService(registry, home.root, "faulty", worker.config.models["faulty"])
    snap, stored = service.ensure_started(service.snapshot())
    assert stored is not None
    versions = template_home.versions["faulty"]
    endpoint = worker.pool.endpoints["faulty"]

    apply_snapshot(worker, "faulty", service, snap)
    assert endpoint.strategy.share == pytest.approx(0.2)
    assert endpoint.canary["loaded_versions_match"] is True

    registry.client.set_registered_model_alias("faulty", "raising", versions["hanging"])
    worker.pool.refresh()  # this worker's pool now serves the new version behind "raising"
    assert endpoint.models["raising"].version == versions["hanging"]
    apply_snapshot(worker, "faulty", service, snap)  # the state read before the alias moved
    assert endpoint.strategy.share == 0.0
    assert endpoint.canary["loaded_versions_match"] is False

    registry.client.set_registered_model_alias("faulty", "raising", versions["raising"])
    worker.pool.refresh()
    apply_snapshot(worker, "faulty", service, snap)
    assert endpoint.strategy.share == pytest.approx(0.2)  # the tested pair again

    registry.client.set_registered_model_alias("faulty", "champion", versions["hanging"])
    worker.pool.refresh()  # a new champion: not the one the canary compares against
    apply_snapshot(worker, "faulty", service, snap)
    assert endpoint.strategy.share == 0.0


def test_a_slow_checkpoint_never_delays_the_poll(
    make_home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint stuck in its thread: an operator's abort is still applied by the poll
    loop, while the checkpoint has not returned (ordering, no wall-clock bound)."""
    import asyncio
    import contextlib
    import threading

    from arbiter.canary import CanaryService, CheckpointResult
    from arbiter.gateway.canary import prime_canary, run_canary_controller

    slow = [{"share": 0.3, "min_requests": 10_000}, {"share": 1.0, "min_requests": 10_000}]
    model = canary_model("challenger", stages=slow, analysis_interval_s=0.05)
    home = make_home({"fraud": model}, **FAST)
    worker = _worker(home)
    started, release = threading.Event(), threading.Event()

    def stuck(self: Any, store: Any, snap: Any = None) -> CheckpointResult:
        started.set()
        release.wait(60)
        return CheckpointResult("none", None)

    monkeypatch.setattr(CanaryService, "checkpoint", stuck)
    endpoint = worker.pool.endpoints["fraud"]

    async def scenario() -> bool:
        await prime_canary(worker, "fraud")
        assert endpoint.strategy.share == pytest.approx(0.3)
        task = asyncio.create_task(run_canary_controller(worker, "fraud"))
        try:
            assert await asyncio.to_thread(started.wait, 30)  # a checkpoint is stuck now
            service = CanaryService(
                worker.pool.registry, home.root, "fraud", worker.config.models["fraud"]
            )
            await asyncio.to_thread(service.operate, "abort", "test")
            for _ in range(600):  # up to ~30 s on a loaded machine; normally one poll
                if endpoint.strategy.share == 0.0:
                    break
                await asyncio.sleep(0.05)
            return endpoint.strategy.share == 0.0 and not release.is_set()
        finally:
            release.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert asyncio.run(scenario())


def test_may_checkpoint_hook_skips_checkpoints_but_not_polls(
    make_home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import contextlib

    from arbiter.canary import CanaryService
    from arbiter.gateway.canary import prime_canary, run_canary_controller

    slow = [{"share": 0.3, "min_requests": 10_000}, {"share": 1.0, "min_requests": 10_000}]
    home = make_home({"fraud": canary_model("challenger", stages=slow, analysis_interval_s=0.05)},
                     **FAST)  # fmt: skip
    worker = _worker(home)
    asked: list[bool] = []
    ran: list[float] = []
    original = CanaryService.checkpoint

    def counted(self: Any, store: Any, snap: Any = None) -> Any:
        ran.append(time.monotonic())
        return original(self, store, snap)

    monkeypatch.setattr(CanaryService, "checkpoint", counted)
    allow = {"value": False}

    def may_checkpoint() -> bool:
        asked.append(allow["value"])
        return allow["value"]

    async def scenario() -> None:
        await prime_canary(worker, "fraud")  # starts the canary (a checkpoint would, too)
        task = asyncio.create_task(
            run_canary_controller(worker, "fraud", may_checkpoint=may_checkpoint)
        )
        try:
            for _ in range(600):
                if len(asked) >= 3 and worker.pool.endpoints["fraud"].canary:
                    break
                await asyncio.sleep(0.05)
            assert len(asked) >= 3 and not ran  # asked, refused: no checkpoint ran
            assert worker.pool.endpoints["fraud"].canary["status"] == "running"  # polled
            allow["value"] = True
            for _ in range(600):
                if ran:
                    break
                await asyncio.sleep(0.05)
            assert ran
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


def test_a_separate_admin_token_keeps_label_producers_out_of_admin(
    running: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    monkeypatch.setenv("ARBITER_ADMIN_TOKEN", "operators-only")
    server, _home = running({"fraud": canary_model("challenger")}, **FAST)
    api = {"Authorization": f"Bearer {TOKEN}"}
    admin = {"Authorization": "Bearer operators-only"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/admin/canary/fraud", headers=api).status_code == 401
        assert client.get("/admin/canary/fraud", headers=admin).status_code == 200
        r = client.post("/admin/canary/fraud/pause", headers=api, json={"reason": "x"})
        assert r.status_code == 401  # nothing changed
        assert client.get("/admin/canary/fraud", headers=admin).json()["status"] != "paused"
        # the API token still guards /feedback, and the admin token does not open it
        label = {"request_id": "r1", "label": 1}
        assert client.post("/feedback", json=label, headers=admin).status_code == 401
        assert client.post("/feedback", json=label, headers=api).status_code == 200
