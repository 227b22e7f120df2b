"""A LightGBM Booster (``lightgbm.train``) logged with ``mlflow.lightgbm``, end to end.

Served on a real gateway through /predict, /invocations and v2; shadowed and A/B-tested
against a second booster; its rows logged with a class label and P(class 1) like a
scikit-learn classifier's; analysed after labels come back; bad input refused as a 4xx that
names the field, with nothing logged.
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


def _booster_output(home: Any, version: str, rows: list[dict[str, float]]) -> np.ndarray:
    """P(class 1) from the logged booster itself, loaded by MLflow, without the gateway."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=home.tracking_uri(), registry_uri=home.tracking_uri())
    booster = mlflow.lightgbm.load_model(client.get_model_version_download_uri("lgbm", version))
    return np.asarray(booster.predict(pd.DataFrame(rows)))


def test_lgbm_three_protocols_answer_and_log_label_and_score(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    server, home = lgbm_text_gateway({"lgbm": {}})
    rows = lgbm_text_registry.lgbm_rows[:6]
    p = _booster_output(home, lgbm_text_registry.versions["lgbm"]["champion"], rows)
    labels = (p > 0.5).astype(int).tolist()
    with httpx.Client(base_url=server.url) as client:
        answers = {
            proto: sent(send(client, "lgbm", proto, rows, "u1"), proto, 6) for proto in PROTOCOLS
        }
    # arbiter JSON: class labels with both probabilities, as for a scikit-learn classifier
    body = answers["arbiter"].body
    assert body["predictions"] == labels
    np.testing.assert_allclose([pr["1"] for pr in body["probabilities"]], p)
    np.testing.assert_allclose([pr["0"] for pr in body["probabilities"]], 1 - p)
    # MLflow scoring: exactly what `mlflow models serve` answers for a booster, P(class 1)
    np.testing.assert_allclose(answers["mlflow"].body["predictions"], p)
    # v2: the booster's output as `predictions`, and a rows x 2 `probabilities` tensor
    outputs = {o["name"]: o for o in answers["v2"].body["outputs"]}
    np.testing.assert_allclose(outputs["predictions"]["data"], p)
    assert outputs["probabilities"]["shape"] == [6, 2]
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (6, 2))[:, 1], p)
    server.stop()
    logged = query(
        home,
        "SELECT protocol, row_index, prediction, score, probabilities, error FROM predictions "
        "ORDER BY protocol, row_index",
    )
    assert sorted({r[0] for r in logged}) == sorted(PROTOCOLS) and len(logged) == 18
    for protocol, i, prediction, score, probabilities, error in logged:
        assert error is None, (protocol, error)
        assert prediction == str(labels[i]), protocol
        assert score == pytest.approx(p[i]), protocol
        assert set(json.loads(probabilities)) == {"0", "1"}


def test_lgbm_multiclass_booster_answers_labels_and_class_probabilities(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    import mlflow

    server, home = lgbm_text_gateway({"lgbm3": {}})
    rows = lgbm_text_registry.lgbm_rows[:5]
    client = mlflow.MlflowClient(tracking_uri=home.tracking_uri(), registry_uri=home.tracking_uri())
    uri = client.get_model_version_download_uri(
        "lgbm3", lgbm_text_registry.versions["lgbm3"]["champion"]
    )
    proba = np.asarray(mlflow.lightgbm.load_model(uri).predict(pd.DataFrame(rows)))
    assert proba.shape == (5, 3)
    with httpx.Client(base_url=server.url) as http:
        answers = {pr: sent(send(http, "lgbm3", pr, rows, "u1"), pr, 5) for pr in PROTOCOLS}
    body = answers["arbiter"].body
    assert body["predictions"] == proba.argmax(axis=1).tolist()
    np.testing.assert_allclose(
        [[pr[str(k)] for k in range(3)] for pr in body["probabilities"]], proba
    )
    np.testing.assert_allclose(answers["mlflow"].body["predictions"], proba)  # as MLflow answers
    outputs = {o["name"]: o for o in answers["v2"].body["outputs"]}
    assert outputs["probabilities"]["shape"] == [5, 3]
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (5, 3)), proba)
    server.stop()
    logged = query(home, "SELECT prediction, score, probabilities FROM predictions ORDER BY ALL")
    assert len(logged) == 15
    assert all(score is None and set(json.loads(pr)) == {"0", "1", "2"} for _, score, pr in logged)


def _shadow_rows(home: Any) -> int:
    return query(home, "SELECT count(*) FROM predictions WHERE role = 'shadow'")[0][0]


