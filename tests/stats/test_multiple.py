"""Holm and Benjamini–Hochberg adjustments vs independent implementations and the BH paper."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from arbiter.errors import InvalidInputError
from arbiter.stats.multiple import adjust_p_values, benjamini_hochberg, holm

RTOL = 1e-9

# Benjamini & Hochberg (1995), JRSS B 57:289–300, §4: the 15 p-values of their example.
# At level 0.05 their procedure rejects the four smallest; Holm/Bonferroni reject three.
BH_1995_P = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


def reference_holm(p: list[float]) -> np.ndarray:
    """Holm (1979) step-down, written out: running max of (m − i)·p_(i), capped at 1."""
    p_arr = np.asarray(p)
    m = p_arr.size
    order = np.argsort(p_arr, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_arr[idx]))
        adjusted[idx] = running
    return adjusted


p_lists = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=50, deadline=None)
@given(p=p_lists, alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_matches_reference(p: list[float], alpha: float) -> None:
    res = holm(p, alpha=alpha)
    expected = reference_holm(p)
    np.testing.assert_allclose(res.adjusted_p_values, expected, rtol=RTOL, atol=1e-300)
    assert res.reject == tuple(bool(x <= alpha) for x in res.adjusted_p_values)
    assert res.p_values == tuple(p)
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    np.testing.assert_allclose(res.adjusted_p_values, adjusted, rtol=RTOL, atol=1e-300)
    assert res.reject == tuple(bool(r) for r in reject)


@settings(max_examples=50, deadline=None)
@given(p=p_lists)
def test_bh_matches_scipy(p: list[float]) -> None:
    res = benjamini_hochberg(p)
    np.testing.assert_allclose(
        res.adjusted_p_values, sps.false_discovery_control(p, method="bh"), rtol=RTOL, atol=1e-300
    )


def test_benjamini_hochberg_1995_example() -> None:
    assert sum(benjamini_hochberg(BH_1995_P, alpha=0.05).reject) == 4
    assert sum(holm(BH_1995_P, alpha=0.05).reject) == 3
    assert adjust_p_values(BH_1995_P, method="bh").reject == benjamini_hochberg(BH_1995_P).reject


def test_empty_family_and_bad_input() -> None:
    assert holm([]).adjusted_p_values == ()
    with pytest.raises(InvalidInputError):
        holm([0.1, 1.2])
    with pytest.raises(InvalidInputError):
        holm([float("nan")])
    with pytest.raises(InvalidInputError) as info:
        adjust_p_values([0.1], method="bonferroni")  # type: ignore[arg-type]
    assert info.value.field == "method"


@settings(max_examples=50, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_by_matches_scipy(p: list[float]) -> None:
    """Benjamini-Yekutieli (any dependence) against scipy's independent implementation."""
    res = adjust_p_values(p, method="by")
    np.testing.assert_allclose(
        res.adjusted_p_values, sps.false_discovery_control(p, method="by"), rtol=RTOL, atol=1e-300
    )
    assert "any dependence" in res.method
