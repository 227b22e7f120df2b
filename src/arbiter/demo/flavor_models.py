"""Two more kinds of model on the demo's transactions: a regressor and a multi-output model.

Used by the flavor tests (tests/flavors/test_regression.py, test_multi_output.py) and the
serving benchmark (benchmarks/flavors.py):

* :func:`expected_loss` is a synthetic numeric target (the amount a transaction would cost if
  it went bad), with an interaction a linear model misses: :func:`train_loss_champion`
  (ridge regression) is beaten by :func:`train_loss_challenger` (gradient boosting).
* :class:`RiskModel` wraps a fitted classifier and returns, per row, the label, P(fraud) and a
  0-1000 risk score: a pyfunc with several outputs (see ``arbiter.servable.scored_output``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def expected_loss(features: pd.DataFrame, *, seed: int = 0, noise: float = 4.0) -> np.ndarray:
    """A numeric target from the transaction features, plus Gaussian noise of sd ``noise``.

    Deterministic for a seed. Foreign, risky merchants at night cost more than the sum of the
    parts (the interaction), so a tree ensemble beats a linear model on it.
    """
    rng = np.random.default_rng(seed)
    amount = features["amount"].to_numpy(dtype=np.float64)
    risk = features["merchant_risk"].to_numpy(dtype=np.float64)
    night = (features["hour"].to_numpy() < 6).astype(np.float64)
    foreign = features["is_foreign"].to_numpy(dtype=np.float64)
    base = 0.1 * amount + 20.0 * risk + 1.5 * features["tx_last_24h"].to_numpy(dtype=np.float64)
    interaction = 25.0 * night * (risk > 0.35) + 15.0 * foreign * (amount > 80)
    return np.round(base + interaction + rng.normal(0.0, noise, len(features)), 4)


def train_loss_champion(x: pd.DataFrame, y: np.ndarray) -> Any:
    """Ridge regression on standardised features: decent, misses the interactions."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x.to_numpy(), y)


def train_loss_challenger(x: pd.DataFrame, y: np.ndarray, *, seed: int = 7) -> Any:
    """Gradient boosting: learns the interactions."""
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(
        n_estimators=120, max_depth=3, learning_rate=0.1, random_state=seed
    )
    return model.fit(x.to_numpy(), y)


class RiskModel(PythonModel):
    """A classifier's answer as three outputs per row: ``label``, ``probability``, ``score``.

    ``probability`` is P(class 1) and ``score`` a 0-1000 risk score (``round(1000 p)``); the
    label is 1 when ``probability >= threshold``. Arbiter logs ``label`` as the prediction and
    ``probability`` as the class-1 probability (see ``arbiter.servable.scored_output``).
    """

    def __init__(self, classifier: Any, columns: list[str], threshold: float = 0.5) -> None:
        self.classifier = classifier
        self.columns = list(columns)
        self.threshold = threshold

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        x = model_input[self.columns].to_numpy(dtype=np.float64)
        p = self.classifier.predict_proba(x)[:, 1]
        return pd.DataFrame(
            {
                "label": (p >= self.threshold).astype(np.int64),
                "probability": p,
                "score": np.round(1000.0 * p).astype(np.int64),
            }
        )


__all__ = [
    "RiskModel",
    "expected_loss",
    "train_loss_challenger",
    "train_loss_champion",
]
