"""A model with several outputs per row (label, P(fraud), risk score) end to end.

Arbiter's convention (arbiter.servable.scored_output): the ``prediction`` column, else
``label``, is the prediction that is logged and analysed; ``probability`` (P(class 1)) or
``probability_<class>`` columns are logged as class probabilities, so label metrics work; every
column goes back to the caller: per row under ``outputs`` on /predict, MLflow's own records on
/invocations, one tensor per column on OIP v2.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats

from arbiter.analysis import analyze_model
from arbiter.demo.data import make_transactions
from arbiter.demo.flavor_models import RiskModel
from arbiter.demo.train import train_challenger, train_champion
from arbiter.events import EventStore
from tests.flavors.regression_multi_support import (
    build_registry,
    logged,
    metric_total,
    start_on,
    v2_inputs,
    wait_for,
)

MODEL = "risk"
DECISION = {"min_sample_per_arm": 50, "sequential": False, "guardrails": {"max_error_rate": 0.1}}


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    train = make_transactions(3_000, seed=21)
    columns = list(train.features.columns)
    return {
        "champion": RiskModel(train_champion(train.features, train.labels), columns),
        "challenger": RiskModel(train_challenger(train.features, train.labels), columns),
        "example": train.features.head(5),
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Any]) -> Path:
    def log(registry: Any) -> None:
        example = models["example"]
        for alias in ("champion", "challenger"):
            model = models[alias]
            registry.log_pyfunc_model(
                MODEL,
                model,
                example,
                aliases=(alias,),
                output_example=model.predict(None, example),
            )

    return build_registry(tmp_path_factory.mktemp("multi-output-home"), log)


@pytest.fixture(scope="module")
def traffic() -> tuple[list[dict[str, Any]], np.ndarray, list[str]]:
    data = make_transactions(1_200, seed=22, n_users=200)
    return data.features.to_dict("records"), data.labels, [f"u{u}" for u in data.users]


def test_every_output_through_every_protocol(
    running: Any, tmp_path: Path, template: Path, models: dict[str, Any], traffic: Any
) -> None:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    rows, _, _ = traffic
    server, _ = start_on(running, tmp_path, template, {MODEL: {}})
    expected = models["champion"].predict(None, pd.DataFrame(rows[:4]))
    with httpx.Client(base_url=server.url) as client:
        one = client.post(f"/models/{MODEL}/predict", json={"features": rows[:4]}).json()
        assert one["predictions"] == expected["label"].tolist()
        assert one["outputs"] == expected.to_dict("records")
        p = expected["probability"].to_numpy()
        assert [row["1"] for row in one["probabilities"]] == pytest.approx(p, rel=1e-12)
        assert [row["0"] for row in one["probabilities"]] == pytest.approx(1 - p, rel=1e-12)

        # /invocations: byte for byte what `mlflow models serve` answers for this output.
        r = client.post("/invocations", json={"dataframe_records": rows[:4]})
        reference = io.StringIO()
        predictions_to_json(expected, reference)
        assert orjson.loads(r.content) == orjson.loads(reference.getvalue())
        assert list(orjson.loads(r.content)["predictions"][0]) == ["label", "probability", "score"]

        # OIP v2: one tensor per column, named as the column, typed from the output signature.
        v2 = client.post(f"/v2/models/{MODEL}/infer", json=v2_inputs(rows[:4])).json()
        tensors = {o["name"]: o for o in v2["outputs"]}
        assert list(tensors) == ["label", "probability", "score"]
        assert tensors["label"]["datatype"] == "INT64"
        assert tensors["label"]["data"] == expected["label"].tolist()
        assert tensors["probability"]["data"] == pytest.approx(p, rel=1e-12)
        assert tensors["score"]["data"] == expected["score"].tolist()
        only = client.post(
            f"/v2/models/{MODEL}/infer",
            json={**v2_inputs(rows[:4]), "outputs": [{"name": "score"}]},
        ).json()
        assert [o["name"] for o in only["outputs"]] == ["score"]
        meta = client.get(f"/v2/models/{MODEL}").json()
        assert meta["outputs"] == [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "score", "datatype": "INT64", "shape": [-1]},
        ]


def test_bad_input_names_the_field_and_logs_nothing(
    running: Any, tmp_path: Path, template: Path, traffic: Any
) -> None:
    rows, _, _ = traffic
    config = {MODEL: {"experiment": {"strategy": "shadow", "shadow_executor": "thread"}}}
    server, home = start_on(running, tmp_path, template, config)
    with httpx.Client(base_url=server.url) as client:
        bad = dict(rows[0], merchant_risk="high")
        r = client.post(f"/models/{MODEL}/predict", json={"features": [rows[1], bad]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "features[1].merchant_risk"
        missing = {k: v for k, v in rows[0].items() if k != "hour"}
        r = client.post(f"/models/{MODEL}/invocations", json={"dataframe_records": [missing]})
        assert r.status_code == 400 and "hour" in r.json()["message"]
        body = v2_inputs(rows[:2])
        del body["inputs"][1]
        r = client.post(f"/v2/models/{MODEL}/infer", json=body)
        assert r.status_code == 400 and "hour" in r.text, r.text
        r = client.post(
            f"/v2/models/{MODEL}/infer",
            json={**v2_inputs(rows[:2]), "outputs": [{"name": "risk"}]},
        )
        assert r.status_code == 400 and "risk" in r.text, r.text
    server.stop()
    predictions, _ = logged(home)
    assert len(predictions) == 0


def _send(client: httpx.Client, rows: list[dict[str, Any]], user: str, i: int) -> str:
    if i % 3 == 0:
        r = client.post(f"/models/{MODEL}/predict", json={"user_id": user, "features": rows})
        assert r.status_code == 200, r.text
        return r.json()["request_id"]
    if i % 3 == 1:
        r = client.post(
            f"/models/{MODEL}/invocations",
            json={"dataframe_records": rows},
            headers={"X-Unit-Id": user},
        )
        assert r.status_code == 200, r.text
        return r.headers["X-Arbiter-Request-Id"]
    body = {**v2_inputs(rows), "parameters": {"unit_id": user}}
    r = client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert r.status_code == 200, r.text
    return r.json()["parameters"]["arbiter_request_id"]


def _run(
    client: httpx.Client, traffic: Any, n_requests: int, per_request: int
) -> list[tuple[str, int]]:
    rows, labels, users = traffic
    keys: list[tuple[str, int]] = []
    for i in range(n_requests):
        part = slice(i * per_request, (i + 1) * per_request)
        rid = _send(client, rows[part], users[i * per_request], i)
        keys += [(rid, k) for k in range(per_request)]
    items = [
        {"request_id": rid, "row_index": k, "label": int(y)}
        for (rid, k), y in zip(keys, labels, strict=False)
    ]
    for start in range(0, len(items), 200):
        assert client.post("/feedback", json={"feedback": items[start : start + 200]}).is_success
    return keys


def _check_log(predictions: pd.DataFrame, models: dict[str, Any], rows: list[dict]) -> None:
    """Each logged row holds the model's label as the prediction and its P(fraud)."""
    assert predictions["error"].isna().all()
    for alias in ("champion", "challenger"):
        mine = predictions[predictions["alias"] == alias]
        features = pd.DataFrame([orjson.loads(f) for f in mine["features"]])
        expected = models[alias].predict(None, features[list(rows[0])])
        assert mine["prediction"].tolist() == expected["label"].astype(str).tolist()
        assert mine["score"].to_numpy() == pytest.approx(expected["probability"], rel=1e-12)
        p = expected["probability"].to_numpy()
        assert mine["confidence"].to_numpy() == pytest.approx(np.maximum(p, 1 - p), rel=1e-12)
        logged_p = [orjson.loads(j)["1"] for j in mine["probabilities"]]
        assert logged_p == pytest.approx(p, rel=1e-12)


