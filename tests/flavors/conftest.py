"""The LightGBM booster and text classifier flavors, logged once per session.

A copy of the template registry (tests/conftest.py) gains four registered models: ``lgbm``
(two ``lightgbm.train`` Boosters logged with the ``mlflow.lightgbm`` flavor, champion and
challenger, on the demo's transactions), ``lgbm3`` (a multiclass Booster: three classes),
``text`` (two scikit-learn pipelines: TF-IDF on a ``message`` string column plus a numeric
``amount``, then a logistic regression) and ``text1`` (``Pipeline(TfidfVectorizer,
LogisticRegression)`` fitted on one 1-D column of strings: its signature is one ``string``
column). Each test serves a copy of that registry on a real gateway. Fixtures carry an
``lgbm_``/``text_`` prefix: other flavors' test files keep their own helpers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arbiter.config import HomeConfig, dump_config
from arbiter.home import Home

#: Words whose presence makes a message more likely positive (spam), and neutral ones.
SPAM_WORDS = ("free", "winner", "prize", "urgent", "refund", "crypto", "gift", "claim")
HAM_WORDS = ("meeting", "lunch", "invoice", "report", "hello", "project", "tomorrow", "notes")


@dataclass(frozen=True)
class FlavorRegistry:
    root: Path  # holds mlflow.db (artifacts stay in the template's folder)
    versions: dict[str, dict[str, str]]  # model -> {alias: version}
    lgbm_rows: list[dict[str, float]]
    lgbm_labels: list[int]
    text_rows: list[dict[str, Any]]  # {"message": str, "amount": float}
    text_labels: list[int]
    users: list[str]


def make_messages(n: int, *, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` short messages with an amount, and a 0/1 label that depends on both."""
    rng = np.random.default_rng(seed)
    spam = rng.random(n) < 0.3
    words = []
    for is_spam in spam:
        k = int(rng.integers(3, 9))
        share = 0.6 if is_spam else 0.1
        pick = rng.random(k) < share
        words.append(
            " ".join(str(rng.choice(SPAM_WORDS)) if p else str(rng.choice(HAM_WORDS)) for p in pick)
        )
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2)
    noise = rng.random(n) < 0.1  # some labels disagree with the words
    labels = (spam ^ noise).astype(np.int64)
    return pd.DataFrame({"message": words, "amount": amount}), labels


def _boosters(features: pd.DataFrame, labels: np.ndarray) -> tuple[Any, Any]:
    import lightgbm

    data = lightgbm.Dataset(features, labels, free_raw_data=False)
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1}
    champion = lightgbm.train({**base, "num_leaves": 4}, data, num_boost_round=10)
    challenger = lightgbm.train({**base, "num_leaves": 15}, data, num_boost_round=60)
    return champion, challenger


def _text_pipelines(frame: pd.DataFrame, labels: np.ndarray) -> tuple[Any, Any, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    def two_columns(c: float, ngrams: tuple[int, int]) -> Pipeline:
        columns = ColumnTransformer(
            [
                ("words", TfidfVectorizer(ngram_range=ngrams), "message"),
                ("amount", StandardScaler(), ["amount"]),
            ]
        )
        return Pipeline([("columns", columns), ("model", LogisticRegression(C=c))])

    champion = two_columns(0.05, (1, 1)).fit(frame, labels)
    challenger = two_columns(10.0, (1, 2)).fit(frame, labels)
    one_column = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
        frame["message"], labels
    )
    return champion, challenger, one_column


@pytest.fixture(scope="session")
def lgbm_text_registry(
    template_home: Any, tmp_path_factory: pytest.TempPathFactory
) -> FlavorRegistry:
    from arbiter.demo.data import make_transactions
    from arbiter.registry import registry_for_home

    root = tmp_path_factory.mktemp("flavors-lgbm-text")
    shutil.copy(template_home.root / "mlflow.db", root / "mlflow.db")
    registry = registry_for_home(root)
    train = make_transactions(3_000, seed=11)
    champion, challenger = _boosters(train.features, train.labels)
    example = train.features.head(5)
    versions: dict[str, dict[str, str]] = {"lgbm": {}, "text": {}, "text1": {}}
    for alias, booster in (("champion", champion), ("challenger", challenger)):
        versions["lgbm"][alias] = registry.log_lightgbm_model(
            "lgbm", booster, example, aliases=(alias,)
        )
    import lightgbm

    three = np.digitize(train.features["hour"].to_numpy(), [8, 16])  # classes 0, 1, 2
    multiclass = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(train.features, three),
        num_boost_round=10,
    )
    versions["lgbm3"] = {
        "champion": registry.log_lightgbm_model("lgbm3", multiclass, example, aliases=("champion",))
    }
    messages, message_labels = make_messages(2_000, seed=12)
    text_champion, text_challenger, one_column = _text_pipelines(messages, message_labels)
    for alias, pipeline in (("champion", text_champion), ("challenger", text_challenger)):
        versions["text"][alias] = registry.log_sklearn_model(
            "text", pipeline, messages.head(5), aliases=(alias,)
        )
    versions["text1"]["champion"] = registry.log_sklearn_model(
        "text1", one_column, messages[["message"]].head(5), aliases=("champion",)
    )
    traffic = make_transactions(1_000, seed=13)
    text_traffic, text_labels = make_messages(1_000, seed=14)
    return FlavorRegistry(
        root=root,
        versions=versions,
        lgbm_rows=traffic.features.to_dict("records"),
        lgbm_labels=traffic.labels.tolist(),
        text_rows=text_traffic.to_dict("records"),
        text_labels=text_labels.tolist(),
        users=[f"user-{u % 150}" for u in range(1_000)],
    )


@pytest.fixture
def lgbm_text_gateway(
    lgbm_text_registry: FlavorRegistry, tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """Start a real gateway on a copy of the flavors registry; stopped at teardown."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    servers: list[ServerThread] = []

    def start(models: dict[str, Any], **sections: Any) -> tuple[ServerThread, Home]:
        home = Home.at(tmp_path / f"home{len(servers)}", create=True)
        shutil.copy(lgbm_text_registry.root / "mlflow.db", home.mlflow_db)
        config = HomeConfig.model_validate(
            {"models": models, "events": {"flush_interval_s": 0.1}, **sections}
        )
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        server = ServerThread(create_app(home)).start()
        servers.append(server)
        return server, home

    yield start
    for server in servers:
        server.stop()
