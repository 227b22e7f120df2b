"""A small PyTorch network served end to end: every protocol, shadow and A/B, log, analysis.

Two 2-layer MLPs (``nn.Sequential``, sigmoid output) trained on the demo's transactions and
logged with ``mlflow.pytorch`` (``pt2`` format, one ``[batch, 8]`` float32 tensor signature,
column names and classes in the MLmodel metadata: arbiter.tensors). Answers are checked
against the network called directly with torch; bad input on each protocol must be a 4xx
naming the field, with nothing logged.

torch is an optional extra: these tests skip without it, except under ``make test``, which
sets ARBITER_REQUIRE_TORCH=1 so that a missing torch fails CI instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("ARBITER_REQUIRE_TORCH"):
        pytest.fail(
            "ARBITER_REQUIRE_TORCH is set (make test) but torch is not installed: "
            "pip install -e '.[torch]'",
            pytrace=False,
        )
    pytest.skip("torch is not installed (pip install -e '.[torch]')", allow_module_level=True)

from arbiter.cli import app
from arbiter.config import HomeConfig, dump_config
from arbiter.demo.data import FEATURES, make_transactions
from arbiter.demo.torch_model import train_mlp
from arbiter.demo.traffic import describe_model, wait_for_arms_loaded, wait_until
from arbiter.events import EventStore
from arbiter.home import Home
from arbiter.registry import registry_for_home
from tests.flavors.lgbm_text_flow import assert_v2_metadata_describes

MODEL = "fraud-torch"
runner = CliRunner()


@dataclass(frozen=True)
class TorchTemplate:
    root: Path
    nets: dict[str, Any]  # version -> the network as trained
    rows: list[dict[str, float]]
    labels: list[int]
    users: list[str]


@pytest.fixture(scope="module")
def torch_template(tmp_path_factory: pytest.TempPathFactory) -> TorchTemplate:
    root = tmp_path_factory.mktemp("torch-home")
    registry = registry_for_home(root)
    train = make_transactions(4_000, seed=1)
    traffic = make_transactions(1_000, seed=2)
    example = train.features.head(4).to_numpy(np.float32)
    nets = {}
    for alias, hidden, steps, seed in (("champion", 2, 15, 0), ("challenger", 16, 300, 1)):
        net = train_mlp(train.features, train.labels, hidden=hidden, steps=steps, seed=seed)
        version = registry.log_pytorch_model(
            MODEL, net, list(FEATURES), example, classes=[0, 1], aliases=(alias,)
        )
        nets[version] = net
    return TorchTemplate(
        root,
        nets,
        traffic.features.to_dict("records"),
        traffic.labels.tolist(),
        traffic.users.tolist(),
    )


@pytest.fixture
def serve(torch_template: TorchTemplate, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a real gateway on a copy of the template registry with ``experiment``."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    servers: list[Any] = []

    def start(experiment: dict[str, Any]) -> tuple[Any, Home]:
        home = Home.at(tmp_path / "home", create=True)
        shutil.copy(torch_template.root / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate(
            {
                "models": {MODEL: {"experiment": experiment}},
                "events": {"flush_interval_s": 0.1},
            }
        )
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        server = ServerThread(create_app(home)).start()
        servers.append(server)
        wait_for_arms_loaded(server.url, MODEL, shadow=experiment.get("strategy") == "shadow")
        return server, home

    yield start
    for server in servers:
        server.stop()


def _p_fraud(net: Any, rows: list[dict[str, float]]) -> np.ndarray:
    """The network's P(fraud) called directly, float32 as it is served."""
    x = np.array([[row[c] for c in FEATURES] for row in rows], dtype=np.float32)
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()[:, 0]


def _query(home: Home, sql: str) -> list[tuple[Any, ...]]:
    with EventStore(home.root).connect() as con:
        return con.execute(sql).fetchall()