def test_lgbm_shadow_logged_and_analysed(lgbm_text_gateway: Any, lgbm_text_registry: Any) -> None:
    """The challenger booster scores every request in the shadow worker processes (the
    default executor: the booster is loaded there too)."""
    reg = lgbm_text_registry
    shadow = {"strategy": "shadow", "shadow_max_in_flight": 256, "shadow_timeout_s": 30.0}
    server, home = lgbm_text_gateway({"lgbm": {"experiment": shadow}})
    wait_for_arms_loaded(server.url, "lgbm", shadow=True)
    n = 240
    answers, _ = drive(server.url, "lgbm", reg.lgbm_rows[:n], reg.lgbm_labels, reg.users)
    assert {a.arm for a in answers} == {"champion"}

    def settled() -> bool:
        state = describe_model(server.url, "lgbm")["experiment"]["shadow"]
        return state["in_flight"] == 0 and _shadow_rows(home) >= n

    wait_until(settled, timeout_s=120.0, what="every mirrored lgbm request logged")
    server.stop()
    versions = reg.versions["lgbm"]
    counts = query(
        home,
        "SELECT role, version, protocol, count(*), count(score), count(error) FROM predictions "
        "GROUP BY ALL ORDER BY ALL",
    )
    per_protocol = {p: sum(a.rows for a in answers if a.protocol == p) for p in PROTOCOLS}
    expected = [
        (role, versions[alias], protocol, per_protocol[protocol], per_protocol[protocol], 0)
        for role, alias in (("served", "champion"), ("shadow", "challenger"))
        for protocol in sorted(PROTOCOLS)
    ]
    assert counts == expected
    _assert_analysed(home, n, n)
    (summary,) = report(home, "lgbm")["experiments"]
    assert {m[0]["label"] for m in summary["models"].values()} == {"lightgbm · Booster"}
    shadow_summary = summary["shadow"]
    assert shadow_summary["paired_rows"] == shadow_summary["labeled_rows"] == n
    assert 0.5 <= shadow_summary["challenger_mean_confidence"] <= 1.0  # from probabilities
    assert summary["recommendation"]["decision"] in DECISIONS


def _assert_analysed(home: Any, champion_rows: int, challenger_rows: int) -> None:
    """``arbiter analyze`` decides, on every label, from class labels (not probabilities)."""
    (experiment,) = analyze(home, "lgbm")["experiments"]
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


def test_lgbm_ab_sticky_logged_and_analysed(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    """Each user keeps one booster across the three protocols; both arms are analysed."""
    reg = lgbm_text_registry
    ab = {"strategy": "ab", "challenger_share": 0.5}
    server, home = lgbm_text_gateway({"lgbm": {"experiment": ab}})
    wait_for_arms_loaded(server.url, "lgbm")
    n = 300
    answers, arms = drive(server.url, "lgbm", reg.lgbm_rows[:n], reg.lgbm_labels, reg.users)
    assert 0.25 < sum(a == "challenger" for a in arms.values()) / len(arms) < 0.75
    by_arm = {arm: sum(a.rows for a in answers if a.arm == arm) for arm in arms.values()}
    server.stop()
    versions = reg.versions["lgbm"]
    logged = query(
        home,
        "SELECT arm, version, count(*), count(score), count(error) FROM predictions "
        "WHERE role = 'served' GROUP BY ALL ORDER BY ALL",
    )
    assert logged == [
        (arm, versions[arm], by_arm[arm], by_arm[arm], 0) for arm in ("challenger", "champion")
    ]
    # sticky in the log too: one arm per unit
    assert query(
        home,
        "SELECT count(*) FROM (SELECT unit_id FROM predictions GROUP BY 1 "
        "HAVING count(DISTINCT arm) > 1)",
    ) == [(0,)]
    _assert_analysed(home, by_arm["champion"], by_arm["challenger"])


def _bytes_tensor(rows: list[dict[str, Any]], column: str) -> dict[str, Any]:
    return {"name": column, "datatype": "BYTES", "shape": [len(rows)], "data": ["lots"] * len(rows)}


#: (protocol, how the rows are broken, status, field, words the message must contain)
BAD = [
    ("arbiter", "string", 422, "features[1].amount", "must be a number"),
    ("arbiter", "missing", 422, "features[0].hour", "missing feature 'hour'"),
    ("mlflow", "string", 400, "dataframe_split.amount", "amount"),
    ("mlflow", "missing", 400, "dataframe_split.hour", "missing feature 'hour'"),
    ("v2", "string", 400, "inputs[0].data", "'amount'"),
    ("v2", "bytes", 400, "inputs[0]", "feature 'amount' must be a number"),
    ("v2", "missing", 400, "inputs", "['hour']"),
]


def test_lgbm_bad_input_is_a_4xx_naming_the_field(
    lgbm_text_gateway: Any, lgbm_text_registry: Any
) -> None:
    """Refused before the booster runs: a client error, no row logged, no model error."""
    server, home = lgbm_text_gateway({"lgbm": {}})
    rows = lgbm_text_registry.lgbm_rows[:2]
    broken = {
        "string": [rows[0], dict(rows[1], amount="lots")],
        "missing": [{k: v for k, v in r.items() if k != "hour"} for r in rows],
    }
    with httpx.Client(base_url=server.url) as client:
        for protocol, how, status, field, words in BAD:
            if how == "bytes":
                tensors = v2_inputs(rows)
                tensors[0] = _bytes_tensor(rows, "amount")
                r = client.post("/v2/models/lgbm/infer", json={"inputs": tensors})
            else:
                r = send(client, "lgbm", protocol, broken[how], "u1")
            assert r.status_code == status, (protocol, how, r.text)
            body = r.json()
            error = body.get("error")
            message = error["message"] if isinstance(error, dict) else error or body["message"]
            got = error["field"] if isinstance(error, dict) else body["field"]
            assert got == field and words in message, (protocol, how, body)
        metrics = client.get("/metrics").text
    assert "arbiter_model_errors_total{" not in metrics
    assert 'arbiter_errors_total{kind="model_error",model="lgbm"}' not in metrics
    server.stop()
    assert query(home, "SELECT count(*) FROM predictions") == [(0,)]
