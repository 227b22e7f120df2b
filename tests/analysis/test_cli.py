"""``arbiter analyze`` through the real Typer app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.config import HomeConfig, dump_config
from arbiter.errors import NotFoundError
from arbiter.events import EventStore

runner = CliRunner()


def test_analyze_json(ab_log: Callable[..., EventStore], tmp_path: Path) -> None:
    store = ab_log(3000, 3000, 0.80, 0.88)
    config = HomeConfig.model_validate(
        {"models": {"m": {"experiment": {"name": "m-ab", "strategy": "ab"}}}}
    )
    (store.home / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")
    html = tmp_path / "report.html"
    result = runner.invoke(
        app, ["analyze", "--home", str(store.home), "--model", "m", "--json", "--html", str(html)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    data = json.loads(result.stdout)
    (exp,) = data["experiments"]
    assert exp["experiment"] == "m-ab" and exp["decision"] == "promote"
    assert exp["notes"] == []  # the configured experiment: its split is known
    assert {c["name"] for c in exp["criteria"]} >= {"srm", "min_sample", "primary_improvement"}
    assert data["html_file"] == str(html) and html.exists()


def test_analyze_tables_and_default_report(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(1000, 1000, 0.80, 0.80)
    result = runner.invoke(app, ["analyze", "--home", str(store.home), "--model", "m"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "verdict: continue" in result.stdout
    assert (store.home / "reports" / "m-analysis.html").exists()


def test_analyze_unknown_model(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(10, 10, 0.8, 0.8)
    result = runner.invoke(
        app, ["analyze", "--home", str(store.home), "--model", "nope", "--no-html"]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFoundError)
    assert "no events logged for model 'nope'" in str(result.exception)
