"""A shadow experiment of the demo's models on the demo's transactions, logged once per session.

The template registry (tests/conftest.py: the demo's logistic-regression champion and
gradient-boosting challenger) served by a real uvicorn gateway in shadow mode; the demo's
traffic posted over HTTP (single rows and a few 3-row batches), four labels in five posted to
/feedback. The shadow report and the wide export tests read its event log, each against an
independent pandas computation.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

#: Single-row requests, then batches of three rows: enough for every direction of
#: disagreement to show, small enough for seconds on a busy machine.
SINGLE_REQUESTS = 240
BATCH_REQUESTS = 20
BATCH_ROWS = 3


@dataclass(frozen=True)
class ShadowHome:
    home: Home
    rows_sent: int  # input rows answered by the champion
    labelled: int  # labels posted


def _shadow_rows(home: Home) -> int:
    from arbiter.events import EventStore

    with EventStore(home.root).connect() as con:
        ((n,),) = con.execute("SELECT count(*) FROM predictions WHERE role = 'shadow'").fetchall()
    return int(n)


@pytest.fixture(scope="session")
def shadow_home(template_home: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from arbiter.demo.traffic import describe_model, wait_for_arms_loaded, wait_until
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    home = Home.at(tmp_path_factory.mktemp("shadow-report") / "home", create=True)
    shutil.copy(template_home.root / "mlflow.db", home.mlflow_db)
    config = HomeConfig.model_validate(
        {
            "models": {
                "fraud": {
                    "experiment": {
                        "strategy": "shadow",
                        "shadow_executor": "thread",
                        "shadow_max_in_flight": 256,
                        "shadow_timeout_s": 60.0,
                    }
                }
            },
            "events": {"flush_interval_s": 0.1},
        }
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    rows, users, labels = template_home.rows, template_home.users, template_home.labels
    server = ServerThread(create_app(home)).start()
    try:
        wait_for_arms_loaded(server.url, "fraud", shadow=True)
        feedback: list[dict[str, Any]] = []
        sent = 0
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            for i in range(SINGLE_REQUESTS):
                body = {"unit_id": users[i], "features": rows[i]}
                answer = client.post("/models/fraud/predict", json=body)
                assert answer.status_code == 200, answer.text
                sent += 1
                if i % 5:
                    feedback.append({"request_id": answer.json()["request_id"], "label": labels[i]})
            for b in range(BATCH_REQUESTS):
                lo = SINGLE_REQUESTS + b * BATCH_ROWS
                body = {"unit_id": users[lo], "features": rows[lo : lo + BATCH_ROWS]}
                answer = client.post("/models/fraud/predict", json=body)
                assert answer.status_code == 200, answer.text
                sent += BATCH_ROWS
                request_id = answer.json()["request_id"]
                feedback += [
                    {"request_id": request_id, "row_index": k, "label": labels[lo + k]}
                    for k in range(BATCH_ROWS)
                    if (lo + k) % 5
                ]
            stored = client.post("/feedback", json={"feedback": feedback})
            assert stored.status_code == 200 and stored.json()["stored"] == len(feedback)

        def settled() -> bool:
            # Every mirrored call finished (none in flight) and its rows are in the log; a
            # call dropped under load (not expected: one request at a time) is simply absent.
            shadow = describe_model(server.url, "fraud")["experiment"]["shadow"]
            return shadow["in_flight"] == 0 and (
                _shadow_rows(home) >= sent or bool(shadow["dropped"])
            )

        wait_until(settled, timeout_s=240.0, what="every mirrored request logged")
    finally:
        server.stop()
    yield ShadowHome(home, sent, len(feedback))
