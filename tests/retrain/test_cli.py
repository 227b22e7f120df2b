"""`arbiter retrain`, driven through Typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import retrain as retrain_command
from arbiter.demo.data import make_transactions
from arbiter.errors import InvalidInputError
from arbiter.home import Home
from arbiter.registry import registry_for_home


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("retrain")(retrain_command.retrain)
    app.command("version")(lambda: None)  # two commands: the app dispatches by name
    return app


def retrain_args(
    home: Home, data: Path, model: str = "fraud", label: str = "is_fraud"
) -> list[str]:
    """The start of an `arbiter retrain` command line on ``home``."""
    return ["retrain", "--home", str(home.root), "--model", model, "--data", str(data),
            "--label", label]  # fmt: skip


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    train = make_transactions(400, seed=3)
    path = tmp_path / "train.csv"
    train.features.assign(is_fraud=train.labels).to_csv(path, index=False)
    return path


def test_retrain_registers_a_challenger(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path
) -> None:
    home = make_home()
    args = [
        *retrain_args(home, train_csv),
        "--trials", "2", "--cv", "2", "--search", "sklearn", "--seed", "4",
        "--include-traffic", "7d", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["version"] == "3" and out["n_trials"] == 2 and out["n_traffic_rows"] == 0
    assert registry_for_home(home.root).aliases("fraud")["challenger"] == "3"


def test_retrain_rejects_a_missing_label(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path
) -> None:
    home = make_home()
    args = [
        *retrain_args(home, train_csv, label="nope"), "--trials", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, InvalidInputError)
    assert "nope" in str(result.exception)


def test_retrain_registers_under_the_configured_challenger_alias(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path
) -> None:
    home = make_home(
        {"fraud": {"experiment": {"strategy": "shadow", "challenger_alias": "candidate"}}}
    )
    args = [
        *retrain_args(home, train_csv),
        "--trials", "1", "--cv", "2", "--search", "sklearn",
        "--include-traffic", "1h30m", "--json",  # the duration grammar of `arbiter loop`
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    aliases = registry_for_home(home.root).aliases("fraud")
    assert aliases["candidate"] == json.loads(result.stdout)["version"] == "3"
    assert aliases["challenger"] == "2"  # the default name is not the configured one


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    from tests.retrain.tables import mixed_table

    x, y = mixed_table(300, seed=5)
    path = tmp_path / "accounts.csv"
    x.assign(is_fraud=y).to_csv(path, index=False)
    return path


def test_retrain_a_real_table_reports_its_gaps(
    cli: typer.Typer, make_home: Callable[..., Home], mixed_csv: Path
) -> None:
    home = make_home()
    args = [
        *retrain_args(home, mixed_csv, model="accounts"),
        "--trials", "1", "--cv", "2", "--search", "sklearn",
        "--time-column", "event_time", "--categorical", "logins", "--text", "note",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n_rows"] == 300 and out["time_column"] == "event_time"
    assert out["column_kinds"]["logins"] == "categorical" and out["column_kinds"]["note"] == "text"
    assert set(out["missing"]) == {"amount", "country", "note"}
    assert out["n_rows_with_gaps"] >= max(out["missing"].values())
    text = CliRunner().invoke(cli, [*args, "--tune-threshold", "--threshold-metric", "f1"])
    assert text.exit_code == 0, text.output
    assert f"{out['n_rows_with_gaps']} of 300 rows had a missing value" in text.stdout
    assert "as text: note" in text.stdout and "decision threshold" in text.stdout
    assert "searched and refitted on all 300 rows" in text.stdout


def test_retrain_says_it_searched_on_a_subset(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path
) -> None:
    home = make_home()
    args = [
        *retrain_args(home, train_csv),
        "--trials", "1", "--cv", "2", "--search", "sklearn", "--search-rows", "250",
    ]  # fmt: skip
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "searched on 250 of 400 rows; the best refitted on all" in text.stdout
    out = json.loads(CliRunner().invoke(cli, [*args, "--json", "--no-prune"]).stdout)
    assert out["n_search_rows"] == 250 and out["n_rows"] == 400 and out["n_pruned"] == 0


def test_retrain_names_an_unknown_column(
    cli: typer.Typer, make_home: Callable[..., Home], mixed_csv: Path
) -> None:
    home = make_home()
    args = [
        *retrain_args(home, mixed_csv, model="accounts"), "--trials", "1",
        "--time-column", "event_time", "--categorical", "colour",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, InvalidInputError)
    assert result.exception.field == "--categorical" and "'colour'" in str(result.exception)