def test_shadow_logs_and_analyses_the_label(
    running: Any, tmp_path: Path, template: Path, models: dict[str, Any], traffic: Any
) -> None:
    n_requests, per_request = 60, 5
    config = {
        MODEL: {
            "experiment": {
                "strategy": "shadow",
                "unit_field": "user_id",
                "shadow_executor": "thread",
                "shadow_max_in_flight": 64,
            },
            "decision": DECISION,
        }
    }
    server, home = start_on(running, tmp_path, template, config)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        keys = _run(client, traffic, n_requests, per_request)
        wait_for(
            lambda: (
                metric_total(client, f'arbiter_shadow_total{{model="{MODEL}",outcome="ok"}}')
                >= n_requests
            ),
            "every shadow prediction",
        )
    server.stop()
    predictions, feedback = logged(home)
    assert predictions.groupby("role").size().to_dict() == {
        "served": len(keys),
        "shadow": len(keys),
    }
    _check_log(predictions, models, traffic[0])

    # Independent reference: McNemar on the logged labels and predictions, paired by row.
    joined = predictions.merge(feedback, on=["request_id", "row_index"])
    joined["correct"] = joined["prediction"] == joined["label"]
    wide = joined.pivot_table(index=["request_id", "row_index"], columns="role", values="correct")
    a, b = wide["served"].astype(bool), wide["shadow"].astype(bool)
    only_b, only_a = int((b & ~a).sum()), int((a & ~b).sum())
    with EventStore(home.root).connect() as con:
        (analysis,) = analyze_model(con, MODEL, model_config=home.model_config(MODEL))
    assert analysis.task == "classification" and analysis.mode == "shadow"
    assert analysis.arms["champion"]["labelled"] == len(keys)
    assert analysis.arms["champion"]["accuracy"] == pytest.approx(a.mean(), rel=1e-12)
    assert analysis.arms["challenger"]["accuracy"] == pytest.approx(b.mean(), rel=1e-12)
    assert analysis.primary["name"] == "mcnemar"
    if only_a + only_b:
        exact = stats.binomtest(only_b, only_a + only_b).pvalue
        assert analysis.primary["p_value"] == pytest.approx(exact, rel=1e-6)


