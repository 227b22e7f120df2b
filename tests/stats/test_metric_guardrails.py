"""Guardrail metrics (non-inferiority criteria) and CUPED-adjusted statistics in the core."""

from __future__ import annotations

import numpy as np
import pytest

from arbiter.errors import InvalidInputError
from arbiter.stats.cuped import cuped_adjusted, cuped_test
from arbiter.stats.means import welch_test
from arbiter.stats.sequential import SequentialConfig
from arbiter.stats.sufficient import (
    RatioStatistic,
    RegressionAdjustmentStatistic,
    SampleMeanStatistic,
)
from arbiter.stats.verdict import (
    Criterion,
    Verdict,
    apply_metric_guardrails,
    non_inferiority_criterion,
)


def _mean(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(int(x.size), float(x.sum()), float((x * x).sum()))


def _ra(y: np.ndarray, x: np.ndarray) -> RegressionAdjustmentStatistic:
    return RegressionAdjustmentStatistic(
        int(y.size), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum()
    )


def test_cuped_adjusted_reproduces_cuped_test() -> None:
    rng = np.random.default_rng(0)
    x_c, x_t = rng.normal(10, 3, 800), rng.normal(10, 3, 900)
    y_c = 2 + 0.8 * x_c + rng.normal(0, 1, 800)
    y_t = 2.3 + 0.8 * x_t + rng.normal(0, 1, 900)
    c, t = _ra(y_c, x_c), _ra(y_t, x_t)
    adj_c, adj_t, theta = cuped_adjusted(c, t)
    ref = cuped_test(c, t, alpha=0.05)
    welch = welch_test(adj_c, adj_t, alpha=0.05)
    assert theta == pytest.approx(ref.theta, rel=1e-12)
    assert adj_c.mean == pytest.approx(ref.control_mean, rel=1e-12)
    assert adj_t.variance == pytest.approx(ref.treatment_variance, rel=1e-9)
    assert welch.difference == pytest.approx(ref.estimate, rel=1e-9)
    assert welch.p_value == pytest.approx(ref.p_value, rel=1e-6)
    assert (welch.ci_low, welch.ci_high) == pytest.approx((ref.ci_low, ref.ci_high), rel=1e-9)


def test_non_inferiority_fixed_bound_matches_one_sided_welch() -> None:
    rng = np.random.default_rng(1)
    a, b = _mean(rng.poisson(0.10, 4000).astype(float)), _mean(rng.poisson(0.16, 4000) * 1.0)
    ref = welch_test(a, b, alpha=0.05, alternative="larger")
    crit = non_inferiority_criterion("chargebacks", a, b, margin=0.0, harm="increase")
    assert crit.name == "guardrail_metric:chargebacks"
    assert crit.observed == pytest.approx(ref.ci_low)
    assert not crit.met  # a significant increase beyond a zero margin
    wide = non_inferiority_criterion("chargebacks", a, b, margin=0.2, harm="increase")
    assert wide.met and wide.threshold == 0.2
    # Harm as a decrease: the same data is an improvement.
    down = non_inferiority_criterion("revenue", a, b, margin=0.0, harm="decrease")
    assert down.met and down.threshold == 0.0


def test_non_inferiority_sequential_is_wider_and_ratio_works() -> None:
    rng = np.random.default_rng(2)
    a, b = _mean(rng.normal(0, 1, 3000)), _mean(rng.normal(0.08, 1, 3000))
    fixed = non_inferiority_criterion("m", a, b, margin=0.0, harm="increase")
    seq = non_inferiority_criterion(
        "m", a, b, margin=0.0, harm="increase", sequential=SequentialConfig()
    )
    assert seq.observed < fixed.observed  # the always-valid bound is more conservative
    m, d = rng.poisson(3, 500).astype(float), rng.poisson(5, 500) + 1.0
    r = RatioStatistic(500, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum())
    assert non_inferiority_criterion("rps", r, r, margin=0.01, harm="decrease").met


def test_non_inferiority_degenerate_data() -> None:
    zero = SampleMeanStatistic(100, 0.0, 0.0)
    none = SampleMeanStatistic(0, 0.0, 0.0)
    exact = non_inferiority_criterion("cb", zero, zero, margin=0.0, harm="increase")
    assert exact.met and exact.observed == 0.0  # no chargeback anywhere: exactly no harm
    missing = non_inferiority_criterion("cb", zero, none, margin=0.0, harm="increase")
    assert missing.observed is None and not missing.met
    with pytest.raises(InvalidInputError):
        non_inferiority_criterion("cb", zero, zero, margin=-1.0, harm="increase")


def test_apply_metric_guardrails() -> None:
    base = Verdict("promote", (Criterion("primary_improvement", True, 0.01, 0.05, "ok"),),
                   winner="challenger")  # fmt: skip
    met = Criterion("guardrail_metric:cb", True, 0.0, 0.0, "fine")
    breached = Criterion("guardrail_metric:cb", False, 0.02, 0.0, "harm")
    missing = Criterion("guardrail_metric:cb", False, None, 0.0, "no observation yet")
    assert apply_metric_guardrails(base, (), serving=True) is base
    kept = apply_metric_guardrails(base, (met,), serving=True)
    assert kept.decision == "promote" and kept.reasons[-1] == met
    rolled = apply_metric_guardrails(base, (breached,), serving=True)
    assert rolled.decision == "rollback" and rolled.rolled_back == ("challenger",)
    assert rolled.winner is None
    assert apply_metric_guardrails(base, (breached,), serving=False).decision == "keep_champion"
    waiting = apply_metric_guardrails(base, (missing,), serving=True)
    assert waiting.decision == "continue" and waiting.winner is None


def test_sequential_guardrail_false_breach_rate_at_the_margin() -> None:
    """True harm exactly at the margin, 20 looks: breached at any look in <= alpha of runs."""
    rng = np.random.default_rng(3)
    runs, n, looks, margin = 400, 4000, 20, 0.05
    cfg = SequentialConfig(target_sample_size=2 * n)
    breaches = 0
    for _ in range(runs):
        a = rng.normal(1.0, 1.0, n)
        b = rng.normal(1.0 + margin, 1.0, n)
        ca, cb = np.cumsum(a), np.cumsum(b)
        qa, qb = np.cumsum(a * a), np.cumsum(b * b)
        for k in np.linspace(n // looks, n, looks).astype(int):
            crit = non_inferiority_criterion(
                "m",
                SampleMeanStatistic(int(k), ca[k - 1], qa[k - 1]),
                SampleMeanStatistic(int(k), cb[k - 1], qb[k - 1]),
                margin=margin,
                harm="increase",
                sequential=cfg,
            )
            if not crit.met:
                breaches += 1
                break
    assert breaches / runs <= 0.05
