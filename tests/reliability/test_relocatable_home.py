"""A home copied with ``cp -a`` serves its own artifacts (issue 14, item 9).

MLflow keeps absolute artifact URIs. The original home is built with a real MLflow registry,
copied with ``cp -a``, and then renamed away, so any read of its path fails; the copy must
serve predictions from its own files and log new versions into its own ``artifacts/``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home
from arbiter.registry import registry_for_home
from arbiter.registry.relocate import MARKER

MODELS = {"fraud": {}}


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@dataclass(frozen=True)
class Original:
    root: Path
    rows: list[dict[str, float]]

    def copy(self, target: Path, *, legacy: bool = False) -> Path:
        """``cp -a`` the home to ``target``; ``legacy`` drops the marker (a pre-marker home)."""
        subprocess.run(["cp", "-a", str(self.root), str(target)], check=True)
        if legacy:
            (target / MARKER).unlink()
        return target


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    """A home with one model version, built from scratch with a real MLflow registry."""
    from sklearn.tree import DecisionTreeClassifier

    from arbiter.demo.data import make_transactions

    root = tmp_path_factory.mktemp("relocate") / "original"
    data = make_transactions(300, seed=3)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(data.features, data.labels)
    registry_for_home(root).log_sklearn_model(
        "fraud", model, data.features.head(5), aliases=("champion",)
    )
    config = HomeConfig.model_validate({"models": MODELS})
    Home.at(root).config_path.write_text(dump_config(config), encoding="utf-8")
    assert (root / MARKER).exists()
    return Original(root, data.features.head(3).to_dict("records"))


@pytest.fixture
def away(original: Original) -> Iterator[Path]:
    """The original renamed away for the test, as if deleted; renamed back afterwards."""
    moved = original.root.with_name("original.away")
    original.root.rename(moved)
    yield moved
    moved.rename(original.root)


@pytest.mark.parametrize("legacy", [False, True], ids=["marker", "legacy-home"])
def test_copied_home_serves_and_logs_into_its_own_artifacts(
    original: Original, tmp_path: Path, legacy: bool, request: pytest.FixtureRequest
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    from arbiter.demo.data import make_transactions
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    copy = original.copy(tmp_path / "copy", legacy=legacy)
    away: Path = request.getfixturevalue("away")  # the original is gone from here on
    before = _files(away)

    server = ServerThread(create_app(Home.at(copy))).start()
    try:
        r = httpx.post(
            server.url + "/models/fraud/predict", json={"features": original.rows}, timeout=30
        )
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "1" and len(r.json()["predictions"]) == 3
    finally:
        server.stop()

    registry = registry_for_home(copy)
    data = make_transactions(200, seed=4)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(data.features, data.labels)
    version = registry.log_sklearn_model("fraud", model, data.features.head(5))
    assert version == "2"
    for v in ("1", "2"):
        uri = registry.client.get_model_version_download_uri("fraud", v)
        assert uri.startswith((copy / "artifacts").as_uri() + "/"), uri
        assert registry.load("fraud", v).version == v
    assert _files(away) == before  # nothing was written into the original
    assert not original.root.exists()


def test_test_homes_keep_reading_the_template_artifacts(
    make_home: Callable[..., Home], template_home: Any
) -> None:
    """The suite's homes hold only a copy of mlflow.db: their artifacts stay in the template."""
    home = make_home(MODELS)
    registry = registry_for_home(home.root)
    uri = registry.client.get_model_version_download_uri("fraud", "1")
    assert uri.startswith((template_home.root / "artifacts").as_uri())
    assert registry.load("fraud", "1").version == "1"
    assert not (home.root / "artifacts").exists()


def test_moving_a_home_twice_rewrites_once_each_time(original: Original, tmp_path: Path) -> None:
    first = original.copy(tmp_path / "a")
    registry_for_home(first)  # relocates a -> its own artifacts
    second = tmp_path / "b"
    shutil.move(first, second)
    registry = registry_for_home(second)
    uri = registry.client.get_model_version_download_uri("fraud", "1")
    assert uri.startswith((second / "artifacts").as_uri() + "/"), uri
    registry_for_home(second)  # nothing left to rewrite
    assert registry.load("fraud", "1").version == "1"
