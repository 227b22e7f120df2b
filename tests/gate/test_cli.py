"""`arbiter gate`, driven through Typer's CliRunner (exit codes: 0 passed, 10 failed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import gate as gate_command
from arbiter.demo.data import make_transactions
from arbiter.gate import is_blessed
from arbiter.home import Home
from arbiter.registry import registry_for_home


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("gate")(gate_command.gate)
    app.command("version")(lambda: None)  # two commands: the app dispatches by name
    return app


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    holdout = make_transactions(2_000, seed=11)
    paths = {"holdout": tmp_path / "holdout.parquet"}
    holdout.features.assign(is_fraud=holdout.labels).to_parquet(paths["holdout"])
    return paths


def _gate_args(home: Home, holdout: Path, *extra: str) -> list[str]:
    return [
        "gate", "--home", str(home.root), "--model", "fraud",
        "--holdout", str(holdout), "--label", "is_fraud", *extra,
    ]  # fmt: skip


def test_gate_passes_with_exit_code_0(
    cli: typer.Typer, make_home: Callable[..., Home], files: dict[str, Path]
) -> None:
    home = make_home()
    result = CliRunner().invoke(
        cli, _gate_args(home, files["holdout"], "--slice", "is_online", "--json")
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["passed"] is True and out["challenger_version"] == "2"
    assert any(c["name"] == "slice:is_online=1" for c in out["criteria"])
    assert is_blessed(registry_for_home(home.root), "fraud", "2")


def test_gate_failure_has_its_own_exit_code(
    cli: typer.Typer, make_home: Callable[..., Home], files: dict[str, Path]
) -> None:
    home = make_home()
    args = _gate_args(home, files["holdout"], "--min-improvement", "0.5", "--relative")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == gate_command.GATE_FAILED == 10, result.output
    assert "FAILED" in result.stdout and "min_improvement" in result.stdout
    assert not is_blessed(registry_for_home(home.root), "fraud", "2")


def test_failure_code_survives_non_standalone_mode(
    cli: typer.Typer, make_home: Callable[..., Home], files: dict[str, Path]
) -> None:
    # arbiter.cli.main runs the app this way and then exits 0 unless SystemExit escapes.
    home = make_home()
    args = _gate_args(home, files["holdout"], "--min-improvement", "0.5", "--json")
    with pytest.raises(SystemExit) as info:
        cli(args=args, standalone_mode=False)
    assert info.value.code == gate_command.GATE_FAILED


def test_gate_defaults_to_the_configured_aliases(
    cli: typer.Typer, make_home: Callable[..., Home], files: dict[str, Path]
) -> None:
    home = make_home(
        {
            "fraud": {
                "champion_alias": "prod",
                "experiment": {"strategy": "shadow", "challenger_alias": "candidate"},
            }
        }
    )
    registry = registry_for_home(home.root)
    registry.set_alias("fraud", "prod", "2")  # the other way round from champion/challenger
    registry.set_alias("fraud", "candidate", "1")
    result = CliRunner().invoke(cli, _gate_args(home, files["holdout"], "--no-record", "--json"))
    assert result.exit_code in (0, gate_command.GATE_FAILED), result.output
    out = json.loads(result.stdout)
    assert (out["champion_version"], out["challenger_version"]) == ("2", "1")
