"""MLflow-format and tritonclient requests against a real gateway."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd

from arbiter.demo.data import FEATURES as DEMO_FEATURES
from arbiter.events import EventStore

FEATURES = list(DEMO_FEATURES)


def test_unmodified_mlflow_requests(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    server, home = running({"fraud": {}})
    frame = pd.DataFrame(fraud_rows[:4], columns=FEATURES)
    split = frame.to_dict(orient="split")
    split.pop("index")
    bodies = [
        {"dataframe_split": split},
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": frame.to_dict(orient="records")},
        {"inputs": {c: frame[c].tolist() for c in FEATURES}},
    ]
    answers = []
    with httpx.Client(base_url=server.url) as client:
        for body in bodies:
            r = client.post("/invocations", json=body)
            assert r.status_code == 200, r.text
            assert r.headers["x-arbiter-arm"] == "champion"
            answers.append(r.json()["predictions"])
        csv = client.post(
            "/models/fraud/invocations",
            content=frame.to_csv(index=False),
            headers={"content-type": "text/csv"},
        )
        assert csv.status_code == 200 and csv.json()["predictions"] == answers[0]
        two = client.post("/invocations", json={**bodies[0], **bodies[1]})
        assert two.status_code == 400 and two.json()["error_code"] == "BAD_REQUEST"
        bad = client.post(
            "/invocations", content=b"{", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and "message" in bad.json()
        wrong = client.post("/invocations", content=b"x", headers={"content-type": "text/plain"})
        assert wrong.status_code == 415
    assert all(a == answers[0] for a in answers)
    server.stop()
    with EventStore(home.root).connect() as con:
        rows = con.execute("SELECT protocol, count(*) FROM predictions GROUP BY 1").fetchall()
    assert rows == [("mlflow", 20)]


def test_mlflow_client_matches_native_prediction(
    running: Any, template_home: Any, fraud_rows: list[dict[str, float]]
) -> None:
    """The gateway's answer equals loading the same version with MLflow and predicting."""
    import mlflow

    server, home = running({"fraud": {}})
    frame = pd.DataFrame(fraud_rows[:20], columns=FEATURES)
    got = httpx.post(
        server.url + "/invocations", json={"dataframe_records": frame.to_dict("records")}
    )
    client = mlflow.MlflowClient(tracking_uri=home.tracking_uri(), registry_uri=home.tracking_uri())
    uri = client.get_model_version_download_uri(
        "fraud", template_home.versions["fraud"]["champion"]
    )
    model = mlflow.pyfunc.load_model(uri)
    expected = model.get_raw_model().predict(frame.to_numpy())
    assert got.json()["predictions"] == expected.tolist()


def test_tritonclient_http_defaults(running: Any, fraud_rows: list[dict[str, float]]) -> None:
    import tritonclient.http as triton

    server, home = running({"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.5}}})
    client = triton.InferenceServerClient(url=f"{server.host}:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("fraud")
        meta = client.get_model_metadata("fraud")
        assert [i["name"] for i in meta["inputs"]] == FEATURES
        x = np.array([[row[c] for c in FEATURES] for row in fraud_rows[:6]], dtype=np.float64)
        # one [batch, n_features] tensor, binary data (tritonclient's default)
        matrix = triton.InferInput("input", list(x.shape), "FP64")
        matrix.set_data_from_numpy(x)
        outputs = [
            triton.InferRequestedOutput("predictions"),
            triton.InferRequestedOutput("probabilities"),
        ]
        result = client.infer("fraud", [matrix], outputs=outputs, parameters={"unit_id": "user-9"})
        predictions = result.as_numpy("predictions")
        proba = result.as_numpy("probabilities")
        assert predictions.shape == (6,) and proba.shape == (6, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        params = result.get_response()["parameters"]
        assert params["arm"] in ("champion", "challenger") and params["arbiter_request_id"]
        # one tensor per column, JSON data
        columns = []
        for j, name in enumerate(FEATURES):
            tensor = triton.InferInput(name, [6], "FP64")
            tensor.set_data_from_numpy(x[:, j], binary_data=False)
            columns.append(tensor)
        again = client.infer("fraud", columns, parameters={"unit_id": "user-9"})
        np.testing.assert_array_equal(again.as_numpy("predictions"), predictions)
        # the same unit is sticky across protocols
        assert again.get_response()["parameters"]["arm"] == params["arm"]
        try:
            client.infer("fraud", [matrix], outputs=[triton.InferRequestedOutput("nope")])
        except triton.InferenceServerException as exc:
            assert "nope" in str(exc)
        else:
            raise AssertionError("unknown output name accepted")
    finally:
        client.close()
    server.stop()
    with EventStore(home.root).connect() as con:
        assert con.execute("SELECT count(*) FROM predictions WHERE protocol='v2'").fetchone() == (
            12,
        )
