"""retrain(): Optuna search, every trial an MLflow run, best registered as challenger."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arbiter.demo.data import FEATURES, make_transactions
from arbiter.errors import InvalidInputError
from arbiter.home import Home
from arbiter.registry import MLflowRegistry, registry_for_home
from arbiter.retrain import (
    SEARCH_ID_TAG,
    RetrainResult,
    TrialSummary,
    extra_requirements,
    model_space,
    retrain,
)


@pytest.fixture
def registry(make_home: Callable[..., Home]) -> MLflowRegistry:
    return registry_for_home(make_home().root)


@pytest.fixture(scope="module")
def train() -> Any:
    return make_transactions(600, seed=3)


def _runs(registry: MLflowRegistry, search_id: str) -> list[Any]:
    experiment = registry.client.get_experiment_by_name("arbiter")
    return registry.client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_ID_TAG}` = '{search_id}'"
    )


def test_trials_are_runs_and_the_best_is_the_challenger(registry: MLflowRegistry, train: Any):
    seen: list[TrialSummary] = []
    result = retrain(
        registry, "fraud", train.features, train.labels,
        search="sklearn", n_trials=3, cv=2, seed=0, on_trial=seen.append,
    )  # fmt: skip
    assert isinstance(result, RetrainResult)
    assert result.n_trials == 3 and result.metric == "roc_auc" and result.task == "classification"
    aliases = registry.aliases("fraud")
    assert aliases["challenger"] == result.version == "3"
    assert aliases["champion"] == "1"  # untouched

    runs = _runs(registry, result.search_id)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    assert parents[0].info.run_id == result.parent_run_id
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["arbiter.best_version"] == result.version
    assert {r.info.run_id for r in children} == set(result.trial_run_ids)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.info.status == "FINISHED"
        assert "model" in run.data.params
        assert set(run.data.metrics) == {
            "cv_roc_auc_mean",
            "cv_roc_auc_std",
            "cv_folds_scored",
            "duration_s",
        }
    best_child = max(children, key=lambda r: r.data.metrics["cv_roc_auc_mean"])
    assert best_child.data.metrics["cv_roc_auc_mean"] == pytest.approx(result.best_score)

    # progress callback: one call per trial, best score never decreases
    assert [s.number for s in seen] == [0, 1, 2]
    bests = [s.best_value for s in seen]
    assert bests == sorted(bests) and bests[-1] == pytest.approx(result.best_score)

    tags = registry.model_version_tags("fraud", result.version)
    assert tags[SEARCH_ID_TAG] == result.search_id
    assert tags["arbiter.retrain.n_rows"] == "600"
    loaded = registry.load("fraud", result.version)
    assert loaded.fast_path and list(loaded.schema.names) == list(FEATURES)
    proba = loaded.raw.predict_proba(train.features.to_numpy()[:5])
    assert proba.shape == (5, 2)
    assert result.to_dict()["best_params"] == result.best_params
    # the drift reference profile travels with the version when arbiter.drift is installed
    assert result.profile_logged is (importlib.util.find_spec("arbiter.drift") is not None)
    if result.profile_logged:
        from arbiter.registry.profiles import load_profile

        load_profile(registry.tracking_uri, "fraud", result.version)


def test_same_seed_same_search(registry: MLflowRegistry, train: Any) -> None:
    kwargs: dict[str, Any] = {"search": "sklearn", "n_trials": 2, "cv": 2, "seed": 11}
    first = retrain(registry, "fraud", train.features, train.labels, **kwargs)
    second = retrain(registry, "fraud", train.features, train.labels, **kwargs)
    assert first.best_params == second.best_params
    assert first.best_score == second.best_score
    assert first.version != second.version
    a = registry.load("fraud", first.version).raw
    b = registry.load("fraud", second.version).raw
    x = train.features.to_numpy()
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


def test_custom_factory(registry: MLflowRegistry, train: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def small_space(trial: Any) -> Any:
        c = trial.suggest_float("C", 0.01, 10.0, log=True)
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))

    result = retrain(
        registry, "fraud", train.features, train.labels,
        search=small_space, metric="accuracy", n_trials=2, cv=2, seed=1,
    )  # fmt: skip
    assert set(result.best_params) == {"C"}
    assert result.metric == "accuracy" and 0.5 < result.best_score <= 1.0
    parent = registry.client.get_run(result.parent_run_id)
    assert parent.data.params["search"] == "small_space"


def test_lightgbm_space_adds_its_requirement(registry: MLflowRegistry, train: Any) -> None:
    pytest.importorskip("lightgbm")
    import mlflow

    result = retrain(
        registry, "fraud", train.features, train.labels, search="lightgbm", n_trials=1, cv=2
    )
    assert result.best_params["model"] == "lightgbm"
    loaded = registry.load("fraud", result.version)
    assert type(loaded.raw.steps[-1][1]).__name__ == "LGBMClassifier"
    assert loaded.fast_path  # numeric columns: fitted on a float matrix, served from one
    assert extra_requirements(loaded.raw) == ("lightgbm",)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=loaded.metadata["source"] + "/requirements.txt",
        tracking_uri=registry.tracking_uri,
    )
    with open(path, encoding="utf-8") as fh:
        assert "lightgbm" in fh.read().split()


def test_regression_defaults_to_neg_rmse(registry: MLflowRegistry) -> None:
    rng = np.random.default_rng(0)
    x = make_transactions(300, seed=4).features
    y = 2.0 * x["merchant_risk"].to_numpy() + rng.normal(0, 0.1, len(x))
    result = retrain(registry, "risk", x, y, search="sklearn", n_trials=2, cv=2)
    assert result.task == "regression"
    assert result.metric == "neg_root_mean_squared_error" and result.best_score < 0
    assert registry.aliases("risk") == {"challenger": result.version}


def test_a_failing_search_marks_its_run_failed(registry: MLflowRegistry, train: Any) -> None:
    def broken(trial: Any) -> Any:
        trial.suggest_int("k", 1, 2)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        retrain(registry, "fraud", train.features, train.labels, search=broken, n_trials=1, cv=2)
    experiment = registry.client.get_experiment_by_name("arbiter")
    runs = registry.client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'retrain-fraud'"
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "challenger" in registry.aliases("fraud")
    assert registry.aliases("fraud")["challenger"] == "2"  # unchanged


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": None, "timeout": None}, "n_trials"),
        ({"cv": 1}, "cv"),
        ({"metric": "no_such_metric"}, "metric"),
        ({"search": "catboost"}, "search"),
    ],
)
def test_bad_arguments(registry: MLflowRegistry, train: Any, kwargs: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        retrain(registry, "fraud", train.features, train.labels, **kwargs)
    assert info.value.field == field


def test_non_numeric_features_are_encoded(registry: MLflowRegistry, train: Any) -> None:
    x = train.features.assign(country=np.where(np.arange(len(train.features)) % 3, "FR", "DE"))
    result = retrain(registry, "fraud", x, train.labels, search="sklearn", n_trials=1, cv=2)
    assert result.column_kinds["country"] == "categorical"
    loaded = registry.load("fraud", result.version)
    assert dict((f.name, f.type) for f in loaded.schema.features)["country"] == "string"


def test_model_space_builds_each_family() -> None:
    import optuna

    factory = model_space("all", seed=0)
    for family in ("linear", "hist_gradient_boosting"):
        estimator = factory(optuna.trial.FixedTrial({"model": family, **_defaults(family)}))
        assert extra_requirements(estimator) == ()
    with pytest.raises(InvalidInputError):
        model_space("nope")  # type: ignore[arg-type]


def _defaults(family: str) -> dict[str, Any]:
    if family == "linear":
        return {"linear_C": 1.0}
    return {
        "hgb_learning_rate": 0.1,
        "hgb_max_iter": 50,
        "hgb_max_leaf_nodes": 16,
        "hgb_min_samples_leaf": 20,
        "hgb_l2_regularization": 1e-3,
    }
