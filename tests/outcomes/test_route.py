"""``POST /outcomes`` against a real gateway on 127.0.0.1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from arbiter.events import EventStore
from arbiter.events.query import count_events


def _rows(home: Any) -> list[tuple[Any, ...]]:
    with EventStore(home.root).connect() as con:
        return con.execute(
            "SELECT unit_id, event, value, epoch_us(ts), request_id FROM outcomes ORDER BY ALL"
        ).fetchall()


def test_single_list_and_wrapped_bodies(running: Any) -> None:
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url) as client:
        one = {"unit_id": "u-1", "event": "purchase", "value": 12.5, "ts": "2026-12-01T10:00:00Z"}
        assert client.post("/outcomes", json=one).json() == {"stored": 1}
        listed = [{"unit_id": "u-2", "event": "session"}, {"unit_id": "u-3", "event": "session"}]
        assert client.post("/outcomes", json=listed).json() == {"stored": 2}
        wrapped = {"outcomes": [{"unit_id": "u-4", "event": "click", "request_id": "r-9"}]}
        assert client.post("/outcomes", json=wrapped).json() == {"stored": 1}
        metrics = client.get("/metrics").text
    assert "arbiter_outcomes_total 4.0" in metrics
    rows = _rows(home)
    assert len(rows) == 4 == count_events(EventStore(home.root), "outcomes")
    ts_us = int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1_000_000)
    assert rows[0] == ("u-1", "purchase", 12.5, ts_us, None)
    assert rows[3][4] == "r-9"


def test_value_and_ts_defaults(running: Any) -> None:
    server, home = running({"fraud": {}})
    before = datetime.now(UTC)
    r = httpx.post(server.url + "/outcomes", json={"unit_id": "u-1", "event": "purchase"})
    after = datetime.now(UTC)
    assert r.status_code == 200, r.text
    ((_, _, value, ts_us, _),) = _rows(home)
    assert value == 1.0
    assert before.timestamp() - 1 <= ts_us / 1e6 <= after.timestamp() + 1


FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()
BAD_ROWS = [
    ({"event": "purchase"}, "unit_id"),
    ({"unit_id": "", "event": "purchase"}, "unit_id"),
    ({"unit_id": 7, "event": "purchase"}, "unit_id"),
    ({"unit_id": "u", "event": "no spaces"}, "event"),
    ({"unit_id": "u"}, "event"),
    ({"unit_id": "u", "event": "buy", "value": "12"}, "value"),
    ({"unit_id": "u", "event": "buy", "value": None}, "value"),
    ({"unit_id": "u", "event": "buy", "value": True}, "value"),
    ({"unit_id": "u", "event": "buy", "ts": "2026-12-01T10:00:00"}, "ts"),  # no zone
    ({"unit_id": "u", "event": "buy", "ts": "yesterday"}, "ts"),
    ({"unit_id": "u", "event": "buy", "ts": FUTURE}, "ts"),
    ({"unit_id": "u", "event": "buy", "ts": "1970-01-01T00:00:00Z"}, "ts"),
    ({"unit_id": "u", "event": "buy", "request_id": ""}, "request_id"),
    ({"unit_id": "u", "event": "buy", "colour": "red"}, "colour"),
]


def test_bad_rows_are_rejected_by_field_and_nothing_is_stored(running: Any) -> None:
    server, home = running({"fraud": {}})
    good = {"unit_id": "ok", "event": "purchase"}
    with httpx.Client(base_url=server.url) as client:
        for row, field in BAD_ROWS:
            single = client.post("/outcomes", json=row)
            assert single.status_code == 422, (row, single.text)
            assert single.json()["error"]["field"] == field
            many = client.post("/outcomes", json={"outcomes": [good, good, good, row, good]})
            assert many.status_code == 422
            assert many.json()["error"]["field"] == f"outcomes[3].{field}"
            bare = client.post("/outcomes", json=[good, row])
            assert bare.json()["error"]["field"] == f"rows[1].{field}"
    assert count_events(EventStore(home.root), "outcomes") == 0


MALFORMED = [
    ([], "rows"),
    ({"outcomes": []}, "outcomes"),
    ({"outcomes": {"unit_id": "u"}}, "outcomes"),
    ({"outcomes": [], "extra": 1}, "extra"),
    ([1], "rows[0]"),
    ("text", "body"),
]


def test_malformed_bodies(running: Any) -> None:
    server, home = running({"fraud": {}})
    for body, field in MALFORMED:
        r = httpx.post(server.url + "/outcomes", json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, body
    r = httpx.post(
        server.url + "/outcomes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert count_events(EventStore(home.root), "outcomes") == 0


def test_row_limit(running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from arbiter.gateway.routes import outcomes

    monkeypatch.setattr(outcomes, "MAX_OUTCOME_ROWS", 3)
    server, home = running({"fraud": {}})
    rows = [{"unit_id": f"u{i}", "event": "e"} for i in range(4)]
    r = httpx.post(server.url + "/outcomes", json=rows)
    assert r.status_code == 422 and "limit is 3" in r.json()["error"]["message"]
    assert count_events(EventStore(home.root), "outcomes") == 0


def test_token_required_when_set(running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", "s3cret")
    server, home = running({"fraud": {}})
    row = {"unit_id": "u-1", "event": "purchase"}
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/outcomes", json=row).status_code == 401
        wrong = client.post("/outcomes", json=row, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert count_events(EventStore(home.root), "outcomes") == 0
        ok = client.post("/outcomes", json=row, headers={"Authorization": "Bearer s3cret"})
        assert ok.json() == {"stored": 1}
    assert count_events(EventStore(home.root), "outcomes") == 1


def test_concurrent_posts_are_all_durable(running: Any) -> None:
    server, home = running({"fraud": {}})

    def post(i: int) -> int:
        rows = [{"unit_id": f"u{i}-{j}", "event": "purchase", "value": j} for j in range(i % 5 + 1)]
        r = httpx.post(server.url + "/outcomes", json=rows, timeout=60)
        assert r.status_code == 200, r.text
        return int(r.json()["stored"])

    with ThreadPoolExecutor(16) as pool:
        acknowledged = sum(pool.map(post, range(120)))
    assert acknowledged == sum(i % 5 + 1 for i in range(120))
    # Acknowledged means on disk: a fresh store sees every row without any flush or wait.
    assert count_events(EventStore(home.root), "outcomes") == acknowledged


def test_openapi_documents_outcomes(running: Any) -> None:
    server, _ = running({"fraud": {}})
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["paths"]["/outcomes"]["post"]["summary"] == "Post outcome events"
