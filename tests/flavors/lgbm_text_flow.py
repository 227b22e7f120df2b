"""Traffic, labels and analysis for the LightGBM and text flavor tests (one real gateway each).

Rows go to a model through the three protocols in turn: arbiter JSON (``/predict``), the
MLflow scoring protocol (``/invocations``, ``dataframe_split``) and Open Inference Protocol v2
(one tensor per column: ``BYTES`` for strings, ``FP64`` for numbers). Every request carries a
unit id (``unit_id`` field, ``X-Unit-Id`` header, ``unit_id`` parameter), so A/B assignment
can be checked sticky across protocols.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from arbiter.events import EventStore
from arbiter.home import Home

PROTOCOLS = ("arbiter", "mlflow", "v2")


@dataclass
class Sent:
    """What one protocol's request returned, per row."""

    protocol: str
    request_id: str
    arm: str
    rows: int
    body: dict[str, Any] = field(default_factory=dict)


def v2_inputs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One v2 tensor per column: strings as BYTES, numbers as FP64."""
    tensors = []
    for name in rows[0]:
        values = [row[name] for row in rows]
        kind = "BYTES" if isinstance(values[0], str) else "FP64"
        tensors.append({"name": name, "datatype": kind, "shape": [len(rows)], "data": values})
    return tensors


def send(
    client: httpx.Client, model: str, protocol: str, rows: Sequence[dict[str, Any]], user: str
) -> httpx.Response:
    """``rows`` to ``model`` through ``protocol`` as ``user`` (the raw response)."""
    if protocol == "arbiter":
        return client.post(f"/models/{model}/predict", json={"unit_id": user, "features": rows})
    if protocol == "mlflow":
        columns = list(rows[0])
        split = {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}
        return client.post(
            f"/models/{model}/invocations",
            json={"dataframe_split": split},
            headers={"X-Unit-Id": user},
        )
    assert protocol == "v2"
    return client.post(
        f"/v2/models/{model}/infer",
        json={"inputs": v2_inputs(rows), "parameters": {"unit_id": user}},
    )


def sent(response: httpx.Response, protocol: str, rows: int) -> Sent:
    """The request id and arm of a successful answer, whatever its protocol."""
    assert response.status_code == 200, response.text
    body = response.json()
    if protocol == "arbiter":
        return Sent(protocol, body["request_id"], body["arm"], rows, body)
    if protocol == "mlflow":
        headers = response.headers
        return Sent(protocol, headers["x-arbiter-request-id"], headers["x-arbiter-arm"], rows, body)
    params = body["parameters"]
    return Sent(protocol, params["arbiter_request_id"], params["arm"], rows, body)


def drive(
    url: str,
    model: str,
    rows: Sequence[dict[str, Any]],
    labels: Sequence[int],
    users: Sequence[str],
    *,
    batch: int = 3,
) -> tuple[list[Sent], dict[str, str]]:
    """Send ``rows`` in batches of ``batch``, cycling through the protocols; post every
    label to /feedback. Returns what was sent and each user's arm (checked sticky)."""
    answers: list[Sent] = []
    arms: dict[str, str] = {}
    feedback: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for k, lo in enumerate(range(0, len(rows) - batch + 1, batch)):
            protocol = PROTOCOLS[k % len(PROTOCOLS)]
            user = users[lo]
            got = sent(send(client, model, protocol, rows[lo : lo + batch], user), protocol, batch)
            assert arms.setdefault(user, got.arm) == got.arm, f"{user} changed arm ({protocol})"
            answers.append(got)
            feedback += [
                {"request_id": got.request_id, "row_index": i, "label": int(labels[lo + i])}
                for i in range(batch)
            ]
        stored = client.post("/feedback", json={"feedback": feedback})
        assert stored.status_code == 200 and stored.json()["stored"] == len(feedback), stored.text
    return answers, arms


def query(home: Home, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with EventStore(home.root).connect() as con:
        return con.execute(sql, list(params)).fetchall()


def analyze(home: Home, model: str) -> dict[str, Any]:
    """``arbiter analyze --json --no-html`` through the real CLI."""
    from typer.testing import CliRunner

    from arbiter.cli import app

    result = CliRunner().invoke(
        app, ["analyze", "--home", str(home.root), "--model", model, "--json", "--no-html"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def report(home: Home, model: str) -> dict[str, Any]:
    """``arbiter report --json`` through the real CLI."""
    from typer.testing import CliRunner

    from arbiter.cli import app

    result = CliRunner().invoke(
        app, ["report", "--home", str(home.root), "--model", model, "--json"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


__all__ = ["PROTOCOLS", "Sent", "analyze", "drive", "query", "report", "send", "sent", "v2_inputs"]


def assert_v2_metadata_describes(client: httpx.Client, model: str, infer: dict[str, Any]) -> None:
    """``GET /v2/models/{model}``'s outputs name, type and shape the tensors that ``infer`` (a
    v2 infer response body) returned: same names and datatypes, and the same shape where the
    metadata does not say ``-1`` (any size)."""
    response = client.get(f"/v2/models/{model}")
    assert response.status_code == 200, response.text
    declared = {o["name"]: o for o in response.json()["outputs"]}
    returned = {o["name"]: o for o in infer["outputs"]}
    assert sorted(declared) == sorted(returned)
    for name, spec in declared.items():
        got = returned[name]
        assert spec["datatype"] == got["datatype"], (name, spec, got)
        assert len(spec["shape"]) == len(got["shape"]), (name, spec, got)
        for want, have in zip(spec["shape"], got["shape"], strict=True):
            assert want in (-1, have), (name, spec, got)
