"""`arbiter demo` (the default scenario) end to end, at a reduced size."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.registry import registry_for_home


def test_demo_runs_shadow_ab_two_canaries_and_interleaving(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--home", str(home), "--requests", "300", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["demo"]["phases"]) == {"shadow", "ab"}
    assert {a["strategy"] for a in summary["analysis"]} == {"shadow", "ab"}

    promote, rollback = summary["canaries"]["promote"], summary["canaries"]["rollback"]
    assert promote["outcome"] == "promoted", promote["history"]
    assert [r["action"] for r in promote["history"]] == ["start", "advance", "advance", "promote"]
    assert rollback["outcome"] == "rolled_back", rollback["history"]
    assert "error_rate" in " ".join(rollback["history"][-1]["reasons"])
    assert registry_for_home(home).aliases("fraud") == {"champion": "2", "previous": "1"}
    assert len(list((home / "canary" / "fraud").glob("*.json"))) >= 6  # decision records

    assert summary["ranking"]["analysis"]["decision"] == "promote"
