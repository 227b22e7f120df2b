"""`arbiter demo` on an existing home (issue 17, item 3).

It used to delete an earlier demo's home without a word, and with `arbiter serve` still
attached the rebuild failed with "disk I/O error" while the server logged "malformed
database schema". Now an earlier demo's home is deleted only with --force (after saying what
goes), never a folder the demo did not create, and never while a server holds the home.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.demo.run import MARKER, prepare_home
from arbiter.errors import ConfigError
from arbiter.serve_lock import LOCK_NAME, rebuilding

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_an_earlier_demo_is_deleted_only_with_force_and_says_what(tmp_path: Path) -> None:
    root = tmp_path / "arbiter-home"
    prepare_home(root)
    prepare_home(root)  # a folder holding only the demo's marker is reused without --force
    (root / "events").mkdir()
    (root / "events" / "seg-1.parquet").write_bytes(b"x")
    (root / "mlflow.db").write_bytes(b"x")

    with pytest.raises(ConfigError, match="--force"):
        prepare_home(root)
    assert (root / "events" / "seg-1.parquet").exists()  # nothing deleted

    said: list[str] = []
    prepare_home(root, force=True, say=said.append)
    assert said and "events/ (1 files)" in said[0] and "mlflow.db" in said[0]
    assert sorted(p.name for p in root.iterdir()) == [MARKER]


def test_a_folder_the_demo_did_not_create_is_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not created by `arbiter demo`"):
        prepare_home(tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _locked(path: Path) -> bool:
    """Whether another process holds ``path``'s lock (we cannot take it exclusively)."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


@pytest.mark.timeout(900)  # above the bounds below: a busy machine starts Python slowly
def test_demo_refuses_a_home_that_arbiter_serve_uses(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    (home.root / MARKER).write_text("as if an earlier demo made it")  # --force would delete it
    lock = home.root / LOCK_NAME
    server = subprocess.Popen(
        [sys.executable, "-m", "arbiter", "serve", "--home", str(home.root), "--port", "0"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # a bound: the lock is taken before the models load
        while not (lock.exists() and _locked(lock)):
            assert server.poll() is None, "arbiter serve exited"
            assert time.monotonic() < deadline, "arbiter serve never took the home's lock"
            time.sleep(0.1)
        result = CliRunner().invoke(app, ["demo", "--home", str(home.root), "--force"])
        assert result.exit_code != 0
        assert "in use by `arbiter serve`" in str(result.exception)
        assert f"pid {server.pid}" in str(result.exception)
        assert home.mlflow_db.stat().st_size > 0 and (home.root / "arbiter.yaml").exists()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.timeout(900)
def test_serve_refuses_a_home_the_demo_is_rebuilding(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    with rebuilding(home.root):
        result = subprocess.run(
            [sys.executable, "-m", "arbiter", "serve", "--home", str(home.root), "--port", "0"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode != 0
    assert "being rebuilt by `arbiter demo`" in result.stderr
    assert "Traceback" not in result.stderr