def _analyze(home: Home) -> dict[str, Any]:
    result = runner.invoke(
        app, ["analyze", "--home", str(home.root), "--model", MODEL, "--json", "--no-html"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    (experiment,) = json.loads(result.stdout)["experiments"]
    return experiment


def test_the_registry_loads_the_tensor_layout(torch_template: TorchTemplate) -> None:
    registry = registry_for_home(torch_template.root)
    model = registry.load(MODEL, "2")
    assert model.tensor is not None and model.tensor.columns == tuple(FEATURES)
    assert model.tensor.dtype == np.float32 and model.classes == [0, 1]
    assert model.schema is not None and model.schema.names == tuple(FEATURES)
    assert {f.type for f in model.schema.features} == {"float"}
    rows = torch_template.rows[:50]
    scored = model.predict_rows(rows)
    p = _p_fraud(torch_template.nets["2"], rows)
    np.testing.assert_allclose(scored.proba[:, 1], p, rtol=1e-6)
    np.testing.assert_allclose(scored.proba.sum(axis=1), 1.0)
    assert scored.predictions == (p > 0.5).astype(int).tolist()
    assert scored.raw.shape == (50, 1)  # the network's own output, for /invocations and v2


def test_three_protocols_in_a_shadow_test_logged_and_analysed(
    serve: Callable[..., Any], torch_template: TorchTemplate
) -> None:
    # The default shadow executor: the challenger runs in a worker process that loads it
    # from the registry itself (its tensor layout included).
    server, home = serve(
        {"strategy": "shadow", "shadow_max_in_flight": 256, "shadow_timeout_s": 60.0}
    )
    rows, labels = torch_template.rows, torch_template.labels
    champion, challenger = torch_template.nets["1"], torch_template.nets["2"]
    feedback: list[dict[str, Any]] = []
    n_predict = 150
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for i in range(n_predict):
            r = client.post(
                f"/models/{MODEL}/predict", json={"unit_id": f"u{i}", "features": rows[i]}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["arm"] == "champion" and body["version"] == "1"
            p = float(_p_fraud(champion, [rows[i]])[0])
            assert body["prediction"] == int(p > 0.5)
            assert body["probabilities"][0]["1"] == pytest.approx(p, rel=1e-6)
            feedback.append({"request_id": body["request_id"], "label": labels[i]})

        batch = rows[200:203]
        tensor = [[row[c] for c in FEATURES] for row in batch]
        expected = _p_fraud(champion, batch)
        for form in ("inputs", "instances"):
            r = client.post(f"/models/{MODEL}/invocations", json={form: tensor})
            assert r.status_code == 200, r.text
            # What `mlflow models serve` answers: the network's [batch, 1] output.
            got = np.array(r.json()["predictions"])
            assert got.shape == (3, 1)
            np.testing.assert_allclose(got[:, 0], expected, rtol=1e-6)
        split = {"dataframe_split": {"columns": list(FEATURES), "data": tensor}}
        r = client.post(f"/models/{MODEL}/invocations", json=split)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.array(r.json()["predictions"])[:, 0], expected, rtol=1e-6)

        # v2 metadata advertises the signature's tensor; a client sends it as advertised.
        (advertised,) = client.get(f"/v2/models/{MODEL}").json()["inputs"]
        assert advertised == {"name": "input-0", "datatype": "FP32", "shape": [-1, 8]}
        v2 = {"inputs": [{**advertised, "shape": [3, len(FEATURES)], "data": tensor}]}
        r = client.post(f"/v2/models/{MODEL}/infer", json=v2)
        assert r.status_code == 200, r.text
        (out,) = r.json()["outputs"]
        assert out["name"] == "predictions" and out["shape"] == [3, 1]
        assert out["datatype"] == "FP32"
        np.testing.assert_allclose(out["data"], expected, rtol=1e-6)
        # ... and its outputs as inference returns them: the network's own FP32 [batch, 1].
        assert_v2_metadata_describes(client, MODEL, r.json())
        outputs = client.get(f"/v2/models/{MODEL}").json()["outputs"]
        assert outputs == [{"name": "predictions", "datatype": "FP32", "shape": [-1, 1]}]

        stored = client.post("/feedback", json={"feedback": feedback})
        assert stored.status_code == 200 and stored.json()["stored"] == n_predict

        def settled() -> bool:
            shadow = describe_model(server.url, MODEL)["experiment"]["shadow"]
            logged = _query(home, "SELECT count(*) FROM predictions WHERE role = 'shadow'")
            assert shadow["dropped"] == 0, shadow
            return shadow["in_flight"] == 0 and logged[0][0] >= n_predict + 12

        wait_until(settled, timeout_s=60.0, what="every mirrored request logged")
    server.stop()  # flushes the event writer

    logged = _query(
        home,
        "SELECT role, version, protocol, count(*), count(error) FROM predictions "
        "GROUP BY ALL ORDER BY ALL",
    )
    assert logged == [
        ("served", "1", "arbiter", n_predict, 0),
        ("served", "1", "mlflow", 9, 0),
        ("served", "1", "v2", 3, 0),
        ("shadow", "2", "arbiter", n_predict, 0),
        ("shadow", "2", "mlflow", 9, 0),
        ("shadow", "2", "v2", 3, 0),
    ]
    # Every protocol logs named rows and the challenger's own probabilities.
    features, score = _query(
        home,
        "SELECT features, score FROM predictions WHERE role = 'shadow' AND protocol = 'v2' "
        "ORDER BY request_id, row_index LIMIT 1",
    )[0]
    assert list(json.loads(features)) == list(FEATURES)
    assert score == pytest.approx(float(_p_fraud(challenger, batch[:1])[0]), rel=1e-6)

    experiment = _analyze(home)
    assert experiment["mode"] == "shadow" and experiment["decision"] == "continue"
    assert experiment["decided_on"] == "log_loss"  # the logged probabilities were used
    y = np.array(labels[:n_predict])
    for arm, net in (("champion", champion), ("challenger", challenger)):
        stats = experiment["arms"][arm]
        assert stats["labelled"] == n_predict and stats["errors"] == 0
        p = _p_fraud(net, rows[:n_predict])
        assert stats["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))


def test_ab_test_assigns_units_and_is_analysed(
    serve: Callable[..., Any], torch_template: TorchTemplate
) -> None:
    server, home = serve({"strategy": "ab", "challenger_share": 0.5, "unit_field": "user_id"})
    rows, labels, users = torch_template.rows, torch_template.labels, torch_template.users
    nets = torch_template.nets
    seen: dict[str, str] = {}
    feedback = []
    n = 200
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for i in range(n):
            r = client.post(
                f"/models/{MODEL}/predict", json={"user_id": users[i], "features": rows[i]}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert seen.setdefault(users[i], body["arm"]) == body["arm"]  # sticky per unit
            p = float(_p_fraud(nets[body["version"]], [rows[i]])[0])
            assert body["probabilities"][0]["1"] == pytest.approx(p, rel=1e-6)
            feedback.append({"request_id": body["request_id"], "label": labels[i]})
        # The other protocols are assigned too (a unit header), answered by the unit's arm.
        header = {"X-Unit-Id": users[0]}
        tensor = [[rows[0][c] for c in FEATURES]]
        r = client.post(f"/models/{MODEL}/invocations", json={"inputs": tensor}, headers=header)
        assert r.status_code == 200 and r.headers["X-Arbiter-Arm"] == seen[users[0]]
        v2 = {
            "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": tensor}],
            "parameters": {"unit_id": users[0]},
        }
        r = client.post(f"/v2/models/{MODEL}/infer", json=v2)
        assert r.status_code == 200 and r.json()["parameters"]["arm"] == seen[users[0]]
        expected = _p_fraud(nets[r.json()["model_version"]], rows[:1])
        # One FP64 tensor per column, named after it, is the other v2 layout (cast to float32).
        per_column = {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [rows[0][c]]}
                for c in FEATURES
            ],
            "parameters": {"unit_id": users[0]},
        }
        r = client.post(f"/v2/models/{MODEL}/infer", json=per_column)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, rtol=1e-6)
        stored = client.post("/feedback", json={"feedback": feedback})
        assert stored.status_code == 200 and stored.json()["stored"] == n
    server.stop()
    arms = set(seen.values())
    assert arms == {"champion", "challenger"}
    logged = dict(
        _query(
            home,
            "SELECT arm, count(*) FROM predictions WHERE protocol = 'arbiter' AND error IS NULL "
            "AND probabilities IS NOT NULL GROUP BY arm",
        )
    )
    assert logged == {a: sum(1 for i in range(n) if seen[users[i]] == a) for a in arms}
    experiment = _analyze(home)
    assert experiment["mode"] == "ab" and experiment["decision"] == "continue"
    assert experiment["decided_on"] == "log_loss"
    assert sum(experiment["arms"][a]["labelled"] for a in arms) == n


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FEATURES, 1.0)
    row.update(changes)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()
