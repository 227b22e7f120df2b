"""A small mixed table for the retraining tests: numbers, categories, text, gaps, time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NOTES_OK = ("thanks for the quick delivery", "please update my billing address", "order arrived")
NOTES_BAD = ("urgent wire transfer needed now", "gift card code please send")


def mixed_table(n: int = 400, *, seed: int = 0, positive_rate: float = 0.15) -> tuple[Any, Any]:
    """``(features, labels)``: the label depends on a number, a category and the text.

    ``amount`` misses ~10 % of values, ``country`` ~5 %, ``note`` ~20 %; ``event_time`` is a
    timestamp column (hourly, in row order). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, n)
    country = rng.choice(["US", "FR", "DE", "NG"], n, p=[0.5, 0.2, 0.2, 0.1])
    bad_note = rng.random(n) < 0.2
    notes = np.where(bad_note, rng.choice(NOTES_BAD, n), rng.choice(NOTES_OK, n))
    logit = (
        0.01 * (amount - 100.0) + 1.5 * (country == "NG") + 1.5 * bad_note + rng.normal(0.0, 0.5, n)
    )
    cut = np.quantile(logit, 1.0 - positive_rate)
    labels = (logit > cut).astype(np.int64)
    frame = pd.DataFrame(
        {
            "amount": np.where(rng.random(n) < 0.10, np.nan, amount),
            "logins": rng.integers(0, 30, n),
            "country": pd.array(np.where(rng.random(n) < 0.05, None, country), dtype="str"),
            "verified": rng.random(n) < 0.7,
            "note": np.where(rng.random(n) < 0.20, None, notes),
            "event_time": pd.date_range("2026-01-01", periods=n, freq="h"),
        }
    )
    return frame, labels
