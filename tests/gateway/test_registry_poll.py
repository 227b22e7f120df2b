"""The registry poll is cheap when nothing changed, and still swaps when an alias moves."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from arbiter.home import Home


def _wait_for(check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_polls_skip_an_unchanged_sqlite_registry_and_see_a_moved_alias(
    make_home: Callable[..., Home], template_home: Any
) -> None:
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.registry import registry_for_home

    home = make_home({"fraud": {}}, registry={"poll_interval_s": 0.2})
    app = create_app(home)
    with ServerThread(app) as server:
        pool = app.state.arbiter.pool
        # Unchanged database: polls answer from a stat, without asking MLflow.
        _wait_for(lambda: pool.skipped_polls >= 3)
        assert httpx.get(server.url + "/readyz").json()["registry"]["reachable"] is True
        challenger = template_home.versions["fraud"]["challenger"]
        registry_for_home(home.root).set_alias("fraud", "champion", challenger)

        def serves_challenger() -> bool:
            models = httpx.get(server.url + "/models").json()["models"]
            return bool(models[0]["aliases"]["champion"] == challenger)

        _wait_for(serves_challenger)
        skipped = pool.skipped_polls
        _wait_for(lambda: pool.skipped_polls > skipped)  # quiet again: skipping again


def test_a_registry_without_a_fingerprint_is_asked_every_poll() -> None:
    from arbiter.registry import MLflowRegistry

    assert MLflowRegistry("http://127.0.0.1:9").fingerprint() is None
