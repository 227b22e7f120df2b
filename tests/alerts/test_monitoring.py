"""The gateway's monitor on a real gateway: analysis gauges on /metrics, change alerts, and
the Grafana dashboard's metrics checked against what this gateway exports."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbiter.registry import registry_for_home
from tests.alerts.conftest import Receiver
from tests.alerts.test_prometheus_rules import dashboard_expressions, metric_names, rule_expressions
from tests.canary.conftest import FAST, send, wait_for


def exported_names(text: str) -> set[str]:
    """Every series name a scrape of ``text`` can return, families without samples included
    (a labelled metric no request has touched yet is still exported)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_monitor_sets_gauges_and_alerts_on_drift_and_shadow_drops(
    running: Any, make_home: Any, template_home: Any, receiver: Receiver
) -> None:
    from arbiter.drift import build_profile
    from arbiter.registry.profiles import log_profile

    # The champion's reference: the same traffic with every value larger, so the served
    # traffic has drifted for sure.
    home = make_home({})
    reference = pd.DataFrame(template_home.rows[:1000]) * 10 + 5
    registry = registry_for_home(home.root)
    log_profile(registry.tracking_uri, "fraud", template_home.versions["fraud"]["champion"],
                build_profile(reference))  # fmt: skip
    models = {
        "fraud": {"experiment": {"strategy": "shadow", "shadow_executor": "thread"}},
        # a challenger that hangs 30 s in one shadow slot: every later shadow is dropped
        "faulty": {"experiment": {"strategy": "shadow", "challenger_alias": "hanging",
                                  "shadow_executor": "thread", "shadow_max_in_flight": 1}},
    }  # fmt: skip
    alerts = {
        "webhooks": [{"name": "ops", "url": receiver.url}],
        "check_interval_s": 0.3,
        "drift_window": "2000 rows",
        "shadow_min_requests": 20,
    }
    server, _ = running(models, **FAST, alerts=alerts)
    rows = template_home.rows
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sent = 0

        def scrape() -> str | None:
            nonlocal sent
            send(client, "fraud", rows, sent, 20)
            send(client, "faulty", rows, sent, 20)
            sent += 20
            text = client.get("/metrics").text
            ready = all(
                _samples(text, name)
                for name in ("arbiter_drift_score", "arbiter_shadow_discrepancy_rate",
                             "arbiter_verdict")
            )  # fmt: skip
            return text if ready and "shadow_drop_rate" in receiver.events() else None

        text = wait_for(scrape, timeout_s=90, interval_s=0.1)
        wait_for(lambda: "drift_detected" in receiver.events(), timeout_s=30)

    scores = _samples(text, "arbiter_drift_score")
    features = {dict(k)["feature"] for k in scores if dict(k)["model"] == "fraud"}
    assert features == set(reference.columns) and all(v > 0 for v in scores.values())
    assert _samples(text, "arbiter_drift_detected")[(("model", "fraud"),)] == 1.0
    discrepancy = _samples(text, "arbiter_shadow_discrepancy_rate")
    assert 0.0 <= discrepancy[(("experiment", "fraud-shadow"), ("model", "fraud"))] <= 1.0
    verdicts = {dict(k)["decision"]: v for k, v in _samples(text, "arbiter_verdict").items()
                if dict(k)["model"] == "fraud"}  # fmt: skip
    assert sum(verdicts.values()) == 1.0  # exactly one current verdict

    by_event = {d.headers["x-arbiter-event"]: json.loads(d.body) for d in receiver.deliveries}
    drift = by_event["drift_detected"]
    assert drift["model"] == "fraud" and "amount" in drift["details"]["drifted_features"]
    drops = by_event["shadow_drop_rate"]
    assert drops["model"] == "faulty" and drops["details"]["drop_rate"] > 0.05
    # alerts fire on a change, not at every check
    assert receiver.events().count("drift_detected") == 1

    # Every metric the dashboard and the alert rules use is one this gateway exports.
    exported = exported_names(text)
    missing = sorted(metric_names(dashboard_expressions() + rule_expressions()) - exported)
    assert not missing, f"not exported by the gateway: {missing}"


@pytest.mark.parametrize("typo", ["arbiter_request_total", "arbiter_drift_scores"])
def test_the_exported_names_check_catches_a_typo(typo: str) -> None:
    text = "# HELP arbiter_drift_score x\n# TYPE arbiter_drift_score gauge\n"
    assert typo not in exported_names(text)
    assert "arbiter_drift_score" in exported_names(text)


def test_a_replica_with_another_split_raises_the_srm_alert(
    running: Any, template_home: Any, receiver: Receiver
) -> None:
    """Two real gateways log the same A/B test; one was deployed with a 90 % split instead of
    50 %. The other's monitor finds the sample ratio mismatch, sets the gauge and alerts."""
    from arbiter.config import HomeConfig
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    ab = {"experiment": {"strategy": "ab", "challenger_share": 0.5}}
    alerts = {"webhooks": [{"name": "ops", "url": receiver.url}], "check_interval_s": 0.3}
    server, home = running({"fraud": ab}, **FAST, alerts=alerts)
    skewed = HomeConfig.model_validate(
        {"models": {"fraud": {"experiment": {"strategy": "ab", "challenger_share": 0.9}}}, **FAST}
    )
    replica = ServerThread(create_app(home, config=skewed)).start()
    rows = template_home.rows
    try:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            httpx.Client(base_url=replica.url, timeout=30) as other,
        ):
            sent = 0

            def srm_alerted() -> bool:
                nonlocal sent
                send(client, "fraud", rows, sent, 20)
                send(other, "fraud", rows, sent + 100_000, 20)
                sent += 20
                return "srm_detected" in receiver.events()

            wait_for(srm_alerted, timeout_s=90, interval_s=0.1)
            text = client.get("/metrics").text
    finally:
        replica.stop()
    (p_value,) = _samples(text, "arbiter_srm_p_value").values()
    assert p_value < 0.001
    (alert,) = [json.loads(d.body) for d in receiver.deliveries
                if d.headers["x-arbiter-event"] == "srm_detected"]  # fmt: skip
    assert alert["model"] == "fraud" and alert["details"]["experiment"] == "fraud-ab"
    assert alert["details"]["p_value"] < alert["details"]["threshold"]
