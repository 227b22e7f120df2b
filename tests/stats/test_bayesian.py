"""Tests for arbiter.stats.bayesian: closed forms, Evan Miller's formula and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from arbiter.errors import InvalidInputError
from arbiter.stats.bayesian import (
    BetaPrior,
    bayesian_summary,
    beta_binomial_summary,
    beta_prob_greater,
    normal_summary,
)
from arbiter.stats.sufficient import ProportionStatistic, SampleMeanStatistic

DECIMALS = 5


def evan_miller_prob_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(p_B > p_A), p_A ~ Beta(a_a, b_a), p_B ~ Beta(a_b, b_b), integer a_b.

    Evan Miller, "Formulas for Bayesian A/B testing" (2015):
    sum_{i=0}^{a_b - 1} B(a_a + i, b_a + b_b) / ((b_b + i) B(1 + i, b_b) B(a_a, b_a)).
    """
    i = np.arange(a_b, dtype=np.float64)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(log_terms).sum())


@pytest.mark.parametrize(
    ("a_a", "b_a", "a_b", "b_b"),
    [(1, 1, 1, 1), (11, 91, 15, 87), (101, 901, 131, 871), (1001, 9001, 1051, 8951),
     (3, 200, 40, 5), (2000, 30, 1, 1)],
)  # fmt: skip
def test_prob_greater_matches_evan_miller(a_a: int, b_a: int, a_b: int, b_b: int) -> None:
    expected = evan_miller_prob_b_beats_a(a_a, b_a, a_b, b_b)
    assert beta_prob_greater(a_b, b_b, a_a, b_a) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    n_a=st.integers(0, 5000),
    n_b=st.integers(0, 5000),
    frac_a=st.floats(0, 1),
    frac_b=st.floats(0, 1),
)
def test_summary_chance_matches_evan_miller_randomized(
    n_a: int, n_b: int, frac_a: float, frac_b: float
) -> None:
    s_a, s_b = round(frac_a * n_a), round(frac_b * n_b)
    r = beta_binomial_summary(ProportionStatistic(n_a, s_a), ProportionStatistic(n_b, s_b))
    expected = evan_miller_prob_b_beats_a(1 + s_a, 1 + n_a - s_a, 1 + s_b, 1 + n_b - s_b)
    assert r.chance_to_beat_control == pytest.approx(expected, rel=1e-8, abs=1e-10)
    # losses: E[(B-A)+] - E[(A-B)+] = E[B] - E[A] exactly
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(
        r.difference, abs=1e-10
    )


def test_expected_loss_matches_closed_form_via_evan_miller() -> None:
    # E[(p_B - p_A)^+] = m_B P(Beta(a_B+1, b_B) > A) - m_A P(B > Beta(a_A+1, b_A))
    # (Stucchio's decomposition), each probability from Evan Miller's sum.
    a_a, b_a, a_b, b_b = 121, 881, 140, 862
    r = beta_binomial_summary(ProportionStatistic(1000, 120), ProportionStatistic(1000, 139))
    m_a, m_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    gain = m_b * evan_miller_prob_b_beats_a(a_a, b_a, a_b + 1, b_b) - m_a * (
        1 - evan_miller_prob_b_beats_a(a_b, b_b, a_a + 1, b_a)
    )
    assert r.expected_loss_control == pytest.approx(gain, rel=1e-8)
    assert r.expected_loss_treatment == pytest.approx(gain - (m_b - m_a), rel=1e-7)


def test_all_summaries_match_seeded_monte_carlo() -> None:
    control, treatment = ProportionStatistic(2000, 210), ProportionStatistic(1800, 220)
    r = beta_binomial_summary(control, treatment, prior=BetaPrior(0.5, 0.5), credible_level=0.9)
    rng = np.random.default_rng(12345)
    draws = 2_000_000
    pa = rng.beta(0.5 + 210, 0.5 + 1790, draws)
    pb = rng.beta(0.5 + 220, 0.5 + 1580, draws)
    win = pb > pa
    mc_se = math.sqrt(win.mean() * (1 - win.mean()) / draws)
    assert r.chance_to_beat_control == pytest.approx(win.mean(), abs=4 * mc_se)
    gain, loss = np.maximum(pb - pa, 0), np.maximum(pa - pb, 0)
    assert r.expected_loss_control == pytest.approx(gain.mean(), abs=4 * gain.std() / 1414)
    assert r.expected_loss_treatment == pytest.approx(loss.mean(), abs=4 * loss.std() / 1414)
    d_lo, d_hi = np.quantile(pb - pa, [0.05, 0.95])
    l_lo, l_hi = np.quantile(pb / pa - 1, [0.05, 0.95])
    assert r.difference_ci_low == pytest.approx(d_lo, abs=2e-4)
    assert r.difference_ci_high == pytest.approx(d_hi, abs=2e-4)
    assert r.lift_ci_low == pytest.approx(l_lo, abs=2e-3)
    assert r.lift_ci_high == pytest.approx(l_hi, abs=2e-3)


def test_no_data_is_the_prior_with_exact_answers() -> None:
    r = beta_binomial_summary(ProportionStatistic(0, 0), ProportionStatistic(0, 0))
    assert r.status == "no_data"
    assert r.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    # For two independent uniforms, E[(U1 - U2)^+] = 1/6; the difference is triangular.
    assert r.expected_loss_control == pytest.approx(1 / 6, abs=1e-12)
    assert r.expected_loss_treatment == pytest.approx(1 / 6, abs=1e-12)
    assert r.difference_ci_low == pytest.approx(-1 + math.sqrt(0.05), abs=1e-8)
    assert r.difference_ci_high == pytest.approx(1 - math.sqrt(0.05), abs=1e-8)


