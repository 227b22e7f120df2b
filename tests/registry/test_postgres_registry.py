"""The registry on PostgreSQL: MLflow's SQL store on the server CI and this machine run.

Creates a throwaway database on 127.0.0.1:5432 (trust auth), registers a model, serves it
through the gateway, and drops the database. Skipped only when no PostgreSQL answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    name = f"arbiter_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_register_and_serve_from_postgres(
    postgres_uri: str, tmp_path: Path, template_home: Any, fraud_rows: list[dict[str, float]]
) -> None:
    from arbiter.demo.train import train_champion
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.registry import MLflowRegistry

    home = Home.at(tmp_path / "home", create=True)
    registry = MLflowRegistry(postgres_uri, artifact_location=home.artifact_location())
    example = template_home.example
    model = train_champion(pd.DataFrame(fraud_rows[:200]), np.array([0, 1] * 100))
    version = registry.log_sklearn_model("fraud", model, example, aliases=("champion",))
    assert registry.aliases("fraud") == {"champion": version}
    config = HomeConfig.model_validate(
        {"registry": {"tracking_uri": postgres_uri}, "models": {"fraud": {}}}
    )
    home.config_path.write_text(dump_config(config))
    with ServerThread(create_app(home)) as server:
        r = httpx.post(server.url + "/models/fraud/predict", json={"features": fraud_rows[0]})
        assert r.status_code == 200 and r.json()["version"] == version
