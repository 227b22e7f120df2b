"""The event log on object storage, against an S3-compatible local server.

The server is moto's (``moto.server``, a dev dependency) on 127.0.0.1: an S3 API
implementation in a separate process, spoken to by pyarrow's real S3 client over HTTP. It is
not AWS S3 (no network latency, its own consistency), so these tests prove the protocol use
(uploads, listings, deletes, reads through pyarrow datasets, the lease's claim and read-back),
not S3's performance. GCS and Azure go through the same pyarrow.fs calls but are not tested
here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.errors import ConfigError
from arbiter.events import EventWriter, count_events
from arbiter.events.lease import LeaseLostError
from arbiter.events.location import open_event_store
from arbiter.events.object_store import ObjectEventStore, ObjectLease
from arbiter.events.segments import COMPACTED_FROM_KEY
from arbiter.home import Home


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on a free port of 127.0.0.1, for this module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the S3-compatible server (moto) did not start")
            time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket's URL, with the options pyarrow needs for a local HTTP endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"arbiter-{uuid.uuid4().hex[:12]}"
    options = f"endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    return f"s3://{bucket}/events?{options}&allow_bucket_creation=true"


def _home(root: Path, url: str) -> Home:
    home = Home.at(root, create=True)
    config = HomeConfig.model_validate({"events": {"url": url}})
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return home


def _fill(store: ObjectEventStore, segments: int, rows: int = 5) -> None:
    with EventWriter(store) as writer:
        for s in range(segments):
            writer.append_predictions(
                {"request_id": f"r{s}", "row_index": range(rows), "model": "m"}
            )
            writer.flush()


def test_two_homes_share_one_bucket(tmp_path: Path, s3_url: str) -> None:
    store = open_event_store(_home(tmp_path / "a", s3_url))
    assert isinstance(store, ObjectEventStore)
    assert "testing" not in repr(store) and "endpoint_override" not in repr(store)
    _fill(store, segments=3)
    store.write_feedback([{"request_id": "r0", "row_index": 0, "label": 0}])
    # Same ts: the label written later wins (segment name order, as on a directory).
    ts = "2026-12-01T10:00:00Z"
    store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 0, "ts": ts}])
    store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1, "ts": ts}])
    store.write_outcomes([{"unit_id": "u1", "event": "purchase", "value": 3.0}])
    other = open_event_store(_home(tmp_path / "b", s3_url))
    assert count_events(other) == 15
    assert count_events(other, "feedback") == 3
    assert count_events(other, "outcomes") == 1
    with other.connect() as con:
        labels = con.sql(
            "SELECT request_id, label FROM labeled WHERE label IS NOT NULL ORDER BY 1"
        ).fetchall()
        assert labels == [("r0", "0"), ("r1", "1")]
        scoped = con.execute(
            "SELECT count(*) FROM predictions WHERE model = $m AND request_id = $r",
            {"m": "m", "r": "r2"},
        ).fetchone()
        assert scoped == (5,)
    assert not (tmp_path / "a" / "events").exists()


def test_compaction_on_the_bucket_merges_hides_and_deletes(tmp_path: Path, s3_url: str) -> None:
    store = open_event_store(_home(tmp_path, s3_url))
    assert isinstance(store, ObjectEventStore)
    store.settle_s = 0.1
    _fill(store, segments=4)
    sources = [p.rsplit("/", 1)[1] for p in store.segments("predictions")]
    held = store.compact(min_age_s=0, grace_s=3600)  # sources kept: a crash's state
    assert (held.merged_files, held.deleted_files) == (1, 0)
    (merged,) = store.segments("predictions")
    assert merged.rsplit("/", 1)[1].startswith("cmp-")
    schema = pq.read_schema(merged, filesystem=store.filesystem)
    assert schema.metadata[COMPACTED_FROM_KEY].decode().count("seg-") == len(sources)
    assert count_events(store) == 20  # merged file and its sources: counted once
    done = store.compact(min_age_s=0, grace_s=0)
    assert done.deleted_files == len(sources)
    listing = store.filesystem.get_file_info(pafs.FileSelector(store.predictions_dir))
    assert [i.base_name[:4] for i in listing] == ["cmp-"]
    assert count_events(store) == 20
    lease = store.filesystem.get_file_info(f"{store.base}/.compact.lease")
    assert lease.type == pafs.FileType.NotFound  # released


def test_the_bucket_lease_admits_one_claimant(tmp_path: Path, s3_url: str) -> None:
    store = open_event_store(_home(tmp_path, s3_url))
    path = f"{store.base}/.compact.lease"  # type: ignore[attr-defined]
    fs = store.filesystem  # type: ignore[attr-defined]
    first, second = ObjectLease(fs, path, settle_s=0.2), ObjectLease(fs, path, settle_s=0.2)
    assert first.acquire() and not second.acquire()
    first.check()
    first.release()
    assert second.acquire()
    second.release()
    # Claimants racing for a free lease: the last claim wins, the others read it back.
    for _ in range(3):
        leases = [ObjectLease(fs, path, settle_s=0.5) for _ in range(4)]
        barrier = threading.Barrier(len(leases))
        won = [False] * len(leases)

        def claim(i: int, leases: list[ObjectLease] = leases, won: list[bool] = won) -> None:
            barrier.wait()  # noqa: B023 - joined before the next round builds a new one
            won[i] = leases[i].acquire()

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(leases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(won) <= 1
        for lease in leases:
            lease.release()


def test_a_compactor_that_lost_the_bucket_lease_uploads_nothing(
    tmp_path: Path, s3_url: str
) -> None:
    store = open_event_store(_home(tmp_path, s3_url))
    assert isinstance(store, ObjectEventStore)
    _fill(store, segments=3)
    before = store.segments("predictions")

    def lost() -> None:
        raise LeaseLostError("taken over")

    with pytest.raises(LeaseLostError):
        store._compact_table(
            "predictions", min_age_s=0, grace_s=0, small_bytes=2**30, target_bytes=2**30, check=lost
        )
    assert store.segments("predictions") == before and count_events(store) == 15


def test_a_url_pyarrow_cannot_open_names_no_credentials(tmp_path: Path) -> None:
    home = _home(tmp_path, "s3://KEY:SECRET@bucket/events?no_such_option=1")
    with pytest.raises(ConfigError, match=r"events\.url") as caught:
        open_event_store(home)
    assert "SECRET" not in str(caught.value) and "KEY" not in str(caught.value)
