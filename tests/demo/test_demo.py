"""`arbiter demo` (the default scenario) end to end, at a reduced size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.registry import registry_for_home


# The suite's 300 s per-test timeout is a hang guard; the demo takes 2-3 minutes on a quiet
# 2-core machine and several times that on a saturated one.
@pytest.mark.timeout(1_800)
def test_demo_runs_shadow_ab_two_canaries_and_interleaving(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--home", str(home), "--requests", "300", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["demo"]["phases"]) == {"shadow", "ab"}
    assert {a["strategy"] for a in summary["analysis"]} == {"shadow", "ab"}

    # The A/B phase posted purchases and chargebacks through POST /outcomes and ends with a
    # verdict on conversion, with revenue beside it and the chargeback guardrail.
    assert summary["demo"]["phases"]["ab"]["outcomes"] > 0
    ab = summary["ab_metrics"]
    assert ab["primary_metric"] == "conversion" and ab["decision"] in {
        "promote", "continue", "rollback", "keep_champion"
    }  # fmt: skip
    roles = {m["name"]: m["role"] for m in ab["metrics"]}
    assert roles == {"conversion": "primary", "revenue": "secondary", "chargebacks": "guardrail"}
    conversion = next(m for m in ab["metrics"] if m["name"] == "conversion")
    assert sum(arm["units"] for arm in conversion["arms"].values()) > 0
    assert any(r["name"] == "guardrail_metric:chargebacks" for r in ab["reasons"])

    promote, rollback = summary["canaries"]["promote"], summary["canaries"]["rollback"]
    assert promote["outcome"] == "promoted", promote["history"]
    assert [r["action"] for r in promote["history"]] == ["start", "advance", "advance", "promote"]
    assert rollback["outcome"] == "rolled_back", rollback["history"]
    assert "error_rate" in " ".join(rollback["history"][-1]["reasons"])
    assert registry_for_home(home).aliases("fraud") == {"champion": "2", "previous": "1"}
    assert len(list((home / "canary" / "fraud").glob("*.json"))) >= 6  # decision records

    assert summary["ranking"]["analysis"]["decision"] == "promote"
