"""Power analysis vs statsmodels NormalIndPower (same normal model) and round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from arbiter.errors import InvalidInputError
from arbiter.stats.power import (
    mde_means,
    mde_proportions,
    power_means,
    power_proportions,
    remaining_sample_size,
    sample_size_means,
    sample_size_proportions,
)

RTOL = 1e-9
ALTERNATIVES = ["two-sided", "larger", "smaller"]
NIP = NormalIndPower()


def unpooled_effect_size(p_a: float, p_b: float) -> float:
    """Standardised effect that makes NormalIndPower use the unpooled-variance normal model."""
    return (p_b - p_a) / math.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / 2)


def wrong_tail_bound(alpha: float, alternative: str) -> float:
    return float(sps.norm.cdf(-2 * sps.norm.isf(alpha / 2))) if alternative == "two-sided" else 0


designs = {
    "baseline": st.floats(0.02, 0.9),
    "relative_mde": st.floats(0.02, 0.1),
    "alpha": st.sampled_from([0.01, 0.05, 0.1]),
    "power": st.sampled_from([0.5, 0.8, 0.9, 0.95]),
    "alternative": st.sampled_from(ALTERNATIVES),
}


@settings(max_examples=50, deadline=None)
@given(**designs)
def test_proportion_sample_size_and_power_match_statsmodels(
    baseline: float, relative_mde: float, alpha: float, power: float, alternative: str
) -> None:
    res = sample_size_proportions(
        baseline, relative_mde, relative=True, alpha=alpha, power=power, alternative=alternative
    )
    p_b = baseline + res.effect
    es = unpooled_effect_size(baseline, p_b)
    # Power at the unrounded n is the target (one-sided: exactly; two-sided: plus the
    # wrong-tail rejection probability that the closed form neglects).
    achieved = NIP.power(es, res.n_per_arm_exact, alpha, ratio=1.0, alternative=alternative)
    assert -1e-12 <= achieved - power <= wrong_tail_bound(alpha, alternative) + 1e-12
    if alternative != "two-sided":
        assert achieved == pytest.approx(power, rel=RTOL)
    # Our power function is NormalIndPower.power exactly, at any n.
    ours = power_proportions(
        baseline, relative_mde, res.n_per_arm, relative=True, alpha=alpha, alternative=alternative
    )
    ref = NIP.power(es, res.n_per_arm, alpha, ratio=1.0, alternative=alternative)
    assert ours.power == pytest.approx(ref, rel=RTOL)
    assert ours.power >= power
    assert res.n_per_arm == math.ceil(res.n_per_arm_exact - 1e-9)
    assert res.n_total == 2 * res.n_per_arm


@settings(max_examples=50, deadline=None)
@given(**designs)
def test_arcsine_variant_is_statsmodels_with_cohens_h(
    baseline: float, relative_mde: float, alpha: float, power: float, alternative: str
) -> None:
    res = sample_size_proportions(
        baseline, relative_mde, relative=True, alpha=alpha, power=power,
        alternative=alternative, variance="arcsine",
    )  # fmt: skip
    h = proportion_effectsize(baseline + res.effect, baseline)
    crit = sps.norm.isf(alpha / 2 if alternative == "two-sided" else alpha)
    assert res.n_per_arm_exact == pytest.approx(
        2 * (crit + sps.norm.ppf(power)) ** 2 / h**2, rel=RTOL
    )
    ours = power_proportions(
        baseline, relative_mde, 1000, relative=True, alpha=alpha, alternative=alternative,
        variance="arcsine",
    )  # fmt: skip
    assert ours.power == pytest.approx(
        NIP.power(h, 1000, alpha, ratio=1.0, alternative=alternative), rel=RTOL
    )


def test_unpooled_and_arcsine_are_close_but_not_equal() -> None:
    # Different variance approximations: same answer to within a few percent at moderate p.
    unpooled = sample_size_proportions(0.10, 0.02).n_per_arm_exact
    arcsine = sample_size_proportions(0.10, 0.02, variance="arcsine").n_per_arm_exact
    assert unpooled != pytest.approx(arcsine, rel=1e-5)
    assert unpooled == pytest.approx(arcsine, rel=0.05)


@settings(max_examples=50, deadline=None)
@given(
    baseline=st.floats(0.02, 0.9),
    n=st.floats(50, 1e6),
    alpha=st.sampled_from([0.01, 0.05]),
    power=st.sampled_from([0.8, 0.9]),
    alternative=st.sampled_from(ALTERNATIVES),
    variance=st.sampled_from(["unpooled", "arcsine"]),
)
def test_proportion_mde_inverts_sample_size(
    baseline: float, n: float, alpha: float, power: float, alternative: str, variance: str
) -> None:
    mde = mde_proportions(
        baseline, n, alpha=alpha, power=power, alternative=alternative, variance=variance
    )
    if mde.status != "ok":
        assert math.isnan(mde.mde)
        return
    assert (mde.mde < 0) == (alternative == "smaller")
    back = sample_size_proportions(
        baseline, mde.mde, alpha=alpha, power=power, alternative=alternative, variance=variance
    )
    assert back.n_per_arm_exact == pytest.approx(n, rel=1e-8)


def test_proportion_mde_unreachable_for_tiny_samples() -> None:
    res = mde_proportions(0.95, 3)
    assert res.status == "unreachable" and math.isnan(res.mde)


@settings(max_examples=50, deadline=None)
@given(
    mde=st.floats(0.01, 10),
    std=st.floats(0.1, 50),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
    power=st.sampled_from([0.8, 0.9]),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_means_match_statsmodels(
    mde: float, std: float, alpha: float, power: float, alternative: str
) -> None:
    res = sample_size_means(mde, std, alpha=alpha, power=power, alternative=alternative)
    es = res.effect / std
    achieved = NIP.power(es, res.n_per_arm_exact, alpha, ratio=1.0, alternative=alternative)
    assert -1e-12 <= achieved - power <= wrong_tail_bound(alpha, alternative) + 1e-12
    ours = power_means(mde, std, 123.0, alpha=alpha, alternative=alternative)
    assert ours.power == pytest.approx(
        NIP.power(es, 123.0, alpha, ratio=1.0, alternative=alternative), rel=RTOL
    )
    back = mde_means(std, res.n_per_arm_exact, alpha=alpha, power=power, alternative=alternative)
    assert back.mde == pytest.approx(res.effect, rel=RTOL)


def test_means_textbook_value() -> None:
    # n = 2σ²(z_{0.975} + z_{0.8})²/δ² with σ = 1, δ = 0.5: 2·(1.959964 + 0.841621)²/0.25
    # = 62.79, i.e. 63 per arm (the familiar "63 per group for d = 0.5" normal approximation).
    res = sample_size_means(0.5, 1.0)
    assert res.n_per_arm == 63
    assert round(res.n_per_arm_exact, 2) == 62.79
    assert "Chow, Shao & Wang" in res.method


def test_relative_effects_and_direction() -> None:
    rel = sample_size_proportions(0.1, 0.2, relative=True)
    absolute = sample_size_proportions(0.1, 0.02)
    assert rel.n_per_arm == absolute.n_per_arm
    assert rel.relative_effect == pytest.approx(0.2)
    smaller = sample_size_proportions(0.1, 0.02, alternative="smaller")
    assert smaller.effect == pytest.approx(-0.02)
    means_rel = sample_size_means(0.1, 2.0, baseline=10.0, relative=True)
    assert means_rel.effect == pytest.approx(1.0)
    assert means_rel.n_per_arm == sample_size_means(1.0, 2.0).n_per_arm


def test_remaining_sample_size() -> None:
    plan = sample_size_proportions(0.1, 0.02)
    running = remaining_sample_size(plan, [1000, 1200])
    assert running.remaining_per_arm == (plan.n_per_arm - 1000, plan.n_per_arm - 1200)
    assert running.remaining_total == sum(running.remaining_per_arm)
    assert running.fraction_complete == pytest.approx(1000 / plan.n_per_arm)
    assert running.status == "running"
    done = remaining_sample_size(100, [150, 100])
    assert done.status == "complete" and done.remaining_total == 0 and done.fraction_complete == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: sample_size_proportions(1.2, 0.01), "baseline"),
        (lambda: sample_size_proportions(0.0, 0.01), "baseline"),
        (lambda: sample_size_proportions(0.9, 0.2), "mde"),
        (lambda: sample_size_proportions(0.5, 0.0), "mde"),
        (lambda: sample_size_proportions(0.5, 0.1, power=1.0), "power"),
        (lambda: sample_size_proportions(0.5, 0.1, alpha=0.0), "alpha"),
        (lambda: sample_size_proportions(0.5, 0.1, variance="pooled"), "variance"),
        (lambda: sample_size_means(0.1, -1.0), "std"),
        (lambda: sample_size_means(0.1, 1.0, relative=True), "baseline"),
        (lambda: power_means(0.1, 1.0, 0), "n_per_arm"),
        (lambda: remaining_sample_size(100, [10, -1]), "current_n[1]"),
        (lambda: remaining_sample_size(0, [10]), "required"),
    ],
)
def test_power_rejects_bad_input(call, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.field == field


# --- the sequential sample size shared by the two-arm and A/B/n remaining-sample estimates ---


def test_sequential_sample_size_solves_halfwidth_plus_power_margin() -> None:
    from arbiter.stats.power import sequential_sample_size
    from arbiter.stats.sequential import cs_halfwidth, sequential_rho

    rho = sequential_rho(0.05, 5000.0)
    n = sequential_sample_size(0.32, 0.02, alpha=0.05, power=0.8, rho=rho)
    assert n is not None

    def gap(m: float) -> float:
        se = math.sqrt(0.32 / m)
        return float(cs_halfwidth(se, 2.0 * m, rho, 0.05)) + sps.norm.ppf(0.8) * se - 0.02

    assert gap(n) <= 0 < gap(n - 1)
    assert sequential_sample_size(0.0, 0.02, alpha=0.05, power=0.8, rho=rho) is None
    assert sequential_sample_size(0.32, 1e3, alpha=0.05, power=0.8, rho=rho) == 1
    with pytest.raises(InvalidInputError):
        sequential_sample_size(0.32, 0.0, alpha=0.05, power=0.8, rho=rho)


def test_sequential_sample_size_reproduces_the_two_copies_it_replaced() -> None:
    """Numbers of the solvers formerly in stats/verdict.py and analysis/multiarm.py (commit
    33f54d2), through the public decisions that use the shared function now."""
    from arbiter.stats.sequential import SequentialConfig
    from arbiter.stats.sufficient import ProportionStatistic, SampleMeanStatistic
    from arbiter.stats.verdict import (
        ArmObservations,
        DecisionPolicy,
        decide,
        decide_multiarm,
        pairwise_comparisons,
    )

    p = ProportionStatistic
    two_arm = [
        (p(500, 400), p(500, 410), {"min_detectable_effect": 0.02}, 11784),
        (p(500, 400), p(500, 410), {"min_detectable_effect": 0.02,
                                    "max_sample_per_arm": 100_000}, 14155),
        (p(3000, 1500), p(3000, 1520), {"min_detectable_effect": 0.01, "alpha": 0.01,
                                        "power": 0.9}, 134533),
        (SampleMeanStatistic(200, 200.0, 600.0), SampleMeanStatistic(200, 210.0, 650.0),
         {"metric_kind": "mean", "min_detectable_effect": 0.1,
          "sequential_config": SequentialConfig(target_sample_size=20000.0)}, 6123),
    ]  # fmt: skip
    for champion, challenger, kw, expected in two_arm:
        v = decide(ArmObservations(champion, challenger), DecisionPolicy(**kw))
        assert v.decision == "continue" and v.estimated_remaining_sample == expected
    arms = ("champion", "b", "c")
    st = {"champion": p(800, 640), "b": p(800, 600), "c": p(800, 660)}
    multi = [
        ({"min_detectable_effect": 0.02}, 16803),
        ({"min_detectable_effect": 0.05, "alpha": 0.1,
          "sequential_config": SequentialConfig(target_sample_size=30000.0)}, 2672),
    ]  # fmt: skip
    for kw, required in multi:
        pol = DecisionPolicy(min_sample_per_arm=100, **kw)
        v = decide_multiarm(arms, st, pairwise_comparisons(st, arms, pol), {}, pol)
        assert v.decision == "continue"
        assert v.remaining_per_arm == {a: required - 800 for a in arms}
        assert v.estimated_remaining_sample == required - 800
