"""`arbiter retrain --storage postgresql://... --workers N`: one Optuna study, many processes.

Each test gets a throwaway database on the real PostgreSQL at 127.0.0.1:5432 (trust auth)
and drops it afterwards. Skipped only when no PostgreSQL answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import retrain as retrain_command
from arbiter.demo.data import make_transactions
from arbiter.home import Home
from arbiter.registry import registry_for_home
from arbiter.retrain.objective import CVObjective
from arbiter.retrain.study import close_storage, storage_for, study_name_for

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
TRIALS = 4


@pytest.fixture
def storage_url() -> Iterator[str]:
    """A fresh database; the URL carries a password (trust auth ignores it) to check redaction."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    name = f"arbiter_study_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres:hunter2secret@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("retrain")(retrain_command.retrain)
    app.command("version")(lambda: None)
    return app


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    train = make_transactions(300, seed=3)
    path = tmp_path / "train.csv"
    train.features.assign(is_fraud=train.labels).to_csv(path, index=False)
    return path


def _args(home: Home, train_csv: Path, storage: str, *extra: str) -> list[str]:
    return [
        "retrain", "--home", str(home.root), "--model", "fraud",
        "--data", str(train_csv), "--label", "is_fraud",
        "--trials", str(TRIALS), "--cv", "2", "--search", "sklearn",
        "--storage", storage, *extra,
    ]  # fmt: skip


class _Study:
    """A finished study read back from the storage; its connections closed at once."""

    def __init__(self, storage_url: str, name: str) -> None:
        storage = storage_for(storage_url)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
            self.trials = study.get_trials()
            self.user_attrs = study.user_attrs
            self.best_value = study.best_value
        finally:
            close_storage(storage)
        self.states = [t.state.name for t in self.trials]


def test_two_hosts_and_two_workers_share_one_study_and_the_creator_registers_its_best(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path, storage_url: str
) -> None:
    """Two `arbiter retrain` processes, as two hosts would run them, one with --workers 2."""
    home = make_home()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "arbiter", *_args(home, train_csv, storage_url, "--json")]
    procs = [
        subprocess.Popen([*command, *more], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for more in (["--workers", "2"], [])
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out + err).decode()
        assert b"hunter2secret" not in out + err
    results = [json.loads(out) for out, _ in outputs]
    name = results[0]["study"]
    assert name == results[1]["study"] and name.startswith("arbiter-fraud-")
    creators = [r for r in results if not r["joined"]]
    assert len(creators) == 1, results

    study = _Study(storage_url, name)
    # Exactly TRIALS scored trials; a trial asked for in a race for the last one is pruned.
    assert study.states.count("COMPLETE") == TRIALS, study.states
    assert set(study.states) <= {"COMPLETE", "PRUNED"} and len(study.states) <= TRIALS + 2
    # The best trial is registered as today: one new version with the challenger alias.
    registry = registry_for_home(home.root)
    version = study.user_attrs["arbiter.version"]
    assert registry.aliases("fraud")["challenger"] == version == creators[0]["version"] == "3"
    assert len(registry.client.search_model_versions("name='fraud'")) == 3
    tags = registry.client.get_model_version("fraud", version).tags
    assert tags["arbiter.retrain.study"] == name
    assert float(tags["arbiter.retrain.cv_score"]) == pytest.approx(study.best_value)

    # The same command once more finds the finished study: no new trial, no new version; the
    # study and its storage are printed, the password masked.
    again = CliRunner().invoke(cli, _args(home, train_csv, storage_url))
    assert again.exit_code == 0, again.output
    printed = " ".join(again.output.split())  # Rich wraps lines at the terminal width
    assert f"study {name} in postgresql://postgres:***@127.0.0.1" in printed
    assert "hunter2secret" not in printed
    assert "registered: v3" in printed
    assert _Study(storage_url, name).states == study.states
    assert len(registry.client.search_model_versions("name='fraud'")) == 3


def test_an_unreachable_storage_is_a_clean_error_without_its_password(
    cli: typer.Typer, make_home: Callable[..., Home], train_csv: Path
) -> None:
    home = make_home()
    storage = "postgresql://postgres:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2"
    result = CliRunner().invoke(cli, _args(home, train_csv, storage))
    assert result.exit_code != 0
    message = str(result.exception)
    assert "--storage" in message or "study storage" in message
    assert "hunter2secret" not in message


def test_the_study_name_is_stable_for_the_same_data_and_settings() -> None:
    train = make_transactions(200, seed=1)
    settings = {"search": "sklearn", "metric": "roc_auc", "cv": 2, "seed": 0, "n_trials": 4}
    name = study_name_for("fraud", train.features, np.asarray(train.labels), settings)
    again = study_name_for("fraud", train.features.copy(), np.asarray(train.labels), settings)
    assert name == again and name.startswith("arbiter-fraud-")
    changed = train.features.assign(amount=train.features["amount"] + 1.0)
    assert study_name_for("fraud", changed, np.asarray(train.labels), settings) != name
    assert (
        study_name_for("fraud", train.features, np.asarray(train.labels), {**settings, "seed": 1})
        != name
    )


def test_a_trial_past_the_total_is_pruned_unscored_and_stops_its_worker() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = make_transactions(200, seed=2)
    built: list[int] = []

    def factory(trial: optuna.Trial) -> Pipeline:
        built.append(trial.number)
        c = trial.suggest_float("C", 0.1, 10.0, log=True)
        return make_pipeline(StandardScaler(), LogisticRegression(C=c))

    objective = CVObjective(
        factory, train.features.to_numpy(), np.asarray(train.labels), "roc_auc",
        StratifiedKFold(2, shuffle=True, random_state=0), max_trials=2,
    )  # fmt: skip
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=5)  # trial 2 is past the total: the study stops there
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert built == [0, 1]
