"""A home for the closed loop: a champion with a reference profile, data files, a gateway.

The session builds one registry (champion ``fraud`` v1 trained on undrifted transactions, with
its drift reference profile) and each test copies its database, like the shared template of
``tests/conftest.py``; a separate template so that the profile and the retrained versions do
not leak into other packages' tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.demo.traffic import (
    KEEPALIVE_EXPIRY_S,
    REQUEST_TIMEOUT_S,
    EvidenceTimeoutError,
    wait_until,
)
from arbiter.home import Home

MODEL = "fraud"
LABEL = "is_fraud"
SEARCH = "tests.loop.factories:small_boosting"

MODELS: dict[str, Any] = {
    MODEL: {
        "experiment": {"name": "fraud-shadow", "strategy": "shadow", "shadow_max_in_flight": 64},
        "decision": {
            "min_sample_per_arm": 300,
            # p99 latency needs 1000 requests per side and error rate ~400 to be conclusive;
            # the tests send fewer, in batches.
            "guardrails": {"max_latency_p99_ratio": None, "max_error_rate": None},
        },
    }
}
SECTIONS: dict[str, Any] = {
    "registry": {"poll_interval_s": 0.2},
    "events": {"flush_interval_s": 0.1},
}


@dataclass(frozen=True)
class LoopData:
    root: Path
    train: Path  # drifted transactions with labels, for the retrain
    holdout: Path  # drifted, for the offline gate


@pytest.fixture(scope="session")
def loop_template(tmp_path_factory: pytest.TempPathFactory) -> LoopData:
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_champion
    from arbiter.drift import build_profile
    from arbiter.registry import registry_for_home
    from arbiter.registry.profiles import log_profile

    root = tmp_path_factory.mktemp("loop-template")
    registry = registry_for_home(root)
    base = make_transactions(3_000, seed=1)
    champion = train_champion(base.features, base.labels)
    example = base.features.head(5)
    version = registry.log_sklearn_model(MODEL, champion, example, aliases=("champion",))
    log_profile(registry.tracking_uri, MODEL, version, build_profile(base.features))
    # v2: an earlier challenger the gateway shadows before the loop starts; its shadow rows
    # must not count for the loop's candidate.
    registry.log_sklearn_model(
        MODEL,
        train_champion(base.features.head(1_000), base.labels[:1_000]),
        example,
        aliases=("challenger",),
    )
    files = {}
    for name, n, seed in (("train", 1_500, 11), ("holdout", 1_000, 12)):
        data = make_transactions(n, seed=seed, shift=1.0)
        frame = data.features.assign(**{LABEL: data.labels})
        files[name] = root / f"{name}.csv"
        frame.to_csv(files[name], index=False)
    return LoopData(root, files["train"], files["holdout"])


@pytest.fixture
def loop_home(loop_template: LoopData, tmp_path: Path) -> Callable[..., Home]:
    """A fresh home with a copy of the loop registry and a shadow config for ``fraud``."""

    def make(models: dict[str, Any] | None = None, **sections: Any) -> Home:
        home = Home.at(tmp_path / "home", create=True)
        if not home.mlflow_db.exists():
            shutil.copy(loop_template.root / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate(
            {"models": MODELS if models is None else models, **(sections or SECTIONS)}
        )
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        return home

    return make


@pytest.fixture
def gateway(loop_home: Callable[..., Home]) -> Iterator[tuple[str, Home]]:
    """A real gateway on the loop home: (base URL, home)."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    home = loop_home()
    server = ServerThread(create_app(home)).start()
    try:
        yield server.url, home
    finally:
        server.stop()


def client_for(url: str) -> httpx.Client:
    """A client that drops idle connections before the server's 5 s keep-alive timeout: the
    tests pause for a ``run_cycle`` between requests, and reusing a connection the server is
    closing at that moment fails with a ReadError (seen on a loaded machine)."""
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits)


def send(
    url: str, *, n: int, seed: int, shift: float, labels: bool, batch: int = 50
) -> list[dict[str, Any]]:
    """POST ``n`` transactions in batches; post their labels too when ``labels``."""
    from arbiter.demo.data import make_transactions

    data = make_transactions(n, seed=seed, shift=shift)
    rows = data.features.to_dict("records")
    bodies = []
    with client_for(url) as client:
        for lo in range(0, n, batch):
            response = client.post(
                f"/models/{MODEL}/predict", json={"features": rows[lo : lo + batch]}
            )
            response.raise_for_status()
            body = response.json()
            bodies.append(body)
            if labels:
                feedback = [
                    {"request_id": body["request_id"], "row_index": i, "label": int(y)}
                    for i, y in enumerate(data.labels[lo : lo + batch])
                ]
                client.post("/feedback", json={"feedback": feedback}).raise_for_status()
    return bodies


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    """Poll ``condition`` until true; the bound is generous (a saturated 2-core machine loads
    a model in tens of seconds), a broken gateway still fails it."""
    try:
        wait_until(condition, timeout_s=timeout, what=what or str(condition), interval_s=0.1)
    except EvidenceTimeoutError as exc:
        raise AssertionError(str(exc)) from None


def logged_rows(home: Home, **where: str) -> int:
    from arbiter.events import EventStore

    clause = " AND ".join(f"{k} = ${k}" for k in where) or "true"
    with EventStore(home.root).connect() as con:
        ((count,),) = con.execute(
            f"SELECT count(*) FROM predictions WHERE {clause}", where
        ).fetchall()
    return int(count)
