"""Canary rollback on guardrail metrics: a challenger that raises chargebacks is rolled back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arbiter.canary import read_snapshot
from arbiter.canary.metric_guardrails import metric_guardrail_criteria, with_metric_guardrails
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.events.query import Scope
from arbiter.registry import registry_for_home
from arbiter.stats.verdict import Verdict
from tests.canary.conftest import FAST, canary_model, wait_for, write_events

METRICS = {
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
    "conversion": {"event": "purchase", "aggregate": "any"},
}
GUARDRAIL = [{"metric": "chargebacks", "max_increase": 0.0}]
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _config(**decision: Any) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "experiment": {"name": "exp", "strategy": "canary"},
            "metrics": METRICS,
            "decision": {"guardrail_metrics": GUARDRAIL, **decision},
        }
    )


def _log(root: Any, n_units: int, rates: dict[str, float], seed: int) -> pd.DataFrame:
    """One served row per unit (half per arm) and Poisson chargebacks after it; the per-unit
    counts as a frame (the independent reference)."""
    rng = np.random.default_rng(seed)
    arms = np.where(np.arange(n_units) % 2 == 0, "champion", "challenger")
    ts = [int((T0 + timedelta(seconds=i)).timestamp() * 1e6) for i in range(n_units)]
    write_events(
        root,
        {
            "request_id": [f"r{i}" for i in range(n_units)],
            "ts": ts,
            "model": ["m"] * n_units,
            "experiment": ["exp"] * n_units,
            "unit_id": [f"u{i}" for i in range(n_units)],
            "arm": list(arms),
            "alias": list(arms),
            "version": ["1" if a == "champion" else "2" for a in arms],
            "prediction": ["0"] * n_units,
            "prediction_num": [0.0] * n_units,
            "latency_ms": [1.0] * n_units,
        },
    )
    counts = rng.poisson([rates[a] for a in arms])
    rows = [
        {"unit_id": f"u{i}", "event": "chargeback", "ts": T0 + timedelta(seconds=i, minutes=5)}
        for i, c in enumerate(counts)
        for _ in range(c)
    ]
    # A chargeback before exposure does not count.
    rows.append({"unit_id": "u1", "event": "chargeback", "ts": T0 - timedelta(days=1)})
    EventStore(root).write_outcomes(rows)
    return pd.DataFrame({"arm": arms, "count": counts})


def _criterion(root: Any, config: ModelConfig, **kwargs: Any) -> Any:
    with EventStore(root).connect() as con:
        (criterion,) = metric_guardrail_criteria(
            con, Scope("m", "exp"), config, alpha=0.05, **kwargs
        )
    return criterion


def test_more_chargebacks_breach_the_guardrail(tmp_path: Any) -> None:
    frame = _log(tmp_path, 400, {"champion": 0.05, "challenger": 0.4}, seed=1)
    criterion = _criterion(tmp_path, _config())
    assert criterion.name == "guardrail_metric:chargebacks"
    assert criterion.met is False and criterion.observed is not None
    # The bound is below the per-unit difference of means computed independently, and above
    # the margin; the one-sided fixed-horizon Welch bound is tighter than the always-valid one.
    means = frame.groupby("arm")["count"].mean()
    diff = means["challenger"] - means["champion"]
    welch = stats.ttest_ind(
        frame.loc[frame.arm == "challenger", "count"],
        frame.loc[frame.arm == "champion", "count"],
        equal_var=False,
        alternative="greater",
    ).confidence_interval(0.95)
    assert 0.0 < criterion.observed < welch.low < diff
    assert f"{diff:+.4g}"[:5] in criterion.detail or "200/200 units" in criterion.detail

    verdict = with_metric_guardrails(
        Verdict("continue", ()), *_open(tmp_path), _config(), alpha=0.05
    )
    assert verdict.decision == "rollback" and verdict.reasons[-1].name == criterion.name


def _open(root: Any) -> tuple[Any, Scope]:
    return EventStore(root).connect(), Scope("m", "exp")


def test_equal_chargebacks_and_too_few_units_do_not_roll_back(tmp_path: Any) -> None:
    _log(tmp_path, 400, {"champion": 0.1, "challenger": 0.1}, seed=2)
    criterion = _criterion(tmp_path, _config())
    assert criterion.met is True and criterion.observed is not None
    assert "no significant harm" in criterion.detail
    few = _criterion(tmp_path, _config(), min_units=1_000)
    assert few.met is True and few.observed is None and "not tested yet" in few.detail
    verdict = with_metric_guardrails(
        Verdict("continue", ()), *_open(tmp_path), _config(), alpha=0.05
    )
    assert verdict.decision == "continue"
    # No guardrail metric configured: the verdict is unchanged.
    plain = ModelConfig.model_validate({"metrics": METRICS})
    assert with_metric_guardrails(Verdict("promote", ()), *_open(tmp_path), plain, alpha=0.05) == (
        Verdict("promote", ())
    )


@pytest.mark.integration
def test_canary_whose_challenger_raises_chargebacks_is_rolled_back(
    running: Any, fraud_rows: list[dict[str, float]]
) -> None:
    model = canary_model(
        "challenger",
        # One long stage: only the guardrail metric can end this canary.
        stages=[
            {"share": 0.5, "min_requests": 1_000_000, "min_duration_s": 0.0},
            {"share": 1.0, "min_requests": 1, "min_duration_s": 0.0},
        ],
        max_prediction_psi=None,
    )
    model["metrics"] = METRICS
    model["decision"]["guardrail_metrics"] = GUARDRAIL
    server, home = running({"fraud": model}, **FAST)
    registry = registry_for_home(home.root)
    rng = np.random.default_rng(5)

    def status() -> str:
        snap = read_snapshot(registry, "fraud")
        return "" if snap.stored is None else snap.stored.state.status

    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert wait_for(lambda: status() == "running")
        unit = 0
        # Units arrive until the canary reacts (bounded): challenger-served units get a
        # chargeback half the time, champion-served ones 2 % of the time.
        while status() == "running" and unit < 3_000:
            outcomes = []
            for _ in range(50):
                r = client.post(
                    "/models/fraud/predict",
                    json={"unit_id": f"u{unit}", "features": fraud_rows[unit % len(fraud_rows)]},
                )
                assert r.status_code == 200, r.text
                rate = 0.5 if r.json()["arm"] == "challenger" else 0.02
                if rng.random() < rate:
                    outcomes.append({"unit_id": f"u{unit}", "event": "chargeback"})
                unit += 1
            if outcomes:
                assert client.post("/outcomes", json=outcomes).status_code == 200
        assert wait_for(lambda: status() == "rolled_back", timeout_s=60.0)
    snap = wait_for(
        lambda: (
            (s := read_snapshot(registry, "fraud")).records
            and s.records[-1]["action"] == "rollback"
            and s
        )
    )
    (rollback,) = [r for r in snap.records if r["action"] == "rollback"]
    criteria = {c["name"]: c for c in rollback["evidence"]["criteria"]}
    assert criteria["guardrail_metric:chargebacks"]["met"] is False
    assert "challenger" not in snap.aliases  # archived
