"""The one guardrail rule (arbiter.stats.guardrails): bounds against scipy/statsmodels, the
three states, and the peeking-safety of the breach rule by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.integrate import quad
from statsmodels.stats.proportion import proportion_confint

from arbiter.errors import InvalidInputError
from arbiter.stats.guardrails import (
    BREACH_ALPHA,
    GuardrailObservation,
    check_latency,
    check_rate,
    exact_lower_bound,
    excess_p_value,
    rate_confidence_bound,
    rate_log_evalue,
    wilson_interval,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 40), (17, 1000), (50, 50)])
def test_bounds_match_statsmodels(k: int, n: int) -> None:
    low, high = wilson_interval(k, n, 0.05)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    # One-sided exact bound at 1 - a is the two-sided Clopper-Pearson lower limit at 1 - 2a.
    cp_low, _ = proportion_confint(k, n, alpha=2 * BREACH_ALPHA, method="beta")
    assert exact_lower_bound(k, n, BREACH_ALPHA) == pytest.approx(float(cp_low), abs=1e-12)


def test_excess_is_the_one_sided_fisher_test() -> None:
    ref = sps.fisher_exact([[9, 91], [2, 98]], alternative="greater").pvalue
    assert excess_p_value(9, 100, 2, 100) == pytest.approx(ref)


def test_rate_states() -> None:
    # Clearly broken: 20 % errors against a 1 % limit, champion clean.
    broken = check_rate("error_rate", 40, 200, 0.01, champion_events=0, champion_n=2000)
    assert broken.status == "breached" and broken.observation == GuardrailObservation(
        "error_rate", 0.2, 0.0
    )
    # Clearly fine.
    ok = check_rate("error_rate", 1, 5000, 0.01, champion_events=3, champion_n=5000)
    assert ok.status == "met" and ok.ci_high is not None and ok.ci_high <= 0.01
    # Not clear: no observation (blocks promotion without rolling back).
    unclear = check_rate("error_rate", 12, 1000, 0.01)
    assert unclear.status == "inconclusive" and unclear.observation is None
    assert check_rate("error_rate", 0, 0, 0.01).status == "no_data"


def test_a_champion_above_the_limit_does_not_roll_an_identical_challenger_back() -> None:
    alone = check_rate("error_rate", 60, 1000, 0.03)
    assert alone.status == "breached"  # no baseline: the absolute bound decides
    same = check_rate("error_rate", 60, 1000, 0.03, champion_events=600, champion_n=10_000)
    assert same.status == "inconclusive" and same.excess_p_value is not None
    assert same.excess_p_value > BREACH_ALPHA


def test_check_rate_refuses_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        check_rate("error_rate", 5, 3, 0.01)
    with pytest.raises(InvalidInputError):
        check_rate("error_rate", 1, 3, 0.01, alpha=1.5)


def test_latency_needs_enough_requests() -> None:
    assert check_latency("p99", math.nan, 10.0, 0.5, challenger_ok=0, champion_ok=0).status == (
        "no_data"
    )
    few = check_latency("p99", 30.0, 10.0, 0.5, challenger_ok=999, champion_ok=5000)
    assert few.status == "inconclusive" and few.limit == pytest.approx(15.0)
    slow = check_latency("p99", 30.0, 10.0, 0.5, challenger_ok=1000, champion_ok=5000)
    assert slow.status == "breached"
    assert slow.observation == GuardrailObservation("p99", 30.0, 10.0)
    fast = check_latency("p99", 12.0, 10.0, 0.5, challenger_ok=1000, champion_ok=5000)
    assert fast.status == "met"


def test_breach_rule_is_peeking_safe_at_the_limit() -> None:
    """True error rate exactly at the limit, 30 looks at growing data: the rule must breach in
    well under 5 % of runs (it is time-uniform at BREACH_ALPHA = 0.001). A 95 % Wilson bound
    checked at every look breaches in about a fifth of them, which the same simulation
    shows."""
    rng = np.random.default_rng(20261203)
    runs, looks, per_look, limit = 200, 30, 100, 0.02
    ours = naive = 0
    for _ in range(runs):
        errors = np.cumsum(rng.binomial(per_look, limit, looks))
        champion = np.cumsum(rng.binomial(per_look, limit, looks))
        hit_ours = hit_naive = False
        for j in range(looks):
            n, k = per_look * (j + 1), int(errors[j])
            if not hit_ours:
                check = check_rate(
                    "error_rate", k, n, limit, champion_events=int(champion[j]), champion_n=n
                )
                hit_ours = check.status == "breached"
            if not hit_naive:
                hit_naive = wilson_interval(k, n, 0.05)[0] > limit
        ours += hit_ours
        naive += hit_naive
    assert ours / runs < 0.02, ours
    assert naive / runs > 0.10, naive  # what looking at full alpha costs


def _mixture_by_quadrature(k: int, n: int, p0: float, side: str) -> float:
    """The beta-binomial mixture e-value by numerical integration (independent reference)."""
    lo, hi = (p0, 1.0) if side == "above" else (0.0, p0)
    log_null = k * math.log(p0) + (n - k) * math.log1p(-p0)

    def ratio(p: float) -> float:
        if p in (0.0, 1.0):
            return 0.0
        return math.exp(k * math.log(p) + (n - k) * math.log1p(-p) - log_null)

    mode = min(max(k / n, lo), hi)
    value = sum(
        quad(ratio, a, b, limit=200, epsabs=0.0, epsrel=1e-10)[0]
        for a, b in ((lo, mode), (mode, hi))
        if b > a
    )
    return value / (hi - lo)  # uniform prior on [lo, hi]


@pytest.mark.parametrize(
    ("k", "n", "p0", "side"),
    [(4, 20, 0.01, "above"), (0, 450, 0.01, "below"), (17, 1000, 0.02, "above"),
     (17, 1000, 0.03, "below"), (60, 1000, 0.03, "above"), (3, 3, 0.5, "above")],
)  # fmt: skip
def test_mixture_evalue_matches_quadrature(k: int, n: int, p0: float, side: str) -> None:
    ref = _mixture_by_quadrature(k, n, p0, side)
    assert rate_log_evalue(k, n, p0, side) == pytest.approx(math.log(ref), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 40), (17, 1000), (50, 50), (1, 1)])
def test_bounds_invert_the_evalue_and_are_wider_than_one_look(k: int, n: int) -> None:
    low, high = (
        rate_confidence_bound(k, n, 0.05, "lower"),
        rate_confidence_bound(k, n, 0.05, "upper"),
    )
    level = math.log(20.0)
    if low > 0:
        assert rate_log_evalue(k, n, low, "above") == pytest.approx(level, abs=1e-6)
    if high < 1:
        assert rate_log_evalue(k, n, high, "below") == pytest.approx(level, abs=1e-6)
    w_low, w_high = wilson_interval(k, n, 0.05)
    assert low <= w_low + 1e-12 and high >= w_high - 1e-12  # the price of any-look validity
    assert low <= k / n <= high


def test_met_rule_is_time_uniform_at_the_limit() -> None:
    """True rate at the limit, 30 looks: a wrong "met" (all-clear) in at most alpha of runs;
    a one-look Wilson bound checked at every look gives more."""
    rng = np.random.default_rng(7)
    runs, looks, per_look, limit = 200, 30, 100, 0.05
    ours = naive = 0
    for _ in range(runs):
        errors = np.cumsum(rng.binomial(per_look, limit, looks))
        hit_ours = hit_naive = False
        for j in range(looks):
            n, k = per_look * (j + 1), int(errors[j])
            hit_ours = hit_ours or check_rate("error_rate", k, n, limit).status == "met"
            hit_naive = hit_naive or wilson_interval(k, n, 0.1)[1] <= limit  # one-sided 5 %
        ours += hit_ours
        naive += hit_naive
    assert ours / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), ours
    assert naive > ours
