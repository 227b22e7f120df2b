"""Tests for arbiter.stats.verdict: each rule of the decision policy, in order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from arbiter.errors import InvalidInputError
from arbiter.stats.paired import mcnemar_test
from arbiter.stats.sequential import SequentialConfig, confidence_sequence
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from arbiter.stats.verdict import (
    ArmObservations,
    Criterion,
    DecisionPolicy,
    Guardrail,
    GuardrailObservation,
    PrimarySummary,
    ShadowClassicPolicy,
    ShadowObservations,
    Verdict,
    decide,
    decide_shadow_classic,
)
from arbiter.stats.verdict.multiarm import effective_units, pairwise_comparisons, unit_dof

P = ProportionStatistic
BASE = P(20_000, 2_000)
BETTER = P(20_000, 2_300)
WORSE = P(20_000, 1_700)
SAME = P(20_000, 2_010)


def _reason(verdict: Verdict, name: str) -> Criterion:
    return next(c for c in verdict.reasons if c.name == name)


# --- primary metric -----------------------------------------------------------------------


def test_significantly_better_promotes() -> None:
    v = decide(ArmObservations(BASE, BETTER), DecisionPolicy())
    assert v.decision == "promote"
    assert _reason(v, "primary_improvement").met
    assert v.primary is not None and v.primary.method == "asymptotic_cs"
    ref = confidence_sequence(BASE, BETTER, config=SequentialConfig())
    assert v.primary.p_value == ref.p_value


@pytest.mark.parametrize(("mode", "expected"), [("ab", "rollback"), ("canary", "rollback"),
                                                ("shadow", "keep_champion"),
                                                ("offline", "keep_champion")])  # fmt: skip
def test_significantly_worse_rolls_back_only_when_serving(mode: str, expected: str) -> None:
    v = decide(ArmObservations(BASE, WORSE), DecisionPolicy(mode=mode))  # type: ignore[arg-type]
    assert v.decision == expected
    assert not _reason(v, "primary_no_harm").met


def test_lower_is_better_metric_reverses_direction() -> None:
    policy = DecisionPolicy(higher_is_better=False)
    assert decide(ArmObservations(BASE, WORSE), policy).decision == "promote"
    assert decide(ArmObservations(BASE, BETTER), policy).decision == "rollback"


def test_not_significant_continues_with_remaining_sample() -> None:
    v = decide(ArmObservations(BASE, SAME), DecisionPolicy(min_detectable_effect=0.005))
    assert v.decision == "continue"
    assert v.estimated_remaining_sample is not None and v.estimated_remaining_sample > 0


def test_max_sample_reached_keeps_champion() -> None:
    policy = DecisionPolicy(max_sample_per_arm=20_000)
    v = decide(ArmObservations(BASE, SAME), policy)
    assert v.decision == "keep_champion"
    assert not _reason(v, "max_sample").met


def test_sequential_futility_keeps_champion() -> None:
    # CS upper bound well below an MDE of 3 points -> no plausible improvement of that size.
    v = decide(ArmObservations(BASE, SAME), DecisionPolicy(min_detectable_effect=0.03))
    assert v.decision == "keep_champion"
    futility = _reason(v, "futility")
    assert not futility.met and futility.observed is not None and futility.observed < 0.03


def test_fixed_horizon_mode_matches_statsmodels_pooled_z_test() -> None:
    v = decide(ArmObservations(BASE, P(20_000, 2_130)), DecisionPolicy(sequential=False))
    _z, p = proportions_ztest([2_130, 2_000], [20_000, 20_000])
    assert v.primary is not None
    assert v.primary.p_value == pytest.approx(p, rel=1e-10)
    assert v.primary.estimate == pytest.approx(0.0065)
    assert v.decision == "promote"  # p ≈ 0.03 < 0.05, while the CS is not yet significant
    assert decide(ArmObservations(BASE, P(20_000, 2_130)), DecisionPolicy()).decision == (
        "continue"
    )


def test_fixed_horizon_welch_for_means() -> None:
    rng = np.random.default_rng(1)
    xc, xt = rng.normal(1.0, 1.0, 3000), rng.normal(1.1, 1.3, 2800)

    def stat(x: np.ndarray) -> SampleMeanStatistic:
        return SampleMeanStatistic(x.size, float(x.sum()), float((x**2).sum()))

    policy = DecisionPolicy(metric_kind="mean", sequential=False, traffic_weights=(30, 28))
    v = decide(ArmObservations(stat(xc), stat(xt)), policy)
    ref = stats.ttest_ind(xt, xc, equal_var=False)
    assert v.primary is not None
    assert v.primary.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert v.decision == "promote"


def test_remaining_sample_fixed_horizon_formula() -> None:
    policy = DecisionPolicy(sequential=False, min_detectable_effect=0.01, min_sample_per_arm=10)
    v = decide(ArmObservations(P(1000, 100), P(1000, 101)), policy)
    var = 0.1 * 0.9 + 0.101 * 0.899
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert v.estimated_remaining_sample == math.ceil(z**2 * var / 0.01**2) - 1000


def test_sequential_needs_more_sample_than_fixed_horizon() -> None:
    arms = ArmObservations(P(1000, 100), P(1000, 101))
    seq = decide(arms, DecisionPolicy(min_detectable_effect=0.01, min_sample_per_arm=10))
    fixed = decide(
        arms, DecisionPolicy(min_detectable_effect=0.01, min_sample_per_arm=10, sequential=False)
    )
    assert seq.estimated_remaining_sample is not None
    assert fixed.estimated_remaining_sample is not None
    assert seq.estimated_remaining_sample > fixed.estimated_remaining_sample


def test_remaining_sample_is_capped_by_planned_maximum() -> None:
    policy = DecisionPolicy(min_detectable_effect=0.001, max_sample_per_arm=50_000)
    v = decide(ArmObservations(BASE, SAME), policy)
    assert v.decision == "continue"
    assert v.estimated_remaining_sample == 30_000


# --- minimum sample ------------------------------------------------------------------------


def test_below_min_sample_continues_even_with_big_difference() -> None:
    v = decide(ArmObservations(P(400, 20), P(400, 120)), DecisionPolicy(min_sample_per_arm=500))
    assert v.decision == "continue"
    assert v.estimated_remaining_sample == 100
    assert v.primary is None
    assert not _reason(v, "min_sample").met


# --- SRM ------------------------------------------------------------------------------------


def test_srm_blocks_promotion_and_matches_scipy_chisquare() -> None:
    champion, challenger = P(20_000, 2_000), P(21_000, 2_600)  # clearly better, but SRM
    v = decide(ArmObservations(champion, challenger), DecisionPolicy())
    assert v.decision == "continue"
    crit = _reason(v, "srm")
    assert not crit.met
    expected = stats.chisquare([20_000, 21_000]).pvalue
    assert v.srm_p_value == pytest.approx(expected, rel=1e-10)
    assert decide(
        ArmObservations(champion, challenger), DecisionPolicy(on_srm="rollback")
    ).decision == ("rollback")


def test_srm_uses_weights_and_assignment_counts() -> None:
    champion, challenger = P(90_000, 9_000), P(10_000, 1_300)
    ok = decide(ArmObservations(champion, challenger), DecisionPolicy(traffic_weights=(0.9, 0.1)))
    assert _reason(ok, "srm").met and ok.decision == "promote"
    broken = ArmObservations(champion, challenger, assignment_counts=(90_000, 11_000))
    v = decide(broken, DecisionPolicy(traffic_weights=(0.9, 0.1)))
    assert v.decision == "continue" and not _reason(v, "srm").met


# --- guardrails -----------------------------------------------------------------------------


def test_guardrail_breach_rolls_back_even_when_primary_wins() -> None:
    policy = DecisionPolicy(guardrails=(Guardrail("error_rate", 0.01, "max"),))
    arms = ArmObservations(BASE, BETTER, guardrails=(GuardrailObservation("error_rate", 0.02),))
    v = decide(arms, policy)
    assert v.decision == "rollback"
    crit = _reason(v, "guardrail:error_rate")
    assert not crit.met and crit.observed == 0.02 and crit.threshold == 0.01


def test_guardrail_breach_in_shadow_keeps_champion() -> None:
    policy = DecisionPolicy(mode="shadow", guardrails=(Guardrail("discrepancy", 0.3, "max"),))
    arms = ArmObservations(BASE, BETTER, guardrails=(GuardrailObservation("discrepancy", 0.4),))
    assert decide(arms, policy).decision == "keep_champion"


def test_relative_guardrails() -> None:
    latency = Guardrail("latency_p99_ms", 0.10, "max", relative_to_champion=True)
    accuracy = Guardrail("accuracy", 0.02, "min", relative_to_champion=True)
    policy = DecisionPolicy(guardrails=(latency, accuracy))
    within = ArmObservations(
        BASE,
        BETTER,
        guardrails=(
            GuardrailObservation("latency_p99_ms", 109.0, champion=100.0),
            GuardrailObservation("accuracy", 0.885, champion=0.90),
        ),
    )
    v = decide(within, policy)
    assert v.decision == "promote"
    assert _reason(v, "guardrail:latency_p99_ms").threshold == pytest.approx(110.0)
    assert _reason(v, "guardrail:accuracy").threshold == pytest.approx(0.882)
    slow = ArmObservations(
        BASE,
        BETTER,
        guardrails=(
            GuardrailObservation("latency_p99_ms", 111.0, champion=100.0),
            GuardrailObservation("accuracy", 0.885, champion=0.90),
        ),
    )
    assert decide(slow, policy).decision == "rollback"


def test_guardrail_breach_wins_over_srm() -> None:
    policy = DecisionPolicy(guardrails=(Guardrail("error_rate", 0.01),))
    arms = ArmObservations(
        P(20_000, 2_000), P(21_000, 2_100), guardrails=(GuardrailObservation("error_rate", 0.5),)
    )
    assert decide(arms, policy).decision == "rollback"


def test_missing_guardrail_observation_blocks_promotion_only() -> None:
    policy = DecisionPolicy(guardrails=(Guardrail("error_rate", 0.01),))
    v = decide(ArmObservations(BASE, BETTER), policy)
    assert v.decision == "continue"
    assert _reason(v, "guardrail:error_rate").observed is None
    assert decide(ArmObservations(BASE, WORSE), policy).decision == "rollback"


def test_guardrail_input_errors() -> None:
    policy = DecisionPolicy(guardrails=(Guardrail("latency", 0.1, relative_to_champion=True),))
    with pytest.raises(InvalidInputError, match="champion value"):
        decide(ArmObservations(BASE, BETTER, (GuardrailObservation("latency", 1.0),)), policy)
    with pytest.raises(InvalidInputError, match="matches no configured guardrail") as exc:
        decide(ArmObservations(BASE, BETTER, (GuardrailObservation("latncy", 1.0),)), policy)
    assert exc.value.field == "arms.guardrails"
    with pytest.raises(InvalidInputError):
        Guardrail("x", 0.1, "between")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Guardrail("x", -0.1, relative_to_champion=True)
    with pytest.raises(InvalidInputError, match="unique"):
        DecisionPolicy(guardrails=(Guardrail("x", 1.0), Guardrail("x", 2.0)))


# --- externally computed primary tests -------------------------------------------------------


def test_accepts_paired_test_result_object() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    champion_pred = np.where(rng.random(3000) < 0.80, y, 1 - y)
    challenger_pred = np.where(rng.random(3000) < 0.86, y, 1 - y)
    result = mcnemar_test(y, champion_pred, challenger_pred)
    arms = ArmObservations(
        P(3000, int((champion_pred == y).sum())),
        P(3000, int((challenger_pred == y).sum())),
        primary_result=result,
    )
    v = decide(arms, DecisionPolicy(mode="offline"))
    assert v.decision == "promote"
    assert v.primary is not None and v.primary.method.startswith("McNemar")
    assert v.primary.estimate == result.difference


def test_accepts_mapping_with_ci_pair_and_respects_status() -> None:
    arms = ArmObservations(
        BASE, SAME, primary_result={"estimate": 0.02, "ci": (0.01, 0.03), "p_value": 0.001}
    )
    v = decide(arms, DecisionPolicy(mode="shadow"))
    assert v.decision == "promote" and v.primary == PrimarySummary(
        0.02, 0.01, 0.03, 0.001, "dict", "ok"
    )
    degenerate = ArmObservations(
        BASE,
        SAME,
        primary_result={"estimate": 0.0, "ci_low": 0, "ci_high": 0, "p_value": 0.0,
                        "status": "no_discordant_pairs"},
    )  # fmt: skip
    assert decide(degenerate, DecisionPolicy(mode="shadow")).decision == "continue"
    with pytest.raises(InvalidInputError) as exc:
        decide(ArmObservations(BASE, SAME, primary_result={"p_value": 0.1}), DecisionPolicy())
    assert exc.value.field == "arms.primary_result"
    with pytest.raises(InvalidInputError):
        decide(
            ArmObservations(
                BASE, SAME, primary_result={"estimate": 0, "ci": (0, 0), "p_value": 2.0}
            ),
            DecisionPolicy(),
        )


# --- policy and input validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0}, "alpha"),
        ({"power": 1.0}, "power"),
        ({"metric_kind": "ratio"}, "metric_kind"),
        ({"min_sample_per_arm": -1}, "min_sample_per_arm"),
        ({"min_sample_per_arm": 100, "max_sample_per_arm": 50}, "max_sample_per_arm"),
        ({"min_detectable_effect": 0.0}, "min_detectable_effect"),
        ({"traffic_weights": (1.0, 0.0)}, "traffic_weights"),
        ({"srm_threshold": 0.0}, "srm_threshold"),
        ({"on_srm": "promote"}, "on_srm"),
        ({"mode": "live"}, "mode"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        DecisionPolicy(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_metric_kind_must_match_statistics() -> None:
    with pytest.raises(InvalidInputError) as exc:
        decide(ArmObservations(BASE, BETTER), DecisionPolicy(metric_kind="mean"))
    assert exc.value.field == "arms.champion"


def test_sequential_default_depends_on_mode() -> None:
    assert DecisionPolicy(mode="ab").uses_sequential
    assert DecisionPolicy(mode="shadow").uses_sequential
    assert not DecisionPolicy(mode="offline").uses_sequential
    assert DecisionPolicy(mode="offline", sequential=True).uses_sequential


def test_empty_arms_continue() -> None:
    v = decide(ArmObservations(P(0, 0), P(0, 0)), DecisionPolicy())
    assert v.decision == "continue"
    assert v.estimated_remaining_sample == 1000


def test_verdict_serialises() -> None:
    d = decide(ArmObservations(BASE, BETTER), DecisionPolicy()).to_dict()
    assert d["decision"] == "promote"
    assert {r["name"] for r in d["reasons"]} >= {"srm", "min_sample", "primary_improvement"}


# --- classic shadow preset ----------------------------------------------------------------


def _shadow(acc_c: int, acc_t: int, disagree: int, confident: int) -> ShadowObservations:
    return ShadowObservations(P(2000, acc_c), P(2000, acc_t), P(2000, disagree),
                              P(disagree, confident))  # fmt: skip


def test_classic_shadow_promotes_when_all_three_hold() -> None:
    v = decide_shadow_classic(_shadow(1600, 1700, 400, 260))
    assert v.decision == "promote"
    assert [c.name for c in v.reasons] == [
        "min_labelled",
        "challenger_more_accurate",
        "discrepancy",
        "challenger_more_confident",
    ]


@pytest.mark.parametrize(
    ("obs", "failed"),
    [
        (_shadow(1700, 1600, 400, 260), "challenger_more_accurate"),
        (_shadow(1600, 1700, 600, 400), "discrepancy"),  # exactly 30% is not < 30%
        (_shadow(1600, 1700, 400, 200), "challenger_more_confident"),  # 50% is not > 50%
    ],
)
def test_classic_shadow_keeps_champion_when_one_fails(obs: ShadowObservations, failed: str) -> None:
    v = decide_shadow_classic(obs)
    assert v.decision == "keep_champion"
    assert [c.name for c in v.reasons if not c.met] == [failed]


def test_classic_shadow_waits_for_labels() -> None:
    obs = ShadowObservations(P(300, 250), P(300, 280), P(300, 30), P(30, 20))
    v = decide_shadow_classic(obs, ShadowClassicPolicy(min_labelled=500))
    assert v.decision == "continue" and v.estimated_remaining_sample == 200
    with pytest.raises(InvalidInputError):
        ShadowClassicPolicy(max_discrepancy=1.5)
    with pytest.raises(InvalidInputError):
        decide_shadow_classic(ShadowObservations(P(3, 4), P(3, 2), P(3, 1), P(1, 1)))


def test_zero_baseline_is_still_a_valid_fixed_horizon_test() -> None:
    # The proportions module flags p_a == 0 ("zero_baseline": relative lift undefined).
    v = decide(ArmObservations(P(2000, 0), P(2000, 40)), DecisionPolicy(sequential=False))
    assert v.primary is not None and v.primary.status == "ok"
    assert v.decision == "promote"


# --- canary: harm at every look -------------------------------------------------------------


def _one_sided_harm_p(champion: ProportionStatistic, challenger: ProportionStatistic) -> float:
    """Independent re-derivation of the canary harm p-value: Agresti–Caffo pseudo-counts,
    then 1 / M+ of the half-normal mixture (eq. 155 of arXiv:2103.06476v7, one-sided),
    with rho tuned at 2 alpha for the default 5,000 observations."""
    na, nb = champion.n + 2, challenger.n + 2
    pa, pb = (champion.successes + 1) / na, (challenger.successes + 1) / nb
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    z = (pb - pa) / se
    t = na + nb
    a2 = 2 * 0.05  # one-sided: rho from the two-sided optimum at 2 alpha
    u_star = float(-np.real(__import__("scipy.special").special.lambertw(-(a2**2) / math.e, -1)))
    rho2 = (u_star - 1) / 5000.0
    u = t * rho2
    log_m = (
        u * z * z / (2 * (u + 1))
        - 0.5 * math.log1p(u)
        + math.log(2)
        + stats.norm.logcdf(-z * math.sqrt(u / (u + 1)))
    )
    return min(1.0, math.exp(-log_m))


def test_canary_detects_harm_before_the_minimum_sample() -> None:
    champion, challenger = P(400, 360), P(60, 36)  # 90 % vs 60 % accuracy, 60 labelled rows
    policy = DecisionPolicy(mode="canary", min_sample_per_arm=1000, traffic_weights=(400, 60))
    v = decide(ArmObservations(champion, challenger), policy)
    assert v.decision == "rollback"
    harm = _reason(v, "primary_no_harm")
    assert not harm.met
    assert harm.observed == pytest.approx(_one_sided_harm_p(champion, challenger), rel=1e-9)
    assert not _reason(v, "min_sample").met  # recorded, but harm did not wait for it
    assert v.primary is not None and v.primary.ci_low == -math.inf  # one-sided bound
    # An A/B test waits for its minimum sample; so does a canary that shows no harm.
    ab = DecisionPolicy(mode="ab", min_sample_per_arm=1000, traffic_weights=(400, 60))
    assert decide(ArmObservations(champion, challenger), ab).decision == "continue"
    fine = decide(ArmObservations(champion, P(60, 55)), policy)
    assert fine.decision == "continue" and _reason(fine, "primary_no_harm").met
    assert not _reason(fine, "min_sample").met and fine.primary is not None


def test_canary_harm_lower_is_better_and_no_data() -> None:
    policy = DecisionPolicy(
        mode="canary", metric_kind="mean", higher_is_better=False, check_srm=False
    )
    rng = np.random.default_rng(2)

    def stat(x: np.ndarray) -> SampleMeanStatistic:
        return SampleMeanStatistic(x.size, float(x.sum()), float((x**2).sum()))

    worse = decide(ArmObservations(stat(rng.normal(1, 1, 500)), stat(rng.normal(2, 1, 80))), policy)
    assert worse.decision == "rollback"
    few = decide(ArmObservations(stat(rng.normal(1, 1, 500)), stat(rng.normal(9, 1, 10))), policy)
    assert few.decision == "continue"  # a mean needs 30 rows per arm before a harm test
    assert _reason(few, "primary_no_harm").met
    empty = decide(ArmObservations(P(0, 0), P(0, 0)), DecisionPolicy(mode="canary"))
    assert empty.decision == "continue"


def test_canary_is_always_sequential() -> None:
    assert DecisionPolicy(mode="canary").uses_sequential
    with pytest.raises(InvalidInputError) as info:
        DecisionPolicy(mode="canary", sequential=False)
    assert info.value.field == "sequential"
    from arbiter.analysis.policy import to_decision_policy
    from arbiter.config import DecisionConfig

    config = DecisionConfig(sequential=False)
    assert to_decision_policy(config, mode="canary", task="classification").sequential is True
    assert to_decision_policy(config, mode="ab", task="classification").sequential is False


def test_srm_check_can_be_skipped() -> None:
    arms = ArmObservations(BASE, SAME, assignment_counts=(10, 1000))
    v = decide(arms, DecisionPolicy(mode="canary", check_srm=False))
    assert "srm" not in {c.name for c in v.reasons} and v.srm_p_value is None
    assert decide(arms, DecisionPolicy(mode="canary")).srm_p_value is not None


def _canary_false_rollbacks(runs: int, looks: int, accuracy: float, seed: int) -> float:
    """Share of identical-arm canaries rolled back at any of ``looks`` checkpoints: 400
    requests per look, split like a 1 % -> 5 % -> 25 % -> 50 % -> 100 % ramp."""
    rng = np.random.default_rng(seed)
    shares = (0.01, 0.05, 0.25, 0.5, 1.0)
    policy = DecisionPolicy(mode="canary", check_srm=False)
    rolled = 0
    for _ in range(runs):
        na = nb = ka = kb = 0
        for i in range(looks):
            b = int(rng.binomial(400, shares[i * len(shares) // looks]))
            na, nb = na + 400 - b, nb + b
            ka += int(rng.binomial(400 - b, accuracy))
            kb += int(rng.binomial(b, accuracy))
            if decide(ArmObservations(P(na, ka), P(nb, kb)), policy).decision == "rollback":
                rolled += 1
                break
    return rolled / runs


def test_identical_canaries_are_rarely_rolled_back() -> None:
    """300 runs x 30 looks (about 1.5 s): at most alpha, with Monte-Carlo slack (binomial
    upper tail below 0.001)."""
    for accuracy, seed in ((0.8, 11), (0.97, 12)):
        rate = _canary_false_rollbacks(300, 30, accuracy, seed)
        assert stats.binom.sf(round(rate * 300) - 1, 300, 0.05) > 0.001, rate


@pytest.mark.slow
def test_identical_canaries_are_rarely_rolled_back_full() -> None:
    for accuracy, seed in ((0.5, 21), (0.8, 22), (0.97, 23)):
        rate = _canary_false_rollbacks(2000, 60, accuracy, seed)
        assert rate <= 0.05, rate


def test_per_unit_ratio_arms_are_decided_on_the_delta_method_test() -> None:
    """Repeated rows per unit: the same data decided per row look more certain than per unit."""
    from arbiter.stats.sufficient import RatioStatistic

    def arm(rate: float, units: int, seed: int) -> tuple[ProportionStatistic, RatioStatistic]:
        rng = np.random.default_rng(seed)
        d = rng.integers(1, 30, units).astype(float)
        skill = np.clip(rng.normal(rate, 0.25, units), 0, 1)  # units differ a lot
        m = rng.binomial(d.astype(int), skill).astype(float)
        rows = ProportionStatistic(int(d.sum()), int(m.sum()))
        per_unit = RatioStatistic(
            units, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum()
        )
        return rows, per_unit

    (rows_a, unit_a), (rows_b, unit_b) = arm(0.60, 400, 1), arm(0.64, 400, 2)
    policy = DecisionPolicy(min_sample_per_arm=100, sequential=False)
    by_row = decide(ArmObservations(rows_a, rows_b), policy)
    by_unit = decide(ArmObservations(unit_a, unit_b, assignment_counts=(400, 400)), policy)
    assert by_row.primary is not None and by_unit.primary is not None
    assert by_unit.primary.estimate == pytest.approx(by_row.primary.estimate)
    assert "delta-method" in by_unit.primary.method
    width = by_unit.primary.ci_high - by_unit.primary.ci_low
    assert width > 1.5 * (by_row.primary.ci_high - by_row.primary.ci_low)
    seq = decide(ArmObservations(unit_a, unit_b), DecisionPolicy(min_sample_per_arm=100))
    assert seq.primary is not None and seq.primary.status == "ok"
    with pytest.raises(InvalidInputError, match="same kind"):
        decide(ArmObservations(rows_a, unit_b), policy)


def test_verdict_names_the_arm_promoted_or_rolled_back() -> None:
    promoted = decide(ArmObservations(BASE, BETTER), DecisionPolicy())
    assert (promoted.decision, promoted.winner, promoted.rolled_back) == (
        "promote",
        "challenger",
        (),
    )
    harmed = decide(ArmObservations(BASE, WORSE), DecisionPolicy())
    assert (harmed.decision, harmed.winner, harmed.rolled_back) == (
        "rollback",
        None,
        ("challenger",),
    )
    d = harmed.to_dict()
    assert d["rolled_back"] == ("challenger",) and d["remaining_per_arm"] is None


def test_per_unit_pairwise_test_is_cluster_robust_ols_with_a_small_sample_t() -> None:
    """A/B/n per unit (fixed horizon): the difference and its standard error are statsmodels'
    cluster-robust OLS of the row metric on the arm, clustered by unit (CR0 times the
    per-arm n/(n-1), as RatioStatistic documents); the reference distribution is Student's t
    with the Welch-Satterthwaite df over the arms' effective units."""
    rng = np.random.default_rng(12)
    stats_by_arm, ys, xs, gs = {}, [], [], []
    for j, arm in enumerate(("champion", "b")):
        rows = np.floor(rng.pareto(1.2, 300) + 1).astype(int)
        correct = rng.binomial(rows, rng.beta(8, 2, 300))
        m, d = correct.astype(float), rows.astype(float)
        stats_by_arm[arm] = RatioStatistic(300, m.sum(), m @ m, d.sum(), d @ d, m @ d)
        for u, (c, r) in enumerate(zip(correct, rows, strict=True)):
            ys += [1.0] * c + [0.0] * (r - c)
            xs += [j] * r
            gs += [1000 * j + u] * r
    policy = DecisionPolicy(sequential=False, min_sample_per_arm=10)
    family = pairwise_comparisons(stats_by_arm, ("champion", "b"), policy)
    (pair,) = family.comparisons
    x = sm.add_constant(np.asarray(xs, dtype=float))
    fit = sm.OLS(np.asarray(ys), x).fit(cov_type="cluster", cov_kwds={"groups": np.asarray(gs)})
    assert pair.estimate == pytest.approx(fit.params[1], rel=1e-9)
    # CR0 with the statsmodels small-sample factor G/(G-1)·(N-1)/(N-K) undone, times the
    # per-arm n/(n-1) of the delta method (equal arms of 300 units: one factor).
    n_rows, groups = len(ys), 600
    cr0 = fit.bse[1] ** 2 / (groups / (groups - 1) * (n_rows - 1) / (n_rows - 2))
    se = math.sqrt(cr0 * 300 / 299)
    dof = unit_dof(stats_by_arm["champion"], stats_by_arm["b"])
    assert 0 < dof < min(effective_units(s) for s in stats_by_arm.values()) * 2
    expected_p = 2 * stats.t.sf(abs(pair.estimate) / se, dof)
    assert pair.p_value == pytest.approx(expected_p, rel=1e-6)
    assert pair.method == "delta_method_t"
