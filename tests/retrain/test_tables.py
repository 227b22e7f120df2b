"""Retraining on real tables: categories, text, gaps, imbalance, time order, raw signatures."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arbiter.errors import InvalidInputError
from arbiter.home import Home
from arbiter.registry import MLflowRegistry, registry_for_home
from arbiter.retrain import (
    Weighting,
    model_space,
    prepare_table,
    retrain,
    validation_folds,
    weighting_for,
)
from tests.retrain.tables import mixed_table

HAS_XGBOOST = importlib.util.find_spec("xgboost") is not None

FIXED = {
    "linear": {"linear_C": 1.0},
    "hist_gradient_boosting": {
        "hgb_learning_rate": 0.1,
        "hgb_max_iter": 50,
        "hgb_max_leaf_nodes": 8,
        "hgb_min_samples_leaf": 10,
        "hgb_l2_regularization": 1e-3,
    },
    "lightgbm": {
        "lgbm_n_estimators": 50,
        "lgbm_learning_rate": 0.1,
        "lgbm_num_leaves": 8,
        "lgbm_min_child_samples": 10,
        "lgbm_subsample": 0.9,
        "lgbm_colsample_bytree": 0.9,
        "lgbm_reg_lambda": 1e-3,
    },
    "xgboost": {
        "xgb_n_estimators": 50,
        "xgb_learning_rate": 0.1,
        "xgb_max_depth": 4,
        "xgb_min_child_weight": 1.0,
        "xgb_subsample": 0.9,
        "xgb_colsample_bytree": 0.9,
        "xgb_reg_lambda": 1e-3,
    },
}


@pytest.fixture
def registry(make_home: Callable[..., Home]) -> MLflowRegistry:
    return registry_for_home(make_home().root)


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    return mixed_table(400, seed=0)


def _build(family: str, prepared: Any, weights: Weighting | None = None) -> Any:
    import optuna

    space = "all" if family != "xgboost" else "xgboost"
    factory = model_space(space, seed=0, layout=prepared.layout, weights=weights)
    return factory(optuna.trial.FixedTrial({"model": family, **FIXED[family]}))


@pytest.mark.parametrize(
    "family",
    [
        "linear",
        "hist_gradient_boosting",
        "lightgbm",
        pytest.param(
            "xgboost", marks=pytest.mark.skipif(not HAS_XGBOOST, reason="xgboost not installed")
        ),
    ],
)
def test_each_family_trains_on_raw_mixed_columns(family: str, table: Any) -> None:
    from sklearn.metrics import roc_auc_score

    x, y = table
    prepared = prepare_table(x, y, time_column="event_time")
    assert prepared.layout.kind_of() == {
        "amount": "numeric",
        "logins": "numeric",
        "country": "categorical",
        "verified": "categorical",
        "note": "text",
    }
    model = _build(family, prepared).fit(prepared.model_input[:300], prepared.labels[:300])
    # raw rows, as the gateway hands them over: a gap, an unseen category, an empty note
    raw = prepared.features.iloc[300:].copy()
    raw.loc[raw.index[0], "country"] = "Atlantis"
    raw.loc[raw.index[1], ["amount", "note"]] = [np.nan, None]
    proba = model.predict_proba(raw)[:, 1]
    assert proba.shape == (100,) and np.isfinite(proba).all()
    assert roc_auc_score(prepared.labels[300:], proba) > 0.7  # categories and text are used
    encoder = model.named_steps["prepare"].named_transformers_["cat"]
    estimator = model.named_steps["model"]
    if family == "linear":
        assert type(encoder).__name__ == "OneHotEncoder"
    else:  # native categoricals: the booster is told which inputs are categories
        assert type(encoder).__name__ == "OrdinalEncoder"
        if family == "hist_gradient_boosting":
            assert estimator.is_categorical_.sum() == 2
        elif family == "lightgbm":
            assert len(estimator.booster_.pandas_categorical) == 2
        else:
            assert estimator.get_params()["feature_types"].count("c") == 2


def test_time_ordered_folds_never_validate_on_the_past(table: Any) -> None:
    x, y = table
    shuffled = np.random.default_rng(1).permutation(len(x))
    prepared = prepare_table(x.iloc[shuffled], y[shuffled], time_column="event_time")
    assert "event_time" not in prepared.features.columns
    assert np.all(np.diff(prepared.times) >= 0)
    folds = validation_folds(prepared, "classification", 4, seed=0)
    splits = list(folds.split(prepared.model_input, prepared.labels))
    assert len(splits) == 4
    for train, valid in splits:
        assert prepared.times[train].max() < prepared.times[valid].min()
    # the labels travelled with their rows
    original = pd.Series(y, index=x["event_time"])
    expected = original.loc[x["event_time"].sort_values().to_numpy()].to_numpy()
    np.testing.assert_array_equal(prepared.labels, expected)
    # without a time column: shuffled, stratified folds
    plain = prepare_table(x.drop(columns=["event_time"]), y)
    assert type(validation_folds(plain, "classification", 4, 0)).__name__ == ("StratifiedKFold")


def test_rows_with_gaps_are_counted_and_kept(table: Any) -> None:
    x, y = table
    traffic_x = x.head(30).drop(columns=["note", "event_time"]).copy()  # a feature never sent
    traffic_x.loc[traffic_x.index[:5], "amount"] = np.nan
    prepared = prepare_table(x, y, traffic=(traffic_x, y[:30]), time_column="event_time")
    assert prepared.n_rows == 430 and prepared.n_traffic == 30
    features = prepared.features
    assert prepared.missing == {c: int(n) for c, n in features.isna().sum().items() if n}
    assert prepared.missing["note"] == int(x["note"].isna().sum()) + 30
    assert prepared.n_rows_with_gaps == int(features.isna().any(axis=1).sum())
    assert prepared.times is not None and prepared.times.size == 430


def test_imbalance_weights_are_applied(table: Any) -> None:
    from sklearn.metrics import recall_score

    x, y = table
    assert y.mean() == pytest.approx(0.15)
    weights = weighting_for(y)
    assert weights.class_weight == "balanced"
    assert weights.scale_pos_weight == pytest.approx((y == 0).sum() / (y == 1).sum())
    prepared = prepare_table(x, y, time_column="event_time")
    weighted = _build("linear", prepared, weights)
    plain = _build("linear", prepared, weighting_for(y, balanced=False))
    assert weighted.named_steps["model"].class_weight == "balanced"
    assert plain.named_steps["model"].class_weight is None
    for family in ("hist_gradient_boosting", "lightgbm"):
        assert _build(family, prepared, weights).named_steps["model"].class_weight == "balanced"
    if HAS_XGBOOST:
        xgb = _build("xgboost", prepared, weights).named_steps["model"]
        assert xgb.scale_pos_weight == pytest.approx(weights.scale_pos_weight)
    # weighting changes what the model does: the rare class is found more often
    train, test = slice(0, 300), slice(300, None)
    recalls = []
    for model in (weighted, plain):
        model.fit(prepared.model_input[train], prepared.labels[train])
        predicted = model.predict(prepared.model_input[test])
        recalls.append(recall_score(prepared.labels[test], predicted))
    assert recalls[0] > recalls[1]


def test_retrain_registers_a_raw_pipeline_with_string_and_optional_columns(
    registry: MLflowRegistry, table: Any
) -> None:
    x, y = table
    result = retrain(
        registry, "accounts", x, y, search="sklearn", n_trials=2, cv=2, seed=0,
        time_column="event_time",
    )  # fmt: skip
    assert result.time_column == "event_time" and result.class_weights
    assert result.missing == {"amount": 45, "country": 21, "note": 87}
    assert result.n_rows == 400 and 0 < result.n_rows_with_gaps < 400
    assert result.column_kinds["note"] == "text" and result.threshold is None
    assert result.to_dict()["missing"] == result.missing
    loaded = registry.load("accounts", result.version)
    specs = {f.name: (f.type, f.required) for f in loaded.schema.features}
    assert specs == {
        "amount": ("double", False),
        "logins": ("double", True),
        "country": ("string", False),
        "verified": ("boolean", True),
        "note": ("string", False),
    }
    assert not loaded.fast_path  # strings: the gateway hands the pipeline a DataFrame
    tags = registry.model_version_tags("accounts", result.version)
    assert tags["arbiter.retrain.n_rows_with_gaps"] == str(result.n_rows_with_gaps)
    assert tags["arbiter.retrain.time_column"] == "event_time"
    assert result.profile_logged is (importlib.util.find_spec("arbiter.drift") is not None)


def test_tuned_threshold_is_what_predict_applies(registry: MLflowRegistry, table: Any) -> None:
    x, y = table
    result = retrain(
        registry, "accounts", x.drop(columns=["event_time"]), y, search="sklearn",
        n_trials=1, cv=2, tune_threshold="f1",
    )  # fmt: skip
    assert result.threshold_metric == "f1" and result.threshold is not None
    model = registry.load("accounts", result.version).raw
    assert model.best_threshold_ == pytest.approx(result.threshold)
    raw = x.drop(columns=["event_time"])
    expected = (model.predict_proba(raw)[:, 1] >= result.threshold).astype(np.int64)
    np.testing.assert_array_equal(model.predict(raw), expected)
    tags = registry.model_version_tags("accounts", result.version)
    assert float(tags["arbiter.retrain.threshold"]) == pytest.approx(result.threshold)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"categorical": ("colour",)}, "--categorical", "colour"),
        ({"text": ("nope",)}, "--text", "nope"),
        ({"time_column": "when"}, "--time-column", "when"),
        ({"time_column": "country"}, "--time-column", "missing values"),
        ({"categorical": ("note",), "text": ("note",)}, "--text", "both"),
        ({"tune_threshold": True}, "tune_threshold", "roc_auc"),
        ({"tune_threshold": "no_such_scorer"}, "tune_threshold", "no_such_scorer"),
        ({"time_column": None}, "x", "event_time"),  # a date column is not a feature
    ],
)
def test_bad_table_options_name_the_field(
    registry: MLflowRegistry, table: Any, kwargs: Any, field: str, words: str
) -> None:
    x, y = table
    if "time_column" not in kwargs:  # a date column is refused unless it is the time column
        x = x.drop(columns=["event_time"])
    with pytest.raises(InvalidInputError, match=words) as info:
        retrain(registry, "accounts", x, y, n_trials=1, cv=2, **kwargs)
    assert info.value.field == field
