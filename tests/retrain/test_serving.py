"""A pipeline retrained on a raw mixed table, served by a real gateway on raw JSON rows."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd

from arbiter.events import EventStore
from arbiter.home import Home
from arbiter.registry import registry_for_home
from arbiter.retrain import labelled_traffic, retrain
from tests.retrain.tables import mixed_table


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON rows as a client sends them: a missing value is null."""
    return json.loads(frame.to_json(orient="records"))


def test_retrained_pipeline_serves_raw_rows(
    make_home: Callable[..., Home], running: Callable[..., Any]
) -> None:
    x, y = mixed_table(300, seed=2)
    home = make_home({"accounts": {}})
    registry = registry_for_home(home.root)
    result = retrain(
        registry, "accounts", x, y, search="sklearn", n_trials=1, cv=2, seed=0,
        time_column="event_time", alias="champion",
    )  # fmt: skip
    assert result.missing["country"] > 0 and result.missing["note"] > 0
    model = registry.load("accounts", result.version).raw

    server, home = running({"accounts": {}})
    features = x.drop(columns=["event_time"])
    rows = _rows(features.head(20))
    rows[0].update(amount=None, country="NG", note="urgent wire transfer needed now")
    rows[1].update(country="Atlantis", note=None)  # a category never seen in training
    rows[2].update(country=None)
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/models/accounts/predict", json={"features": rows})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == result.version and len(body["predictions"]) == 20
        served = [p["1"] for p in body["probabilities"]]
        local = model.predict_proba(pd.DataFrame(rows).astype({"amount": float}))[:, 1]
        np.testing.assert_allclose(served, local, rtol=1e-9)
        assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in served)

        # MLflow's scoring protocol on the same raw rows
        inv = client.post("/models/accounts/invocations", json={"dataframe_records": rows[:3]})
        assert inv.status_code == 200, inv.text

        for bad, field in [
            ({"country": 5}, "features[1].country"),  # a category must be a string
            ({"verified": "yes"}, "features[1].verified"),
            ({"logins": None}, "features[1].logins"),  # no gap in training: required
        ]:
            r = client.post(
                "/models/accounts/predict", json={"features": [rows[3], {**rows[4], **bad}]}
            )
            assert r.status_code == 422, r.text
            assert r.json()["error"]["field"] == field
        missing = {k: v for k, v in rows[5].items() if k != "note"}  # optional: may be left out
        assert client.post("/models/accounts/predict", json={"features": missing}).is_success

        # label the served rows: they come back as training traffic, strings and gaps kept
        ids = []
        for row in rows[:10]:
            ids.append(client.post("/models/accounts/predict", json={"features": row}).json())
        fed = client.post(
            "/feedback",
            json={"feedback": [{"request_id": a["request_id"], "label": 1} for a in ids]},
        )
        assert fed.json() == {"stored": 10}
    server.stop()
    tx, ty = labelled_traffic(EventStore(home.root), "accounts", features=list(features.columns))
    assert len(tx) == 10 and (ty == 1).all()
    assert tx["country"].iloc[1] == "Atlantis" and pd.isna(tx["amount"].iloc[0])
    again = retrain(
        registry, "accounts", x, y, traffic=(tx, ty), search="sklearn", n_trials=1, cv=2,
        time_column="event_time",
    )  # fmt: skip
    assert again.n_traffic_rows == 10 and again.n_rows == 310
    gaps = sum(row["amount"] is None for row in rows[:10])
    assert gaps >= 1 and again.missing["amount"] == result.missing["amount"] + gaps
