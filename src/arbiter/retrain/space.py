"""The model space an Optuna search explores: one factory per estimator family.

A *model factory* is any ``Callable[[optuna.Trial], estimator]``: it asks the trial for its
hyperparameters (``trial.suggest_float`` ...) and returns an unfitted scikit-learn-compatible
estimator. Because the same factory rebuilds the best estimator from
``optuna.trial.FixedTrial(best_params)``, a factory must derive everything from the trial.

Built-in spaces (``"sklearn"``, ``"lightgbm"``, ``"all"``) choose the family with a categorical
``model`` parameter and prefix each family's parameters with its name, so that TPE models a
conditional space (``lr_C`` is only suggested when ``model == "logistic_regression"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from arbiter.errors import InvalidInputError

Task = Literal["classification", "regression"]
SpaceName = Literal["sklearn", "lightgbm", "all"]
ModelFactory = Callable[[Any], Any]

SPACES: dict[str, tuple[str, ...]] = {
    "sklearn": ("linear", "hist_gradient_boosting"),
    "lightgbm": ("lightgbm",),
    "all": ("linear", "hist_gradient_boosting", "lightgbm"),
}

# Top-level modules whose pip name differs from the module name.
_PIP_NAMES = {"sklearn": "scikit-learn"}
_BASE = frozenset({"scikit-learn", "numpy", "pandas", "scipy", "builtins"})


def _linear(trial: Any, task: Task, seed: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        c = trial.suggest_float("linear_C", 1e-3, 1e2, log=True)
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2_000))
    from sklearn.linear_model import Ridge

    alpha = trial.suggest_float("linear_alpha", 1e-3, 1e2, log=True)
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


def _hist_gradient_boosting(trial: Any, task: Task, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    params = {
        "learning_rate": trial.suggest_float("hgb_learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("hgb_max_iter", 50, 300, step=50),
        "max_leaf_nodes": trial.suggest_int("hgb_max_leaf_nodes", 8, 64, log=True),
        "min_samples_leaf": trial.suggest_int("hgb_min_samples_leaf", 5, 100, log=True),
        "l2_regularization": trial.suggest_float("hgb_l2_regularization", 1e-6, 1.0, log=True),
    }
    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    # No early stopping: its internal validation split would make fits depend on data size.
    return cls(**params, early_stopping=False, random_state=seed)


def _lightgbm(trial: Any, task: Task, seed: int) -> Any:
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
    cls = lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor
    # subsample_freq=1 turns bagging on; deterministic + row-wise keep a seeded fit repeatable.
    return cls(
        **params,
        subsample_freq=1,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


_FAMILIES: dict[str, Callable[[Any, Task, int], Any]] = {
    "linear": _linear,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "lightgbm": _lightgbm,
}


def model_space(
    space: SpaceName = "all", *, task: Task = "classification", seed: int = 0
) -> ModelFactory:
    """A model factory over the built-in families of ``space``.

    Parameters
    ----------
    space : {"sklearn", "lightgbm", "all"}
        ``"sklearn"``: a scaled linear model (LogisticRegression or Ridge) and
        HistGradientBoosting; ``"lightgbm"``: LightGBM's scikit-learn API; ``"all"``: both.
    task : {"classification", "regression"}
    seed : int
        ``random_state`` of the estimators that take one.

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
    families = SPACES[space]

    def factory(trial: Any) -> Any:
        family = trial.suggest_categorical("model", list(families))
        return _FAMILIES[family](trial, task, seed)

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


__all__ = ["SPACES", "ModelFactory", "extra_requirements", "model_space"]
