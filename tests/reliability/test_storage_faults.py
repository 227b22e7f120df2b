"""Storage faults on a real small file system (issue 14, item 8).

``HOME/events`` is a 2 MiB tmpfs mounted for the test (root is needed to mount; without it the
tests skip and say so). The disk is filled with a real file until ``ENOSPC``; nothing is
patched. The numbers are proven from what is on disk: every prediction the gateway answered 200
is either in a segment, in a spilled segment, or counted in the "lost" log line, never silently
missing.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from arbiter.events import EventStore

MODELS = {"fraud": {}}
BOUND_S = 60.0  # generous: the flusher runs every 0.5 s, but the machine may be busy


@pytest.fixture
def small_fs() -> Iterator[Callable[..., Path]]:
    """Mount small tmpfs file systems; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "2m", *, read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory`` until the file system says it is full."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return filler
    finally:
        os.close(fd)


def rows_on_disk(home: Any) -> int:
    with EventStore(home.root).connect() as con:
        return int(con.execute("SELECT count(*) FROM predictions").fetchone()[0])


def spilled_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("predictions/*.parquet"))


def predict(client: httpx.Client, rows: list[dict[str, float]]) -> int:
    """POST a batch; return the rows acknowledged (0 unless answered 200)."""
    r = client.post("/models/fraud/predict", json={"features": rows})
    return len(r.json()["predictions"]) if r.status_code == 200 else 0


def wait_for(check: Callable[[], Any], what: str, bound_s: float = BOUND_S) -> Any:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {bound_s} s: {what}")


def readyz(client: httpx.Client, status: int) -> Callable[[], Any]:
    def check() -> Any:
        r = client.get("/readyz")
        return r if r.status_code == status else None

    return check


def metric(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_full_disk_degrades_readyz_refuses_feedback_and_recovers(
    small_fs: Callable[..., Path],
    make_home: Callable[..., Any],
    running: Any,
    fraud_rows: list[dict[str, float]],
    tmp_path: Path,
) -> None:
    home = make_home(MODELS)
    events = small_fs(home.events)
    server, _ = running(MODELS)
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        first = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
        assert first.status_code == 200
        request_id = first.json()["request_id"]
        acknowledged = 1
        wait_for(lambda: client.get("/readyz").json()["events"]["events_written"] >= 1, "flush")
        assert client.get("/readyz").status_code == 200
        assert metric(client, "arbiter_events_writable") == 1.0

        filler = fill(events)
        acknowledged += predict(client, fraud_rows[1:101])
        degraded = wait_for(readyz(client, 503), "/readyz 503 while flushes fail")
        body = degraded.json()
        assert body["status"] == "degraded"
        assert body["storage"]["writable"] is False
        assert body["storage"]["reason"] == "No space left on device"
        assert body["storage"]["buffered"] == acknowledged - 1
        assert str(tmp_path) not in degraded.text and "/events" not in degraded.text
        assert metric(client, "arbiter_events_writable") == 0.0
        assert metric(client, "arbiter_event_flush_failures_total") >= 1

        # Feedback is acknowledged only once durable: on a full disk it is refused, no path.
        refused = client.post("/feedback", json={"request_id": request_id, "label": 1})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "event_store_error"
        assert str(tmp_path) not in refused.text and "/events" not in refused.text

        # Predictions are still served (buffered) while the disk is full.
        acknowledged += predict(client, fraud_rows[101:201])

        filler.unlink()
        wait_for(readyz(client, 200), "/readyz 200 once flushes succeed again")
        assert client.get("/readyz").json()["status"] == "ready"
        assert metric(client, "arbiter_events_writable") == 1.0
        stored = client.post("/feedback", json={"request_id": request_id, "label": 1})
        assert stored.status_code == 200, stored.text
        wait_for(lambda: client.get("/readyz").json()["events"]["buffered"] == 0, "drained")
    assert acknowledged == 201
    assert rows_on_disk(home) == acknowledged


def test_read_only_event_folder_degrades_readyz_until_writable(
    small_fs: Callable[..., Path],
    make_home: Callable[..., Any],
    running: Any,
    fraud_rows: list[dict[str, float]],
    tmp_path: Path,
) -> None:
    home = make_home(MODELS)
    events = small_fs(home.events)
    server, _ = running(MODELS)
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        assert client.get("/readyz").status_code == 200
        subprocess.run(["mount", "-o", "remount,ro", str(events)], check=True)
        try:
            acknowledged = predict(client, fraud_rows[:50])
            degraded = wait_for(readyz(client, 503), "/readyz 503 on a read-only folder")
            assert degraded.json()["storage"]["reason"] == "Read-only file system"
            assert str(tmp_path) not in degraded.text
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(events)], check=True)
        wait_for(readyz(client, 200), "/readyz 200 once the folder is writable again")
        wait_for(lambda: client.get("/readyz").json()["events"]["buffered"] == 0, "drained")
    assert rows_on_disk(home) == acknowledged == 50


