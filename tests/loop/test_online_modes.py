"""``loop.online: ab | canary``: the loop promotes after an A/B test or a canary, not a shadow.

Real registry, event log and gateway; the drift, retrain and gate steps are canned (they are
tested in ``test_cycle.py``): the candidate is the registered v2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest

from arbiter.errors import ConfigError
from arbiter.home import Home
from arbiter.loop import CycleStore, run_cycle
from arbiter.registry import registry_for_home
from tests.loop.conftest import MODEL, client_for, wait_for
from tests.loop.test_cycle import _canned

# The suite's 300 s per-test timeout is a hang guard; these real-gateway tests bound their own
# waits, and a saturated 2-core machine (`stress-ng --cpu 2` beside other runs) needs longer.
pytestmark = pytest.mark.timeout(900)

SECTIONS = {"registry": {"poll_interval_s": 0.2}, "events": {"flush_interval_s": 0.1}}
NO_LATENCY = {"max_latency_p99_ratio": None, "max_error_rate": None}
METRICS = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
}


def _steps() -> dict[str, Any]:
    """Canned drift, retrain (v2) and gate; the real online step."""
    return {k: v for k, v in _canned("2").items() if k != "online"}


def _ab_model(**decision: Any) -> dict[str, Any]:
    return {
        "experiment": {"name": "fraud-ab", "strategy": "ab", "challenger_share": 0.5},
        "loop": {"online": "ab"},
        "metrics": METRICS,
        "decision": {
            "min_sample_per_arm": 100,
            "primary_metric": "conversion",
            "guardrail_metrics": [{"metric": "chargebacks", "max_increase": 0.0}],
            "guardrails": NO_LATENCY,
            **decision,
        },
    }


@contextmanager
def _gateway(home: Home) -> Iterator[str]:
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    server = ServerThread(create_app(home)).start()
    try:
        yield server.url
    finally:
        server.stop()


def _rows(n: int) -> list[dict[str, float]]:
    from arbiter.demo.data import make_transactions

    return make_transactions(n, seed=31).features.to_dict("records")


def _units(
    client: httpx.Client,
    rows: list[dict[str, float]],
    start: int,
    n: int,
    rates: dict[str, float],
    rng: np.random.Generator,
) -> dict[str, int]:
    """``n`` new units, one request each; a purchase with the probability of the arm (by the
    version that served it: "2" is the candidate), posted through POST /outcomes."""
    outcomes, served = [], {}
    for i in range(start, start + n):
        unit = f"u{i}"
        r = client.post(
            f"/models/{MODEL}/predict", json={"unit_id": unit, "features": rows[i % len(rows)]}
        )
        r.raise_for_status()
        version = r.json()["version"]
        served[version] = served.get(version, 0) + 1
        if rng.random() < rates[version]:
            outcomes.append({"unit_id": unit, "event": "purchase", "value": 20.0})
    if outcomes:
        client.post("/outcomes", json={"outcomes": outcomes}).raise_for_status()
    return served


@pytest.mark.integration
def test_ab_mode_promotes_on_the_primary_metric(loop_home: Callable[..., Home]) -> None:
    home = loop_home({MODEL: _ab_model()}, **SECTIONS)
    steps = _steps()
    rows, rng = _rows(500), np.random.default_rng(3)
    with _gateway(home) as url, client_for(url) as client:
        # Before the cycle, the old challenger (also v2 here) serves: rows before the
        # candidate is staged are not its test.
        _units(client, rows, 0, 40, {"1": 0.0, "2": 1.0}, rng)
        first = run_cycle(home.root, MODEL, steps=steps)
        rec = first.record
        assert first.ran == ("drift", "retrain", "gate", "shadow", "online")
        assert rec.evidence("shadow")["mode"] == "ab"
        online = rec.evidence("online")
        assert online["mode"] == "ab" and online["decision"] == "continue"
        # Units arrive until the A/B test decides (bounded): the candidate converts 60 %,
        # the champion 30 %.
        start, decided = 40, None
        while decided is None and start < 4_000:
            _units(client, rows, start, 100, {"1": 0.3, "2": 0.6}, rng)
            start += 100
            run = run_cycle(home.root, MODEL, steps=steps)
            if run.record.finished:
                decided = run.record
    assert decided is not None, "no A/B verdict after 4000 units"
    assert decided.verdict == "promoted", decided.reason
    online = decided.evidence("online")
    assert online["mode"] == "ab" and online["metric"] == "conversion"
    assert online["metric_kind"] == "business" and online["decision"] == "promote"
    assert online["quality"]["metric"] == "accuracy"  # what model quality said, kept
    assert online["primary"]["estimate"] > 0.1
    # The 40 units before the stage are left out: every counted unit came after it.
    assert sum(online["units"].values()) <= start - 40
    names = {c["name"]: c["met"] for c in online["criteria"]}
    assert names["guardrail_metric:chargebacks"] is True
    assert registry_for_home(home.root).aliases(MODEL) == {"champion": "2", "previous": "1"}


@pytest.mark.integration
def test_ab_mode_rolls_back_a_candidate_that_converts_less(
    loop_home: Callable[..., Home],
) -> None:
    home = loop_home({MODEL: _ab_model()}, **SECTIONS)
    steps = _steps()
    rows, rng = _rows(500), np.random.default_rng(4)
    with _gateway(home) as url, client_for(url) as client:
        run_cycle(home.root, MODEL, steps=steps)
        start, decided = 0, None
        while decided is None and start < 4_000:
            _units(client, rows, start, 100, {"1": 0.6, "2": 0.2}, rng)
            start += 100
            run = run_cycle(home.root, MODEL, steps=steps)
            if run.record.finished:
                decided = run.record
    assert decided is not None and decided.verdict == "archived"
    assert decided.reason == "online verdict: rollback"
    assert registry_for_home(home.root).aliases(MODEL) == {"champion": "1"}


@pytest.mark.integration
def test_canary_mode_follows_the_gateways_canary(loop_home: Callable[..., Home]) -> None:
    model = {
        "experiment": {
            "name": "fraud-canary",
            "strategy": "canary",
            "canary": {
                "stages": [
                    {"share": 0.5, "min_requests": 20, "min_duration_s": 0.0},
                    {"share": 1.0, "min_requests": 20, "min_duration_s": 0.0},
                ],
                "analysis_interval_s": 0.5,
                "require_primary_sample": False,
                "max_prediction_psi": None,
            },
        },
        "loop": {"online": "canary"},
        "decision": {"min_sample_per_arm": 100000, "guardrails": NO_LATENCY},
    }
    home = loop_home({MODEL: model}, **SECTIONS)
    registry = registry_for_home(home.root)
    registry.delete_alias(MODEL, "challenger")  # the canary starts when the loop stages v2
    steps = _steps()
    rows = _rows(500)
    with _gateway(home) as url, client_for(url) as client:
        first = run_cycle(home.root, MODEL, steps=steps)
        online = first.record.evidence("online")
        assert online["mode"] == "canary" and online["decision"] == "continue"
        sent = 0

        def promoted() -> bool:
            nonlocal sent
            for _ in range(20):
                client.post(
                    f"/models/{MODEL}/predict",
                    json={"unit_id": f"c{sent}", "features": rows[sent % len(rows)]},
                ).raise_for_status()
                sent += 1
            return registry.aliases(MODEL).get("champion") == "2"

        wait_for(promoted, timeout=90.0, what="the canary promoting v2")
    rec = run_cycle(home.root, MODEL, steps=steps).record
    assert rec.verdict == "promoted", rec.reason
    online = rec.evidence("online")
    assert online["mode"] == "canary" and online["canary_status"] == "promoted"
    assert rec.evidence("promote")["refused"] is False
    assert registry.aliases(MODEL) == {"champion": "2", "previous": "1"}
    (saved,) = CycleStore(home.root).records(MODEL)
    assert saved.evidence("shadow")["mode"] == "canary"


def test_online_mode_needs_the_matching_strategy(loop_home: Callable[..., Home]) -> None:
    shadow = {"experiment": {"strategy": "shadow"}, "loop": {"online": "ab"}}
    home = loop_home({MODEL: shadow}, **SECTIONS)
    with pytest.raises(ConfigError, match=r"loop.online: ab\) needs `strategy: ab`"):
        run_cycle(home.root, MODEL, steps=_canned("2"))
