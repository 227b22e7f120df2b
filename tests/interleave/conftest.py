"""Fixtures for interleaving: a registry of ranking models, built once, and real gateways.

The session template registers model ``ranker`` in a real MLflow SQLite store:

* v1 ``champion``: the demo's popularity ranker (ranker A);
* v2 ``challenger``: the demo's quality ranker (ranker B, the one simulated users prefer);
* v3 ``raising``: raises on every call;
* v4 ``garbage``: answers an integer per row instead of a list of item ids;
* v5 ``slow-a`` and v6 ``slow-b``: sleep 0.4 s per call, then answer a fixed list (timing of
  the concurrent scoring).

Each test copies the database into its own home (artifacts stay in the template's folder).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.pyfunc import PythonModel

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

MODEL = "ranker"
SLOW_S = 0.4


class SleepyRanker(PythonModel):
    """Sleeps ``seconds`` per call (releasing the GIL, as I/O-bound rankers do), then ranks."""

    def __init__(self, seconds: float, items: list[str]) -> None:
        self.seconds = seconds
        self.items = items

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        time.sleep(self.seconds)
        return [list(self.items) for _ in range(len(model_input))]


@dataclass(frozen=True)
class RankingTemplate:
    root: Path
    versions: dict[str, str]  # alias -> version
    catalogue: Any  # arbiter.demo.ranking.Catalogue


@pytest.fixture(scope="session")
def ranking_template(tmp_path_factory: pytest.TempPathFactory) -> RankingTemplate:
    from arbiter.demo.ranking import example_frame, make_catalogue, register_rankers
    from arbiter.registry import registry_for_home
    from arbiter.testing import FailingModel

    root = tmp_path_factory.mktemp("ranking-template")
    home = Home.at(root, create=True)
    catalogue = make_catalogue(seed=7)
    versions = register_rankers(home, catalogue)
    registry = registry_for_home(root)
    example = example_frame()
    versions["raising"] = registry.log_pyfunc_model(
        MODEL, FailingModel(rate=1.0), example, aliases=("raising",)
    )
    versions["garbage"] = registry.log_pyfunc_model(
        MODEL, FailingModel(rate=0.0, constant=3), example, aliases=("garbage",)
    )
    for alias, items in (("slow-a", ["a", "b", "c"]), ("slow-b", ["c", "d", "e"])):
        versions[alias] = registry.log_pyfunc_model(
            MODEL, SleepyRanker(SLOW_S, items), example, aliases=(alias,)
        )
    return RankingTemplate(root, versions, catalogue)


def ranker_config(
    method: str = "team_draft",
    *,
    strategy: str = "interleave",
    challenger_alias: str = "challenger",
    length: int | None = 10,
    min_sample: int = 50,
) -> dict[str, Any]:
    """The ``models:`` block of an interleaving experiment on ``ranker``.

    Another ``strategy`` gets the keys it has: a challenger (unless ``none``), no
    ``interleave`` block.
    """
    experiment: dict[str, Any] = {
        "name": f"{MODEL}-{strategy}-{method}",
        "strategy": strategy,
        "unit_field": "user_id",
    }
    if strategy != "none":
        experiment["challenger_alias"] = challenger_alias
    if strategy == "interleave":
        experiment["interleave"] = {"method": method, "length": length}
    return {MODEL: {"experiment": experiment, "decision": {"min_sample_per_arm": min_sample}}}


@pytest.fixture
def rank_gateway(
    ranking_template: RankingTemplate, tmp_path: Path
) -> Iterator[Callable[..., tuple[Any, Home]]]:
    """Start a real gateway on 127.0.0.1 for a ``models:`` block; stopped at teardown."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    servers: list[ServerThread] = []

    def start(models: dict[str, Any], name: str = "home") -> tuple[ServerThread, Home]:
        home = Home.at(tmp_path / name, create=True)
        shutil.copy(ranking_template.root / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate({"models": models, "events": {"flush_interval_s": 0.1}})
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        server = ServerThread(create_app(home)).start()
        servers.append(server)
        return server, home

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()