def test_ab_logs_and_analyses_log_loss_from_the_probability(
    running: Any, tmp_path: Path, template: Path, models: dict[str, Any], traffic: Any
) -> None:
    """A/B with the log loss as the primary metric: the logged P(fraud) is what it reads."""
    from sklearn.metrics import log_loss

    config = {
        MODEL: {
            "experiment": {"strategy": "ab", "unit_field": "user_id", "challenger_share": 0.5},
            "decision": {**DECISION, "primary_metric": "log_loss"},
            "metrics": {"log_loss": {"label_metric": "log_loss"}},
        }
    }
    server, home = start_on(running, tmp_path, template, config)
    with httpx.Client(base_url=server.url) as client:
        keys = _run(client, traffic, 150, 2)
    server.stop()
    predictions, feedback = logged(home)
    assert len(predictions) == len(keys)
    assert (predictions.groupby("unit_id")["arm"].nunique() == 1).all()
    _check_log(predictions, models, traffic[0])
    joined = predictions.merge(feedback, on=["request_id", "row_index"])
    with EventStore(home.root).connect() as con:
        (analysis,) = analyze_model(con, MODEL, model_config=home.model_config(MODEL))
    assert analysis.task == "classification" and analysis.mode == "ab"
    assert analysis.primary_metric == "log_loss"
    data = analysis.metrics.data["log_loss"]
    for side in ("champion", "challenger"):
        arm = joined[joined["arm"] == side]
        reference = log_loss(arm["label"].astype(int), arm["score"], labels=[0, 1])
        assert data.stats[side].mean == pytest.approx(reference, rel=1e-9)


# --------------------------------------------------------------------------- the convention


def test_prediction_column_and_class_probabilities() -> None:
    from arbiter.prediction_log import RequestContext, prediction_columns
    from arbiter.servable import output_columns, scored_output

    frame = pd.DataFrame(
        {
            "score": [10, 20],
            "prediction": ["cat", "dog"],
            "probability_cat": [0.7, 0.2],
            "probability_dog": [0.3, 0.8],
        }
    )
    scored = scored_output(frame)
    assert scored.predictions == ["cat", "dog"]  # `prediction` wins over the first column
    assert scored.classes == ["cat", "dog"]
    assert scored.proba.tolist() == [[0.7, 0.3], [0.2, 0.8]]
    assert list(output_columns(scored)) == [
        "score",
        "prediction",
        "probability_cat",
        "probability_dog",
    ]
    ctx = RequestContext("r", 0, "m", "e", "none", None, True, "champion", "arbiter")
    columns = prediction_columns(
        ctx, role="served", alias="champion", version="1", features_json=["{}", "{}"],
        predictions=scored.predictions, proba=scored.proba, classes=scored.classes,
        latency_ms=1.0,
    )  # fmt: skip
    assert columns["prediction"] == ["cat", "dog"]
    assert columns["confidence"] == [0.7, 0.8]
    assert [orjson.loads(p) for p in columns["probabilities"]] == [
        {"cat": 0.7, "dog": 0.3},
        {"cat": 0.2, "dog": 0.8},
    ]


def test_first_column_without_a_named_prediction_and_text_probability_ignored() -> None:
    from arbiter.servable import output_columns, scored_output

    scored = scored_output(pd.DataFrame({"amount": [1.5, 2.5], "probability": ["hi", "lo"]}))
    assert scored.predictions == [1.5, 2.5]
    assert scored.proba is None and scored.classes is None
    single = scored_output(pd.DataFrame({"p": [0.1, 0.2]}))  # one column: a plain prediction
    assert single.predictions == [0.1, 0.2] and output_columns(single) is None
    assert scored_output(np.array([1, 0])).predictions == [1, 0]
