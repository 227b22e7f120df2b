"""A text classifier (TF-IDF + logistic regression on a ``string`` column), end to end.

``text``: a scikit-learn Pipeline whose ColumnTransformer vectorises the ``message`` string
column and scales a numeric ``amount``; ``text1``: ``Pipeline(TfidfVectorizer,
LogisticRegression)`` fitted on one 1-D column of strings, whose signature is that one
``string`` column. Served on a real gateway through /predict, /invocations and v2 (strings as
BYTES tensors); never on the float-matrix fast path; shadowed and A/B-tested; logged with the
message as sent; analysed after labels come back; bad input (a number or null for the text, a
missing column, a string for the amount) refused as a 4xx naming the field.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from arbiter.demo.traffic import describe_model, wait_for_arms_loaded, wait_until
from tests.flavors.lgbm_text_flow import (
    PROTOCOLS,
    analyze,
    drive,
    query,
    report,
    send,
    sent,
    v2_inputs,
)

#: arbiter.stats.verdict.types.Decision
DECISIONS = {"promote", "keep_champion", "continue", "rollback", "confirm_with_ab"}


def _pipeline(home: Any, model: str, version: str) -> Any:
    """The logged pipeline itself, loaded by MLflow, without the gateway."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=home.tracking_uri(), registry_uri=home.tracking_uri())
    return mlflow.sklearn.load_model(client.get_model_version_download_uri(model, version))


def _check_answers(answers: dict[str, Any], labels: list[int], p: np.ndarray) -> None:
    body = answers["arbiter"].body
    assert body["predictions"] == labels
    np.testing.assert_allclose([pr["1"] for pr in body["probabilities"]], p)
    assert answers["mlflow"].body["predictions"] == labels  # what `mlflow models serve` says
    outputs = {o["name"]: o for o in answers["v2"].body["outputs"]}
    assert outputs["predictions"]["data"] == labels
    n = len(labels)
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (n, 2))[:, 1], p)


