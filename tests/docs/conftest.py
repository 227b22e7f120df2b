"""The home `make demo` leaves, built once per session (reduced), and a server on it.

The docs' examples run against what a new user has after `make demo`: the demo's home and
`arbiter serve` on it. The demo runs once per session, through the real CLI in a subprocess
(`arbiter demo --requests 300`: the shadow and A/B phases reduced, the canaries and the
interleaving test as `make demo` runs them, since they end on their own evidence).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ADMIN_TOKEN = "docs-test-admin-token-0123456789"


def arbiter_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess running this checkout's arbiter."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC), **extra}


@dataclass(frozen=True)
class DemoHome:
    root: Path
    seconds: float  # how long the reduced demo took
    output: str | None  # what the demo printed at 80 columns (None: a prebuilt home)
    errors: str | None = None  # what it printed to stderr
    #: A copy taken as the demo finished, before any test's server opened the home. Tests that
    #: need their own home copy this one: copying `root` while the docs' session-long
    #: `arbiter serve` writes to it races SQLite's journal and the event segments.
    snapshot: Path | None = None


#: The session's demo home, built by whichever test folder asks first (docs, ui).
_BUILT: dict[str, DemoHome] = {}


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    """The demo's home; ``ARBITER_DOCS_DEMO_HOME=DIR`` copies one built earlier instead
    (editing docs: the reduced demo takes 1.5 min on a quiet machine, several under load)."""
    return build_demo_home(tmp_path_factory)


def build_demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    """The demo's home, built once per session (tests/ui reuses it; it copies before writing)."""
    if "home" not in _BUILT:
        _BUILT["home"] = _build_demo_home(tmp_path_factory)
    return _BUILT["home"]


def _build_demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    root = tmp_path_factory.mktemp("docs") / "arbiter-home"
    snapshot = tmp_path_factory.mktemp("docs-snapshot") / "arbiter-home"
    started = time.perf_counter()
    prebuilt = os.environ.get("ARBITER_DOCS_DEMO_HOME")
    if prebuilt:
        shutil.copytree(prebuilt, root, ignore=shutil.ignore_patterns(".serve.lock"))
        shutil.copytree(root, snapshot)
        return DemoHome(root, time.perf_counter() - started, None, snapshot=snapshot)
    result = subprocess.run(
        [sys.executable, "-m", "arbiter", "demo", "--home", str(root), "--requests", "300"],
        capture_output=True,
        text=True,
        env=arbiter_env(COLUMNS="80"),  # an 80-column terminal (test_demo_output.py)
        timeout=1800,  # a bound: about 1.5 min on a quiet machine, several under load
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = time.perf_counter() - started
    shutil.copytree(root, snapshot, ignore=shutil.ignore_patterns(".serve.lock"))
    return DemoHome(root, seconds, result.stdout, result.stderr, snapshot=snapshot)


@dataclass(frozen=True)
class DocsServer:
    url: str
    port: int


@pytest.fixture(scope="session")
def docs_server(demo_home: DemoHome) -> Iterator[DocsServer]:
    """`arbiter serve --home <demo home>` on a free port, with an admin token set."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "arbiter", "serve", "--home", str(demo_home.root)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        env=arbiter_env(ARBITER_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # a bound: start-up loads every model from the registry
    while True:
        if proc.poll() is not None:
            pytest.fail(f"arbiter serve on the demo's home exited {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("arbiter serve did not become ready within 240 s")
        time.sleep(0.2)
    yield DocsServer(url, port)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
