"""`arbiter serve` as real processes: stickiness across servers, SIGTERM with zero loss,
and a registry outage while serving from a remote MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arbiter.events import EventStore

pytestmark = pytest.mark.integration

AB = {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.5, "unit_field": "user_id"}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def start_serve(
    home: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arbiter",
            "serve",
            "--home",
            str(home),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_assignment_is_sticky_across_two_server_processes(
    make_home: Any, fraud_rows: list[dict[str, float]], processes: list[Any]
) -> None:
    home = make_home(AB)
    ports = [free_port(), free_port()]
    for port in ports:
        processes.append(start_serve(home.root, port))
    answers: list[dict[str, str]] = [{}, {}]
    for k, port in enumerate(ports):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(200):
                r = client.post(
                    "/models/fraud/predict",
                    json={"user_id": f"user-{i}", "features": fraud_rows[i]},
                )
                answers[k][f"user-{i}"] = r.json()["arm"]
    assert answers[0] == answers[1]
    assert 60 < sum(a == "challenger" for a in answers[0].values()) < 140


def test_sigterm_under_load_loses_no_acknowledged_event(
    make_home: Any, fraud_rows: list[dict[str, float]], processes: list[Any]
) -> None:
    home = make_home(
        {"fraud": {"experiment": {"strategy": "shadow", "shadow_max_in_flight": 64}}},
        events={"flush_interval_s": 5.0},  # long interval: the shutdown flush must do the work
    )
    port = free_port()
    proc = start_serve(home.root, port)
    processes.append(proc)
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            i = 0
            while not stop.is_set():
                try:
                    r = client.post(
                        "/models/fraud/predict", json={"features": fraud_rows[i % 1000]}
                    )
                except httpx.HTTPError:
                    return  # the server has closed; later requests are not acknowledged
                if r.status_code == 200:
                    acknowledged.append(r.json()["request_id"])
                i += 1

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30  # a loaded CI machine answers slowly: wait for traffic
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so a supervisor sees the signal.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 200
    with EventStore(home.root).connect() as con:
        stored = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT request_id FROM predictions WHERE role = 'served'"
            ).fetchall()
        }
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged requests lost"


def test_registry_outage_keeps_serving(
    template_home: Any, tmp_path: Path, fraud_rows: list[dict[str, float]], processes: list[Any]
) -> None:
    """Serve from `mlflow server` on loopback; stop it; predictions go on, readiness says so."""
    import shutil

    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.home import Home

    backend = tmp_path / "backend.db"
    shutil.copy(template_home.root / "mlflow.db", backend)
    mlflow_port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{backend}",
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    mlflow_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(mlflow_proc)
    wait_ready(f"http://127.0.0.1:{mlflow_port}/health", mlflow_proc, timeout_s=90)

    home = Home.at(tmp_path / "home", create=True)
    from arbiter.config import HomeConfig, dump_config

    config = HomeConfig.model_validate(
        {
            "registry": {
                "tracking_uri": f"http://127.0.0.1:{mlflow_port}",
                "poll_interval_s": 0.3,
            },
            "models": {"fraud": {}},
        }
    )
    home.config_path.write_text(dump_config(config))
    with ServerThread(create_app(home)) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/readyz").json()["registry"]["reachable"] is True
        assert (
            client.post("/models/fraud/predict", json={"features": fraud_rows[0]}).status_code
            == 200
        )
        mlflow_proc.terminate()
        mlflow_proc.wait(30)
        deadline = time.monotonic() + 20
        ready: dict[str, Any] = {}
        while time.monotonic() < deadline:
            ready = client.get("/readyz").json()
            if ready["registry"]["reachable"] is False:
                break
            time.sleep(0.2)
        assert ready["status"] == "degraded" and ready["registry"]["error"]
        for row in fraud_rows[:20]:
            r = client.post("/models/fraud/predict", json={"features": row})
            assert r.status_code == 200 and r.json()["version"] == "1"
        assert client.get("/readyz").status_code == 200
        assert "arbiter_registry_up 0.0" in client.get("/metrics").text
