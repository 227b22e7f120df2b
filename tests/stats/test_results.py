"""finite_or_none: the one way a result writes an undefined number (JSON has no NaN)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arbiter.stats import finite_or_none


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.25, 0.25),
        (3, 3.0),
        (np.float64(0.5), 0.5),
        (np.int64(7), 7.0),
        (None, None),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (np.float32("nan"), None),
    ],
)
def test_finite_or_none(value: object, expected: float | None) -> None:
    out = finite_or_none(value)  # type: ignore[arg-type]
    assert out == expected
    assert out is None or type(out) is float
