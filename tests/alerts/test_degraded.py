"""A registry outage, for real: the gateway alerts that it is degraded, then that it recovered.

The registry is ``mlflow server`` on loopback (as in tests/integration/test_processes.py);
stopping it is the outage, starting it again on the same port the recovery.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.conftest import Receiver
from tests.canary.conftest import wait_for
from tests.integration.test_processes import free_port, wait_ready


@pytest.fixture
def mlflow_server(template_home: Any, tmp_path: Path) -> Iterator[Any]:
    backend = tmp_path / "backend.db"
    shutil.copy(template_home.root / "mlflow.db", backend)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
               f"sqlite:///{backend}", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
        # Its own process group: the outage kills the server and its workers at once.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        procs.append(proc)
        wait_ready(f"http://127.0.0.1:{port}/health", proc, timeout_s=120)
        return proc

    start.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        kill(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's process group (mlflow server runs its workers as children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.parametrize("recover", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_registry_outage_alerts_degraded_then_recovered(
    mlflow_server: Any,
    tmp_path: Path,
    receiver: Receiver,
    fraud_rows: list[dict[str, float]],
    recover: bool,
) -> None:
    """The default run stops the registry; the slow one (a second `mlflow server` start,
    about a minute on a busy machine) also brings it back."""
    from arbiter.config import HomeConfig, dump_config
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.home import Home

    registry = mlflow_server()
    home = Home.at(tmp_path / "home", create=True)
    config = HomeConfig.model_validate(
        {
            "registry": {"tracking_uri": mlflow_server.url, "poll_interval_s": 0.3},
            "models": {"fraud": {}},
            "alerts": {"webhooks": [{"name": "ops", "url": receiver.url}]},
        }
    )
    home.config_path.write_text(dump_config(config))
    with ServerThread(create_app(home)) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/readyz").json()["registry"]["reachable"] is True
        kill(registry)
        wait_for(lambda: "gateway_degraded" in receiver.events(), timeout_s=60)
        r = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
        assert r.status_code == 200  # degraded, still serving
        if recover:
            mlflow_server()
            wait_for(lambda: "gateway_recovered" in receiver.events(), timeout_s=120)
    docs = [json.loads(d.body) for d in receiver.deliveries]
    degraded = docs[0]
    assert degraded["event"] == "gateway_degraded" and degraded["severity"] == "critical"
    assert degraded["model"] is None and degraded["details"] == {"component": "registry"}
    assert "unreachable" in degraded["summary"]
    assert mlflow_server.url not in json.dumps(degraded)  # a URI can carry credentials
    if recover:
        assert [d["event"] for d in docs] == ["gateway_degraded", "gateway_recovered"]
    else:
        assert len(docs) == 1  # once per outage, not at every failed poll
