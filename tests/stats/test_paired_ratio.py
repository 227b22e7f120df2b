"""Paired delta method for two ratios over the same units (arbiter.stats.paired_ratio)."""

from __future__ import annotations

import numpy as np
import pytest

from arbiter.errors import InvalidInputError
from arbiter.stats import RatioStatistic, paired_ratio_test, ratio_test


def _units(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    d = 1.0 + rng.poisson(3.0, n)
    p = rng.beta(2, 5, n)  # a unit's own rate: rows of a unit are correlated
    m_a = rng.binomial(d.astype(int), p).astype(float)
    m_b = np.minimum(d, m_a + rng.binomial(1, 0.3, n))  # challenger: the same, plus a bit
    return m_a, d, m_b, d.copy()


def test_matches_a_paired_unit_bootstrap() -> None:
    rng = np.random.default_rng(0)
    m_a, d_a, m_b, d_b = _units(rng, 2000)
    res = paired_ratio_test(m_a, d_a, m_b, d_b)
    assert res.estimate_a == pytest.approx(m_a.sum() / d_a.sum())
    assert res.difference == pytest.approx(m_b.sum() / d_b.sum() - m_a.sum() / d_a.sum())
    draws = rng.integers(0, m_a.size, size=(4000, m_a.size))
    boot = m_b[draws].sum(1) / d_b[draws].sum(1) - m_a[draws].sum(1) / d_a[draws].sum(1)
    se = (res.ci_high - res.ci_low) / (2 * 1.959963984540054)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.08)
    assert res.n == 2000 and res.p_value < 1e-6


def test_reduces_to_the_independent_test_without_correlation() -> None:
    # Two independent halves: the paired variance is the sum of the two delta variances,
    # so the CI equals ratio_test's up to the covariance term, which is ~0.
    rng = np.random.default_rng(1)
    m_a, d_a, _, _ = _units(rng, 3000)
    m_b, d_b, _, _ = _units(rng, 3000)
    paired = paired_ratio_test(m_a, d_a, m_b, d_b)

    def stat(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
        return RatioStatistic(m.size, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum())

    indep = ratio_test(stat(m_a, d_a), stat(m_b, d_b))
    width = paired.ci_high - paired.ci_low
    assert width == pytest.approx(indep.ci_high - indep.ci_low, rel=0.05)


def test_degenerate_data_is_a_status() -> None:
    assert paired_ratio_test([1.0], [1.0], [1.0], [1.0]).status == "insufficient_data"
    assert paired_ratio_test([0, 0], [0, 0], [1, 1], [1, 1]).status == "insufficient_data"
    same = paired_ratio_test([1, 2, 3], [2, 2, 4], [1, 2, 3], [2, 2, 4])
    assert same.status == "zero_variance" and same.difference == 0.0


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        paired_ratio_test([1, 2], [1, 2], [1], [1, 2])
    assert err.value.field == "m_b"
    with pytest.raises(InvalidInputError):
        paired_ratio_test([1, np.nan], [1, 2], [1, 2], [1, 2])
