"""The model space an Optuna search explores: one factory per estimator family.

A *model factory* is any ``Callable[[optuna.Trial], estimator]``: it asks the trial for its
hyperparameters (``trial.suggest_float`` ...) and returns an unfitted scikit-learn-compatible
estimator. Because the same factory rebuilds the best estimator from
``optuna.trial.FixedTrial(best_params)``, a factory must derive everything from the trial.

Built-in spaces (``"sklearn"``, ``"lightgbm"``, ``"xgboost"``, ``"all"``) choose the family with
a categorical ``model`` parameter and prefix each family's parameters with its name, so that TPE
models a conditional space (``linear_C`` is only suggested when ``model == "linear"``).

Given a :class:`~arbiter.retrain.encoding.TableLayout`, every family returns
``Pipeline([("prepare", ColumnTransformer), ("model", estimator)])`` taking the raw columns
(see :mod:`arbiter.retrain.encoding` for the encoding per family). Class imbalance is handled
by weights by default: ``class_weight="balanced"`` (linear, HistGradientBoosting, LightGBM)
and ``scale_pos_weight = negatives / positives`` (XGBoost, binary targets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from arbiter.errors import InvalidInputError
from arbiter.retrain.encoding import (
    TableLayout,
    as_lightgbm_frame,
    categorical_positions,
    n_tree_outputs,
    preprocessor,
)

Task = Literal["classification", "regression"]
SpaceName = Literal["sklearn", "lightgbm", "xgboost", "all"]
ModelFactory = Callable[[Any], Any]

#: Families of each built-in space. ``"all"`` also searches XGBoost when it is installed
#: (:func:`families_of`).
SPACES: dict[str, tuple[str, ...]] = {
    "sklearn": ("linear", "hist_gradient_boosting"),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost",),
    "all": ("linear", "hist_gradient_boosting", "lightgbm", "xgboost"),
}


def xgboost_available() -> bool:
    """Whether ``import xgboost`` works (the optional ``arbiter[xgboost]`` extra)."""
    import importlib.util

    return importlib.util.find_spec("xgboost") is not None


def families_of(space: str) -> tuple[str, ...]:
    """The families ``space`` searches here: ``"all"`` drops XGBoost when it is not installed."""
    families = SPACES[space]
    if space == "all" and not xgboost_available():
        families = tuple(f for f in families if f != "xgboost")
    return families


@dataclass(frozen=True, slots=True)
class Weighting:
    """How a classifier weighs classes: ``class_weight`` and XGBoost's ``scale_pos_weight``.

    ``Weighting.none()`` turns weighting off; :func:`weighting_for` derives the default from
    the labels.
    """

    class_weight: str | None = "balanced"
    scale_pos_weight: float | None = None

    @classmethod
    def none(cls) -> Weighting:
        return cls(None, None)


# Top-level modules whose pip name differs from the module name.
_PIP_NAMES = {"sklearn": "scikit-learn"}
_BASE = frozenset({"scikit-learn", "numpy", "pandas", "scipy", "builtins"})


def weighting_for(labels: Any, *, balanced: bool = True) -> Weighting:
    """Class weights for ``labels``: balanced, plus ``negatives / positives`` for binary 0/1."""
    import numpy as np

    if not balanced:
        return Weighting.none()
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    spw = float(counts[0] / counts[1]) if values.size == 2 and counts[1] else None
    return Weighting("balanced", spw)


def _wrap(layout: TableLayout | None, family: str, seed: int, estimator: Any) -> Any:
    """``Pipeline(prepare, model)`` over ``layout``; the bare estimator without a layout."""
    from sklearn.pipeline import Pipeline

    if layout is None:
        return estimator
    steps: list[tuple[str, Any]] = [("prepare", preprocessor(layout, family, seed=seed))]
    if family == "lightgbm" and layout.categorical:
        from sklearn.preprocessing import FunctionTransformer

        steps.append(
            (
                "categoricals",
                FunctionTransformer(
                    as_lightgbm_frame, kw_args={"categorical": categorical_positions(layout)}
                ),
            )
        )
    steps.append(("model", estimator))
    return Pipeline(steps)


def _linear(
    trial: Any, task: Task, seed: int, layout: TableLayout | None, weights: Weighting
) -> Any:
    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        c = trial.suggest_float("linear_C", 1e-3, 1e2, log=True)
        model = LogisticRegression(C=c, max_iter=2_000, class_weight=weights.class_weight)
    else:
        from sklearn.linear_model import Ridge

        alpha = trial.suggest_float("linear_alpha", 1e-3, 1e2, log=True)
        model = Ridge(alpha=alpha)
    if layout is None:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), model)
    return _wrap(layout, "linear", seed, model)


def _hist_gradient_boosting(
    trial: Any, task: Task, seed: int, layout: TableLayout | None, weights: Weighting
) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("hgb_learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("hgb_max_iter", 50, 300, step=50),
        "max_leaf_nodes": trial.suggest_int("hgb_max_leaf_nodes", 8, 64, log=True),
        "min_samples_leaf": trial.suggest_int("hgb_min_samples_leaf", 5, 100, log=True),
        "l2_regularization": trial.suggest_float("hgb_l2_regularization", 1e-6, 1.0, log=True),
    }
    if layout is not None and layout.categorical:
        params["categorical_features"] = list(categorical_positions(layout))
    if task == "classification":
        model = HistGradientBoostingClassifier(
            **params, class_weight=weights.class_weight, early_stopping=False, random_state=seed
        )
    else:
        # No early stopping: its internal validation split would make fits depend on data size.
        model = HistGradientBoostingRegressor(**params, early_stopping=False, random_state=seed)
    return _wrap(layout, "hist_gradient_boosting", seed, model)


def _lightgbm(
    trial: Any, task: Task, seed: int, layout: TableLayout | None, weights: Weighting
) -> Any:
    try:
        import lightgbm
    except ImportError as exc:
        raise InvalidInputError(
            "the lightgbm search space needs the lightgbm package: pip install lightgbm",
            field="search",
        ) from exc
    params = {
        "n_estimators": trial.suggest_int("lgbm_n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("lgbm_learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("lgbm_num_leaves", 8, 64, log=True),
        "min_child_samples": trial.suggest_int("lgbm_min_child_samples", 5, 100, log=True),
        "subsample": trial.suggest_float("lgbm_subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("lgbm_colsample_bytree", 0.6, 1.0),
        "reg_lambda": trial.suggest_float("lgbm_reg_lambda", 1e-6, 10.0, log=True),
    }
    if task == "classification":
        model = lightgbm.LGBMClassifier(**params, class_weight=weights.class_weight)
    else:
        model = lightgbm.LGBMRegressor(**params)
    # subsample_freq=1 turns bagging on; deterministic + row-wise keep a seeded fit repeatable.
    model.set_params(
        subsample_freq=1,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    return _wrap(layout, "lightgbm", seed, model)


def _xgboost(
    trial: Any, task: Task, seed: int, layout: TableLayout | None, weights: Weighting
) -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise InvalidInputError(
            "the xgboost search space needs the xgboost package: pip install 'arbiter[xgboost]'",
            field="search",
        ) from exc
    params: dict[str, Any] = {
        "n_estimators": trial.suggest_int("xgb_n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("xgb_learning_rate", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("xgb_max_depth", 3, 10),
        "min_child_weight": trial.suggest_float("xgb_min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("xgb_subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("xgb_colsample_bytree", 0.6, 1.0),
        "reg_lambda": trial.suggest_float("xgb_reg_lambda", 1e-6, 10.0, log=True),
        "tree_method": "hist",
        "random_state": seed,
        "n_jobs": 1,
    }
    if layout is not None and layout.categorical:
        types = ["q"] * n_tree_outputs(layout)
        for i in categorical_positions(layout):
            types[i] = "c"
        params.update(enable_categorical=True, feature_types=types, max_cat_to_onehot=1)
    if task == "classification":
        model = xgboost.XGBClassifier(**params, scale_pos_weight=weights.scale_pos_weight)
    else:
        model = xgboost.XGBRegressor(**params)
    return _wrap(layout, "xgboost", seed, model)


_FAMILIES: dict[str, Callable[[Any, Task, int, TableLayout | None, Weighting], Any]] = {
    "linear": _linear,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
}


def model_space(
    space: SpaceName = "all",
    *,
    task: Task = "classification",
    seed: int = 0,
    layout: TableLayout | None = None,
    weights: Weighting | None = None,
) -> ModelFactory:
    """A model factory over the built-in families of ``space``.

    Parameters
    ----------
    space : {"sklearn", "lightgbm", "xgboost", "all"}
        ``"sklearn"``: a linear model (LogisticRegression or Ridge) and HistGradientBoosting;
        ``"lightgbm"``: LightGBM's scikit-learn API; ``"xgboost"``: XGBoost's; ``"all"``:
        every family installed (XGBoost only when ``import xgboost`` works).
    task : {"classification", "regression"}
    seed : int
        ``random_state`` of the estimators that take one.
    layout : TableLayout, optional
        The raw table's columns and kinds: each estimator comes wrapped in a
        ``Pipeline(prepare=ColumnTransformer, model=estimator)`` taking those raw columns.
        Without it, the estimators take a float matrix (a scaled linear model, bare boosters).
    weights : Weighting, optional
        Class weighting of classifiers (default: none).

    Returns
    -------
    callable
        ``factory(trial) -> estimator``; the family is the trial's ``model`` parameter.
    """
    if space not in SPACES:
        raise InvalidInputError(
            f"unknown search space {space!r}; expected one of {', '.join(SPACES)}", field="search"
        )
    if task not in ("classification", "regression"):
        raise InvalidInputError(f"unknown task {task!r}", field="task")
    families = families_of(space)
    weights = weights or Weighting.none()

    def factory(trial: Any) -> Any:
        family = trial.suggest_categorical("model", list(families))
        return _FAMILIES[family](trial, task, seed, layout, weights)

    factory.__name__ = f"{space}_space"
    return factory


def extra_requirements(estimator: Any) -> tuple[str, ...]:
    """Packages beyond scikit-learn/numpy/pandas/scipy that ``estimator`` is built from.

    Looks at the estimator and its nested parameters (pipeline steps): an
    ``LGBMClassifier`` needs ``lightgbm``. Assumes the pip name is the top-level module name,
    true of lightgbm, xgboost and catboost.
    """
    objects = [estimator]
    if hasattr(estimator, "get_params"):
        objects.extend(estimator.get_params(deep=True).values())
    found = set()
    for obj in objects:
        top = type(obj).__module__.split(".")[0]
        found.add(_PIP_NAMES.get(top, top))
    return tuple(sorted(found - _BASE))


__all__ = [
    "SPACES",
    "ModelFactory",
    "Weighting",
    "extra_requirements",
    "families_of",
    "model_space",
    "weighting_for",
    "xgboost_available",
]