def test_golden_values() -> None:
    r = beta_binomial_summary(ProportionStatistic(1000, 100), ProportionStatistic(1000, 130))
    assert round(r.chance_to_beat_control, DECIMALS) == 0.98217
    assert round(r.expected_loss_control, DECIMALS) == 0.03003
    assert round(r.expected_loss_treatment, DECIMALS) == 0.00009
    assert round(r.difference_ci_low, DECIMALS) == 0.00201
    assert round(r.difference_ci_high, DECIMALS) == 0.05798
    assert r.method == "beta_binomial" and r.status == "ok"


def test_lower_is_better_flips_chance_and_losses() -> None:
    c, t = ProportionStatistic(1000, 100), ProportionStatistic(1000, 130)
    up = beta_binomial_summary(c, t)
    down = beta_binomial_summary(c, t, higher_is_better=False)
    assert down.chance_to_beat_control == pytest.approx(1 - up.chance_to_beat_control)
    assert down.expected_loss_control == up.expected_loss_treatment
    assert down.expected_loss_treatment == up.expected_loss_control
    assert (down.difference_ci_low, down.difference_ci_high) == (
        up.difference_ci_low,
        up.difference_ci_high,
    )


def test_extreme_counts_are_stable() -> None:
    # A very narrow control posterior against a wide treatment one (and vice versa).
    wide, narrow = ProportionStatistic(50, 5), ProportionStatistic(2_000_000, 200_000)
    for c, t in ((narrow, wide), (wide, narrow)):
        r = beta_binomial_summary(c, t)
        a = (1 + c.successes, 1 + c.n - c.successes)
        b = (1 + t.successes, 1 + t.n - t.successes)
        assert r.chance_to_beat_control == pytest.approx(
            evan_miller_prob_b_beats_a(*a, *b), rel=1e-8
        )
        assert r.difference_ci_low < r.difference < r.difference_ci_high


# --- continuous (normal approximation) ------------------------------------------------------


def _mean_stat(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(int(x.size), float(x.sum()), float(np.square(x).sum()))


def test_normal_summary_closed_forms_and_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    xc, xt = rng.normal(10, 3, 400), rng.normal(10.4, 3.5, 450)
    r = normal_summary(_mean_stat(xc), _mean_stat(xt))
    m = xt.mean() - xc.mean()
    s = math.sqrt(xt.var(ddof=1) / 450 + xc.var(ddof=1) / 400)
    assert r.chance_to_beat_control == pytest.approx(stats.norm.cdf(m / s), rel=1e-12)
    assert (r.difference_ci_low, r.difference_ci_high) == pytest.approx(
        stats.norm.interval(0.95, m, s), rel=1e-12
    )
    d = np.random.default_rng(4).normal(m, s, 2_000_000)
    assert r.expected_loss_control == pytest.approx(np.maximum(d, 0).mean(), rel=2e-3)
    assert r.expected_loss_treatment == pytest.approx(np.maximum(-d, 0).mean(), rel=5e-3)
    assert r.lift == pytest.approx(m / xc.mean())
    assert r.method == "normal"


def test_normal_agrees_with_beta_for_large_samples() -> None:
    c, t = ProportionStatistic(200_000, 20_000), ProportionStatistic(200_000, 20_300)

    def as_mean(p: ProportionStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(p.n, p.successes, p.successes)  # x in {0,1}: x^2 = x

    beta = bayesian_summary(c, t)
    normal = bayesian_summary(as_mean(c), as_mean(t))
    assert normal.chance_to_beat_control == pytest.approx(beta.chance_to_beat_control, abs=2e-3)
    assert normal.difference_ci_low == pytest.approx(beta.difference_ci_low, abs=5e-5)


@pytest.mark.parametrize(
    ("c", "t", "status"),
    [
        (SampleMeanStatistic(0, 0, 0), SampleMeanStatistic(5, 5, 7), "no_data"),
        (SampleMeanStatistic(1, 1, 1), SampleMeanStatistic(5, 5, 7), "insufficient_data"),
        (SampleMeanStatistic(3, 3, 3), SampleMeanStatistic(3, 3, 3), "zero_variance"),
    ],
)
def test_normal_degenerate(c: SampleMeanStatistic, t: SampleMeanStatistic, status: str) -> None:
    r = normal_summary(c, t)
    assert r.status == status
    assert r.chance_to_beat_control == 0.5
    assert r.difference_ci_low == -math.inf


def test_bad_input_raises() -> None:
    p = ProportionStatistic(10, 3)
    with pytest.raises(InvalidInputError) as exc:
        beta_binomial_summary(p, ProportionStatistic(10, 11))
    assert exc.value.field == "treatment"
    with pytest.raises(InvalidInputError) as exc:
        beta_binomial_summary(p, p, credible_level=1.0)
    assert exc.value.field == "credible_level"
    with pytest.raises(InvalidInputError):
        BetaPrior(0.0, 1.0)
    with pytest.raises(InvalidInputError):
        beta_prob_greater(1.0, -1.0, 1.0, 1.0)
    with pytest.raises(InvalidInputError, match="both"):
        bayesian_summary(p, SampleMeanStatistic(10, 1.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as exc:
        bayesian_summary(
            SampleMeanStatistic(10, 1.0, 1.0),
            SampleMeanStatistic(10, 1.0, 1.0),
            prior=BetaPrior(),
        )
    assert exc.value.field == "prior"
