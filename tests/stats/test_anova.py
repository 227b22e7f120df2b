"""Welch's ANOVA on sufficient statistics (statsmodels' anova_generic behind a thin adapter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.oneway import anova_oneway

from arbiter.errors import InvalidInputError
from arbiter.stats.anova import welch_anova
from arbiter.stats.sufficient import SampleMeanStatistic as S

# Values of the hand-written Welch (1951) formula this module held until issue 9 (commit
# 33f54d2); the statsmodels implementation must reproduce them.
REFERENCE = [
    (
        [S(120, 60.0, 95.0), S(80, 52.0, 110.0), S(200, 90.0, 160.0)],
        (1.3306762940839976, 0.2667975971795791, 2, 186.373500837266),
    ),
    (
        [S(5, 10.0, 30.0), S(7, 21.0, 80.0)],
        (1.1052631578947367, 0.32018571890229053, 1, 9.11520252498685),
    ),
    (
        [
            S(1000, 1010.0, 2400.0),
            S(900, 880.0, 2000.0),
            S(950, 1000.0, 2300.0),
            S(40, 60.0, 150.0),
        ],
        (2.680272578318708, 0.04822866599377188, 3, 188.9735159919732),
    ),
]


@pytest.mark.parametrize(("arms", "expected"), REFERENCE)
def test_matches_the_former_hand_written_formula(arms: list[S], expected: tuple) -> None:
    r = welch_anova(arms)
    got = (r.statistic, r.p_value, r.df_num, r.df_denom)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert r.status == "ok"


def test_matches_statsmodels_on_the_rows() -> None:
    rng = np.random.default_rng(7)
    groups = [rng.normal(m, s, n) for m, s, n in ((0.0, 1.0, 40), (0.3, 2.0, 60), (0.1, 0.5, 25))]
    r = welch_anova([S(g.size, float(g.sum()), float((g * g).sum())) for g in groups])
    ref = anova_oneway(groups, use_var="unequal")
    assert (r.statistic, r.p_value, r.df_denom) == pytest.approx(
        (ref.statistic, ref.pvalue, ref.df[1]), rel=1e-9
    )


def test_degenerate_arms_are_a_status() -> None:
    few = welch_anova([S(1, 1.0, 1.0), S(5, 5.0, 6.0)])
    assert few.status == "insufficient_data" and math.isnan(few.p_value)
    flat = welch_anova([S(3, 3.0, 3.0), S(5, 5.0, 6.0)])
    assert flat.status == "zero_variance" and math.isnan(flat.statistic)
    with pytest.raises(InvalidInputError):
        welch_anova([S(3, 3.0, 3.0)])
