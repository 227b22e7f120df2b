"""Retraining on large tables stays affordable: a searched subset, prepared folds reused, pruning.

Each behaviour is checked against what it must not change: the subset keeps the class shares
(or the most recent rows), the registered model is refitted on every row, a cached
preparation scores exactly what a refitted one does, and a pruned trial is never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from arbiter.home import Home
from arbiter.registry import MLflowRegistry, registry_for_home
from arbiter.retrain import model_space, prepare_table, retrain, validation_folds
from arbiter.retrain.objective import CV_FOLDS_SCORED, CVObjective
from arbiter.retrain.study import search_pruner
from arbiter.retrain.table import search_rows_of
from tests.retrain.tables import mixed_table

HGB = {
    "model": "hist_gradient_boosting",
    "hgb_learning_rate": 0.1,
    "hgb_max_iter": 50,
    "hgb_max_leaf_nodes": 8,
    "hgb_min_samples_leaf": 10,
    "hgb_l2_regularization": 1e-3,
}


@pytest.fixture
def registry(make_home: Callable[..., Home]) -> MLflowRegistry:
    return registry_for_home(make_home().root)


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    return mixed_table(600, seed=1, positive_rate=0.05)


def test_search_rows_are_a_stratified_sample(table: Any) -> None:
    x, y = table
    prepared = prepare_table(x.drop(columns=["event_time"]), y)
    rows = search_rows_of(prepared, "classification", 200, seed=0)
    assert rows.size == 200 and np.all(np.diff(rows) > 0)  # ascending, no repeats
    # stratified: the rare class keeps its share to the row (5 % of 200 = 10)
    assert int(y[rows].sum()) == pytest.approx(y.mean() * 200, abs=1)
    # seeded: the same rows again; another seed, other rows
    np.testing.assert_array_equal(rows, search_rows_of(prepared, "classification", 200, seed=0))
    assert not np.array_equal(rows, search_rows_of(prepared, "classification", 200, seed=1))


def test_search_rows_with_a_time_column_are_the_most_recent(table: Any) -> None:
    x, y = table
    prepared = prepare_table(x, y, time_column="event_time")
    rows = search_rows_of(prepared, "classification", 150, seed=0)
    np.testing.assert_array_equal(rows, np.arange(450, 600))
    subset = prepared.take(rows)
    assert subset.times is not None and subset.times[0] == prepared.times[450]
    assert subset.features.iloc[0].equals(prepared.features.iloc[450])


@pytest.mark.parametrize("cap", [None, 0, 600, 10_000])
def test_no_cap_or_a_large_one_searches_every_row(table: Any, cap: int | None) -> None:
    x, y = table
    prepared = prepare_table(x.drop(columns=["event_time"]), y)
    rows = search_rows_of(prepared, "classification", cap, 0)
    np.testing.assert_array_equal(rows, np.arange(600))


def _objective(table: Any, *, cache: bool) -> CVObjective:
    x, y = table
    prepared = prepare_table(x.drop(columns=["event_time"]), y)
    factory = model_space("sklearn", seed=0, layout=prepared.layout)
    folds = validation_folds(prepared, "classification", 3, 0)
    return CVObjective(
        factory, prepared.model_input, prepared.labels, "roc_auc", folds, cache_preparation=cache
    )


def test_cached_preparation_is_reused_and_scores_the_same(table: Any) -> None:
    import optuna

    cached, uncached = _objective(table, cache=True), _objective(table, cache=False)
    other = {**HGB, "hgb_max_leaf_nodes": 16}
    first = cached(optuna.trial.FixedTrial(HGB))
    assert cached.stats == {"fitted": 3, "reused": 0}  # one preparation per fold
    second = cached(optuna.trial.FixedTrial(other))
    assert cached.stats == {"fitted": 3, "reused": 3}  # same family: only the model is fitted
    linear = cached(optuna.trial.FixedTrial({"model": "linear", "linear_C": 1.0}))
    assert cached.stats == {"fitted": 6, "reused": 3}  # the linear encoding is another one
    assert first == uncached(optuna.trial.FixedTrial(HGB))
    assert second == uncached(optuna.trial.FixedTrial(other))
    assert linear == uncached(optuna.trial.FixedTrial({"model": "linear", "linear_C": 1.0}))
    assert uncached.stats == {"fitted": 0, "reused": 0} and not uncached.cache


def _good_or_bad(trial: Any) -> Any:
    from sklearn.dummy import DummyClassifier

    if trial.suggest_categorical("kind", ["good", "bad"]) == "bad":
        return DummyClassifier(strategy="prior")  # ROC AUC 0.5 on every fold
    return LogisticRegression(max_iter=1_000)


def test_a_trial_below_the_median_after_one_fold_is_pruned() -> None:
    import optuna

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + rng.normal(0.0, 0.5, 300) > 0).astype(np.int64)
    from sklearn.model_selection import StratifiedKFold

    objective = CVObjective(
        _good_or_bad, x, y, "roc_auc", StratifiedKFold(3, shuffle=True, random_state=0)
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=search_pruner(True))
    for kind in ["good"] * 5 + ["bad", "good"]:
        study.enqueue_trial({"kind": kind})
    study.optimize(objective, n_trials=7)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE"] * 5 + ["PRUNED", "COMPLETE"]
    assert study.trials[5].user_attrs[CV_FOLDS_SCORED] == 1  # two folds never fitted
    assert study.trials[6].user_attrs[CV_FOLDS_SCORED] == 3
    # without pruning the bad trial runs its three folds
    study = optuna.create_study(direction="maximize", pruner=search_pruner(False))
    for kind in ["good"] * 5 + ["bad"]:
        study.enqueue_trial({"kind": kind})
    study.optimize(objective, n_trials=6)
    assert study.trials[5].state.name == "COMPLETE"


class RowCounter(ClassifierMixin, BaseEstimator):
    """A logistic regression that remembers how many rows it was fitted on."""

    def fit(self, x: Any, y: Any) -> RowCounter:
        self.model_ = LogisticRegression(max_iter=1_000).fit(x, y)
        self.classes_ = self.model_.classes_
        self.n_fit_rows_ = len(x)
        SEEN.append(len(x))
        return self

    def predict_proba(self, x: Any) -> Any:
        return self.model_.predict_proba(x)

    def predict(self, x: Any) -> Any:
        return self.model_.predict(x)


SEEN: list[int] = []


def row_counter_space(trial: Any) -> Any:
    trial.suggest_categorical("model", ["counter"])
    return RowCounter()


def test_retrain_searches_a_subset_and_refits_on_every_row(registry: MLflowRegistry) -> None:
    import mlflow

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800), "t": np.arange(800.0)})
    y = (x["a"] + rng.normal(0.0, 0.5, 800) > 0).astype(np.int64).to_numpy()
    SEEN.clear()
    result = retrain(
        registry, "rows", x, y, search=row_counter_space, n_trials=2, cv=2,
        time_column="t", search_rows=300, reference_profile=False,
    )  # fmt: skip
    assert result.n_rows == 800 and result.n_search_rows == 300
    assert result.search_note == "searched on 300 of 800 rows; the best refitted on all"
    # time-series folds of the 300 most recent rows fit on 100 and 200 rows; the refit on 800
    assert SEEN == [100, 200, 100, 200, 800]
    assert registry.load("rows", result.version).raw.n_fit_rows_ == 800
    params = mlflow.MlflowClient(registry.tracking_uri).get_run(result.parent_run_id).data.params
    assert params["search_rows"] == "300" and params["n_search_rows"] == "300"
    assert params["n_rows"] == "800" and params["prune"] == "True"
    tags = registry.model_version_tags("rows", result.version)
    assert tags["arbiter.retrain.n_search_rows"] == "300"
    assert tags["arbiter.retrain.n_rows"] == "800"


def test_retrain_on_a_small_table_searches_every_row(registry: MLflowRegistry) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200)})
    y = (x["a"] > 0).astype(np.int64).to_numpy()
    SEEN.clear()
    result = retrain(
        registry, "rows", x, y, search=row_counter_space, n_trials=1, cv=2,
        reference_profile=False,
    )  # fmt: skip
    assert result.n_search_rows == result.n_rows == 200
    assert result.search_note == "searched and refitted on all 200 rows"
    assert SEEN == [100, 100, 200]
