"""Structured logs with any worker count (issue 14, item 9).

With ``--workers 2`` arbiter's INFO lines used to disappear and its warnings printed without
time or level: uvicorn configured logging in each worker process and the parent's
``basicConfig`` reached none of them. These tests run the real ``arbiter serve --workers 2``
and read what it writes to stderr.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arbiter.home import Home

SRC = Path(__file__).resolve().parents[2] / "src"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\[pid (\d+)\] [\w.]+: "
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """``arbiter serve`` in a subprocess, its stderr collected line by line."""

    def __init__(self, home: Home, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.port = _free_port()
        command = [sys.executable, "-m", "arbiter", "serve", "--home", str(home.root)]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port), *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, condition: Callable[[list[str]], bool], timeout_s: float = 240.0) -> None:
        """Until ``condition(lines)`` holds; a bound, not a delay (start-up is slow under load)."""
        deadline = time.monotonic() + timeout_s
        while not condition(list(self.lines)):
            if self.proc.poll() is not None:
                time.sleep(0.5)  # let the reader drain what the process wrote last
                pytest.fail(f"arbiter serve exited {self.proc.returncode}: {self.lines[-20:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no such log lines within {timeout_s} s: {self.lines[-20:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _serving_pids(records: list[dict[str, Any]]) -> set[int]:
    """Pids of the workers that logged arbiter's own "serving fraud: ..." INFO line."""
    return {
        r["pid"]
        for r in records
        if r["level"] == "INFO"
        and r["logger"].startswith("arbiter.")
        and r["message"].startswith("serving fraud")
    }


def _text_records(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        m = TEXT_LINE.match(line)
        if m:
            name, message = line.split("] ", 1)[1].split(": ", 1)
            level, pid = m.group(1), int(m.group(2))
            out.append({"level": level, "pid": pid, "logger": name, "message": message})
    return out


@pytest.mark.timeout(900)  # above the start-up bound: two workers load models under load
def test_two_workers_log_arbiter_info_with_time_level_and_pid(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    server = Serve(home, "--workers", "2", "--log-level", "info")
    try:
        server.wait_for(lambda lines: len(_serving_pids(_text_records(lines))) >= 2)
    finally:
        server.stop()
    # Every line is a log record with time, level and pid: no bare message, no stray
    # format (a traceback's continuation lines would be the only exception, and none is due).
    assert server.lines
    bare = [line for line in server.lines if not TEXT_LINE.match(line)]
    assert not bare, bare
    records = _text_records(server.lines)
    assert len(_serving_pids(records)) == 2
    # uvicorn's own lines go through the same handler (same format), from the workers too.
    assert any(r["logger"].startswith("uvicorn") for r in records)


@pytest.mark.timeout(900)
def test_two_workers_log_json_lines(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    server = Serve(home, "--workers", "2", "--log-format", "json")

    def parsed(lines: list[str]) -> list[dict[str, Any]]:
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"level": "?", "pid": 0, "logger": "?", "message": line})
        return out

    try:
        server.wait_for(lambda lines: len(_serving_pids(parsed(lines))) >= 2)
    finally:
        server.stop()
    records = [json.loads(line) for line in server.lines]  # every line is one JSON object
    for record in records:
        assert set(record) >= {"ts", "level", "pid", "logger", "message"}, record
        assert record["ts"].endswith("+00:00")
    assert len(_serving_pids(records)) == 2
    assert len({r["pid"] for r in records}) >= 3  # the parent and both workers


def test_unknown_log_format_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from arbiter.cli import app

    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path), "--log-format", "xml"], catch_exceptions=True
    )
    assert result.exit_code != 0
    assert "--log-format must be one of text, json" in str(result.exception or result.output)
