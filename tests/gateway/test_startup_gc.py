"""Start-up runs with the cyclic collector paused, and the gateway serves with it on.

The pause saves the full collections that would re-walk every object the imports and model
loads keep (issue 13, start-up); a gateway left with the collector off would leak cycles
under load, and one embedded in a test or notebook must not switch it off for its host.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from arbiter.gateway.app import create_app
from arbiter.gateway.server import ServerThread
from arbiter.gateway.startup import collection_paused
from arbiter.home import Home
from arbiter.registry import MLflowRegistry
from arbiter.servable import ServableModel


def test_collection_paused_switches_the_collector_back_on_even_after_a_failure() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("start-up failed")
    assert gc.isenabled()


class _RecordingRegistry(MLflowRegistry):
    """The real registry, noting whether the collector ran while each version loaded."""

    collector_on_during_load: list[bool]

    def load(self, name: str, version: str) -> ServableModel:
        self.collector_on_during_load.append(gc.isenabled())
        return super().load(name, version)


def test_models_load_with_the_collector_paused_and_it_is_on_when_ready(
    make_home: Callable[..., Home], fraud_rows: list[dict[str, Any]]
) -> None:
    home = make_home({"fraud": {}})
    config = home.config()
    registry = _RecordingRegistry(
        home.tracking_uri(config), artifact_location=home.artifact_location()
    )
    registry.collector_on_during_load = []
    frozen_before = gc.get_freeze_count()
    with ServerThread(create_app(home, config=config, registry=registry)) as server:
        answer = httpx.post(f"{server.url}/models/fraud/predict", json={"features": fraud_rows[0]})
        assert answer.status_code == 200, answer.text
        assert registry.collector_on_during_load == [False]  # the champion, during start-up
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen_before  # start-up's objects were frozen
    assert gc.isenabled()
