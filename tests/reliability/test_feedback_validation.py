"""``/feedback`` and ``/outcomes`` refuse what they should not store (issue 14, items 5 and 6).

Every case runs against a real gateway on 127.0.0.1: labels of the wrong type, a ``row_index``
beyond the request, clicks on a prediction, negative, far-future and overflowing ``ts``. Each
answer is a 422 naming the field, and a batch with one bad row stores nothing. Labels for a
request the worker does not know are stored, flagged ``unverified``, and counted by the
analysis as feedback that matches no logged prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LinearRegression

from arbiter.events import EventStore
from arbiter.gateway.app import create_app
from arbiter.gateway.server import ServerThread
from arbiter.home import Home

NOW_US = time.time_ns() // 1000
HOUR_US = 3_600 * 1_000_000


@pytest.fixture
def gateway(
    make_home: Callable[..., Home], template_home: Any
) -> Iterator[tuple[httpx.Client, Home]]:
    """A gateway serving ``fraud`` (a classifier of 0/1) and ``price`` (a regressor)."""
    from arbiter.registry import registry_for_home

    home = make_home({"fraud": {}, "price": {}})
    example = template_home.example
    regressor = LinearRegression().fit(example, range(len(example)))
    registry_for_home(home.root).log_sklearn_model(
        "price", regressor, example, aliases=("champion",)
    )
    server = ServerThread(create_app(home)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            yield client, home
    finally:
        server.stop()


def predict(client: httpx.Client, model: str, rows: list[dict[str, float]]) -> str:
    r = client.post(f"/models/{model}/predict", json={"features": rows})
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def stored_labels(home: Home) -> list[tuple[str, int, str]]:
    with EventStore(home.root).connect() as con:
        return con.execute("SELECT request_id, row_index, label FROM feedback").fetchall()


def refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["field"] == field, r.text


@pytest.mark.parametrize(
    ("label", "why"),
    [({"a": 1}, "an object"), ([1, 2], "an array"), ("", "an empty string")],
)
def test_labels_of_no_scalar_type_are_refused(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]], label: Any, why: str
) -> None:
    client, home = gateway
    rid = predict(client, "fraud", fraud_rows[:1])
    refused(client.post("/feedback", json={"request_id": rid, "label": label}), "label")
    # The same for a request this worker never saw: the type rule needs no request.
    refused(client.post("/feedback", json={"request_id": "nope", "label": label}), "label")
    assert stored_labels(home) == [], why


def test_labels_follow_the_models_task(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]]
) -> None:
    client, home = gateway
    fraud = predict(client, "fraud", fraud_rows[:2])
    price = predict(client, "price", fraud_rows[:2])
    # The classifier's classes are 0 and 1: a string is no class of it.
    refused(client.post("/feedback", json={"request_id": fraud, "label": "yes"}), "label")
    # The regressor predicts numbers: a label must be one.
    refused(client.post("/feedback", json={"request_id": price, "label": "high"}), "label")
    # Clicks belong to /rank answers.
    refused(client.post("/feedback", json={"request_id": fraud, "clicks": ["a"]}), "clicks")
    # row_index within the request's two rows.
    bad_row = {"request_id": fraud, "row_index": 2, "label": 1}
    refused(client.post("/feedback", json=bad_row), "row_index")
    assert stored_labels(home) == []
    ok = [
        {"request_id": fraud, "row_index": 1, "label": 1},
        {"request_id": price, "row_index": 0, "label": 3.5},
    ]
    r = client.post("/feedback", json=ok)
    assert r.status_code == 200 and r.json() == {"stored": 2}, r.text
    assert sorted(stored_labels(home)) == sorted([(fraud, 1, "1"), (price, 0, "3.5")])


@pytest.mark.parametrize(
    "ts",
    [-1, 0, NOW_US + 24 * HOUR_US, 2**63 - 1, 2**64 - 1, -(2**64), "9999-12-31T00:00:00Z"],
)
def test_ts_is_bounded(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]], ts: Any
) -> None:
    client, home = gateway
    rid = predict(client, "fraud", fraud_rows[:1])
    r = client.post("/feedback", json={"request_id": rid, "label": 1, "ts": ts})
    refused(r, "ts")
    r = client.post("/outcomes", json={"unit_id": "u1", "event": "buy", "ts": ts})
    refused(r, "ts")
    assert stored_labels(home) == []


def test_clock_skew_is_allowed_and_configurable(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]]
) -> None:
    client, home = gateway
    rid = predict(client, "fraud", fraud_rows[:1])
    soon = time.time_ns() // 1000 + 60 * 1_000_000  # a minute ahead: inside the default 300 s
    r = client.post("/feedback", json={"request_id": rid, "label": 1, "ts": soon})
    assert r.status_code == 200, r.text
    later = time.time_ns() // 1000 + HOUR_US
    refused(client.post("/feedback", json={"request_id": rid, "label": 0, "ts": later}), "ts")
    assert [label for *_, label in stored_labels(home)] == ["1"]


def test_one_bad_row_stores_nothing(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]]
) -> None:
    client, home = gateway
    rid = predict(client, "fraud", fraud_rows[:3])
    batch = [
        {"request_id": rid, "row_index": 0, "label": 1},
        {"request_id": rid, "row_index": 1, "label": 0},
        {"request_id": rid, "row_index": 3, "label": 1},  # the request has 3 rows: 0..2
    ]
    refused(client.post("/feedback", json={"feedback": batch}), "feedback[2].row_index")
    bad_ts = [{**batch[0]}, {**batch[1], "ts": 2**64 - 1}]
    refused(client.post("/feedback", json=bad_ts), "rows[1].ts")
    assert stored_labels(home) == []


def test_unknown_request_ids_are_stored_unverified_and_reported(
    gateway: tuple[httpx.Client, Home], fraud_rows: list[dict[str, float]]
) -> None:
    from arbiter.events.feedback import unmatched_feedback

    client, home = gateway
    rid = predict(client, "fraud", fraud_rows[:1])
    rows = [{"request_id": rid, "label": 1}, {"request_id": "not-a-logged-request", "label": 1}]
    r = client.post("/feedback", json=rows)
    assert r.status_code == 200 and r.json() == {"stored": 2, "unverified": 1}, r.text
    deadline = time.monotonic() + 30.0
    while True:  # the prediction reaches the log at the writer's next flush
        with EventStore(home.root).connect() as con:
            logged = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
            unmatched = unmatched_feedback(con)
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged == 1
    assert unmatched == 1  # the unknown id's label joins nothing, and the analysis says so
