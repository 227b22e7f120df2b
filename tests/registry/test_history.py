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


# Aliases configured in arbiter.yaml (the names the gateway serves), not the default names.
RENAMED = {
    "fraud": {
        "champion_alias": "prod",
        "experiment": {"strategy": "shadow", "challenger_alias": "candidate"},
    }
}


def test_promote_and_rollback_move_the_configured_champion_alias(make_home: Any) -> None:
    home = make_home(RENAMED)
    registry = MLflowRegistry(home.tracking_uri())
    registry.set_alias("fraud", "prod", "1")
    runner = CliRunner()
    args = ["--home", str(home.root), "-m", "fraud", "--json"]
    promoted = runner.invoke(app, ["promote", *args, "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    moves = json.loads(promoted.stdout)["moves"]
    assert (moves[0]["alias"], moves[0]["from_version"]) == ("prod", "1")
    aliases = registry.aliases("fraud")
    assert (aliases["prod"], aliases["previous"], aliases["champion"]) == ("2", "1", "1")
    rolled = runner.invoke(app, ["rollback", *args])
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["alias"] == "prod"
    assert registry.aliases("fraud")["prod"] == "1"


def test_commands_use_the_configured_registry_uri(make_home: Any) -> None:
    import shutil

    from arbiter.registry import registry_for_home

    home = make_home({"fraud": {}})
    registry_db = home.root / "registry.db"
    shutil.copy(home.mlflow_db, registry_db)  # a separate registry store, as a server would be
    uri = f"sqlite:///{registry_db}"
    home = make_home({"fraud": {}}, registry={"registry_uri": uri})
    assert registry_for_home(home.root).registry_uri == uri
    args = ["--home", str(home.root), "-m", "fraud", "--json"]
    promoted = CliRunner().invoke(app, ["promote", *args, "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    assert MLflowRegistry(home.tracking_uri(), registry_uri=uri).aliases("fraud")["champion"] == "2"
    assert MLflowRegistry(home.tracking_uri()).aliases("fraud")["champion"] == "1"  # untouched
    shown = json.loads(CliRunner().invoke(app, ["history", *args]).stdout)
    assert shown["aliases"]["champion"] == "2" and len(shown["moves"]) == 2
