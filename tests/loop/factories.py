"""A tiny model space for the loop's retrain in tests (the built-in ones take minutes)."""

from __future__ import annotations

from typing import Any


def small_boosting(trial: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=trial.suggest_int("max_iter", 40, 60),
        max_leaf_nodes=16,
        random_state=0,
    )
