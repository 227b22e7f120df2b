"""The PostgreSQL event store against the real server at 127.0.0.1:5432 (issue 11).

Every test gets a fresh schema in database ``test`` (trust auth), dropped afterwards. Nothing
is patched: outages are a port nobody listens on and backends terminated by the server.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events import PREDICTIONS_SCHEMA, EventWriter
from arbiter.events.postgres_schema import parse_postgres_url
from arbiter.events.postgres_store import PostgresEventStore
from tests.events import _pg_child

ADMIN = "postgresql://127.0.0.1:5432/test"
BOUND_S = 60.0
US = 1_000_000


def wait_for(check: Callable[[], Any], what: str, bound_s: float = BOUND_S) -> Any:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {bound_s} s: {what}")


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema name; the schema is dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def pg_url(schema: str) -> str:
    return f"{ADMIN}?schema={schema}&application_name=arbiter-{schema}"


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresEventStore]:
    s = PostgresEventStore(pg_url)
    yield s
    s.close()


def count(schema: str, table: str, where: str = "true") -> int:
    """Rows seen by a separate connection: what is committed, not what a session holds."""
    with psycopg.connect(ADMIN) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.{table} WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def dead_url(schema: str) -> str:
    """A URL with a password, on a port nobody listens on: the database is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://arbiter:s3cret-pw@127.0.0.1:{port}/test?schema={schema}"


def now_us() -> int:
    return time.time_ns() // 1000


def test_flush_copies_every_value_exactly(store: PostgresEventStore) -> None:
    writer = EventWriter(store, flush_interval=0.05).start()
    ts = now_us()
    rows = [
        {
            "request_id": "r1",
            "row_index": 0,
            "ts": ts,
            "model": "m",
            "role": "served",
            "score": 0.1 + 0.2,
            "prediction": "1",
            "prediction_num": 1.0,
            "forced": False,
            "features": '{"a": "comma, \\"quote\\"\\nnewline"}',
            "error": "",
        },
        {
            "request_id": "r1",
            "row_index": 1,
            "ts": ts,
            "model": "m",
            "role": "served",
            "score": 1e-300,
            "latency_ms": float("inf"),
            "confidence": float("nan"),
            "unit_random": True,
            "prediction": "",
            "features": None,
        },
        {
            "request_id": "r2",
            "row_index": 0,
            "ts": ts + 1,
            "model": "m",
            "role": "shadow",
            "impression": '{"k": 3}',
            "probabilities": "{}",
            "version": "7",
        },
    ]
    for row in rows:
        writer.append_prediction(**row)
    writer.close()
    assert writer.stats().events_written == 3
    got = store.read_table("predictions").sort_by(
        [("request_id", "ascending"), ("row_index", "ascending")]
    )
    assert got.schema == PREDICTIONS_SCHEMA
    expected = pa.Table.from_pylist(
        [{name: row.get(name) for name in PREDICTIONS_SCHEMA.names} for row in rows],
        schema=PREDICTIONS_SCHEMA,
    )
    for name in PREDICTIONS_SCHEMA.names:
        left, right = got.column(name).to_pylist(), expected.column(name).to_pylist()
        if name == "confidence":
            assert math.isnan(left[1]) and left[0] is None and left[2] is None
            continue
        assert left == right, name  # bit-for-bit floats, "" distinct from null


