"""Column kinds: the one answer retraining, drift and the demo share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arbiter.column_kinds import column_kinds, infer_column_kind


def test_kinds_of_a_mixed_table() -> None:
    frame = pd.DataFrame(
        {
            "amount": [1.5, np.nan, 3.0, 4.0],
            "count": [1, 2, 3, 4],
            "is_new": [True, False, True, False],
            "country": ["DE", "FR", None, "DE"],
            "user_id": ["u1", "u2", "u3", "u4"],
            "note": ["card declined twice today", "paid by phone", None, "refund asked by mail"],
            "merchant": pd.Categorical(["a", "b", "a", "c"]),
        }
    )
    assert column_kinds(frame) == {
        "amount": "numeric",
        "count": "numeric",
        "is_new": "categorical",
        "country": "categorical",
        "user_id": "categorical",
        "note": "text",
        "merchant": "categorical",
    }


def test_overrides_win_and_are_checked() -> None:
    frame = {"code": np.array([1, 2, 3]), "note": ["a b c d"] * 3}
    assert column_kinds(frame, {"code": "categorical"}) == {"code": "categorical", "note": "text"}
    with pytest.raises(ValueError, match="kind for column 'code'"):
        column_kinds(frame, {"code": "ordinal"})  # type: ignore[dict-item]


def test_all_missing_strings_are_categorical() -> None:
    assert infer_column_kind(pd.Series([None, None], dtype=object)) == "categorical"
