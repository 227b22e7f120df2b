"""Alert bodies and signatures (pure): the JSON document, Slack's message, HMAC signing."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from arbiter.alerts import SCHEMA, json_body, new_alert, sign, slack_body, verify
from arbiter.config import ALERT_EVENTS, AlertsConfig, HomeConfig
from arbiter.errors import ConfigError


def _alert() -> object:
    return new_alert(
        "canary_rollback",
        "fraud: canary of v3 rolled back: error_rate 0.2 > 0.01",
        model="fraud",
        details={"stage": 1, "share": 0.2, "reasons": ["error_rate 0.2 > 0.01"], "ok": False},
    )


def test_json_document_has_the_documented_fields() -> None:
    alert = _alert()
    doc = json.loads(json_body(alert))
    assert doc["schema"] == SCHEMA
    assert set(doc) == {"schema", "id", "event", "severity", "model", "summary", "at",
                        "source", "details"}  # fmt: skip
    assert doc["event"] == "canary_rollback" and doc["severity"] == "critical"
    assert doc["details"]["reasons"] == ["error_rate 0.2 > 0.01"]
    assert set(doc["source"]) == {"component", "host", "pid"}
    # the signed bytes do not depend on dict order
    assert json_body(alert) == json_body(alert)


def test_slack_payload_is_an_incoming_webhook_message() -> None:
    doc = json.loads(slack_body(_alert()))
    assert set(doc) == {"text", "blocks"}
    assert "rolled back" in doc["text"]
    header, section, context = doc["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert len(header["text"]["text"]) <= 150
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    # scalar details become fields (lists stay in the JSON payload), at most ten
    names = [f["text"].split("\n")[0] for f in section["fields"]]
    assert names == ["*ok*", "*share*", "*stage*"]
    assert context["type"] == "context" and "fraud" in context["elements"][0]["text"]
    many = new_alert("drift_detected", "x", details={f"f{i}": i for i in range(30)})
    assert len(json.loads(slack_body(many))["blocks"][1]["fields"]) == 10


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"sha256={expected}"
    header = sign("s3cret", 1700000000, body)
    assert verify("s3cret", "1700000000", body, header, now=1700000010)
    assert not verify("other", "1700000000", body, header, now=1700000010)
    assert not verify("s3cret", "1700000000", body + b" ", header, now=1700000010)
    # replay: an old timestamp fails even with a valid signature
    assert not verify("s3cret", "1700000000", body, header, now=1700000000 + 301)
    assert not verify("s3cret", "not-a-number", body, header, now=1700000000)


def test_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert event"):
        new_alert("canary_exploded", "x")


def test_config_validates_webhooks() -> None:
    ok = HomeConfig.model_validate(
        {
            "alerts": {
                "webhooks": [{"name": "ops", "url": "https://h/x", "events": ["drift_detected"]}]
            }
        }
    )
    assert ok.alerts.webhooks[0].events == ("drift_detected",)
    assert AlertsConfig().webhooks == () and set(AlertsConfig.model_fields) >= {"max_attempts"}
    assert HomeConfig().alerts.webhooks == ()
    bad = [
        {"name": "a"},  # no url
        {"name": "a", "url": "https://h", "url_env": "X"},  # both
        {"name": "a", "url": "ftp://h"},
        {"name": "a", "url": "https://h", "events": ["nope"]},
        {"name": "a", "url": "https://h", "colour": "red"},  # unknown key
    ]
    for webhook in bad:
        with pytest.raises(ValueError):
            HomeConfig.model_validate({"alerts": {"webhooks": [webhook]}})
    with pytest.raises(ValueError, match="unique"):
        HomeConfig.model_validate({"alerts": {"webhooks": [{"name": "a", "url": "https://h"}] * 2}})
    with pytest.raises(ValueError, match="drift_window"):
        HomeConfig.model_validate({"alerts": {"drift_window": "soon"}})
    assert len(ALERT_EVENTS) == 9


def test_a_missing_secret_env_refuses_to_start_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from arbiter.alerts import resolve_webhooks

    monkeypatch.delenv("ARBITER_TEST_HOOK_SECRET", raising=False)
    config = AlertsConfig.model_validate(
        {
            "webhooks": [
                {"name": "ops", "url": "https://h/x", "secret_env": "ARBITER_TEST_HOOK_SECRET"}
            ]
        }
    )
    with pytest.raises(ConfigError, match="ARBITER_TEST_HOOK_SECRET"):
        resolve_webhooks(config)
    monkeypatch.setenv("ARBITER_TEST_HOOK_SECRET", "value-not-to-be-printed")
    (hook,) = resolve_webhooks(config)
    assert "value-not-to-be-printed" not in repr(hook)