def _serve(home: Any, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "arbiter", "serve", "--home", str(home.root)),
                *("--port", str(port), "--log-level", "info"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    return proc


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_on_full_disk_spills_every_acknowledged_row_and_next_start_recovers(
    small_fs: Callable[..., Path],
    make_home: Callable[..., Any],
    running: Any,
    fraud_rows: list[dict[str, float]],
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill"
    sections = {"events": {"fallback_dir": str(spill), "shutdown_retry_s": 1.0}}
    home = make_home(MODELS, **sections)
    events = small_fs(home.events)
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _serve(home, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{log.read_text()}")
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, "arbiter serve ready", bound_s=180.0)
            acknowledged = predict(client, fraud_rows[:10])
            wait_for(lambda: client.get("/readyz").json()["events"]["buffered"] == 0, "flush")
            fill(events)
            for start in range(10, 211, 67):  # 201 more rows, as in the issue
                acknowledged += predict(client, fraud_rows[start : start + 67])
            wait_for(readyz(client, 503), "/readyz 503 while the disk is full")
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down gracefully.
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "Application shutdown failed" not in text and "Traceback" not in text, text
    on_disk, in_spill = rows_on_disk(home), spilled_rows(spill)
    assert acknowledged == 211
    assert (on_disk, in_spill) == (10, 201)
    assert f"of {acknowledged} prediction rows, 10 written, 201 spilled, 0 lost" in text, text
    assert str(tmp_path) not in text  # no path in any log line

    # Space is back: the next start moves the spilled rows home.
    (events / "filler").unlink()
    server, _ = running(MODELS, **sections)
    server.stop()
    assert rows_on_disk(home) == acknowledged
    assert spilled_rows(spill) == 0


def test_shutdown_counts_exactly_what_is_lost_when_the_fallback_fails_too(
    small_fs: Callable[..., Path],
    make_home: Callable[..., Any],
    running: Any,
    fraud_rows: list[dict[str, float]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spill = small_fs(tmp_path / "spill", read_only=True)  # the fallback cannot be written
    sections = {"events": {"fallback_dir": str(spill), "shutdown_retry_s": 0.5}}
    home = make_home(MODELS, **sections)
    events = small_fs(home.events)
    server, _ = running(MODELS, **sections)
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        fill(events)
        acknowledged = predict(client, fraud_rows[:201])
        wait_for(readyz(client, 503), "/readyz 503 while the disk is full")
    with caplog.at_level(logging.INFO, logger="arbiter"):
        server.stop()
    assert not server.thread.is_alive() and server.error is None
    lost = [r.getMessage() for r in caplog.records if "were LOST" in r.getMessage()]
    assert lost == [
        f"shutdown: {acknowledged} acknowledged prediction rows were LOST: neither "
        "events/predictions nor the fallback folder could be written (No space left on device)"
    ]
    assert acknowledged == 201 and rows_on_disk(home) == 0 and spilled_rows(spill) == 0
    assert not any(str(tmp_path) in r.getMessage() for r in caplog.records)


def test_arbiter_compact_moves_spilled_rows_back(tmp_path: Path) -> None:
    """Spilled segments are picked up by `arbiter compact` too, not only by the next start."""
    from typer.testing import CliRunner

    from arbiter.cli import app
    from arbiter.config import HomeConfig, dump_config
    from arbiter.events import EventWriter
    from arbiter.home import Home

    spill = tmp_path / "spill"
    home = Home.at(tmp_path / "home", create=True)
    config = HomeConfig.model_validate({"events": {"fallback_dir": str(spill)}})
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    EventStore(home.root)  # an event log to compact
    # A writer whose store lives in the fallback folder leaves segments where a spill would.
    with EventWriter(EventStore(spill.parent / "elsewhere")) as writer:
        writer.append_predictions({"request_id": "r", "row_index": range(7), "model": "fraud"})
    spill.mkdir()
    (spill.parent / "elsewhere" / "events" / "predictions").rename(spill / "predictions")
    assert spilled_rows(spill) == 7 and rows_on_disk(home) == 0

    result = CliRunner().invoke(app, ["compact", "--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.output
    assert rows_on_disk(home) == 7 and spilled_rows(spill) == 0
