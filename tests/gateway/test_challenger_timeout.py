"""A hung challenger cannot stall a worker: it answers 504 and a canary rolls it back."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.canary.conftest import FAST, canary_model, wait_for


def _canary(client: httpx.Client, model: str) -> dict[str, Any]:
    body = client.get("/models").json()
    return next(m for m in body["models"] if m["name"] == model)["experiment"]["canary"]


def test_a_hung_canary_challenger_times_out_and_is_rolled_back(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    """``faulty``'s ``hanging`` version sleeps 30 s per call. Scored inline, it would block
    the worker's event loop for everyone; off the loop with a 0.3 s limit, its users get 504,
    the champion's users are served meanwhile, and the timeouts (logged as the challenger's
    errors) trip the error-rate guardrail."""
    stages = [{"share": 0.5, "min_requests": 1000}, {"share": 1.0, "min_requests": 1000}]
    model = canary_model("hanging", stages=stages)
    model["experiment"]["challenger_timeout_s"] = 0.3
    server, _home = running({"faulty": model}, **FAST)
    statuses: dict[int, int] = {}
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: _canary(client, "faulty")["status"] == "running", timeout_s=120.0)
        # Requests until the canary rolls back (bounded): a busy machine checks less often.
        for i in range(400):
            r = client.post(
                "/models/faulty/predict",
                json={"unit_id": f"u{i}", "features": fraud_rows[i % len(fraud_rows)]},
            )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 504:
                assert r.json()["error"]["code"] == "model_timeout"
            if _canary(client, "faulty")["status"] == "rolled_back":
                break
        wait_for(lambda: _canary(client, "faulty")["status"] == "rolled_back", timeout_s=120.0)
        after = client.post(
            "/models/faulty/predict", json={"unit_id": "u0", "features": fraud_rows[0]}
        )
        metrics = client.get("/metrics").text
    assert statuses.get(504, 0) >= 1 and statuses.get(200, 0) >= 1, statuses
    assert after.status_code == 200 and after.json()["arm"] == "champion"
    assert 'kind="model_timeout"' in metrics
    # Twenty 30-second calls inline would take 10 minutes; off the loop, seconds (a minute or
    # two on a saturated machine).
    assert time.monotonic() - started < 180


@pytest.mark.parametrize(
    ("strategy", "isolate", "expected"),
    [
        # Every strategy isolates by default: a hung champion freezes a worker too.
        ("canary", None, True),
        ("ab", None, True),
        ("bandit", None, True),
        ("shadow", None, True),
        ("none", None, True),
        ("interleave", None, True),
        ("ab", False, False),  # the explicit opt-out: inline, no deadline
        ("canary", False, False),
        ("none", False, False),
    ],
)
def test_which_experiments_score_their_arms_off_the_event_loop(
    strategy: str, isolate: bool | None, expected: bool
) -> None:
    from arbiter.config import ExperimentConfig

    raw = (
        {"strategy": strategy}
        if isolate is None
        else {"strategy": strategy, "isolate_arms": isolate}
    )
    exp = ExperimentConfig.model_validate(raw)
    assert exp.arms_isolated() is expected


@pytest.mark.parametrize("strategy", ["shadow", "none", "interleave"])
def test_challenger_deadlines_belong_to_the_strategies_that_serve_a_challenger(
    strategy: str,
) -> None:
    from pydantic import ValidationError

    from arbiter.config import ExperimentConfig

    with pytest.raises(
        ValidationError, match="challenger_timeout_s applies to strategy ab, bandit or canary"
    ):
        ExperimentConfig.model_validate({"strategy": strategy, "challenger_timeout_s": 1.0})


def test_an_isolated_ab_challenger_that_hangs_gets_504_while_the_champion_serves(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    model = {
        "experiment": {
            "strategy": "ab",
            "challenger_alias": "hanging",
            "challenger_share": 0.5,
            "isolate_arms": True,
            "challenger_timeout_s": 0.3,
            "fallback_to_champion": False,  # the user sees the 504 (the default falls back)
        }
    }
    server, _home = running({"faulty": model}, **FAST)
    codes: dict[str, list[int]] = {"champion": [], "challenger": []}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(30):
            r = client.post(
                "/models/faulty/predict", json={"unit_id": f"u{i}", "features": fraud_rows[i]}
            )
            arm = r.json().get("arm", "challenger") if r.status_code == 200 else "challenger"
            codes[arm].append(r.status_code)
    assert codes["champion"] and set(codes["champion"]) == {200}
    assert codes["challenger"] and set(codes["challenger"]) == {504}
