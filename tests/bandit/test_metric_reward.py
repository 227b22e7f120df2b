"""``reward: {metric: conversion}``: a bandit rewarded by a business metric's per-unit values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from arbiter.analysis.bandit import analyze_bandit, metric_rewards
from arbiter.config import HomeConfig, ModelConfig
from arbiter.errors import ConfigError
from arbiter.events import EventStore
from tests.bandit.conftest import ARMS, EVENTS, bandit_models, bandit_status

METRICS = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "revenue": {"event": "purchase", "aggregate": "sum"},
}
# Conversion probability of the arm that served a unit: the challenger is clearly the best.
CONVERT_P = {"champion": 0.2, "challenger": 0.8, "third": 0.2}


def _models(**bandit: Any) -> dict[str, Any]:
    models = bandit_models(reward={"metric": "conversion"}, **bandit)
    models["fraud"]["metrics"] = METRICS
    return models


def test_config_accepts_a_01_metric_only() -> None:
    config = ModelConfig.model_validate(_models()["fraud"])
    bandit = config.experiment.bandit  # type: ignore[attr-defined]
    assert bandit.reward_metric == "conversion" and bandit.reward_kind == "binary"
    assert bandit.describe_reward() == "metric:conversion"
    # Round trip through the YAML dump.
    again = HomeConfig.model_validate(HomeConfig(models={"fraud": config}).model_dump(mode="json"))
    assert again.models["fraud"] == config
    for reward in ({"metric": "revenue"}, {"metric": "nope"}):
        bad = _models()
        bad["fraud"]["experiment"]["bandit"]["reward"] = reward
        with pytest.raises(ValueError, match="aggregate: any"):
            ModelConfig.model_validate(bad["fraud"])


def _serve_units(
    client: httpx.Client, rows: list[dict[str, float]], start: int, n: int, rng: Any
) -> tuple[dict[str, int], dict[str, int]]:
    """``n`` new units, one request each; a purchase with the serving arm's probability."""
    served, converted, outcomes = dict.fromkeys(ARMS, 0), dict.fromkeys(ARMS, 0), []
    for i in range(start, start + n):
        r = client.post(
            "/models/fraud/predict", json={"unit_id": f"u{i}", "features": rows[i % len(rows)]}
        )
        assert r.status_code == 200, r.text
        arm = r.json()["arm"]
        served[arm] += 1
        if rng.random() < CONVERT_P[arm]:
            converted[arm] += 1
            # Two purchases: conversion counts the unit once.
            outcomes += [{"unit_id": f"u{i}", "event": "purchase", "value": 5.0}] * 2
    if outcomes:
        client.post("/outcomes", json={"outcomes": outcomes}).raise_for_status()
    return served, converted


def test_bandit_moves_traffic_to_the_arm_that_converts(
    make_home: Callable[..., Any],
    running: Callable[..., Any],
    fraud_rows: list[dict[str, float]],
) -> None:
    from arbiter.registry import registry_for_home

    models = _models(warmup=20, floor=0.05)
    home = make_home(models, events=EVENTS)
    registry_for_home(home.root).set_alias("fraud", "third", "1")
    server, home = running(models, events=EVENTS)
    rng = np.random.default_rng(11)
    served, converted = dict.fromkeys(ARMS, 0), dict.fromkeys(ARMS, 0)
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        start, status = 0, bandit_status(client)
        assert status["reward"] == "metric:conversion"
        # Rounds of new units until the allocation favours the challenger (bounded by count).
        while start < 1_500:
            s, c = _serve_units(client, fraud_rows, start, 90, rng)
            start += 90
            for arm in ARMS:
                served[arm] += s[arm]
                converted[arm] += c[arm]
            deadline_total = start

            def counted(total: int = deadline_total) -> dict[str, Any] | None:
                st = bandit_status(client)
                return st if sum(st["rewards"].values()) >= total else None

            from tests.canary.conftest import wait_for

            status = wait_for(counted, timeout_s=30.0)
            if not status["in_warmup"] and status["shares"]["challenger"] > 0.7:
                break
        else:
            raise AssertionError(f"no convergence: {status}")
    assert status["crossed_units"] == 0
    means = status["posterior_mean"]
    assert means["challenger"] > max(means["champion"], means["third"])

    # The rewards are the units and conversions the test counted itself.
    config = ModelConfig.model_validate(models["fraud"])
    with EventStore(home.root).connect() as con:
        rewards, crossed = metric_rewards(
            con, "fraud", "fraud-bandit", list(ARMS), config, "conversion"
        )
        analysis = analyze_bandit(con, "fraud", "fraud-bandit", model_config=config)
    assert crossed == 0
    assert {a: r.rewarded for a, r in rewards.items()} == served
    assert {a: int(r.reward_sum) for a, r in rewards.items()} == converted
    assert analysis.rewards == rewards
    assert any("conversion after its first exposure" in n for n in analysis.notes)


def test_unknown_reward_metric_is_a_config_error(tmp_path: Any) -> None:
    from arbiter.config import load_config

    path = tmp_path / "arbiter.yaml"
    path.write_text(
        "models:\n  fraud:\n    experiment:\n      strategy: bandit\n"
        "      bandit: {reward: {metric: conversion}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"reward\.metric 'conversion'"):
        load_config(path)
