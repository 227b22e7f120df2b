"""The gateway on a real uvicorn server: arbiter JSON predictions, bad input, feedback."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from arbiter.events import EventStore

SHADOW = {
    "fraud": {
        "experiment": {"strategy": "shadow", "unit_field": "user_id", "shadow_max_in_flight": 64}
    }
}
AB = {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.5, "unit_field": "user_id"}}}


def _count(home: Any, sql: str) -> Any:
    with EventStore(home.root).connect() as con:
        return con.execute(sql).fetchall()


def test_predict_single_and_batch(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url) as client:
        one = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["model"] == "fraud" and body["arm"] == "champion" and body["version"] == "1"
        assert body["prediction"] in (0, 1) and len(body["predictions"]) == 1
        assert set(body["probabilities"][0]) == {"0", "1"}
        assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-9
        batch = client.post("/models/fraud/predict", json={"features": fraud_rows[:7]})
        assert batch.status_code == 200
        assert len(batch.json()["predictions"]) == 7 and "prediction" not in batch.json()
        models = client.get("/models").json()["models"]
        assert models[0]["name"] == "fraud" and models[0]["aliases"] == {"champion": "1"}
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json()["status"] == "ready"
    server.stop()  # flushes the event writer
    rows = _count(home, "SELECT count(*), count(DISTINCT request_id) FROM predictions")
    assert rows == [(8, 2)]


def test_shadow_logs_both_models(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, home = running(SHADOW)
    with httpx.Client(base_url=server.url) as client:
        ids = []
        for i in range(20):
            r = client.post(
                "/models/fraud/predict", json={"user_id": f"u{i}", "features": fraud_rows[i]}
            )
            assert r.status_code == 200 and r.json()["arm"] == "champion"
            ids.append(r.json()["request_id"])
    time.sleep(0.5)  # shadows finish off the request path
    server.stop()
    rows = _count(
        home,
        "SELECT role, version, count(*) FROM predictions GROUP BY ALL ORDER BY role",
    )
    assert rows == [("served", "1", 20), ("shadow", "2", 20)]


BAD_INPUTS = [
    (b"{not json", "application/json", 400, "body"),
    (b'{"features": {"amount": 1}}', "application/json", 422, "features.hour"),
    (b"[1, 2]", "application/json", 422, "body"),
    (b'{"features": 3}', "application/json", 422, "features"),
    (b'{"feature": {}}', "application/json", 422, "feature"),
    (b'{"features": {}}', "text/plain", 415, "content-type"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"), BAD_INPUTS)
def test_bad_input_is_rejected_and_not_logged(
    running: Any, body: bytes, content_type: str, status: int, field: str
) -> None:
    server, home = running({"fraud": {}})
    r = httpx.post(
        server.url + "/models/fraud/predict", content=body, headers={"content-type": content_type}
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
    server.stop()
    assert _count(home, "SELECT count(*) FROM predictions") == [(0,)]


def test_feature_type_and_extra_feature_errors(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = running({"fraud": {}})
    url = server.url + "/models/fraud/predict"
    wrong_type = dict(fraud_rows[0], amount="lots")
    r = httpx.post(url, json={"features": [fraud_rows[1], wrong_type]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "features[1].amount"
    extra = dict(fraud_rows[0], colour="red")
    r = httpx.post(url, json={"features": extra})
    assert r.status_code == 422 and r.json()["error"]["field"] == "features.colour"
    null = dict(fraud_rows[0], hour=None)
    r = httpx.post(url, json={"features": null})
    assert r.status_code == 422 and r.json()["error"]["field"] == "features.hour"
    r = httpx.post(server.url + "/models/nope/predict", json={"features": fraud_rows[0]})
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    server.stop()
    assert _count(home, "SELECT count(*) FROM predictions") == [(0,)]


def test_oversized_body(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, _ = running({"fraud": {}}, server={"max_body_bytes": 2_000})
    r = httpx.post(server.url + "/models/fraud/predict", json={"features": fraud_rows[:50]})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        yield b'{"features": ['
        for _ in range(100):
            yield b'{"amount": 1.0, "hour": 1.0},'
        yield b"{}]}"

    r = httpx.post(
        server.url + "/models/fraud/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_feedback_join(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url) as client:
        ids = [
            client.post("/models/fraud/predict", json={"features": fraud_rows[i]}).json()[
                "request_id"
            ]
            for i in range(5)
        ]
        one = client.post("/feedback", json={"request_id": ids[0], "label": 1})
        assert one.json() == {"stored": 1}
        many = client.post(
            "/feedback", json={"feedback": [{"request_id": i, "label": 0} for i in ids[1:]]}
        )
        assert many.json() == {"stored": 4}
        bad = client.post(
            "/feedback",
            json={"feedback": [{"request_id": ids[0], "label": 0}, {"request_id": "", "label": 1}]},
        )
        assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("feedback[1]")
    # feedback is durable on acknowledgement: visible before the server stops
    assert _count(home, "SELECT count(*) FROM feedback") == [(5,)]
    server.stop()
    joined = _count(home, "SELECT label, count(*) FROM labeled GROUP BY label ORDER BY label")
    assert joined == [("0", 4), ("1", 1)]


def test_ab_split_is_sticky_and_balanced(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, home = running(AB)
    arms: dict[str, str] = {}
    with httpx.Client(base_url=server.url) as client:
        for i in range(300):
            user = f"user-{i % 100}"
            r = client.post(
                "/models/fraud/predict", json={"user_id": user, "features": fraud_rows[i]}
            )
            arm = r.json()["arm"]
            assert arms.setdefault(user, arm) == arm  # the same user always gets the same arm
            assert r.json()["version"] == ("2" if arm == "challenger" else "1")
        anonymous = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
        assert anonymous.status_code == 200
        header = client.post(
            "/models/fraud/predict",
            json={"features": fraud_rows[0]},
            headers={"X-Unit-Id": "user-1"},
        )
        assert header.json()["arm"] == arms["user-1"]
    share = sum(a == "challenger" for a in arms.values()) / len(arms)
    assert 0.3 < share < 0.7
    server.stop()
    flagged = _count(home, "SELECT unit_random, count(*) FROM predictions GROUP BY 1 ORDER BY 1")
    assert flagged == [(False, 301), (True, 1)]


def test_metrics_exposed(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, _ = running(SHADOW)
    httpx.post(server.url + "/models/fraud/predict", json={"features": fraud_rows[0]})
    httpx.post(server.url + "/models/fraud/predict", json={"features": {}})
    text = httpx.get(server.url + "/metrics").text
    assert (
        'arbiter_requests_total{arm="champion",model="fraud",protocol="arbiter",status="200"} 1.0'
        in text
    )
    assert "arbiter_request_latency_seconds_bucket" in text
    assert 'arbiter_errors_total{kind="invalid_input",model="fraud"} 1.0' in text


def test_openapi_documents_endpoints(running: Any) -> None:
    server, _ = running({"fraud": {}})
    schema = httpx.get(server.url + "/openapi.json").json()
    for path in ("/models/fraud/predict", "/feedback", "/models", "/readyz"):  # one per model
        assert path in schema["paths"], path
