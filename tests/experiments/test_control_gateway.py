"""Changing a running A/B experiment through a real gateway on 127.0.0.1: split, stop, start."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from arbiter.cli import app, main
from tests.canary.conftest import FAST, TOKEN, send, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _experiment(client: httpx.Client, model: str = "fraud") -> dict[str, Any]:
    items = {m["name"]: m for m in client.get("/models").json()["models"]}
    return items[model]["experiment"]


def _cli(*args: str) -> dict[str, Any]:
    out = CliRunner().invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def _share_bound(arms: list[str], share: float) -> bool:
    """The observed challenger share is within 5 binomial standard errors of ``share``."""
    n = len(arms)
    observed = sum(a == "challenger" for a in arms) / n
    return abs(observed - share) <= 5 * math.sqrt(share * (1 - share) / n)


def test_split_stop_start_via_cli_and_admin_api(
    running: Any,
    fraud_rows: list[dict[str, float]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    models = {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.1}}, "faulty": {}}
    server, home = running(models, **FAST)
    h = ["--home", str(home.root), "-m", "fraud"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        exp = _experiment(client)
        assert exp["status"] == "running"
        assert exp["split"] == pytest.approx({"challenger": 0.1, "champion": 0.9})
        before = {a["unit_id"]: a["arm"] for a in _units(client, fraud_rows, 0, 300)}

        # the CLI writes to the registry; the gateway applies it at its next poll
        out = _cli("split", *h, "--share", "0.5", "--reason", "more power")
        assert out["shares"] == {"challenger": 0.5} and out["change"]["reason"] == "more power"
        wait_for(lambda: _experiment(client)["split"]["challenger"] == pytest.approx(0.5))
        after = {a["unit_id"]: a["arm"] for a in _units(client, fraud_rows, 0, 300)}
        # monotonic: every earlier challenger unit stays; only champion units moved in
        assert all(after[u] == "challenger" for u, arm in before.items() if arm == "challenger")
        assert _share_bound(list(after.values()), 0.5)

        # the admin endpoint: who from the header, why from the body; applied here at once
        r = client.post("/admin/experiments/fraud/split", headers={**AUTH, "X-Arbiter-Actor":
                        "alice"}, json={"share": 0.3, "reason": "too risky"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["change"]["actor"] == "alice"
        assert _experiment(client)["split"]["challenger"] == pytest.approx(0.3)
        assert _experiment(client)["control"]["version"] == 2
        # by experiment name, "by" in the body
        r = client.post("/admin/experiments/fraud-ab/split", headers=AUTH,
                        json={"shares": {"challenger": 0.3}, "by": "bob"})  # fmt: skip
        assert r.status_code == 200 and r.json()["change"]["actor"] == "bob"

        # errors: 401, 403-free 404/409/422 naming the field
        assert client.post("/admin/experiments/fraud/split", json={"share": 0.2}).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert client.post("/admin/experiments/fraud/stop", headers=bad).status_code == 401
        assert client.post("/admin/experiments/nope/stop", headers=AUTH).status_code == 404
        r = client.post("/admin/experiments/faulty/split", headers=AUTH, json={"share": 0.2})
        assert r.status_code == 409 and "strategy 'none'" in r.json()["error"]["message"]
        for body, field in [
            ({"share": 1.5}, "shares.challenger"),
            ({"share": "a lot"}, "shares.challenger"),
            ({"shares": {"nope": 0.1}}, "shares.nope"),
            ({"share": 0.1, "shares": {"challenger": 0.1}}, "shares"),
            ({}, "shares"),
            ({"share": 0.1, "who": "x"}, "who"),
            ({"share": 0.1, "reason": 3}, "reason"),
        ]:
            r = client.post("/admin/experiments/fraud/split", headers=AUTH, json=body)
            assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
        r = client.post("/admin/experiments/fraud/explode", headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["field"] == "action"

        # history: every change with who and why
        changes = _cli("history", *h)["experiment_changes"]
        assert [(c["action"], c["actor"], c["shares_after"]) for c in changes][1:] == [
            ("split", "alice", {"challenger": 0.3}),
            ("split", "bob", {"challenger": 0.3}),
        ]
        assert changes[0]["reason"] == "more power"
        table = CliRunner().invoke(app, ["history", *h])
        assert table.exit_code == 0 and "too risky" in table.stdout

        # stop: the champion serves everything, logged apart from the experiment
        out = _cli("experiment", "stop", *h, "--reason", "incident")
        assert out["status"] == "stopped"
        wait_for(lambda: _experiment(client)["status"] == "stopped")
        assert _experiment(client)["split"] == {"champion": 1.0}
        assert _experiment(client)["name"] == "fraud-ab-stopped"
        assert {a["arm"] for a in _units(client, fraud_rows, 0, 50)} == {"champion"}
        r = client.post("/admin/experiments/fraud/split", headers=AUTH, json={"share": 0.2})
        assert r.status_code == 409 and "stopped" in r.json()["error"]["message"]
        assert "already stopped" in _cli("experiment", "stop", *h)["unchanged"]

        # start under a new name: a fresh salt and the configured split
        r = client.post("/admin/experiments/fraud/start", headers=AUTH,
                        json={"name": "fraud-ab-2", "reason": "fixed"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["change"]["previous_experiment"] == "fraud-ab"
        exp = _experiment(client)
        assert exp["name"] == "fraud-ab-2" and exp["status"] == "running"
        assert exp["split"]["challenger"] == pytest.approx(0.1)
        status = _cli("experiment", "status", *h)
        assert status["experiment"] == "fraud-ab-2" and status["shares"] == {"challenger": 0.1}

        # a bad share from the CLI: one line, no traceback
        with pytest.raises(SystemExit) as info:
            main(["split", *h, "--share", "2"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "within [0, 1]" in err and "Traceback" not in err
        with pytest.raises(SystemExit) as info:
            main(["split", "--home", str(home.root), "-m", "faulty", "--share", "0.2"])
        assert info.value.code == 1 and "strategy 'none'" in capsys.readouterr().err

    # the logged rows: the experiment's rows end at the stop; the stopped rows are apart
    from arbiter.events import EventStore

    def logged() -> dict[str, int]:
        with EventStore(home.root).connect() as con:
            return dict(
                con.execute("SELECT experiment, count(*) FROM served GROUP BY 1").fetchall()
            )

    counts = wait_for(lambda: (c := logged()).get("fraud-ab-stopped") == 50 and c)
    assert counts["fraud-ab"] == 600


def _units(
    client: httpx.Client, rows: list[dict[str, float]], start: int, n: int
) -> list[dict[str, Any]]:
    answers = send(client, "fraud", rows, start, n)
    assert all(a["status"] == 200 for a in answers), answers[:3]
    return [{**a, "unit_id": f"u{start + i}"} for i, a in enumerate(answers)]


def test_every_replica_applies_a_change_within_a_poll(
    running: Any, fraud_rows: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways on one registry: a split written through one is applied by the other at
    its next poll (and by the first at once), and both route a unit the same way."""
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    models = {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.2}}}
    first, _home = running(models, **FAST)
    second, _ = running(models, **FAST)  # same home, hence the same registry
    with (
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as two,
    ):
        r = one.post("/admin/experiments/fraud/split", headers=AUTH, json={"share": 0.6})
        assert r.status_code == 200, r.text
        assert _experiment(one)["split"]["challenger"] == pytest.approx(0.6)
        wait_for(lambda: _experiment(two)["split"]["challenger"] == pytest.approx(0.6))
        assert _experiment(two)["control"]["version"] == 1
        a = [x["arm"] for x in send(one, "fraud", fraud_rows, 0, 100)]
        b = [x["arm"] for x in send(two, "fraud", fraud_rows, 0, 100)]
        assert a == b
        r = two.post("/admin/experiments/fraud/stop", headers=AUTH, json={"reason": "x"})
        assert r.status_code == 200
        wait_for(lambda: _experiment(one)["status"] == "stopped")
