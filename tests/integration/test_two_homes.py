"""Two replicas as two hosts run them: separate HOMEs, one MLflow registry, one event log.

Each replica is a real uvicorn gateway on 127.0.0.1 with its own home folder (its own
``arbiter.yaml``, spill folder, canary records), as on two machines. What they share is what a
deployment shares: the registry (here one SQLite file both open; a tracking server in
production) and the event log directory ``events.url`` names (here a local folder; NFS, EFS or
a mounted bucket in production). Home A names it with a ``file://`` URL, home B with a path.
The report test runs once more with the log in a bucket of an S3-compatible local server
(moto, see tests/events/test_shared_object_store.py): the replicas write it through pyarrow's
S3 client.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from arbiter.canary import read_snapshot
from arbiter.cli import app
from arbiter.config import HomeConfig, dump_config
from arbiter.demo.traffic import describe_model, send_until, wait_until
from arbiter.events.location import open_event_store
from arbiter.gateway.app import create_app
from arbiter.gateway.server import ServerThread
from arbiter.home import Home
from arbiter.registry import registry_for_home
from tests.canary.conftest import canary_model
from tests.conftest import Template
from tests.events.test_shared_object_store import s3_endpoint, s3_url

__all__ = ["s3_endpoint", "s3_url"]  # the S3-compatible server's fixtures, used by events_url

#: The first feature's value on which the poisoned challenger raises.
POISON = -777.0


@pytest.fixture
def replicas(template_home: Template, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start two gateways with separate homes sharing one registry and one event log."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(template_home.root / "mlflow.db", shared / "mlflow.db")
    events = shared / "events"
    servers: list[ServerThread] = []

    def start(
        models: dict[str, Any], events_url: str | None = None
    ) -> tuple[list[ServerThread], list[Home]]:
        homes = []
        urls = (events_url or events.as_uri(), events_url or str(events))
        for name, url in zip(("host-a", "host-b"), urls, strict=True):
            home = Home.at(tmp_path / name, create=True)
            config = HomeConfig.model_validate(
                {
                    "models": models,
                    "registry": {
                        "tracking_uri": f"sqlite:///{shared / 'mlflow.db'}",
                        "poll_interval_s": 0.2,
                    },
                    "events": {"url": url, "flush_interval_s": 0.1},
                }
            )
            home.config_path.write_text(dump_config(config), encoding="utf-8")
            homes.append(home)
        for home in homes:
            servers.append(ServerThread(create_app(home)).start())
        return servers, homes

    yield start
    for server in servers:
        server.stop()


def _predict(client: httpx.Client, model: str, unit: str, row: dict[str, float]) -> dict[str, Any]:
    r = client.post(f"/models/{model}/predict", json={"unit_id": unit, "features": row})
    return {"status": r.status_code, **r.json()}


def _served(home: Home, model: str) -> int:
    with open_event_store(home).connect() as con:
        query = "SELECT count(DISTINCT request_id) FROM served WHERE model = $model"
        return con.execute(query, {"model": model}).fetchone()[0]


@pytest.fixture(params=["directory", "bucket"])
def events_url(request: pytest.FixtureRequest) -> str | None:
    """None: the shared directory; else an S3 bucket URL on the local S3-compatible server."""
    if request.param == "directory":
        return None
    return request.getfixturevalue("s3_url")


def test_a_report_from_either_home_counts_the_requests_of_both_replicas(
    replicas: Callable[..., Any], fraud_rows: list[dict[str, float]], events_url: str | None
) -> None:
    ab = {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.5}}}
    servers, homes = replicas(ab, events_url)
    sent = {0: 37, 1: 23}
    for i, server in enumerate(servers):
        with httpx.Client(base_url=server.url, timeout=120) as client:
            answers = [
                _predict(client, "fraud", f"h{i}-u{j}", fraud_rows[j]) for j in range(sent[i])
            ]
        assert all(a["status"] == 200 for a in answers)
    total = sum(sent.values())
    wait_until(lambda: _served(homes[0], "fraud") >= total, timeout_s=180, what="both flushes")
    for home in homes:
        assert not (home.root / "events").exists()  # nothing went to a home's own log
        result = CliRunner().invoke(
            app, ["report", "--home", str(home.root), "-m", "fraud", "--json"]
        )
        assert result.exit_code == 0, result.output
        (section,) = json.loads(result.stdout)["experiments"]
        assert section["requests"] == total
        result = CliRunner().invoke(
            app, ["analyze", "--home", str(home.root), "-m", "fraud", "--json", "--no-html"]
        )
        assert result.exit_code == 0, result.output
        (analysis,) = json.loads(result.stdout)["experiments"]
        arms = analysis["arms"].values()
        assert sum(arm["requests"] for arm in arms) == total, analysis["arms"]
    names = [str(p).rsplit("/", 1)[1] for p in open_event_store(homes[1]).segments("predictions")]
    assert names and all(n.startswith("seg-") for n in names)


def _canary(url: str, model: str) -> dict[str, Any]:
    return (describe_model(url, model).get("experiment") or {}).get("canary") or {}


def test_a_challenger_failing_only_on_one_replica_is_rolled_back_on_both(
    replicas: Callable[..., Any], template_home: Template, fraud_rows: list[dict[str, float]]
) -> None:
    from arbiter.testing import RaisingOnValueModel

    column = str(template_home.example.columns[0])
    # Stages that never advance on their own: only a guardrail breach can end this canary.
    hold = [{"share": 0.5, "min_requests": 100_000}, {"share": 1.0, "min_requests": 100_000}]
    config = canary_model("poisoned", stages=hold, max_prediction_psi=None)
    servers, homes = replicas({"faulty": config})
    registry = registry_for_home(homes[0].root)
    registry.log_pyfunc_model(
        "faulty",
        RaisingOnValueModel(column, POISON),
        template_home.example,
        aliases=("poisoned",),
    )
    a, b = (s.url for s in servers)
    for url in (a, b):
        wait_until(
            lambda url=url: _canary(url, "faulty").get("status") == "running",
            timeout_s=180,
            what="the canary running on both replicas",
        )

    # Replica B: clean traffic, on which the challenger answers; wait until it is in the log.
    with httpx.Client(base_url=b, timeout=120) as client:
        clean = [_predict(client, "faulty", f"b{j}", fraud_rows[j]) for j in range(80)]
    assert all(r["status"] == 200 for r in clean)
    assert {r["arm"] for r in clean} == {"champion", "challenger"}
    wait_until(lambda: _served(homes[1], "faulty") >= 80, timeout_s=180, what="B's rows logged")

    # Replica A: poisoned rows, on which the challenger raises, until the canary ends.
    def rolled_back() -> bool:
        return _canary(a, "faulty").get("status") == "rolled_back"

    with httpx.Client(base_url=a, timeout=120) as client:

        def poisoned(start: int, n: int) -> list[dict[str, Any]]:
            rows = [dict(fraud_rows[j % len(fraud_rows)], **{column: POISON}) for j in range(n)]
            return [_predict(client, "faulty", f"a{start + j}", r) for j, r in enumerate(rows)]

        rounds = send_until(poisoned, rolled_back, round_size=20, max_requests=3_000, timeout_s=240)
    assert rounds.reached, rounds
    assert any(r["status"] == 500 for batch in rounds.results for r in batch)

    # Both replicas apply the rollback: 0 % share, every request (poisoned or not) served by
    # the champion.
    for url in (a, b):
        wait_until(
            lambda url=url: (
                _canary(url, "faulty").get("status") == "rolled_back"
                and _canary(url, "faulty").get("share") == 0.0
            ),
            timeout_s=180,
            what="the rollback applied on both replicas",
        )
    with httpx.Client(base_url=a, timeout=120) as client:
        after_a = [
            _predict(client, "faulty", f"a-after{j}", dict(fraud_rows[j], **{column: POISON}))
            for j in range(20)
        ]
    with httpx.Client(base_url=b, timeout=120) as client:
        after_b = [_predict(client, "faulty", f"b-after{j}", fraud_rows[j]) for j in range(20)]
    assert all(r["status"] == 200 and r["arm"] == "champion" for r in after_a + after_b)

    # The decision was taken on the pooled log: the challenger's rows include B's clean ones
    # (a replica judging its own log alone would see 100 % errors on A, or none on B).
    snap = wait_until(
        lambda: (
            (s := read_snapshot(registry, "faulty")).records
            and s.records[-1]["action"] == "rollback"
            and s
        ),
        timeout_s=180,
        what="the rollback decision record",
    )
    arm = snap.records[-1]["evidence"]["arms"]["challenger"]
    clean_challenger = sum(r["arm"] == "challenger" for r in clean)
    assert arm["errors"] > 0
    assert arm["requests"] >= arm["errors"] + clean_challenger
    assert 0.0 < arm["error_rate"] < 1.0
