"""Client errors are the client's (issue 14, items 1 and 5).

Every malformed request, on every protocol, is answered with a 4xx JSON body naming the field
before any model runs; nothing is logged as a prediction (so no arm's error rate moves) and
the Prometheus error counter files it under ``invalid_input``, not ``model_error``. The attack
from the issue, thirty malformed requests carrying one challenger user's unit id, leaves a
healthy canary running.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from arbiter.canary import read_snapshot
from arbiter.demo.data import FEATURES
from arbiter.events import EventStore
from arbiter.registry import registry_for_home
from tests.canary.conftest import FAST, canary_model, wait_for

ROW = {
    "amount": 120.5,
    "hour": 3.0,
    "merchant_risk": 0.2,
    "distance_km": 12.0,
    "tx_last_24h": 2.0,
    "card_age_days": 400.0,
    "is_online": 1.0,
    "is_foreign": 0.0,
}
HEADER = ",".join(FEATURES) + "\n"
CSV = "text/csv"
JSON = "application/json"


def _v2_bytes_for_fp64() -> bytes:
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [ROW[name]]} for name in FEATURES
    ]
    inputs[0] = {"name": "amount", "shape": [1], "datatype": "BYTES", "data": ["120.5"]}
    return json.dumps({"inputs": inputs}).encode()


def _records(**changes: Any) -> bytes:
    row: dict[str, Any] = {**ROW, **changes}
    return json.dumps({"dataframe_records": [{k: v for k, v in row.items() if v != "-"}]}).encode()


def _deep(levels: int) -> bytes:
    return b'{"inputs": ' + b"[" * levels + b"1" + b"]" * levels + b"}"


#: (id, path, content type, body, expected status, expected field)
BAD: list[tuple[str, str, str, bytes, int, str]] = [
    ("csv-header-only", "/models/fraud/invocations", CSV, HEADER.encode(), 400, "body"),
    (
        "csv-missing-columns",
        "/invocations",
        CSV,
        b"amount,hour\n1.0,2.0\n",
        400,
        "merchant_risk",
    ),
    (
        "records-missing-column",
        "/invocations",
        JSON,
        _records(hour="-"),
        400,
        "dataframe_records.hour",
    ),
    (
        "records-string-for-double",
        "/invocations",
        JSON,
        _records(amount="lots"),
        400,
        "dataframe_records.amount",
    ),
    ("records-nan", "/invocations", JSON, _records(amount=float("nan")), 400, "*"),
    ("records-infinity", "/invocations", JSON, _records(hour=float("inf")), 400, "*"),
    ("deep-nesting", "/invocations", JSON, _deep(100_000), 400, "body"),
    ("v2-deep-nesting", "/v2/models/fraud/infer", JSON, _deep(100_000), 400, "body"),
    ("v2-bytes-for-fp64", "/v2/models/fraud/infer", JSON, _v2_bytes_for_fp64(), 400, "inputs[0]"),
    (
        "rank-non-ranking-model",
        "/models/fraud/rank",
        JSON,
        json.dumps({"features": ROW}).encode(),
        422,
        "name",
    ),
]


def _field(body: dict[str, Any]) -> str | None:
    """The field named by any of arbiter's three error shapes."""
    if isinstance(body.get("error"), dict):
        return body["error"].get("field")
    return body.get("field")


def _prediction_rows(home: Any) -> int:
    with EventStore(home.root).connect() as con:
        return con.execute("SELECT count(*) FROM predictions").fetchone()[0]


def _metric(text: str, kind: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("arbiter_errors_total{") and f'kind="{kind}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_malformed_requests_are_4xx_naming_the_field_and_are_not_logged(running: Any) -> None:
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for case, path, content_type, body, status, field in BAD:
            r = client.post(path, content=body, headers={"content-type": content_type})
            assert r.status_code == status, (case, r.text)
            assert r.headers["content-type"].startswith("application/json"), case
            named = _field(r.json())
            assert named is not None and field in ("*", named), (case, r.text)
        metrics = client.get("/metrics").text
    assert _metric(metrics, "model_error") == 0
    assert _metric(metrics, "invalid_input") + _metric(metrics, "malformed_body") == len(BAD)
    server.stop()
    assert _prediction_rows(home) == 0


def _canary(client: httpx.Client) -> dict[str, Any]:
    items = {m["name"]: m for m in client.get("/models").json()["models"]}
    return items["fraud"]["experiment"]["canary"]


ATTACK: list[tuple[str, str, bytes]] = [
    ("/models/fraud/invocations", CSV, HEADER.encode()),
    ("/invocations", CSV, b"amount,hour\n1.0,2.0\n"),
    ("/v2/models/fraud/infer", JSON, _v2_bytes_for_fp64()),
]


def test_thirty_malformed_requests_of_a_challenger_user_leave_the_canary_running(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    # A first stage the valid traffic below completes, and a second it never does: the
    # canary can only advance once, so "advanced and still running" is the healthy outcome.
    stages = [
        {"share": 0.5, "min_requests": 30, "min_duration_s": 0.0},
        {"share": 1.0, "min_requests": 1_000_000, "min_duration_s": 0.0},
    ]
    model = canary_model("challenger", stages=stages, max_prediction_psi=None)
    server, home = running({"fraud": model}, **FAST)
    registry = registry_for_home(home.root)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client)["status"] == "running")
        unit = 0

        def challenger_unit() -> str | None:
            nonlocal unit
            unit += 1
            r = client.post("/models/fraud/predict", json={"unit_id": f"a{unit}", "features": ROW})
            assert r.status_code == 200, r.text
            return f"a{unit}" if r.json()["arm"] == "challenger" else None

        victim = wait_for(challenger_unit, timeout_s=60)
        answers = []
        for i in range(30):
            path, content_type, body = ATTACK[i % len(ATTACK)]
            r = client.post(
                path, content=body, headers={"content-type": content_type, "X-Unit-Id": victim}
            )
            answers.append((r.status_code, r.text))
        # Evidence that a checkpoint has judged the arms since the attack: valid traffic
        # until the canary leaves its first stage, one way (advance) or the other (rollback).
        sent = 0

        def decided() -> dict[str, Any] | None:
            nonlocal sent
            for row in fraud_rows[sent : sent + 20]:
                r = client.post(
                    "/models/fraud/predict", json={"unit_id": f"v{sent}", "features": row}
                )
                assert r.status_code == 200, r.text
                sent += 1
            state = _canary(client)
            return state if state["status"] != "running" or state["stage"] else None

        state = wait_for(decided, timeout_s=90, interval_s=0.2)
        assert state["status"] == "running", state
        assert all(400 <= status < 500 for status, _ in answers), answers
        metrics = client.get("/metrics").text
    # The advance is seen in /models before its decision record lands in the registry.
    snap = wait_for(lambda: len((s := read_snapshot(registry, "fraud")).records) >= 2 and s)
    assert [r["action"] for r in snap.records] == ["start", "advance"]
    assert "challenger" in snap.aliases
    assert _metric(metrics, "model_error") == 0
    assert _metric(metrics, "invalid_input") >= 30
    server.stop()
    with EventStore(home.root).connect() as con:
        errors = con.execute("SELECT count(*) FROM predictions WHERE error IS NOT NULL").fetchone()
    assert errors == (0,)