def test_text_three_protocols_answer_and_log_the_message(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    reg = lgbm_text_registry
    server, home = lgbm_text_gateway({"text": {}, "text1": {}})
    rows = reg.text_rows[:6]
    frame = pd.DataFrame(rows)
    pipeline = _pipeline(home, "text", reg.versions["text"]["champion"])
    one_column = _pipeline(home, "text1", reg.versions["text1"]["champion"])
    p = pipeline.predict_proba(frame)[:, 1]
    p1 = one_column.predict_proba(frame["message"])[:, 1]
    messages = [{"message": r["message"]} for r in rows]
    with httpx.Client(base_url=server.url) as client:
        wait_for_arms_loaded(server.url, "text1")
        answers = {pr: sent(send(client, "text", pr, rows, "u1"), pr, 6) for pr in PROTOCOLS}
        answers1 = {pr: sent(send(client, "text1", pr, messages, "u1"), pr, 6) for pr in PROTOCOLS}
    _check_answers(answers, pipeline.predict(frame).tolist(), p)
    # One answer per row: handed the DataFrame, the 1-D pipeline would vectorise the column
    # name and answer one row (what MLflow's own pyfunc does with it).
    _check_answers(answers1, one_column.predict(frame["message"]).tolist(), p1)
    assert len(set(np.round(p1, 6))) > 1
    server.stop()
    logged = query(
        home,
        "SELECT model, protocol, row_index, features, prediction, score, error FROM predictions "
        "ORDER BY model, protocol, row_index",
    )
    assert len(logged) == 36
    for model, protocol, i, features, prediction, score, error in logged:
        assert error is None, (model, protocol, error)
        expected = rows[i] if model == "text" else messages[i]
        assert json.loads(features) == pytest.approx(expected), (model, protocol)
        assert score == pytest.approx((p if model == "text" else p1)[i]), (model, protocol)
        assert prediction in ("0", "1")


def _shadow_rows(home: Any) -> int:
    return query(home, "SELECT count(*) FROM predictions WHERE role = 'shadow'")[0][0]


def _assert_analysed(home: Any, champion_rows: int, challenger_rows: int) -> None:
    (experiment,) = analyze(home, "text")["experiments"]
    assert experiment["decision"] in DECISIONS, experiment
    arms = experiment["arms"]
    assert (arms["champion"]["labelled"], arms["challenger"]["labelled"]) == (
        champion_rows,
        challenger_rows,
    )
    assert arms["champion"]["errors"] == arms["challenger"]["errors"] == 0
    for side in experiment["confusion"]:
        assert side["labels"] == ["0", "1"], side
    assert experiment["criteria"], experiment


def test_text_shadow_logged_and_analysed(lgbm_text_gateway: Any, lgbm_text_registry: Any) -> None:
    reg = lgbm_text_registry
    shadow = {
        "strategy": "shadow",
        "shadow_executor": "thread",
        "shadow_max_in_flight": 256,
        "shadow_timeout_s": 30.0,
    }
    server, home = lgbm_text_gateway({"text": {"experiment": shadow}})
    wait_for_arms_loaded(server.url, "text", shadow=True)
    n = 240
    answers, _ = drive(server.url, "text", reg.text_rows[:n], reg.text_labels, reg.users)
    assert {a.arm for a in answers} == {"champion"}

    def settled() -> bool:
        state = describe_model(server.url, "text")["experiment"]["shadow"]
        return state["in_flight"] == 0 and _shadow_rows(home) >= n

    wait_until(settled, timeout_s=120.0, what="every mirrored text request logged")
    server.stop()
    versions = reg.versions["text"]
    per_protocol = {p: sum(a.rows for a in answers if a.protocol == p) for p in PROTOCOLS}
    assert query(
        home,
        "SELECT role, version, protocol, count(*), count(score), count(error) FROM predictions "
        "GROUP BY ALL ORDER BY ALL",
    ) == [
        (role, versions[alias], protocol, per_protocol[protocol], per_protocol[protocol], 0)
        for role, alias in (("served", "champion"), ("shadow", "challenger"))
        for protocol in sorted(PROTOCOLS)
    ]
    _assert_analysed(home, n, n)
    (summary,) = report(home, "text")["experiments"]
    labels = {m[0]["label"] for m in summary["models"].values()}
    assert labels == {"sklearn · Pipeline(ColumnTransformer → LogisticRegression)"}, labels
    assert summary["shadow"]["paired_rows"] == summary["shadow"]["labeled_rows"] == n
    assert summary["recommendation"]["decision"] in DECISIONS


def test_text_ab_sticky_logged_and_analysed(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    reg = lgbm_text_registry
    server, home = lgbm_text_gateway(
        {"text": {"experiment": {"strategy": "ab", "challenger_share": 0.5}}}
    )
    wait_for_arms_loaded(server.url, "text")
    n = 300
    answers, arms = drive(server.url, "text", reg.text_rows[:n], reg.text_labels, reg.users)
    assert 0.25 < sum(a == "challenger" for a in arms.values()) / len(arms) < 0.75
    by_arm = {arm: sum(a.rows for a in answers if a.arm == arm) for arm in arms.values()}
    server.stop()
    versions = reg.versions["text"]
    assert query(
        home,
        "SELECT arm, version, count(*), count(score), count(error) FROM predictions "
        "WHERE role = 'served' GROUP BY ALL ORDER BY ALL",
    ) == [(arm, versions[arm], by_arm[arm], by_arm[arm], 0) for arm in ("challenger", "champion")]
    sticky = "SELECT unit_id FROM predictions GROUP BY 1 HAVING count(DISTINCT arm) > 1"
    assert query(home, f"SELECT count(*) FROM ({sticky})") == [(0,)]
    _assert_analysed(home, by_arm["champion"], by_arm["challenger"])


#: (model, protocol, how the rows are broken, status, field, words the message must contain)
BAD = [
    ("text", "arbiter", "number", 422, "features[1].message", "must be a string, got int"),
    ("text", "arbiter", "null", 422, "features[1].message", "is required but is null"),
    ("text", "arbiter", "missing", 422, "features[0].message", "missing feature 'message'"),
    ("text", "arbiter", "amount", 422, "features[0].amount", "must be a number"),
    ("text", "mlflow", "number", 400, "dataframe_split.message", "must be a string, got int"),
    ("text", "mlflow", "null", 400, "dataframe_split.message", "is required but is null"),
    ("text", "mlflow", "missing", 400, "dataframe_split.message", "missing feature 'message'"),
    ("text", "mlflow", "amount", 400, "dataframe_split.amount", "amount"),
    ("text", "v2", "number", 400, "inputs[0].data", "'message': BYTES data must be strings"),
    ("text", "v2", "fp64", 400, "inputs[0]", "feature 'message' must be a string"),
    ("text", "v2", "missing", 400, "inputs", "['message']"),
    ("text", "v2", "amount", 400, "inputs[1].data", "'amount'"),
    ("text1", "arbiter", "number", 422, "features[1].message", "must be a string, got int"),
    ("text1", "mlflow", "number", 400, "dataframe_split.message", "must be a string, got int"),
    ("text1", "v2", "fp64", 400, "inputs[0]", "feature 'message' must be a string"),
]


def test_text_bad_input_is_a_4xx_naming_the_field(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    """Refused before the pipeline runs: a client error, no row logged, no model error."""
    server, home = lgbm_text_gateway({"text": {}, "text1": {}})
    rows = lgbm_text_registry.text_rows[:2]
    broken = {
        "number": [rows[0], dict(rows[1], message=42)],
        "null": [rows[0], dict(rows[1], message=None)],
        "missing": [{"amount": r["amount"]} for r in rows],
        "amount": [dict(rows[0], amount="lots"), rows[1]],
    }
    wait_for_arms_loaded(server.url, "text1")
    with httpx.Client(base_url=server.url) as client:
        for model, protocol, how, status, field, words in BAD:
            bad = broken.get(how, rows)
            if model == "text1":
                bad = [{"message": r["message"]} for r in bad]
            if how == "fp64":  # a number tensor for the string column
                tensors = v2_inputs(bad)
                tensors[0] = {"name": "message", "datatype": "FP64", "shape": [2], "data": [1, 2]}
                r = client.post(f"/v2/models/{model}/infer", json={"inputs": tensors})
            else:
                r = send(client, model, protocol, bad, "u1")
            assert r.status_code == status, (model, protocol, how, r.text)
            body = r.json()
            error = body.get("error")
            message = error["message"] if isinstance(error, dict) else error or body["message"]
            got = error["field"] if isinstance(error, dict) else body["field"]
            assert got == field and words in message, (model, protocol, how, body)
        metrics = client.get("/metrics").text
    assert "arbiter_model_errors_total{" not in metrics
    assert 'kind="model_error"' not in metrics
    server.stop()
    assert query(home, "SELECT count(*) FROM predictions") == [(0,)]
