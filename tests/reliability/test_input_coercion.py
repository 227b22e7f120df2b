"""One input step from the model's signature for every protocol (issue 14, item 7).

Ints reach a ``double`` column as doubles (a pyfunc model's own enforcement refuses int64 ->
float64), NaN and ±Infinity are refused the same way on every protocol unless the model opts
in with ``models.<name>.inputs.allow_non_finite``, and the log holds the values scored.
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import httpx

from arbiter.demo.data import FEATURES
from arbiter.events import EventStore
from arbiter.registry import registry_for_home
from arbiter.testing import SlowModel

ROW = {
    "amount": 120.5,
    "hour": 3,  # an int, where the signature says double
    "merchant_risk": 0.2,
    "distance_km": 12,
    "tx_last_24h": 2,
    "card_age_days": 400,
    "is_online": 1,
    "is_foreign": 0,
}
FAST = {"registry": {"poll_interval_s": 0.2}, "events": {"flush_interval_s": 0.1}}


def _rows(home: Any, sql: str) -> list[tuple[Any, ...]]:
    with EventStore(home.root).connect() as con:
        return con.execute(sql).fetchall()


def _until(check: Any, timeout_s: float = 180.0) -> Any:
    """Poll ``check`` until it returns something truthy (evidence, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_ints_reach_a_pyfunc_shadow_as_doubles_and_are_logged_as_scored(
    running: Any, make_home: Any, template_home: Any
) -> None:
    # A pyfunc challenger (MLflow enforces its double signature on every call) in shadow.
    home = make_home({})
    registry_for_home(home.root).log_pyfunc_model(
        "fraud", SlowModel(seconds=0.0), template_home.example, aliases=("pyshadow",)
    )
    # Room for every shadow call: a dropped one would never be logged.
    experiment = {"strategy": "shadow", "challenger_alias": "pyshadow", "shadow_max_in_flight": 64}
    config = {"fraud": {"experiment": experiment}}
    server, home = running(config, **FAST)
    n = 5
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(n):
            r = client.post("/models/fraud/predict", json={"unit_id": f"u{i}", "features": ROW})
            assert r.status_code == 200, r.text
            r = client.post(
                "/models/fraud/invocations",
                json={"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}},
            )
            assert r.status_code == 200, r.text
        shadows = _until(
            lambda: (
                (rows := _rows(home, "SELECT error FROM predictions WHERE role = 'shadow'"))
                and len(rows) == 2 * n
                and rows
            )
        )
    assert shadows, _rows(home, "SELECT role, error, count(*) FROM predictions GROUP BY ALL")
    assert [error for (error,) in shadows] == [None] * (2 * n)
    logged = _rows(home, "SELECT DISTINCT features FROM predictions WHERE protocol = 'arbiter'")
    assert [json.loads(f)["hour"] for (f,) in logged] == [3.0]
    assert all(isinstance(json.loads(f)["hour"], float) for (f,) in logged)


def _v2_binary(values: list[float]) -> tuple[bytes, dict[str, str]]:
    """One [1, 8] FP64 tensor as Triton binary data (what tritonclient sends)."""
    raw = struct.pack(f"<{len(values)}d", *values)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, len(values)],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    headers = {
        "content-type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, headers


def _non_finite_requests() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """The same row with amount = ``value`` on every protocol that can carry it."""
    out = []
    for name, value in (("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))):
        row = {k: float(v) for k, v in ROW.items()}
        row["amount"] = value
        records = json.dumps({"dataframe_records": [row]}).encode()
        out.append((f"invocations-{name}", "/models/fraud/invocations", records, {}))
        csv = (",".join(FEATURES) + "\n" + ",".join(str(row[k]) for k in FEATURES)).encode()
        out.append((f"csv-{name}", "/invocations", csv, {"content-type": "text/csv"}))
        tensors = [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [row[k]]} for k in FEATURES
        ]
        v2_json = json.dumps({"inputs": tensors}).encode()
        out.append((f"v2-json-{name}", "/v2/models/fraud/infer", v2_json, {}))
        body, headers = _v2_binary([row[k] for k in FEATURES])
        out.append((f"v2-binary-{name}", "/v2/models/fraud/infer", body, headers))
        predict = json.dumps({"features": row}).encode()  # NaN/Infinity tokens
        out.append((f"predict-{name}", "/models/fraud/predict", predict, {}))
    return out


def test_non_finite_values_are_refused_on_every_protocol(running: Any) -> None:
    server, home = running({"fraud": {}})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for case, path, body, headers in _non_finite_requests():
            headers = {"content-type": "application/json", **headers}
            r = client.post(path, content=body, headers=headers)
            assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    server.stop()
    assert _rows(home, "SELECT count(*) FROM predictions") == [(0,)]


def test_a_model_may_opt_in_to_nan_and_the_log_shows_what_was_scored(running: Any) -> None:
    # The gradient-boosted challenger handles NaN natively; served here as the champion.
    config = {"fraud": {"champion_alias": "challenger", "inputs": {"allow_non_finite": True}}}
    server, home = running(config)
    row = {k: float(v) for k, v in ROW.items()} | {"amount": float("nan")}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post(
            "/models/fraud/invocations",
            content=json.dumps({"dataframe_records": [row]}).encode(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        body, headers = _v2_binary([row[k] for k in FEATURES])
        r = client.post("/v2/models/fraud/infer", content=body, headers=headers)
        assert r.status_code == 200, r.text
    server.stop()
    logged = _rows(home, "SELECT features, error FROM predictions ORDER BY ts")
    assert len(logged) == 2
    for features, error in logged:
        assert error is None
        values = json.loads(features)
        assert values["amount"] is None  # NaN: logged as a missing value, as pandas reads it
        assert values["hour"] == 3.0


def test_out_of_range_reject_uses_the_versions_reference_profile(
    running: Any, make_home: Any, template_home: Any
) -> None:
    from arbiter.drift import build_profile
    from arbiter.registry.profiles import log_profile

    home = make_home({})
    registry = registry_for_home(home.root)
    champion = template_home.versions["fraud"]["champion"]
    reference = template_home.example  # a few training rows: their min/max are the range
    log_profile(registry.tracking_uri, "fraud", champion, build_profile(reference))
    server, home = running({"fraud": {"inputs": {"out_of_range": "reject"}}})
    inside = {k: float(v) for k, v in reference.iloc[0].items()}
    huge = {**inside, "amount": 1e308}  # a finite double: valid unless range-checked
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/models/fraud/predict", json={"features": inside})
        assert r.status_code == 200, r.text
        r = client.post("/models/fraud/predict", json={"features": huge})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "features.amount"
        r = client.post("/models/fraud/invocations", json={"dataframe_records": [huge]})
        assert r.status_code == 400 and r.json()["field"] == "dataframe_records.amount", r.text
        tensors = [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [huge[k]]} for k in FEATURES
        ]
        r = client.post("/v2/models/fraud/infer", json={"inputs": tensors})
        assert r.status_code == 400 and r.json()["field"] == "inputs[0]", r.text
    server.stop()
    assert _rows(home, "SELECT count(*) FROM predictions") == [(1,)]
