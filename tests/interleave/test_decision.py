"""The clustered test's small-sample t, the always-valid decision, the horizon, click rows."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from arbiter.config import DecisionConfig
from arbiter.errors import InvalidInputError
from arbiter.events.feedback import feedback_columns
from arbiter.report.html import html_section
from arbiter.report.terminal import print_analysis
from arbiter.routing.interleaving import team_draft
from arbiter.stats.interleaving import (
    clustered_interleaving_test,
    interleaving_confidence_sequence,
)
from arbiter.stats.sequential import cs_halfwidth, sequential_rho
from arbiter.stats.verdict import Verdict, decide_interleaving

from .synthetic import EXPERIMENT, MODEL, Log

ALPHA = 0.05


def test_clustered_test_matches_statsmodels_cluster_robust_ols_with_t() -> None:
    """Δ is the intercept of per-impression outcomes; CR1 with t(G-1) as statsmodels does it."""
    wa = np.array([3, 0, 2, 5, 1, 0, 4])
    wb = np.array([1, 2, 2, 0, 3, 1, 1])
    ties = np.array([0, 1, 3, 1, 0, 2, 2])
    r = clustered_interleaving_test(wa, wb, ties, alpha=ALPHA, small_sample="cr1")
    outcome = np.concatenate(
        [np.repeat([1.0, -1.0, 0.0], [a, b, t]) for a, b, t in zip(wa, wb, ties, strict=True)]
    )
    groups = np.repeat(np.arange(wa.size), wa + wb + ties)
    fit = sm.OLS(outcome, np.ones_like(outcome)).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True
    )
    assert r.delta == pytest.approx(fit.params[0], rel=1e-12)
    assert r.standard_error == pytest.approx(fit.bse[0], rel=1e-10)
    assert r.p_value == pytest.approx(fit.pvalues[0], rel=1e-9)
    lo, hi = fit.conf_int(alpha=ALPHA)[0]
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-9)
    # With 7 users the t(6) p-value is clearly larger than the normal one.
    assert r.p_value > 2 * stats.norm.sf(abs(r.statistic)) + 0.01


def test_confidence_sequence_is_the_eq9_interval_with_users_as_observations() -> None:
    rng = np.random.default_rng(1)
    wa, wb, ties = (rng.poisson(2.0, 300) for _ in range(3))
    r = clustered_interleaving_test(wa, wb, ties, alpha=ALPHA)
    rho = sequential_rho(ALPHA, 200)
    lo, hi, p = interleaving_confidence_sequence(r, rho=rho)
    # The eq. (9) critical value, calibrated from N(0, 1) to the Bell-McCaffrey t.
    z_crit = float(cs_halfwidth(1.0, r.n_clusters, rho, ALPHA))
    half = r.standard_error * stats.t.ppf(stats.norm.cdf(z_crit), r.dof)
    assert (lo, hi) == pytest.approx((r.delta - half, r.delta + half))
    assert r.dof < r.n_clusters - 1  # Poisson activity: unequal sizes lower the df
    assert hi - lo > r.ci_high - r.ci_low  # wider than the fixed-sample interval
    assert (p < ALPHA) == (lo > 0 or hi < 0)  # the p-value inverts the sequence
    # No standard error, no sequence.
    degenerate = clustered_interleaving_test([1], [0], [0])
    assert all(np.isnan(interleaving_confidence_sequence(degenerate, rho=rho)))


def _aa_with_looks(runs: int, seed: int) -> tuple[int, int]:
    """``(sequential, fixed)`` rejections of ``runs`` A/A experiments with 16 looks each.

    Users arrive one by one, each with 1 + Poisson(2) impressions with clicks and a preference
    of their own (A wins with 0.4 + b_u, B with 0.4 - b_u, b_u ~ U(-0.3, 0.3)), symmetric
    around no preference. Looks every 25 users from 50 to 425; a run rejects if any look
    does.
    """
    rho = sequential_rho(ALPHA, 200)
    seq = fixed = 0
    for r in range(runs):
        rng = np.random.default_rng([seed, r])
        g = 425
        n = 1 + rng.poisson(2.0, g)
        b = rng.uniform(-0.3, 0.3, g)
        probs = np.stack([0.4 + b, 0.4 - b, 0.2 + 0 * b], axis=1)
        counts = np.array([rng.multinomial(k, p) for k, p in zip(n, probs, strict=True)])
        hit_seq = hit_fixed = False
        for look in range(50, g + 1, 25):
            res = clustered_interleaving_test(*counts[:look].T, alpha=ALPHA)
            hit_fixed |= res.p_value < ALPHA
            hit_seq |= interleaving_confidence_sequence(res, rho=rho)[2] < ALPHA
        seq += hit_seq
        fixed += hit_fixed
    return seq, fixed


def test_sequential_decision_holds_alpha_under_many_looks() -> None:
    """300 A/A runs, 16 looks: the sequence stays at most alpha, the t-test at every look
    does not (binomial test at 1 %: a true rate above ~9 % fails)."""
    runs = 300
    seq, fixed = _aa_with_looks(runs, 2026)
    assert stats.binomtest(seq, runs, ALPHA, alternative="greater").pvalue > 0.01
    assert fixed / runs > 2 * ALPHA  # why the fixed test must not be peeked at


@pytest.mark.slow
def test_sequential_decision_holds_alpha_under_many_looks_full() -> None:
    runs = 3_000
    seq, _ = _aa_with_looks(runs, 7)
    assert stats.binomtest(seq, runs, ALPHA, alternative="greater").pvalue > 0.01
    assert seq / runs <= ALPHA


def _decide(
    test: object,
    with_clicks: int,
    policy: DecisionConfig,
    seq: dict[str, float] | None = None,
    *,
    attempts: int = 1_000,
    failures: int = 0,
) -> Verdict:
    return decide_interleaving(
        test,  # type: ignore[arg-type]
        with_clicks,
        alpha=policy.alpha,
        min_sample=policy.min_sample_per_arm,
        max_sample=policy.max_sample_per_arm,
        sequential=seq,
        failures=failures,
        attempts=attempts,
        max_error_rate=policy.guardrails.max_error_rate,
    )


def test_decision_uses_the_sequence_when_sequential_and_the_t_test_otherwise() -> None:
    # 120 users, a modest preference for B: t-test significant, confidence sequence not.
    rng = np.random.default_rng(3)
    counts = np.array([rng.multinomial(3, [0.34, 0.48, 0.18]) for _ in range(120)])
    test = clustered_interleaving_test(*counts.T, alpha=ALPHA)
    rho = sequential_rho(ALPHA, 100)
    lo, hi, p = interleaving_confidence_sequence(test, rho=rho)
    assert test.p_value < ALPHA < p, "pick data between the two thresholds"
    seq = {"ci_low": -hi, "ci_high": -lo, "p_value": p, "rho": rho}
    policy = DecisionConfig(min_sample_per_arm=100)
    assert _decide(test, 360, policy, seq).decision == "continue"
    fixed = DecisionConfig(min_sample_per_arm=100, sequential=False)
    verdict = _decide(test, 360, fixed, None)
    assert verdict.decision == "promote" and verdict.winner == "challenger"
    assert "fixed-sample" in next(c for c in verdict.reasons if c.name == "significance").detail


def test_horizon_with_a_winning_but_unhealthy_challenger_keeps_the_champion() -> None:
    test = clustered_interleaving_test([0] * 50, [3] * 50, [1] * 50, alpha=ALPHA)
    assert test.status == "zero_variance"  # the per-user sign test decides
    policy = DecisionConfig(
        min_sample_per_arm=10, max_sample_per_arm=150, guardrails={"max_error_rate": 0.01}
    )
    # 12 failures in 1,000 calls: above 1 % but not clearly (no breach).
    assert _decide(test, 100, policy, failures=12).decision == "continue"
    verdict = _decide(test, 200, policy, failures=12)
    assert verdict.decision == "keep_champion" and verdict.reasons[-1].name == "horizon"
    assert _decide(test, 200, policy).decision == "promote"


def test_keep_champion_renders() -> None:
    from rich.console import Console

    from arbiter.analysis.interleave import analyze_interleave

    log = Log.empty()
    for j in range(40):
        il = team_draft(["a", "b"], ["x", "y"], np.random.default_rng(j), k=4)
        liked = [i for i, t in zip(il.items, il.teams, strict=True) if t == "B"][:1]
        log.add(f"r{j}", f"user-{j}", 1_700_000_000_000_000 + j, il, liked)
    for j in range(2):
        log.add(f"f{j}", "u", 1_700_000_001_000_000 + j, il, None, challenger_error="boom")
    policy = DecisionConfig(
        min_sample_per_arm=10, max_sample_per_arm=40, guardrails={"max_error_rate": 0.04}
    )
    with log.connect() as con:
        a = analyze_interleave(con, MODEL, EXPERIMENT, policy=policy)
    assert a.decision == "keep_champion"
    console = Console(record=True, width=120)
    print_analysis(console, a)
    assert "keep_champion" in console.export_text() and "keep_champion" in html_section(a)


def _row(**kw: object) -> dict[str, object]:
    return {"request_id": "r1", "row_index": 0, **kw}


def test_clicks_on_another_row_are_rejected_naming_the_row_index() -> None:
    with pytest.raises(InvalidInputError, match="clicks belong to row 0") as err:
        feedback_columns([_row(clicks=["a"]), _row(row_index=2, clicks=["a"])])
    assert err.value.field == "rows[1].row_index"
    assert feedback_columns([_row(row_index=2, label=1)])["row_index"] == [2]


@pytest.mark.parametrize("label", ['{"clicks": ["a"]}', '{"clicks":["a"]}'])
def test_a_label_that_would_read_as_clicks_is_rejected(label: str) -> None:
    with pytest.raises(InvalidInputError, match="marks clicks") as err:
        feedback_columns([_row(label=label)])
    assert err.value.field == "rows[0].label"
    assert feedback_columns([_row(label='{"click": 1}')])["label"] == ['{"click": 1}']
