"""Train the demo's champion (logistic regression) and challenger (gradient boosting)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def train_champion(x: pd.DataFrame, y: np.ndarray) -> Any:
    """A linear model on standardised features: decent, misses the interactions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Fitted on a bare array so the gateway can hand it a float matrix (no pandas per request);
    # the column names live in the registered model's signature.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(x.to_numpy(), y)


def train_challenger(x: pd.DataFrame, y: np.ndarray, *, seed: int = 7) -> Any:
    """Histogram gradient boosting: learns the night x amount and foreign x online interactions."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=15, random_state=seed
    )
    return model.fit(x.to_numpy(), y)
