"""`arbiter loop` alerts: the drift its drift step found and the decision that ended the cycle,
delivered to a real receiver before run_cycle returns (the sender is flushed at exit).

The steps are the loop tests' canned ones (tests/loop/test_cycle.py): what is under test is
that the loop alerts, not that it trains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from arbiter.home import Home
from arbiter.loop import run_cycle
from arbiter.loop.steps import CANDIDATE_ALIAS
from arbiter.registry import registry_for_home
from tests.alerts.conftest import Receiver
from tests.loop.conftest import MODEL, SECTIONS, loop_home, loop_template  # noqa: F401
from tests.loop.test_cycle import _canned


def test_a_cycle_alerts_its_drift_and_its_decision(
    loop_home: Callable[..., Home],  # noqa: F811
    receiver: Receiver,
) -> None:
    hook = {"name": "ops", "url": receiver.url, "events": ["drift_detected", "loop_decision"]}
    home = loop_home(None, **SECTIONS, alerts={"webhooks": [hook]})
    registry_for_home(home.root).set_alias(MODEL, CANDIDATE_ALIAS, "2")
    rec = run_cycle(home.root, MODEL, steps=_canned("2", gate_passed=False)).record
    assert rec.verdict == "archived"
    docs = {d.headers["x-arbiter-event"]: json.loads(d.body) for d in receiver.deliveries}
    assert set(docs) == {"drift_detected", "loop_decision"}
    decision: dict[str, Any] = docs["loop_decision"]
    assert decision["model"] == MODEL and decision["source"]["component"] == "loop"
    assert decision["details"] == {"cycle_id": rec.cycle_id, "verdict": "archived",
                                   "reason": "offline gate failed: canned gate"}  # fmt: skip
    assert docs["drift_detected"]["details"]["source"] == "loop"