_GOOD = [1.0] * len(FEATURES)

#: (path, JSON body, expected status, expected field): each must be refused before any model
#: runs, so nothing is logged (neither a prediction nor a model error).
BAD_INPUTS = [
    ("predict", {"features": _row(hour=_DROP)}, 422, "features.hour"),
    ("predict", {"features": _row(amount="12.5")}, 422, "features.amount"),
    ("predict", {"features": _row(is_online=True)}, 422, "features.is_online"),
    ("predict", {"features": _row(amount=None)}, 422, "features.amount"),
    ("predict", {"features": [_row(), _row(extra=1.0)]}, 422, "features[1].extra"),
    ("predict", {"features": [[1.0] * 8]}, 422, "features[0]"),
    ("invocations", {"inputs": [[1.0] * 7]}, 400, "inputs"),
    ("invocations", {"instances": [[1.0] * 9, [1.0] * 9]}, 400, "instances"),
    ("invocations", {"inputs": [["a"] * 8]}, 400, "inputs"),
    ("invocations", {"inputs": [[[1.0] * 8]]}, 400, "inputs"),
    ("invocations", {"inputs": [[1.0] * 8, [1.0] * 7]}, 400, "inputs"),
    ("invocations", {"inputs": [[1.0, True, *[1.0] * 6]]}, 400, "inputs[0][1]"),
    ("invocations", {"inputs": [[float("nan"), *[1.0] * 7]]}, 400, "inputs.amount"),
    (
        "invocations",
        {"dataframe_split": {"columns": list(FEATURES[:-1]), "data": [[1.0] * 7]}},
        400,
        f"dataframe_split.{FEATURES[-1]}",
    ),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 7], "datatype": "FP32", "data": [1.0] * 7}]},
     400, "inputs[0].shape"),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "BYTES", "data": ["a"] * 8}]},
     400, "inputs[0]"),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "BOOL", "data": [True] * 8}]},
     400, "inputs[0]"),
    ("v2", {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": [1.0] * 7}]},
     400, "inputs[0].data"),
    ("v2", {"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32",
                        "data": ["1.0"] * 16}]}, 400, "inputs[0].data"),
]  # fmt: skip


