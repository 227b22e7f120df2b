"""Alias moves are recorded in the registry and guarded against concurrent moves."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.errors import NotFoundError
from arbiter.registry import MLflowRegistry
from arbiter.registry.history import AliasConflictError, history, move_alias, promote, rollback


def test_promote_rollback_and_history(make_home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_ACTOR", "tester")
    home = make_home({"fraud": {}})
    registry = MLflowRegistry(home.tracking_uri())
    promote(registry, "fraud", "2", expected_champion="1", reason="shadow verdict: promote")
    assert registry.aliases("fraud") == {"champion": "2", "challenger": "2", "previous": "1"}
    move = rollback(registry, "fraud", reason="errors after promotion")
    assert (move.from_version, move.to_version) == ("2", "1")
    assert registry.aliases("fraud")["previous"] == "2"  # a second rollback undoes the first
    moves = history(registry, "fraud")
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("champion", "1", "2"),
        ("previous", None, "1"),
        ("champion", "2", "1"),
        ("previous", "1", "2"),
    ]
    assert moves[0].actor == "tester" and moves[0].reason == "shadow verdict: promote"


def test_move_is_refused_when_the_alias_moved(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    registry = MLflowRegistry(home.tracking_uri())
    with pytest.raises(AliasConflictError, match="expected v2"):
        move_alias(registry, "fraud", "champion", "2", expected_version="2", reason="stale")
    assert registry.aliases("fraud")["champion"] == "1"
    assert history(registry, "fraud") == []


def test_rollback_without_previous(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    with pytest.raises(NotFoundError, match="previous"):
        rollback(MLflowRegistry(home.tracking_uri()), "fraud")


def test_cli(make_home: Any) -> None:
    home = make_home({"fraud": {}})
    runner = CliRunner()
    args = ["--home", str(home.root), "-m", "fraud", "--json"]
    promoted = runner.invoke(app, ["promote", *args, "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    rolled = runner.invoke(app, ["rollback", *args])
    assert json.loads(rolled.stdout)["to_version"] == "1"
    shown = json.loads(runner.invoke(app, ["history", *args]).stdout)
    assert shown["aliases"]["champion"] == "1" and len(shown["moves"]) == 4
