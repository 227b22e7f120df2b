"""Shared fixtures: a real MLflow SQLite registry, built once per session and copied per test.

Migrating a fresh MLflow SQLite store and logging models takes seconds, so the session builds
one template home (registry with the demo's fraud models and some misbehaving ones) and each
test gets its own copy of the database. Model artifacts are read-only and stay in the
template's folder, which the copied database points at.
"""

from __future__ import annotations

import os

# As `arbiter serve` does: one native thread per model call (see arbiter.threads). Set before
# numpy and scikit-learn load their thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

#: The first feature's value on which ``faulty``'s ``stalling`` version hangs.
STALL_VALUE = -12345.0


@dataclass(frozen=True)
class Template:
    root: Path
    versions: dict[str, dict[str, str]]  # model -> {label: version}
    example: Any  # a few feature rows (DataFrame)
    rows: list[dict[str, float]]  # feature rows for requests
    labels: list[int]
    users: list[str]


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Template:
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion
    from arbiter.registry import registry_for_home
    from arbiter.testing import FailingModel, SlowModel, StallingModel

    root = tmp_path_factory.mktemp("template-home")
    registry = registry_for_home(root)
    train = make_transactions(4_000, seed=1)
    traffic = make_transactions(3_000, seed=2)
    example = train.features.head(5)
    champion = train_champion(train.features, train.labels)
    challenger = train_challenger(train.features, train.labels)
    versions: dict[str, dict[str, str]] = {"fraud": {}, "faulty": {}}
    versions["fraud"]["champion"] = registry.log_sklearn_model(
        "fraud", champion, example, aliases=("champion",)
    )
    versions["fraud"]["challenger"] = registry.log_sklearn_model(
        "fraud", challenger, example, aliases=("challenger",)
    )
    versions["faulty"]["champion"] = registry.log_sklearn_model(
        "faulty", champion, example, aliases=("champion",)
    )
    versions["faulty"]["raising"] = registry.log_pyfunc_model(
        "faulty", FailingModel(rate=1.0), example, aliases=("raising",)
    )
    versions["faulty"]["hanging"] = registry.log_pyfunc_model(
        "faulty", SlowModel(seconds=30.0), example, aliases=("hanging",)
    )
    # Hangs 120 s on a row whose first feature is STALL_VALUE, answers the rest at once.
    versions["faulty"]["stalling"] = registry.log_pyfunc_model(
        "faulty",
        StallingModel(120.0, str(example.columns[0]), STALL_VALUE),
        example,
        aliases=("stalling",),
    )
    return Template(
        root=root,
        versions=versions,
        example=example,
        rows=traffic.features.to_dict("records"),
        labels=traffic.labels.tolist(),
        users=traffic.users.tolist(),
    )


@pytest.fixture
def make_home(template_home: Template, tmp_path: Path) -> Callable[..., Home]:
    """A fresh home with a copy of the template registry and the given ``models:`` config."""

    def make(models: dict[str, Any] | None = None, **sections: Any) -> Home:
        home = Home.at(tmp_path / "home", create=True)
        if not home.mlflow_db.exists():
            shutil.copy(template_home.root / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate({"models": models or {}, **sections})
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        return home

    return make


@pytest.fixture
def fraud_rows(template_home: Template) -> list[dict[str, float]]:
    return template_home.rows


@pytest.fixture
def running(make_home: Callable[..., Home]) -> Iterator[Callable[..., Any]]:
    """Start a real uvicorn gateway for a config; stopped at teardown."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    servers: list[ServerThread] = []

    def start(models: dict[str, Any], **sections: Any) -> tuple[ServerThread, Home]:
        home = make_home(models, **sections)
        server = ServerThread(create_app(home)).start()
        servers.append(server)
        return server, home

    yield start
    for server in servers:
        server.stop()


# The demo's models in a shadow experiment, logged once per session (report and export tests).
from tests.shadow_home import shadow_home  # noqa: E402, F401
