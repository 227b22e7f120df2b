"""Paired model comparisons: McNemar, DeLong, paired bootstrap, paired t-test.

References: statsmodels ``mcnemar``; a slow O(m·n) DeLong (1988) written here from the paper;
``sklearn.metrics`` for AUC and the bootstrap metrics; ``scipy.stats.bootstrap`` driven
directly; ``statsmodels`` ``DescrStatsW`` for the paired t interval.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn import metrics as skm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import DescrStatsW

from arbiter.errors import InvalidInputError
from arbiter.stats.paired import (
    BOOTSTRAP_METRICS,
    _delong_midranks,
    delong_test,
    mcnemar_test,
    paired_bootstrap,
    paired_t_test,
)

DECIMALS = 9
RTOL = 1e-9


def rows_from_table(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, ...]:
    """Labels and predictions whose correctness table is [[n11, n10], [n01, n00]] (a × b)."""
    correct_a = np.repeat([1, 1, 0, 0], [n11, n10, n01, n00]).astype(bool)
    correct_b = np.repeat([1, 0, 1, 0], [n11, n10, n01, n00]).astype(bool)
    y = np.ones(correct_a.size, dtype=int)
    return y, np.where(correct_a, 1, 0), np.where(correct_b, 1, 0)


# --------------------------------------------------------------------------- McNemar


@settings(max_examples=50, deadline=None)
@given(
    table=st.tuples(*[st.integers(0, 400)] * 4).filter(lambda t: t[1] + t[2] > 0),
    mode=st.sampled_from(["exact", "chi2", "chi2-nocorr", "auto"]),
)
def test_mcnemar_matches_statsmodels(table: tuple[int, int, int, int], mode: str) -> None:
    n11, n10, n01, n00 = table
    y, pa, pb = rows_from_table(*table)
    exact = {"exact": True, "chi2": False, "chi2-nocorr": False, "auto": None}[mode]
    correction = mode != "chi2-nocorr"
    res = mcnemar_test(y, pa, pb, exact=exact, correction=correction)
    use_exact = exact if exact is not None else (n10 + n01) < 25
    ref = mcnemar([[n11, n10], [n01, n00]], exact=use_exact, correction=correction)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL, abs=1e-300)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL, abs=1e-300)
    n = sum(table)
    assert res.estimate_a == pytest.approx((n11 + n10) / n, rel=RTOL)
    assert res.estimate_b == pytest.approx((n11 + n01) / n, rel=RTOL)
    # The Wald CI of the paired difference is mean(d) ± z·sd_n(d)/√n with d = correct_b − correct_a.
    d = (pb == y).astype(float) - (pa == y).astype(float)
    half = sps.norm.ppf(0.975) * d.std(ddof=0) / math.sqrt(n)
    assert res.ci_low == pytest.approx(d.mean() - half, rel=RTOL, abs=1e-12)
    assert res.ci_high == pytest.approx(d.mean() + half, rel=RTOL, abs=1e-12)


def test_mcnemar_agresti_example() -> None:
    # Agresti, An Introduction to Categorical Data Analysis, 2nd ed. (2007), ch. 8: approval of
    # the Prime Minister by 1600 people in two surveys, table [[794, 150], [86, 570]];
    # z = (86 − 150)/sqrt(86 + 150) = −4.17, so McNemar's z² = 17.36, and the difference of the
    # dependent proportions 0.55 − 0.59 = −0.04 has SE 0.0095 and 95% CI (−0.06, −0.02).
    y, pa, pb = rows_from_table(794, 150, 86, 570)
    res = mcnemar_test(y, pa, pb, correction=False)
    assert round(res.statistic, 2) == 17.36
    assert round(math.sqrt(res.statistic), 2) == 4.17
    assert res.method == "McNemar chi-square test"
    assert round(res.difference, DECIMALS) == -0.04
    assert (round(res.ci_low, 2), round(res.ci_high, 2)) == (-0.06, -0.02)
    assert res.p_value < 1e-4


def test_mcnemar_multiclass_and_degenerate() -> None:
    y = np.array(["cat", "dog", "eel", "dog"])
    res = mcnemar_test(y, ["cat", "dog", "cat", "cat"], ["cat", "dog", "eel", "dog"])
    assert (res.estimate_a, res.estimate_b) == (0.5, 1.0)
    assert res.method == "McNemar exact binomial test"
    same = mcnemar_test(y, y, y)
    assert same.status == "no_discordant_pairs" and same.p_value == 1.0
    assert mcnemar_test([], [], []).status == "insufficient_data"
    with pytest.raises(InvalidInputError):
        mcnemar_test([1, 0], [1, 0, 1], [0, 1])


# --------------------------------------------------------------------------- DeLong


def slow_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, DeLong & Clarke-Pearson (1988) from the definitions: O(m·n) kernel matrix."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    auc = np.empty(k)
    for r in range(k):
        psi = (pos[r][:, None] > neg[r][None, :]) + 0.5 * (pos[r][:, None] == neg[r][None, :])
        auc[r] = psi.mean()
        v10[r] = psi.mean(axis=1)
        v01[r] = psi.mean(axis=0)
    s10 = (v10 - auc[:, None]) @ (v10 - auc[:, None]).T / (m - 1)
    s01 = (v01 - auc[:, None]) @ (v01 - auc[:, None]).T / (n - 1)
    return auc, s10 / m + s01 / n


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(6, 300),
    decimals=st.sampled_from([0, 1, 3]),  # coarse rounding creates many ties
    alternative=st.sampled_from(["two-sided", "larger", "smaller"]),
)
def test_delong_matches_slow_reference_and_sklearn(
    seed: int, n: int, decimals: int, alternative: str
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    y[2:4] = [0, 1]
    a = np.round(y * 0.8 + rng.normal(0, 1, n), decimals)
    b = np.round(y * 1.2 + rng.normal(0, 1, n), decimals)
    res = delong_test(y, a, b, alternative=alternative)
    auc, cov = slow_delong(y, np.vstack([a, b]))
    assert res.estimate_a == pytest.approx(skm.roc_auc_score(y, a), rel=RTOL)
    assert res.estimate_b == pytest.approx(skm.roc_auc_score(y, b), rel=RTOL)
    assert (res.estimate_a, res.estimate_b) == pytest.approx(tuple(auc), rel=RTOL)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if res.status == "zero_variance":
        assert var == pytest.approx(0.0, abs=1e-12)
        return
    z = (auc[1] - auc[0]) / math.sqrt(var)
    assert res.statistic == pytest.approx(z, rel=1e-8, abs=1e-12)
    ref_p = {
        "two-sided": 2 * sps.norm.sf(abs(z)),
        "larger": sps.norm.sf(z),
        "smaller": sps.norm.cdf(z),
    }[alternative]
    assert res.p_value == pytest.approx(ref_p, rel=1e-8, abs=1e-300)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 200),
    n=st.integers(1, 200),
    decimals=st.sampled_from([0, 1, 3, 12]),  # coarse rounding creates many ties
)
def test_delong_midranks_equal_scipy_rankdata_exactly(
    seed: int, m: int, n: int, decimals: int
) -> None:
    # One sort of the pooled scores gives the three rankings DeLong needs; they must be the
    # very numbers rankdata gives each array (bit for bit: the AUCs and variances follow).
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(0.3, 1, (2, m)), decimals)
    neg = np.round(rng.normal(0, 1, (2, n)), decimals)
    neg[0, 0] = -0.0 if decimals == 0 else neg[0, 0]  # -0.0 ties with 0.0
    tx, ty, tz = _delong_midranks(pos, neg)
    assert np.array_equal(tx, sps.rankdata(pos, method="average", axis=1))
    assert np.array_equal(ty, sps.rankdata(neg, method="average", axis=1))
    assert np.array_equal(tz, sps.rankdata(np.hstack([pos, neg]), method="average", axis=1))


def test_delong_golden_small_example() -> None:
    # Hand-checkable: 3 positives, 3 negatives, no ties. AUC_a = 8/9, AUC_b = 1.
    y = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.9, 0.4, 0.7, 0.5, 0.1, 0.3])
    b = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    res = delong_test(y, a, b)
    _, cov = slow_delong(y, np.vstack([a, b]))
    assert round(res.estimate_a, DECIMALS) == round(8 / 9, DECIMALS)
    assert round(res.estimate_b, DECIMALS) == 1.0
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert round(res.ci_high, DECIMALS) == round(1 / 9 + sps.norm.ppf(0.975) * se, DECIMALS)


def test_delong_statuses_and_errors() -> None:
    assert delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]).status == "single_class"
    assert delong_test([1, 0, 0], [0.9, 0.2, 0.1], [0.8, 0.2, 0.3]).status == "insufficient_data"
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    assert delong_test(y, s, s).status == "zero_variance"
    with pytest.raises(InvalidInputError):
        delong_test([0, 1, 2, 1], s, s)
    with pytest.raises(InvalidInputError):
        delong_test(["n", "n", "p", "p"], s, s)  # pos_label 1 is not a label
    with pytest.raises(InvalidInputError):
        delong_test(y, [0.1, np.nan, 0.2, 0.3], s)
    ok = delong_test(["n", "n", "p", "p"], s, s[::-1], pos_label="p")
    assert ok.estimate_a == pytest.approx(skm.roc_auc_score([0, 0, 1, 1], s))


def test_delong_is_fast_on_large_inputs() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.integers(0, 2, n)
    res = delong_test(y, y + rng.normal(0, 1, n), y + rng.normal(0, 0.9, n))
    assert res.status == "ok" and res.p_value < 1e-6


# --------------------------------------------------------------------------- bootstrap


@pytest.fixture(scope="module")
def classification() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 80)
    sa, sb = y * 0.5 + rng.normal(0, 0.6, 80), y * 0.9 + rng.normal(0, 0.6, 80)
    return {
        "y": y, "sa": sa, "sb": sb,
        "pa": 1 / (1 + np.exp(-sa)), "pb": 1 / (1 + np.exp(-sb)),
        "la": (sa > 0.5).astype(int), "lb": (sb > 0.5).astype(int),
    }  # fmt: skip


SKLEARN_EQUIVALENT = {
    "accuracy": (skm.accuracy_score, "la"),
    "f1": (skm.f1_score, "la"),
    "precision": (skm.precision_score, "la"),
    "recall": (skm.recall_score, "la"),
    "roc_auc": (skm.roc_auc_score, "sa"),
    "log_loss": (skm.log_loss, "pa"),
    "mae": (skm.mean_absolute_error, "sa"),
    "mse": (skm.mean_squared_error, "sa"),
    "rmse": (skm.root_mean_squared_error, "sa"),
    "r2": (skm.r2_score, "sa"),
}


def test_builtin_metrics_equal_sklearn(classification: dict[str, np.ndarray]) -> None:
    assert set(SKLEARN_EQUIVALENT) == set(BOOTSTRAP_METRICS)
    y = classification["y"]
    for name, (fn, column) in SKLEARN_EQUIVALENT.items():
        pred = classification[column]
        assert float(BOOTSTRAP_METRICS[name](y, pred)) == pytest.approx(fn(y, pred), rel=1e-12)
        # Vectorised over a batch of rows, each row its own resample.
        batch_y, batch_p = np.vstack([y, y[::-1]]), np.vstack([pred, pred[::-1]])
        np.testing.assert_allclose(
            BOOTSTRAP_METRICS[name](batch_y, batch_p), [fn(y, pred), fn(y[::-1], pred[::-1])],
            rtol=1e-12,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "sk_metric", "columns", "method"),
    [
        ("mae", skm.mean_absolute_error, ("sa", "sb"), "BCa"),
        ("mae", skm.mean_absolute_error, ("sa", "sb"), "percentile"),
        ("roc_auc", skm.roc_auc_score, ("sa", "sb"), "percentile"),
        ("accuracy", skm.accuracy_score, ("la", "lb"), "percentile"),
    ],
)
def test_bootstrap_matches_scipy_with_sklearn_metric(
    classification: dict[str, np.ndarray],
    metric: str,
    sk_metric,
    columns,
    method: str,
) -> None:
    # BCa with a discrete metric (AUC, accuracy) is not compared: the bootstrap distribution
    # has ties at the observed value, and a one-ulp difference between two correct metric
    # implementations moves BCa's bias-correction count. Continuous MAE has no such ties.
    y = classification["y"]
    a, b = classification[columns[0]], classification[columns[1]]
    res = paired_bootstrap(y, a, b, metric, n_resamples=300, method=method, random_state=3)

    def diff(y_s: np.ndarray, a_s: np.ndarray, b_s: np.ndarray) -> float:
        return sk_metric(y_s, b_s) - sk_metric(y_s, a_s)

    ref = sps.bootstrap(
        (y, a, b), diff, paired=True, vectorized=False, n_resamples=300, method=method,
        rng=np.random.default_rng(3),
    )  # fmt: skip
    assert res.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-9)
    assert res.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-9)
    dist = ref.bootstrap_distribution
    p = min(1.0, 2 * min(np.sum(dist <= 0) + 1, np.sum(dist >= 0) + 1) / (dist.size + 1))
    assert res.p_value == pytest.approx(p, rel=RTOL)
    assert res.estimate_a == pytest.approx(sk_metric(y, a), rel=RTOL)
    assert res.difference == pytest.approx(res.estimate_b - res.estimate_a, rel=RTOL)
    assert res.ci_low <= res.difference <= res.ci_high


def test_bootstrap_callable_metric_and_statuses(classification: dict[str, np.ndarray]) -> None:
    y, la, lb = classification["y"], classification["la"], classification["lb"]
    by_name = paired_bootstrap(y, la, lb, "accuracy", n_resamples=200, random_state=1)
    by_callable = paired_bootstrap(y, la, lb, skm.accuracy_score, n_resamples=200, random_state=1)
    assert by_name.ci_low == pytest.approx(by_callable.ci_low, rel=1e-9)
    assert "accuracy_score" in by_callable.method
    same = paired_bootstrap(y, la, la, "accuracy", n_resamples=50, random_state=1)
    assert same.status == "zero_variance" and same.p_value == 1.0
    assert paired_bootstrap([1], [1], [0], "accuracy").status == "insufficient_data"
    with pytest.raises(InvalidInputError):
        paired_bootstrap(y, la, lb, "balanced_accuracy")
    with pytest.raises(InvalidInputError):
        paired_bootstrap(y, la, lb, "accuracy", method="studentized")  # type: ignore[arg-type]

    def broken(y_s: np.ndarray, p_s: np.ndarray) -> float:
        raise ValueError("needs both classes")

    with pytest.raises(InvalidInputError, match="needs both classes"):
        paired_bootstrap(y, la, lb, broken, n_resamples=10)


# --------------------------------------------------------------------------- paired t


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 300),
    loss=st.sampled_from(["squared", "absolute"]),
    alternative=st.sampled_from(["two-sided", "larger", "smaller"]),
)
def test_paired_t_matches_scipy_and_statsmodels(
    seed: int, n: int, loss: str, alternative: str
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 3, n)
    pa, pb = y + rng.normal(0, 1.0, n), y + rng.normal(0.1, 0.9, n)
    res = paired_t_test(y, pa, pb, loss=loss, alternative=alternative)
    f = np.square if loss == "squared" else np.abs
    la, lb = f(y - pa), f(y - pb)
    sp_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    ref = sps.ttest_rel(lb, la, alternative=sp_alt)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL, abs=1e-300)
    sm_alt = {"two-sided": "two-sided", "larger": "larger", "smaller": "smaller"}[alternative]
    lo, hi = DescrStatsW(lb - la).tconfint_mean(alpha=0.05, alternative=sm_alt)
    if alternative != "smaller":
        assert res.ci_low == pytest.approx(lo, rel=RTOL, abs=1e-12)
    if alternative != "larger":
        assert res.ci_high == pytest.approx(hi, rel=RTOL, abs=1e-12)
    expected_a = (
        skm.mean_squared_error(y, pa) if loss == "squared" else skm.mean_absolute_error(y, pa)
    )
    assert res.estimate_a == pytest.approx(expected_a, rel=RTOL)


def test_paired_t_custom_loss_and_statuses() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    res = paired_t_test(
        y, y + 1, y + np.array([0.5, 1.0, 0.2, 0.1]), loss=lambda t, p: np.abs(t - p) ** 3
    )
    assert res.estimate_a == pytest.approx(1.0)
    assert res.status == "ok"
    flat = paired_t_test(y, y + 1, y - 1)  # every squared loss equal
    assert flat.status == "zero_variance" and flat.difference == 0.0
    assert paired_t_test([1.0], [1.0], [2.0]).status == "insufficient_data"
    with pytest.raises(InvalidInputError):
        paired_t_test(y, y, y, loss="huber")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        paired_t_test(y, y, y, loss=lambda t, p: np.ones(2))