def test_retried_flush_inserts_nothing(store: PostgresEventStore, schema: str) -> None:
    ts = now_us()
    table = pa.Table.from_pylist(
        [
            {"request_id": f"r{i // 2}", "row_index": i % 2, "role": "served", "ts": ts}
            for i in range(1000)
        ],
        schema=PREDICTIONS_SCHEMA,
    )
    assert store.append_prediction_table(table) == 1000
    assert store.append_prediction_table(table) == 0  # the retry
    # Duplicates inside one batch collapse too; the same key at another time is another event.
    doubled = pa.concat_tables([table.slice(0, 10), table.slice(0, 10)])
    assert store.append_prediction_table(doubled) == 0
    later = table.slice(0, 5).set_column(2, "ts", pa.array([ts + 1] * 5, pa.timestamp("us", "UTC")))
    assert store.append_prediction_table(later) == 5
    # A null role is a key value like any other (NULLS NOT DISTINCT).
    nulls = table.slice(0, 3).set_column(9, "role", pa.nulls(3, pa.string()))
    assert store.append_prediction_table(nulls) == 3
    assert store.append_prediction_table(nulls) == 0
    assert count(schema, "predictions") == 1008


def test_feedback_is_committed_before_the_call_returns(
    store: PostgresEventStore, schema: str
) -> None:
    seen: list[int] = []
    errors: list[BaseException] = []

    def label(i: int) -> None:
        try:
            store.write_feedback([{"request_id": f"r{i}", "row_index": 0, "label": i % 2}])
            # Acknowledged = durable: another connection sees the row as soon as we return.
            seen.append(count(schema, "feedback", f"request_id = 'r{i}'"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and seen == [1] * 40
    # Later corrections win through write_seq, the order rows were committed.
    store.write_feedback([{"request_id": "r0", "row_index": 0, "label": "yes"}])
    store.write_feedback([{"request_id": "r0", "row_index": 0, "label": "no"}])
    with psycopg.connect(ADMIN) as conn:
        seqs = [
            r[0]
            for r in conn.execute(
                f"SELECT label FROM {schema}.feedback WHERE request_id = 'r0' ORDER BY write_seq"
            )
        ]
    assert seqs == ["0", "yes", "no"]
    store.write_outcomes([{"unit_id": "u1", "event": "buy", "value": 2.5}])
    assert count(schema, "outcomes") == 1
    with store.connect() as con:
        assert con.execute(
            "SELECT label FROM latest_feedback WHERE request_id = 'r0'"
        ).fetchall() == [("no",)]
        assert con.execute("SELECT sum(value) FROM outcomes").fetchone() == (2.5,)
    with pytest.raises(InvalidInputError) as err:
        store.write_feedback([{"request_id": "r1", "row_index": -1, "label": 1}])
    assert err.value.field == "rows[0].row_index"


def test_partitions_on_demand_and_prune(
    store: PostgresEventStore, schema: str, pg_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    days = [now - timedelta(days=120), now - timedelta(days=40), now]
    table = pa.Table.from_pylist(
        [
            {"request_id": f"r{i}", "row_index": 0, "role": "served", "ts": d}
            for i, d in enumerate(days)
        ],
        schema=PREDICTIONS_SCHEMA,
    )
    assert store.append_prediction_table(table) == 3
    store.write_feedback(
        [
            {"request_id": "r0", "row_index": 0, "label": 1, "ts": days[0]},
            {"request_id": "r2", "row_index": 0, "label": 1},
        ]
    )
    names = {(p.table, p.name) for p in store.partitions()}
    assert ("predictions", f"predictions_p{days[0]:%Y%m%d}") in names
    assert ("predictions", f"predictions_p{days[1]:%Y%m%d}") in names
    assert ("feedback", f"feedback_p{days[0]:%Y%m%d}") in names
    assert len(names) == 5

    from arbiter.cli import app

    home = tmp_path / "home"
    home.mkdir()
    (home / "arbiter.yaml").write_text(f"events:\n  url: '{pg_url}'\n")
    runner = CliRunner()
    bad = runner.invoke(app, ["events", "prune", "--home", str(home), "--older-than", "-3d"])
    assert bad.exit_code != 0 and "--older-than" in str(bad.exception or bad.output)
    dry = runner.invoke(
        app, ["events", "prune", "--home", str(home), "--older-than", "90d", "--dry-run", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    assert count(schema, "predictions") == 3
    result = runner.invoke(
        app, ["events", "prune", "--home", str(home), "--older-than", "90d", "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    assert report["store"] == "postgresql" and report["rows"] == 2
    assert {d["name"] for d in report["deleted"]} == {
        f"predictions_p{days[0]:%Y%m%d}",
        f"feedback_p{days[0]:%Y%m%d}",
    }
    assert count(schema, "predictions") == 2 and count(schema, "feedback") == 1
    # A long query holding a table: prune gives up rather than queue every writer behind it.
    with psycopg.connect(ADMIN) as reader:
        reader.execute(f"SELECT count(*) FROM {schema}.predictions").fetchone()  # holds the lock
        with pytest.raises(EventStoreError, match="busy"):
            store.prune(timedelta(days=30), lock_timeout_s=0.2)
    assert count(schema, "predictions") == 2
    # This process still remembers the dropped partition; a late row for that day recreates it.
    assert store.append_prediction_table(table.slice(0, 1)) == 1
    assert parse_postgres_url(pg_url).partition == "day"
    with pytest.raises(InvalidInputError):
        parse_postgres_url(pg_url + "&partition=hour")


def test_database_down_refuses_feedback_spills_and_recovers(
    schema: str, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spill = tmp_path / "spill"
    down = PostgresEventStore(dead_url(schema), fallback_dir=spill)
    with pytest.raises(EventStoreError) as refused:
        down.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1}])
    failing_since, reason = down.write_health()
    assert failing_since is not None and reason is not None and "unreachable" in reason
    writer = EventWriter(down, flush_interval=0.05).start()
    writer.append_predictions({"request_id": "a", "row_index": range(50), "role": "served"})
    wait_for(lambda: writer.stats().flush_errors >= 1, "a failed flush")
    assert writer.stats().failing_since_unix is not None
    report = writer.shutdown(retry_s=0.2, spill_dir=spill)
    assert (report.acknowledged, report.written, report.spilled, report.lost) == (50, 0, 50, 0)
    texts = [str(refused.value), reason, report.reason or ""] + [
        r.getMessage() for r in caplog.records
    ]
    for text in texts:
        assert "s3cret" not in text and "127.0.0.1" not in text and "COPY" not in text, text

    up = PostgresEventStore(pg_url, fallback_dir=spill)
    assert up.recover_spilled() == (1, 50)
    assert up.recover_spilled() == (0, 0)
    assert count(schema, "predictions") == 50
    up.close()


def test_terminated_connection_is_reopened(store: PostgresEventStore, schema: str) -> None:
    store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1}])
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (f"arbiter-{schema}",),
        ).fetchone()
    assert killed is not None and killed[0] >= 1

    def write() -> bool:
        try:
            store.write_feedback([{"request_id": "r2", "row_index": 0, "label": 1}])
        except EventStoreError as exc:
            assert "SQLSTATE" in str(exc) or "unreachable" in str(exc)
            return False
        return True

    # The first write may be refused (the server closed its connection): never acknowledged
    # without being stored, and the next one reconnects.
    wait_for(write, "a write after the backend was terminated", bound_s=30)
    assert store.write_health() == (None, None)
    assert count(schema, "feedback", "request_id = 'r2'") == 1


def test_two_writer_processes(pg_url: str, schema: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_pg_child.produce, args=(pg_url, tag, 40, 50)) for tag in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with psycopg.connect(ADMIN) as conn:
        rows = conn.execute(
            f"SELECT model, count(*), count(DISTINCT (request_id, row_index)) "
            f"FROM {schema}.predictions GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("p1", 2000, 2000), ("p2", 2000, 2000)]


def test_gateway_serves_with_postgres_events(
    running: Any, fraud_rows: list[dict[str, float]], pg_url: str, schema: str
) -> None:
    server, home = running({"fraud": {}}, events={"url": pg_url})
    assert not (home.root / "events").exists()  # nothing written locally
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        ids = []
        for i in range(10):
            r = client.post(
                "/models/fraud/predict", json={"features": fraud_rows[i * 3 : i * 3 + 3]}
            )
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
            sent += 3
        for request_id in ids[:4]:
            r = client.post(
                "/feedback", json={"request_id": request_id, "row_index": 0, "label": 1}
            )
            assert r.status_code == 200, r.text
            # Answered only once committed.
            assert count(schema, "feedback", f"request_id = '{request_id}'") == 1
        r = client.post("/outcomes", json={"unit_id": "u1", "event": "buy", "value": 3.0})
        assert r.status_code == 200, r.text
        assert count(schema, "outcomes") == 1
        wait_for(lambda: count(schema, "predictions") == sent, "every prediction in PostgreSQL")
        assert client.get("/readyz").status_code == 200


def test_gateway_with_database_down_degrades_spills_and_recovers(
    running: Any, fraud_rows: list[dict[str, float]], schema: str, pg_url: str
) -> None:
    down = {"url": dead_url(schema), "shutdown_retry_s": 0.2}
    server, home = running({"fraud": {}}, events=down)
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        r = client.post("/models/fraud/predict", json={"features": fraud_rows[:4]})
        assert r.status_code == 200  # served; the rows wait in the buffer
        refused = client.post("/feedback", json={"request_id": r.json()["request_id"], "label": 1})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "event_store_error"
        degraded = wait_for(
            lambda: (x := client.get("/readyz")).status_code == 503 and x, "/readyz 503"
        )
        for text in (refused.text, degraded.text):
            assert "s3cret" not in text and "127.0.0.1" not in text and "INSERT" not in text
        assert "unreachable" in degraded.json()["storage"]["reason"]
    server.stop()  # shutdown while the database is down: the 4 rows are spilled
    spill = home.spill_dir()
    assert sum(1 for _ in (spill / "predictions").glob("*.parquet")) == 1

    # The database is back: the next start moves the spilled rows in.
    server, _ = running({"fraud": {}}, events={"url": pg_url})
    wait_for(lambda: count(schema, "predictions") == 4, "spilled rows recovered at start")
    assert not list((spill / "predictions").glob("*.parquet"))


def test_a_refused_statement_is_reported_without_sql_or_credentials(schema: str) -> None:
    role = f"r_{schema}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'hunter2-pw'")
    try:
        # Trust auth: the password is not checked, but it is in the URL and must not leak.
        url = f"postgresql://{role}:hunter2-pw@127.0.0.1:5432/test?schema={schema}"
        store = PostgresEventStore(url)
        with pytest.raises(EventStoreError) as refused:
            store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1}])
        text = str(refused.value)
        assert "InsufficientPrivilege, SQLSTATE 42501" in text, text
        assert "hunter2" not in text and "CREATE" not in text and role not in text
        assert store.write_health()[1] == "the PostgreSQL event store failed " + (
            "(InsufficientPrivilege, SQLSTATE 42501)"
        )
        assert "hunter2" not in repr(store)
        store.close()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_url_parameters_reach_libpq(schema: str) -> None:
    url = f"{ADMIN}?options=-c%20statement_timeout%3D1234&schema={schema}&partition=month"
    store = PostgresEventStore(url)
    assert (store.location.schema, store.location.partition) == (schema, "month")
    with store.pg_connect() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
        assert conn.execute("SHOW search_path").fetchone() == (f"{schema}, pg_catalog",)
    store.write_feedback([{"request_id": "r1", "row_index": 0, "label": 1}])
    month = datetime.now(UTC)
    assert [p.name for p in store.partitions()] == [f"feedback_p{month:%Y%m}"]
    store.close()
    with pytest.raises(InvalidInputError) as bad:
        PostgresEventStore(f"{ADMIN}?schema=Robert');DROP")
    assert bad.value.field == "events.url?schema"
