"""A synthetic card-fraud data set for the demo: named features, a fixed seed, a known truth.

Transactions belong to users with stable habits (home distance, typical amount), so a user id
means something and A/B assignment by user is realistic. Fraud depends on the features
non-linearly (an interaction of amount with night-time and foreign merchants), so a tree
ensemble beats a linear model: the demo's challenger is genuinely better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FEATURES = (
    "amount",
    "hour",
    "merchant_risk",
    "distance_km",
    "tx_last_24h",
    "card_age_days",
    "is_online",
    "is_foreign",
)


@dataclass(frozen=True)
class FraudData:
    """Features, labels and the user of each transaction."""

    features: pd.DataFrame
    labels: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def make_transactions(
    n: int, *, seed: int = 7, n_users: int = 2_000, shift: float = 0.0
) -> FraudData:
    """Generate ``n`` transactions from ``n_users`` users.

    ``shift`` > 0 moves the distribution (larger, more foreign, more online transactions), for
    drift scenarios.
    """
    rng = np.random.default_rng(seed)
    user_amount = rng.lognormal(3.6, 0.6, n_users)
    user_home = rng.gamma(2.0, 6.0, n_users)
    users = rng.integers(0, n_users, n)
    amount = np.round(user_amount[users] * rng.lognormal(0.0, 0.7 + 0.2 * shift, n), 2)
    hour = rng.integers(0, 24, n)
    merchant_risk = np.round(rng.beta(2.0, 5.0 - 2.0 * min(shift, 1.0), n), 4)
    distance = np.round(user_home[users] * rng.lognormal(0.0, 0.8, n) + 40 * shift, 2)
    tx_last_24h = rng.poisson(2.0 + shift, n)
    card_age = rng.integers(1, 3_650, n)
    is_online = (rng.random(n) < 0.35 + 0.2 * shift).astype(np.int64)
    is_foreign = (rng.random(n) < 0.08 + 0.1 * shift).astype(np.int64)
    night = ((hour < 6) | (hour >= 23)).astype(float)
    big = np.log1p(amount) - np.log1p(user_amount[users])
    logit = (
        -3.2
        + 3.0 * merchant_risk
        + 0.6 * np.clip(big, -2, 4)
        + 5.0 * night * (big > 0.5)
        + 4.5 * is_foreign * is_online
        + 2.5 * (distance > 60) * (card_age < 180)
        + 0.8 * (tx_last_24h > 4)
        - 0.5 * (card_age > 365)
    )
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(
        {
            "amount": amount.astype(np.float64),
            "hour": hour.astype(np.float64),
            "merchant_risk": merchant_risk.astype(np.float64),
            "distance_km": distance.astype(np.float64),
            "tx_last_24h": tx_last_24h.astype(np.float64),
            "card_age_days": card_age.astype(np.float64),
            "is_online": is_online.astype(np.float64),
            "is_foreign": is_foreign.astype(np.float64),
        },
        columns=list(FEATURES),
    )
    return FraudData(frame, labels, np.array([f"user-{u:05d}" for u in users]))


def purchase_outcomes(
    user: str, amount: float, is_fraud: int, blocked: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the served model's decision does to the business: (now, later) outcome events.

    A transaction the model approves is a ``purchase`` of ``amount`` (a good customer's, or a
    fraudster's); one it blocks is lost, for a good customer a lost sale. An approved fraud
    comes back later as a ``chargeback`` of the same amount. So a model that blocks more good
    customers converts fewer units, and one that misses more frauds has more chargebacks: the
    A/B phase weighs both.
    """
    if blocked:
        return [], []
    now = [{"unit_id": user, "event": "purchase", "value": float(amount)}]
    later = [{"unit_id": user, "event": "chargeback", "value": float(amount)}] if is_fraud else []
    return now, later