def test_bad_input_is_a_4xx_naming_the_field_and_nothing_is_logged(
    serve: Callable[..., Any],
) -> None:
    server, home = serve({"strategy": "shadow", "shadow_executor": "thread"})
    paths = {
        "predict": f"/models/{MODEL}/predict",
        "invocations": f"/models/{MODEL}/invocations",
        "v2": f"/v2/models/{MODEL}/infer",
    }
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for protocol, body, status, field in BAD_INPUTS:
            content = json.dumps(body).encode()  # NaN as the bare token MLflow's client sends
            r = client.post(
                paths[protocol], content=content, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == status, (body, r.text)
            answer = r.json()
            error = answer["error"] if isinstance(answer.get("error"), dict) else answer
            assert error.get("field") == field, (body, answer)
        # The same server answers good input on every protocol (the refusals were the input's).
        ok = client.post(paths["invocations"], json={"inputs": [_GOOD]})
        assert ok.status_code == 200, ok.text
    server.stop()
    logged = _query(home, "SELECT role, count(*), count(error) FROM predictions GROUP BY ALL")
    # Only the good request's rows: its answer, and its shadow's unless still in flight.
    assert sorted(logged) in ([("served", 1, 0)], [("served", 1, 0), ("shadow", 1, 0)])


def test_outputs_without_classes_are_the_prediction_and_bad_shapes_are_model_errors() -> None:
    from arbiter.errors import ModelError
    from arbiter.tensors import TensorLayout

    regression = TensorLayout(("a", "b"), np.dtype(np.float32))
    assert regression.outputs(np.array([[1.5], [2.5]], dtype=np.float32)) == ([1.5, 2.5], None)
    softmax = TensorLayout(("a", "b"), np.dtype(np.float32), ("x", "y", "z"))
    predictions, proba = softmax.outputs(np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]))
    assert predictions == ["y", "x"] and proba.shape == (2, 3)
    with pytest.raises(ModelError, match=r"names 3 classes: expected \[batch, 3\]"):
        softmax.outputs(np.array([[0.2], [0.6]]))


