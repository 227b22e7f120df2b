"""A bandit gateway on a real server: three arms over the template registry's fraud model.

The template registry has fraud v1 (``champion``) and v2 (``challenger``); the third arm's
alias ``third`` is pointed at v1 before the server starts. What the arms *are* does not matter
to a bandit: the reward each arm earns is simulated by the test (:func:`reward_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from arbiter.home import Home

ARMS = ("champion", "challenger", "third")
# Reward probability of the arm that served: the challenger is clearly the best.
REWARD_P = {"champion": 0.2, "challenger": 0.8, "third": 0.2}


def bandit_models(**bandit: Any) -> dict[str, Any]:
    return {
        "fraud": {
            "experiment": {
                "strategy": "bandit",
                "challengers": [{"alias": "challenger"}, {"alias": "third"}],
                "bandit": {"update_interval_s": 0.2, **bandit},
            }
        }
    }


EVENTS = {"flush_interval_s": 0.05}


@pytest.fixture
def bandit_gateway(
    make_home: Callable[..., Home], running: Callable[..., Any]
) -> Callable[..., tuple[Any, Home]]:
    """Start a bandit gateway with the given ``experiment.bandit`` settings."""
    from arbiter.registry import registry_for_home

    def start(**bandit: Any) -> tuple[Any, Home]:
        models = bandit_models(**bandit)
        home = make_home(models, events=EVENTS)
        registry_for_home(home.root).set_alias("fraud", "third", "1")
        return running(models, events=EVENTS)  # same home: the registry copy is kept

    return start


@pytest.fixture
def client_for() -> Iterator[Callable[[str], httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(url: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=url, timeout=30.0))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def serve_round(
    client: httpx.Client,
    rows: list[dict[str, float]],
    n: int,
    rng: np.random.Generator,
    *,
    offset: int = 0,
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """``n`` single-row predictions; returns requests per arm and the simulated rewards."""
    served = dict.fromkeys(ARMS, 0)
    feedback = []
    for i in range(n):
        r = client.post("/models/fraud/predict", json={"features": rows[(offset + i) % len(rows)]})
        assert r.status_code == 200, r.text
        body = r.json()
        served[body["arm"]] += 1
        reward = int(rng.random() < REWARD_P[body["arm"]])
        feedback.append({"request_id": body["request_id"], "row_index": 0, "label": reward})
    return served, feedback


def bandit_status(client: httpx.Client) -> dict[str, Any]:
    (model,) = client.get("/models").json()["models"]
    return model["experiment"]["bandit"]


def wait_for_rewards(client: httpx.Client, total: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until the controller's last update counted ``total`` valid rewards.

    The timeout is generous (a loaded CI runner with two shared cores): only a failing run
    waits it out.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status = bandit_status(client)
        if sum(status["rewards"].values()) >= total:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"controller did not see {total} rewards: {status}")
        time.sleep(0.05)
