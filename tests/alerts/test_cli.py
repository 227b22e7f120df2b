"""The CLI side of alerts: a missing secret stops `arbiter serve` with one line, and an
operator's abort from `arbiter canary` is alerted like a checkpoint's rollback."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from arbiter.alerts import verify
from arbiter.cli import app, main
from tests.alerts.conftest import SECRET, Receiver
from tests.canary.conftest import FAST, TOKEN, canary_model, wait_for


def test_serve_refuses_a_webhook_whose_secret_is_unset(
    make_home: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ARBITER_TEST_UNSET_SECRET", raising=False)
    hook = {"name": "ops", "url": "http://127.0.0.1:9/x", "secret_env": "ARBITER_TEST_UNSET_SECRET"}
    home = make_home({}, alerts={"webhooks": [hook]})
    with pytest.raises(SystemExit) as info:
        main(["serve", "--home", str(home.root), "--port", "0"])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert "ARBITER_TEST_UNSET_SECRET" in err


def test_an_abort_from_the_cli_is_alerted(
    running: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_TEST_ALERT_SECRET", SECRET)
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    hook = {"name": "ops", "url": receiver.url, "secret_env": "ARBITER_TEST_ALERT_SECRET"}
    # a long analysis interval: no checkpoint decides before the operator does
    model = canary_model("challenger", analysis_interval_s=3600)
    server, home = running({"fraud": model}, **FAST, alerts={"webhooks": [hook]})
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def status() -> str:
            items = {m["name"]: m for m in client.get("/models").json()["models"]}
            return str(items["fraud"]["experiment"]["canary"]["status"])

        wait_for(lambda: status() == "running")
    args = ["canary", "abort", "--home", str(home.root), "--model", "fraud", "--reason", "bad"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # the CLI flushed before it exited: the alert is already there
    (got,) = [d for d in receiver.deliveries if d.headers["x-arbiter-event"] == "canary_rollback"]
    assert verify(SECRET, got.headers["x-arbiter-timestamp"], got.body,
                  got.headers["x-arbiter-signature"], now=time.time())  # fmt: skip
    doc = json.loads(got.body)
    assert doc["source"]["component"] == "cli" and doc["details"]["action"] == "abort"
    assert doc["details"]["reasons"] == ["aborted by operator", "bad"]
