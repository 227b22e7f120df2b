"""Several processes, kill -9 and SIGTERM: what reaches the store."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from arbiter.events import EventStore, count_events
from tests.events import _child

CHILD = str(Path(_child.__file__))


def test_two_processes_append_concurrently(store: EventStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_child.produce, args=(str(store.home), tag, 300, 20))
        for tag in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    con = store.connect()
    rows = con.sql(
        "SELECT model, count(*), count(DISTINCT (request_id, row_index)) FROM predictions "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [("p1", 6000, 6000), ("p2", 6000, 6000)]
    names = [p.name for p in store.segments("predictions")]
    assert len({n.split("-")[3] for n in names}) == 2  # host-pid-token-seq: both pids wrote
    assert len(set(names)) == len(names)


def test_kill_9_loses_only_the_unflushed_buffer(store: EventStore) -> None:
    with subprocess.Popen(
        [sys.executable, CHILD, "kill", str(store.home)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            written = 0
            assert proc.stdout is not None
            while written < 5_000 or len(store.segments("predictions")) < 3:
                line = proc.stdout.readline()
                assert line, "child exited early"
                written = int(line.split()[1])
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Every visible segment is complete and readable on its own.
    for path in store.segments("predictions"):
        pq.read_table(path)
    con = store.connect()
    ((count, low, high, distinct),) = con.sql(
        "SELECT count(*), min(row_index), max(row_index), count(DISTINCT row_index) "
        "FROM predictions"
    ).fetchall()
    # At least what the child saw durably written, and a gap-free prefix 0..count-1: one flusher
    # writes segments in append order and a half-written one is never visible.
    assert count >= written
    assert (low, high, distinct) == (0, count - 1, count)
    # The store stays writable and compactable after the crash.
    store.compact(min_age_s=0, grace_s=0)
    assert count_events(store) == count


def test_sigterm_then_close_loses_nothing(store: EventStore) -> None:
    with subprocess.Popen(
        [sys.executable, CHILD, "term", str(store.home)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.5)  # let it append for a while
            assert proc.poll() is None
            assert count_events(store) == 0  # nothing flushed yet
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()  # no-op once it has exited; stops it if an assertion failed
    assert proc.returncode == 0
    appended = int(out.split()[-1])
    assert appended > 0
    assert count_events(store) == appended
