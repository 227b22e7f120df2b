"""A/A through the real gateway: the same model in both arms, outcomes via POST /outcomes.

Units send requests to a 50/50 A/B test on 127.0.0.1 whose two arms serve the same registered
version; each unit converts with the same probability whatever its arm and posts its
purchases to ``POST /outcomes``. The experiment is analysed per unit with the always-valid
sequential test at several looks (:func:`arbiter.analysis.analyze_experiment`, whose A/B
verdict decides on the primary metric, on the run's rows): no look may promote or roll back.

The reduced test runs once (deterministic: sticky hashing and a seeded generator); the
``slow`` one repeats the experiment and checks that the share of runs with a false decision
at any look stays within the level.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import stats

from arbiter.analysis import analyze_experiment
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.events.query import Scope, restrict_predictions
from arbiter.registry import registry_for_home
from tests.loop.conftest import wait_for

pytestmark = pytest.mark.integration

ALPHA = 0.05
MODEL = {
    "experiment": {
        "name": "fraud-aa",
        "strategy": "ab",
        "challenger_alias": "twin",
        "challenger_share": 0.5,
    },
    "metrics": {
        "conversion": {"event": "purchase", "aggregate": "any"},
        "revenue": {"event": "purchase", "aggregate": "sum"},
    },
    "decision": {
        "alpha": ALPHA,
        "sequential": True,
        "min_sample_per_arm": 50,
        "primary_metric": "conversion",
        "guardrail_metrics": [{"metric": "revenue", "max_decrease": 5.0}],
        "guardrails": {"max_latency_p99_ratio": None, "max_error_rate": None},
    },
}
FAST = {"registry": {"poll_interval_s": 0.2}, "events": {"flush_interval_s": 0.1}}


def _aa_gateway(running: Any, template_home: Any) -> tuple[Any, Any]:
    server, home = running({"fraud": MODEL}, **FAST)
    registry = registry_for_home(home.root)
    registry.set_alias("fraud", "twin", registry.aliases("fraud")["champion"])
    models = lambda: httpx.get(f"{server.url}/models", timeout=10).json()["models"]  # noqa: E731
    wait_for(
        lambda: next(m for m in models() if m["name"] == "fraud")["aliases"].get("twin"),
        what="the twin alias loaded",
    )
    return server, home


def _run(
    client: httpx.Client,
    home: Any,
    rows: list[dict[str, float]],
    *,
    prefix: str,
    looks: int,
    per_look: int,
    seed: int,
) -> list[str]:
    """One A/A experiment of ``looks * per_look`` units; the decision at every look."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC)
    config = ModelConfig.model_validate(MODEL)
    decisions = []
    unit = 0
    for _ in range(looks):
        outcomes = []
        for _ in range(per_look):
            uid = f"{prefix}-{unit}"
            # 1-3 requests per unit (sticky: the same arm each time).
            for _ in range(int(rng.integers(1, 4))):
                r = client.post(
                    "/models/fraud/predict",
                    json={"unit_id": uid, "features": rows[unit % len(rows)]},
                )
                r.raise_for_status()
            if rng.random() < 0.3:
                outcomes.append(
                    {"unit_id": uid, "event": "purchase", "value": float(rng.lognormal(3, 0.5))}
                )
            unit += 1
        if outcomes:
            client.post("/outcomes", json={"outcomes": outcomes}).raise_for_status()
        scope = Scope("fraud", "fraud-aa", start=start)
        # Wait for the look's exposures to be in the log (flushed in the background).
        wait_for(
            lambda scope=scope, unit=unit: _units(home, scope) >= unit,
            what=f"{unit} units logged",
        )
        with EventStore(home.root).connect() as con:
            # This run's rows only (the slow test runs many in one experiment).
            restrict_predictions(con, "ts >= $start", {"start": start})
            analysis = analyze_experiment(con, "fraud", "fraud-aa", model_config=config)
        metrics = analysis.metrics
        assert metrics is not None and metrics.crossed_units == 0
        assert analysis.decided_on == "conversion"
        verdict = analysis.verdict
        decisions.append(verdict.decision)
    return decisions


def _units(home: Any, scope: Scope) -> int:
    with EventStore(home.root).connect() as con:
        ((n,),) = con.execute(
            f"SELECT count(DISTINCT unit_id) FROM served WHERE {scope.where()}", scope.params
        ).fetchall()
    return int(n)


def test_aa_through_the_gateway_decides_nothing(
    running: Any, template_home: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = _aa_gateway(running, template_home)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        decisions = _run(client, home, fraud_rows, prefix="aa", looks=4, per_look=100, seed=1)
    assert decisions and all(d == "continue" for d in decisions), decisions


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_aa_false_positive_rate_with_sequential_looks(
    running: Any, template_home: Any, fraud_rows: list[dict[str, float]]
) -> None:
    server, home = _aa_gateway(running, template_home)
    runs, false = int(os.environ.get("ARBITER_AA_RUNS", "40")), 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(runs):
            decisions = _run(
                client, home, fraud_rows, prefix=f"r{i}", looks=5, per_look=100, seed=100 + i
            )
            false += any(d in ("promote", "rollback") for d in decisions)
    print(f"A/A: {false} of {runs} runs decided promote or rollback at some look")
    # The always-valid test keeps P(any false decision over the looks) <= alpha (plus the
    # guardrail's own level); allow for binomial noise: one-sided 99 % bound.
    assert stats.binomtest(false, runs, 2 * ALPHA, alternative="greater").pvalue > 0.01, false
