"""labelled_traffic(): served, labelled rows of the event log as a training set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from arbiter.demo.data import FEATURES, make_transactions
from arbiter.errors import InvalidInputError
from arbiter.events import EventStore
from arbiter.home import Home
from arbiter.inprocess import ShadowExperiment
from arbiter.registry import registry_for_home
from arbiter.retrain import labelled_traffic, retrain


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """A home whose log has 3 requests of 20 rows (shadowed); the first 2 are labelled."""
    home = tmp_path_factory.mktemp("traffic-home")
    data = make_transactions(60, seed=9)
    train = make_transactions(300, seed=1)
    # Fitted on a DataFrame: ShadowExperiment hands the model the frame it is given.
    model = LogisticRegression(max_iter=1_000).fit(train.features, train.labels)
    with ShadowExperiment(model, model, home=home, model="fraud") as exp:
        for i in range(3):
            rows = data.features.iloc[20 * i : 20 * (i + 1)]
            answer = exp.predict(rows, unit_id=f"u{i}")
            if i < 2:
                exp.feedback(answer.request_id, data.labels[20 * i : 20 * (i + 1)].tolist())
    return home, data.features.iloc[:40], data.labels[:40]


def test_served_labelled_rows_only(logged: Any) -> None:
    home, features, labels = logged
    x, y = labelled_traffic(EventStore(home), "fraud")
    assert list(x.columns) == list(FEATURES)  # shadow rows and unlabelled rows left out
    pd.testing.assert_frame_equal(x, features.reset_index(drop=True))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    assert len(labelled_traffic(EventStore(home), "other")[0]) == 0


def test_window_and_last(logged: Any) -> None:
    home, features, labels = logged
    store = EventStore(home)
    x, y = labelled_traffic(store, "fraud", last=5)
    pd.testing.assert_frame_equal(x, features.iloc[35:].reset_index(drop=True))
    np.testing.assert_array_equal(y, labels[35:])
    assert len(labelled_traffic(store, "fraud", window="7d")[0]) == 40
    later = datetime.now(UTC) + timedelta(days=30)
    assert len(labelled_traffic(store, "fraud", window="7d", now=later)[0]) == 0
    with pytest.raises(InvalidInputError):
        labelled_traffic(store, "fraud", last=0)


def test_requested_columns_in_order(logged: Any) -> None:
    home, features, _ = logged
    x, _ = labelled_traffic(EventStore(home), "fraud", features=["hour", "amount", "missing"])
    assert list(x.columns) == ["hour", "amount", "missing"]
    np.testing.assert_array_equal(x["hour"], features["hour"])
    assert x["missing"].isna().all()


def test_retrain_on_training_data_plus_traffic(logged: Any, make_home: Callable[..., Home]) -> None:
    home, *_ = logged
    registry = registry_for_home(make_home().root)
    train = make_transactions(300, seed=3)
    traffic = labelled_traffic(EventStore(home), "fraud", features=list(train.features.columns))
    result = retrain(
        registry, "fraud", train.features, train.labels,
        traffic=traffic, search="sklearn", n_trials=1, cv=2,
    )  # fmt: skip
    assert (result.n_rows, result.n_traffic_rows) == (340, 40)
    assert (
        registry.model_version_tags("fraud", result.version)["arbiter.retrain.n_traffic_rows"]
        == "40"
    )
