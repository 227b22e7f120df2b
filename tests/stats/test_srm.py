"""Sample-ratio mismatch: chi-square goodness of fit vs scipy and a published example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from arbiter.errors import InvalidInputError
from arbiter.stats.srm import srm_test

RTOL = 1e-9


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10**7), min_size=2, max_size=6).filter(lambda c: sum(c) > 0),
    data=st.data(),
)
def test_srm_matches_scipy_chisquare(counts: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0.01, 100), min_size=len(counts), max_size=len(counts)))
    res = srm_test(counts, weights)
    w = np.asarray(weights) / np.sum(weights)
    expected = w * sum(counts)
    ref = sps.chisquare(counts, expected)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL, abs=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL, abs=1e-300)
    np.testing.assert_allclose(res.expected, expected, rtol=RTOL)
    assert res.mismatch == (res.p_value < 0.001)
    assert res.dof == len(counts) - 1


def test_srm_published_example() -> None:
    # Kohavi, Tang & Xu (2020), Trustworthy Online Controlled Experiments: a 50/50 test with
    # 821,588 vs 815,482 users (ratio 0.993) has an SRM p-value of about 1.8e-6.
    res = srm_test([821_588, 815_482])
    assert f"{res.p_value:.1e}" == "1.8e-06"
    assert res.mismatch
    assert res.expected == (818_535.0, 818_535.0)


def test_srm_weights_are_scale_free_and_default_equal() -> None:
    assert srm_test([950, 50], [95, 5]).statistic == pytest.approx(
        srm_test([950, 50], [0.95, 0.05]).statistic
    )
    assert srm_test([950, 50], [95, 5]).statistic == pytest.approx(0.0)
    assert srm_test([500, 520]).weights == (0.5, 0.5)
    assert not srm_test([500, 520]).mismatch


def test_srm_threshold_and_no_data() -> None:
    res = srm_test([530, 470], threshold=0.1)
    assert res.p_value < 0.1 and res.mismatch
    empty = srm_test([0, 0])
    assert empty.status == "no_data" and math.isnan(empty.p_value) and not empty.mismatch


@pytest.mark.parametrize(
    ("counts", "weights", "field"),
    [
        ([10], None, "counts"),
        ([10, -1], None, "counts[1]"),
        ([10, 1.5], None, "counts[1]"),
        ([10, 20], [1, 2, 3], "weights"),
        ([10, 20], [1, 0], "weights"),
    ],
)
def test_srm_rejects_bad_input(counts: list, weights: list | None, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        srm_test(counts, weights)
    assert info.value.field == field
