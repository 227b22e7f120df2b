"""One event log for several replicas: ``events.url``, host-unique names, the compaction lease."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.errors import ConfigError
from arbiter.events import PREDICTIONS_SCHEMA, EventStore, EventWriter, count_events, segments
from arbiter.events.lease import CLOCK_SKEW_S, Lease, LeaseLostError, read_lease
from arbiter.events.location import event_log_exists, open_event_store, parse_events_url
from arbiter.home import Home


def _home(tmp_path: Path, **events: object) -> Home:
    home = Home.at(tmp_path / "home", create=True)
    config = HomeConfig.model_validate({"events": events})
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return home


# -- events.url -------------------------------------------------------------------------------


def test_default_location_is_the_homes_own_folder(tmp_path: Path) -> None:
    location = parse_events_url(None, tmp_path)
    assert (location.kind, location.path, location.is_default) == (
        "directory",
        tmp_path / "events",
        True,
    )
    home = _home(tmp_path)
    assert not event_log_exists(home)  # the CLI's "serve some traffic first"
    store = open_event_store(home)
    assert store.root == home.root / "events" and event_log_exists(home)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/mnt/shared/events", Path("/mnt/shared/events")),
        ("file:///mnt/shared/ev%20ents", Path("/mnt/shared/ev ents")),
        ("file://localhost/mnt/x", Path("/mnt/x")),
        ("shared/events", None),  # relative: under the home
    ],
)
def test_directory_urls(tmp_path: Path, url: str, expected: Path | None) -> None:
    location = parse_events_url(url, tmp_path)
    assert location.kind == "directory"
    assert location.path == (expected or tmp_path / url)


def test_remote_urls_are_dispatched_and_never_shown_with_credentials(tmp_path: Path) -> None:
    s3 = parse_events_url("s3://KEY:SECRET@bucket/prefix?region=eu-west-1", tmp_path)
    assert (s3.kind, s3.path) == ("object_store", None)
    assert "SECRET" not in s3.display and "KEY" not in s3.display
    assert s3.display == "s3://bucket/prefix"
    pg = parse_events_url("postgresql://arbiter:pw@db:5432/events?schema=x", tmp_path)
    assert pg.kind == "postgresql" and pg.display == "postgresql://db:5432/events"


def test_bad_urls_are_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"events\.url.*ftp"):
        parse_events_url("ftp://host/x", tmp_path)
    with pytest.raises(ConfigError, match=r"events\.url.*not a host"):
        parse_events_url("file://nas/export/events", tmp_path)
    home = Home.at(tmp_path / "h", create=True)
    home.config_path.write_text("events:\n  url: ftp://host/x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"events\.url.*ftp"):
        home.config()


def test_a_configured_directory_receives_every_table(tmp_path: Path) -> None:
    shared = tmp_path / "nfs" / "events"
    home = _home(tmp_path, url=shared.as_uri())
    store = open_event_store(home)
    with EventWriter(store) as writer:
        writer.append_predictions({"request_id": ["r1", "r2"], "row_index": [0, 0], "model": "m"})
    store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1}])
    store.write_outcomes([{"unit_id": "u1", "event": "purchase"}])
    assert not (home.root / "events").exists()
    assert [len(list((shared / t).glob("seg-*.parquet"))) for t in segments_tables()] == [1, 1, 1]
    # A second home naming the same directory (another host) reads the same rows.
    other = Home.at(tmp_path / "other", create=True)
    other.config_path.write_text(f"events:\n  url: {shared}\n", encoding="utf-8")
    reader = open_event_store(other)
    assert count_events(reader) == 2
    assert count_events(reader, "feedback") == 1
    assert count_events(reader, "outcomes") == 1


def segments_tables() -> tuple[str, ...]:
    return ("predictions", "feedback", "outcomes")


# -- segment names ------------------------------------------------------------------------------


def _produce(root: str, host: str, tag: str, batches: int, rows: int) -> None:
    """A writer on ``host`` (another machine, as far as the names can tell)."""
    os.environ[segments.HOST_ID_ENV] = host
    store = EventStore(root, root=Path(root) / "events")
    writer = EventWriter(store, flush_interval=0.02).start()
    for b in range(batches):
        writer.append_predictions(
            {"request_id": f"{tag}-{b}", "row_index": range(rows), "model": tag}
        )
        if b % 10 == 0:
            time.sleep(0.005)  # spread the flushes so compaction has work meanwhile
    writer.close()


def test_names_carry_host_pid_token_and_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(segments.HOST_ID_ENV, "web-1.eu")
    name = segments.segment_name()
    prefix, _stamp, host, pid, token, rest = name.split("-")
    assert (prefix, host, pid) == ("seg", "web_1_eu", str(os.getpid()))
    assert len(token) == 6 and rest.endswith(".parquet")
    assert segments.segment_name() != name  # the sequence moves on
    assert name[4:] < segments.segment_name()[4:]  # names sort by write time


def test_writers_on_two_hosts_and_two_compactors_lose_and_double_nothing(tmp_path: Path) -> None:
    """Two 'hosts' (same pid space is irrelevant: names differ by host and token) append while
    two compactors (separate lease holders) run over and over; every row is counted once."""
    store = EventStore(tmp_path, root=tmp_path / "events")
    ctx = multiprocessing.get_context("spawn")
    batches, rows = 120, 10
    procs = [
        ctx.Process(target=_produce, args=(str(tmp_path), host, host, batches, rows))
        for host in ("hosta", "hostb")
    ]
    for p in procs:
        p.start()
    results: list[segments.CompactionResult] = []
    producing = threading.Event()
    producing.set()

    def compactor() -> None:
        # Not p.is_alive(): multiprocessing.Process is not thread-safe, and a poll from this
        # thread can reap the child while the main thread's join() is reading its exit code.
        other = EventStore(tmp_path, root=tmp_path / "events")
        while producing.is_set():
            results.append(other.compact(min_age_s=0, grace_s=0))

    threads = [threading.Thread(target=compactor) for _ in range(2)]
    for t in threads:
        t.start()
    for p in procs:
        p.join(timeout=120)
    producing.clear()
    assert [p.exitcode for p in procs] == [0, 0]
    for t in threads:
        t.join(timeout=120)
    results.append(store.compact(min_age_s=0, grace_s=0))
    assert sum(r.merged_files for r in results) > 0
    con = store.connect()
    counted = con.sql(
        "SELECT model, count(*), count(DISTINCT (request_id, row_index)) FROM predictions "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    n = batches * rows
    assert counted == [("hosta", n, n), ("hostb", n, n)]
    hosts = {name.split("-")[2] for name in os.listdir(store.predictions_dir) if name[0] != "."}
    assert hosts <= {"hosta", "hostb"} | {segments.host_id()}  # cmp- files: the compactor's
    assert not any(n.startswith(".compact.lease") for n in os.listdir(store.root))


# -- the lease ---------------------------------------------------------------------------------


def test_one_holder_at_a_time_until_release(tmp_path: Path) -> None:
    path = tmp_path / ".compact.lease"
    first, second = Lease(path, ttl_s=60), Lease(path, ttl_s=60)
    assert first.acquire() and not second.acquire()
    info = read_lease(path)
    assert info is not None and info.holder == first.holder and info.pid == os.getpid()
    assert info.expires_unix == pytest.approx(time.time() + 60, abs=5)
    first.release()
    assert not path.exists() and second.acquire()


def _write_lease(path: Path, holder: str, expires_unix: float) -> None:
    path.write_text(
        json.dumps(
            {
                "holder": holder,
                "host": "elsewhere",
                "pid": 1,
                "acquired_unix": expires_unix - 60,
                "expires_unix": expires_unix,
            }
        )
    )


def test_an_expired_lease_of_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / ".compact.lease"
    _write_lease(path, "elsewhere/1/dead", time.time() - CLOCK_SKEW_S - 1)
    lease = Lease(path, ttl_s=60)
    assert lease.acquire()
    assert read_lease(path).holder == lease.holder  # type: ignore[union-attr]
    assert [p.name for p in tmp_path.iterdir()] == [".compact.lease"]  # nothing left aside


def test_a_lease_just_past_expiry_waits_for_the_clock_skew_margin(tmp_path: Path) -> None:
    path = tmp_path / ".compact.lease"
    _write_lease(path, "elsewhere/1/slow", time.time() - 1)
    assert not Lease(path, ttl_s=60).acquire()


def test_a_half_written_lease_expires_by_its_age(tmp_path: Path) -> None:
    path = tmp_path / ".compact.lease"
    path.write_bytes(b'{"holder": "els')  # its writer died between create and write
    assert not Lease(path, ttl_s=60).acquire()
    old = time.time() - 60 - CLOCK_SKEW_S - 5
    os.utime(path, (old, old))
    assert Lease(path, ttl_s=60).acquire()


def test_renewal_extends_and_a_taken_over_lease_stops_its_old_holder(tmp_path: Path) -> None:
    path = tmp_path / ".compact.lease"
    lease = Lease(path, ttl_s=60)
    assert lease.acquire()
    before = read_lease(path).expires_unix  # type: ignore[union-attr]
    lease.renew_if_due(force=True)
    assert read_lease(path).expires_unix >= before  # type: ignore[union-attr]
    lease.check()  # still ours: nothing raised
    _write_lease(path, "elsewhere/2/new", time.time() + 60)  # another host took it over
    with pytest.raises(LeaseLostError, match="taken over"):
        lease.renew_if_due(force=True)
    lease.release()  # not ours any more: left alone
    assert read_lease(path).holder == "elsewhere/2/new"  # type: ignore[union-attr]


@pytest.mark.parametrize("expired", [False, True])
def test_racing_holders_get_at_most_one_lease(tmp_path: Path, expired: bool) -> None:
    """Eight holders race for a free (or an expired) lease, fifty rounds: one wins each."""
    path = tmp_path / ".compact.lease"
    for _ in range(50):
        path.unlink(missing_ok=True)
        if expired:
            _write_lease(path, "elsewhere/1/dead", time.time() - CLOCK_SKEW_S - 1)
        leases = [Lease(path, ttl_s=60) for _ in range(8)]
        barrier = threading.Barrier(len(leases))
        won: list[bool] = [False] * len(leases)

        def race(i: int, leases: list[Lease] = leases, won: list[bool] = won) -> None:
            barrier.wait()  # noqa: B023 - joined before the next round builds a new one
            won[i] = leases[i].acquire()

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(leases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(won) == 1
        (winner,) = (lease for lease, w in zip(leases, won, strict=True) if w)
        assert read_lease(path).holder == winner.holder  # type: ignore[union-attr]


def test_a_compactor_that_lost_its_lease_publishes_and_deletes_nothing(
    store: EventStore,
) -> None:
    with EventWriter(store) as writer:
        for b in range(4):
            writer.append_predictions({"request_id": f"r{b}", "row_index": range(5), "model": "m"})
            writer.flush()
    before = sorted(p.name for p in store.predictions_dir.iterdir())

    def lost() -> None:
        raise LeaseLostError("taken over")

    with pytest.raises(LeaseLostError):
        segments.compact_directory(
            store.predictions_dir,
            PREDICTIONS_SCHEMA,
            min_age_s=0,
            grace_s=0,
            small_bytes=2**30,
            target_bytes=2**30,
            check=lost,
        )
    after = sorted(p.name for p in store.predictions_dir.iterdir() if not p.name.startswith("."))
    assert after == before and count_events(store) == 20


def test_compaction_takes_over_a_dead_compactors_lease(store: EventStore) -> None:
    with EventWriter(store) as writer:
        for b in range(3):
            writer.append_predictions({"request_id": f"r{b}", "row_index": range(5), "model": "m"})
            writer.flush()
    _write_lease(store.root / ".compact.lease", "elsewhere/1/dead", time.time() - 3600)
    result = store.compact(min_age_s=0, grace_s=0)
    assert not result.skipped and result.merged_files == 1
    assert not (store.root / ".compact.lease").exists()  # released after the run
    assert count_events(store) == 15