def test_metadata_that_contradicts_the_signature_is_refused_at_load(
    torch_template: TorchTemplate, tmp_path: Path
) -> None:
    from arbiter.errors import RegistryError

    registry = registry_for_home(tmp_path / "home")
    net = torch_template.nets["1"]
    example = np.ones((2, len(FEATURES)), dtype=np.float32)
    version = registry.log_pytorch_model("wrong", net, list(FEATURES), example)
    # The MLmodel is edited in place: the registry serves these very files.
    uri = registry.client.get_model_version_download_uri("wrong", version)
    mlmodel = Path(uri.removeprefix("file://")) / "MLmodel"
    text = mlmodel.read_text()
    assert "- is_foreign\n" in text
    mlmodel.write_text(text.replace("- is_foreign\n", ""))
    with pytest.raises(RegistryError, match="names 7 columns, but the signature's tensor has 8"):
        registry.load("wrong", version)


def test_a_tensor_without_column_names_is_refused_by_predict_before_the_model_runs(
    torch_template: TorchTemplate, tmp_path: Path
) -> None:
    """Without ``arbiter.columns`` only /invocations' tensor forms fit the model: /predict and
    v2 refuse named rows up front (a 4xx saying why), nothing logged, no model error."""
    import yaml

    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    home = Home.at(tmp_path / "home", create=True)
    registry = registry_for_home(home.root)
    example = np.ones((2, len(FEATURES)), dtype=np.float32)
    version = registry.log_pytorch_model(
        "unnamed", torch_template.nets["1"], FEATURES, example, aliases=("champion",)
    )
    uri = registry.client.get_model_version_download_uri("unnamed", version)
    mlmodel = Path(uri.removeprefix("file://")) / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    assert doc.pop("metadata")["arbiter"]["columns"] == list(FEATURES)
    mlmodel.write_text(yaml.safe_dump(doc))
    config = HomeConfig.model_validate(
        {"models": {"unnamed": {}}, "events": {"flush_interval_s": 0.1}}
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    server = ServerThread(create_app(home)).start()
    try:
        wait_for_arms_loaded(server.url, "unnamed")
        with httpx.Client(base_url=server.url) as client:
            r = client.post("/models/unnamed/predict", json={"features": _row()})
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["field"] == "features" and error["code"] != "model_error"
            assert "tensor without column names" in error["message"]
            assert "/invocations" in error["message"] and "arbiter.columns" in error["message"]
            r = client.post(
                "/v2/models/unnamed/infer",
                json={
                    "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": _GOOD}]
                },
            )
            assert r.status_code == 400 and "arbiter.columns" in r.json()["error"], r.text
            ok = client.post("/models/unnamed/invocations", json={"inputs": [_GOOD]})
            assert ok.status_code == 200, ok.text
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert 'kind="model_error"' not in metrics
    assert "arbiter_model_errors_total{" not in metrics
    logged = _query(home, "SELECT protocol, count(*), count(error) FROM predictions GROUP BY ALL")
    assert logged == [("mlflow", 1, 0)]
