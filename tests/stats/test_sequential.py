"""Tests for arbiter.stats.sequential (asymptotic confidence sequences and mSPRT)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from arbiter.errors import InvalidInputError
from arbiter.stats.sequential import (
    SequentialConfig,
    always_valid_p_value,
    confidence_sequence,
    cs_halfwidth,
    fixed_mixture_tau,
    mixture_test,
    msprt,
    msprt_log_likelihood_ratio,
    normal_mixture_log_evalue,
    sequential_rho,
)
from arbiter.stats.sufficient import ProportionStatistic, SampleMeanStatistic

DECIMALS = 5


def _mean_stat(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(int(x.size), float(x.sum()), float(np.square(x).sum()))


# --- rho --------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.1, 0.2])
def test_rho_minimises_the_eq9_halfwidth_at_the_target(alpha: float) -> None:
    target = 12_345.0

    def width(rho: float) -> float:
        return float(cs_halfwidth(1.0 / math.sqrt(target), target, rho, alpha))

    best = optimize.minimize_scalar(width, bounds=(1e-4, 1.0), method="bounded",
                                    options={"xatol": 1e-12})  # fmt: skip
    assert sequential_rho(alpha, target) == pytest.approx(best.x, rel=1e-5)


def test_rho_close_to_gbstats_one_step_approximation() -> None:
    # gbstats: rho = sqrt((-2 ln a + ln(-2 ln a + 1)) / N)  (eq. 161 of arXiv:2103.06476v7)
    a, n = 0.05, 5000.0
    approx = math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / n)
    assert sequential_rho(a, n) == pytest.approx(approx, rel=0.02)
    # exact root of u - log(u + 1) = -2 log(alpha)
    u = sequential_rho(a, n) ** 2 * n
    assert u - math.log1p(u) == pytest.approx(-2 * math.log(a), rel=1e-12)


def test_one_sided_rho_uses_twice_alpha() -> None:
    assert sequential_rho(0.05, 1000, "larger") == sequential_rho(0.10, 1000)


# --- golden values and the paper formula -------------------------------------------------


def test_golden_two_sided_cs_from_eq9_by_hand() -> None:
    control, treatment = ProportionStatistic(5000, 500), ProportionStatistic(5000, 600)
    r = confidence_sequence(control, treatment, alpha=0.05)
    # By hand: SE^2 = .1*.9/5000 + .12*.88/5000; t = 10000; rho^2 = u*/5000 with
    # u* = -W_{-1}(-0.05^2/e) - 1; sigma^2 = t SE^2; eq. (9) half-width.
    se2 = 0.1 * 0.9 / 5000 + 0.12 * 0.88 / 5000
    u_star = -special.lambertw(-(0.05**2) / math.e, k=-1).real - 1
    rho2 = u_star / 5000
    t = 10_000
    sigma = math.sqrt(t * se2)
    half = sigma * math.sqrt(2 * (t * rho2 + 1) / (t**2 * rho2) * math.log(
        math.sqrt(t * rho2 + 1) / 0.05))  # fmt: skip
    assert r.ci_low == pytest.approx(0.02 - half, rel=1e-12)
    assert r.ci_high == pytest.approx(0.02 + half, rel=1e-12)
    # Fixed decimals (gbstats-style golden values).
    assert round(r.ci_low, DECIMALS) == 0.00084
    assert round(r.ci_high, DECIMALS) == 0.03916
    assert round(r.p_value, DECIMALS) == 0.03370
    assert r.significant and r.status == "ok" and r.method == "asymptotic_cs"
    assert r.n == 10_000


def test_two_sided_p_value_and_cs_are_dual() -> None:
    control = ProportionStatistic(5000, 500)
    for successes in range(520, 680, 7):
        r = confidence_sequence(control, ProportionStatistic(5000, successes))
        assert r.significant == (r.ci_low > 0 or r.ci_high < 0)


@settings(max_examples=60, deadline=None)
@given(
    n_c=st.integers(50, 100_000),
    n_t=st.integers(50, 100_000),
    p_c=st.floats(0.02, 0.98),
    shift=st.floats(-0.05, 0.05),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_p_value_equals_alpha_exactly_on_the_cs_boundary(
    n_c: int, n_t: int, p_c: float, shift: float, alpha: float
) -> None:
    p_t = min(max(p_c + shift, 0.01), 0.99)
    c = ProportionStatistic(n_c, round(p_c * n_c))
    t = ProportionStatistic(n_t, round(p_t * n_t))
    r = confidence_sequence(c, t, alpha=alpha)
    if r.status != "ok":
        return
    # Testing the null value at a CS endpoint gives p = alpha.
    for edge in (r.ci_low, r.ci_high):
        at_edge = confidence_sequence(c, t, alpha=alpha, config=SequentialConfig(null_value=edge))
        assert at_edge.p_value == pytest.approx(alpha, rel=1e-9)


def test_one_sided_mixture_matches_direct_integration() -> None:
    # M+ = ∫_0^∞ exp(λ S - λ² t / 2) · 2 φ(λ; 0, ρ²) dλ with S = sqrt(t) z (unit variance).
    t, rho = 400.0, 0.08
    for z in (-1.0, 0.0, 0.7, 2.0, 3.5):
        s = math.sqrt(t) * z

        def f(lam: float, s: float = s) -> float:
            return math.exp(lam * s - lam * lam * t / 2) * 2 * stats.norm.pdf(lam, 0, rho)

        direct, _ = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-12, limit=200)
        got = float(normal_mixture_log_evalue(z, t, rho, "larger"))
        assert got == pytest.approx(math.log(direct), rel=1e-9, abs=1e-12)
        assert float(normal_mixture_log_evalue(-z, t, rho, "smaller")) == pytest.approx(got)


def test_two_sided_mixture_matches_direct_integration() -> None:
    t, rho = 900.0, 0.05
    for z in (0.0, 1.5, 3.0):
        s = math.sqrt(t) * z
        direct, _ = integrate.quad(
            lambda lam, s=s: math.exp(lam * s - lam * lam * t / 2) * stats.norm.pdf(lam, 0, rho),
            -np.inf, np.inf, epsabs=0, epsrel=1e-12,
        )  # fmt: skip
        got = float(normal_mixture_log_evalue(z, t, rho))
        assert got == pytest.approx(math.log(direct), rel=1e-9, abs=1e-12)


def test_one_sided_cs_and_p_value() -> None:
    c, t = ProportionStatistic(5000, 500), ProportionStatistic(5000, 600)
    larger = confidence_sequence(c, t, alternative="larger")
    smaller = confidence_sequence(c, t, alternative="smaller")
    two = confidence_sequence(c, t, config=SequentialConfig(rho=larger.rho))
    assert larger.ci_high == math.inf and smaller.ci_low == -math.inf
    assert larger.significant and not smaller.significant
    assert smaller.p_value == 1.0
    # the half-normal mixture dominates the symmetric one for z > 0 at the same rho
    assert larger.p_value < two.p_value
    # The lower bound is where the one-sided p-value equals alpha.
    edge = confidence_sequence(
        c, t, alternative="larger", config=SequentialConfig(null_value=larger.ci_low)
    )
    assert edge.p_value == pytest.approx(0.05, rel=1e-9)


def test_vectorised_p_value_matches_scalar_calls() -> None:
    z = np.linspace(-4, 4, 17)[:, None]
    n = np.array([[100.0, 1000.0, 10_000.0]])
    grid = always_valid_p_value(z, n, 0.03)
    for i in range(z.shape[0]):
        for j in range(n.shape[1]):
            assert grid[i, j] == float(always_valid_p_value(z[i, 0], n[0, j], 0.03))
    assert np.all((grid > 0) & (grid <= 1))


# --- mSPRT ------------------------------------------------------------------------------


def _mixture_lr_by_quadrature(d: float, s2: float, tau: float, theta0: float) -> float:
    """∫ N(d; θ, s²) N(θ; θ0, τ²) dθ / N(d; θ0, s²), the mSPRT statistic from its definition."""
    post_var = 1.0 / (1.0 / s2 + 1.0 / tau**2)
    post_mean = post_var * (d / s2 + theta0 / tau**2)
    sd = math.sqrt(post_var)

    norm = 1.0 / (tau * math.sqrt(2.0 * math.pi))

    def integrand(theta: float) -> float:
        # log N(d; θ, s²) - log N(d; θ0, s²), plus the N(θ0, τ²) mixing density
        log_ratio = ((d - theta0) ** 2 - (d - theta) ** 2) / (2.0 * s2)
        return math.exp(log_ratio - (theta - theta0) ** 2 / (2.0 * tau**2)) * norm

    value, _ = integrate.quad(
        integrand, post_mean - 40 * sd, post_mean + 40 * sd,
        points=[post_mean], epsabs=0, epsrel=1e-13, limit=400,
    )  # fmt: skip
    return value


@settings(max_examples=80, deadline=None)
@given(
    z=st.floats(-6.0, 6.0),
    log_s=st.floats(-4.0, 1.0),
    log_ratio=st.floats(-3.0, 3.0),
    theta0=st.floats(-1.0, 1.0),
)
def test_msprt_matches_numerical_integration_of_the_mixture(
    z: float, log_s: float, log_ratio: float, theta0: float
) -> None:
    s = 10.0**log_s
    tau = s * 10.0**log_ratio
    d = theta0 + z * s
    closed = math.exp(float(msprt_log_likelihood_ratio(d, s * s, tau, theta0)))
    direct = _mixture_lr_by_quadrature(d, s * s, tau, theta0)
    assert closed == pytest.approx(direct, rel=1e-9)


def test_msprt_with_default_tau_equals_the_cs_e_value() -> None:
    c, t = ProportionStatistic(3000, 300), ProportionStatistic(3100, 355)
    cs = confidence_sequence(c, t)
    ms = msprt(c, t)
    assert ms.p_value == pytest.approx(cs.p_value, rel=1e-12)
    assert ms.ci_low == pytest.approx(cs.ci_low, rel=1e-12)
    assert ms.ci_high == pytest.approx(cs.ci_high, rel=1e-12)


def test_msprt_explicit_tau_and_running_minimum() -> None:
    c, t = ProportionStatistic(4000, 400), ProportionStatistic(4000, 470)
    r = msprt(c, t, config=SequentialConfig(tau=0.02))
    s2 = 0.1 * 0.9 / 4000 + 0.1175 * 0.8825 / 4000
    d = 0.0175
    lam = math.sqrt(s2 / (s2 + 0.02**2)) * math.exp(0.02**2 * d**2 / (2 * s2 * (s2 + 0.02**2)))
    assert r.p_value == pytest.approx(min(1.0, 1.0 / lam), rel=1e-12)
    assert msprt(c, t, previous_p_value=0.001).p_value == 0.001
    later = msprt(c, t, config=SequentialConfig(tau=0.02), previous_p_value=0.9)
    assert later.p_value == pytest.approx(r.p_value)
    # The CI endpoints are where Lambda(theta) = 1/alpha.
    for edge in (r.ci_low, r.ci_high):
        lr = float(msprt_log_likelihood_ratio(d, s2, 0.02, edge))
        assert lr == pytest.approx(-math.log(0.05), rel=1e-9)


def test_msprt_rejects_one_sided() -> None:
    with pytest.raises(InvalidInputError) as exc:
        msprt(ProportionStatistic(10, 1), ProportionStatistic(10, 2), alternative="larger")
    assert exc.value.field == "alternative"


# --- coverage and type-I error by simulation ----------------------------------------------


def test_cs_time_uniform_coverage_by_simulation() -> None:
    """Fraction of runs in which the CS *ever* misses the true difference ≤ alpha (+3 SE)."""
    rng = np.random.default_rng(7)
    runs, looks, batch, alpha = 600, 40, 100, 0.05
    mu_c, mu_t, sd_c, sd_t = 1.0, 1.3, 1.0, 2.0
    xc = rng.normal(mu_c, sd_c, size=(runs, looks, batch))
    xt = rng.normal(mu_t, sd_t, size=(runs, looks, batch))
    n = batch * np.arange(1, looks + 1)
    mc, mt = np.cumsum(xc.sum(2), 1) / n, np.cumsum(xt.sum(2), 1) / n
    vc = (np.cumsum((xc**2).sum(2), 1) - n * mc**2) / (n - 1)
    vt = (np.cumsum((xt**2).sum(2), 1) - n * mt**2) / (n - 1)
    se = np.sqrt(vc / n + vt / n)
    rho = sequential_rho(alpha, 2 * n[-1])
    half = cs_halfwidth(se, 2 * n, rho, alpha)
    miss = np.any(np.abs((mt - mc) - (mu_t - mu_c)) > half, axis=1).mean()
    assert miss <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    # The same check through the public function at one (run, look) pair.
    r = confidence_sequence(
        _mean_stat(xc[0, :5].ravel()),
        _mean_stat(xt[0, :5].ravel()),
        config=SequentialConfig(rho=rho),
    )
    assert r.ci_high - r.estimate == pytest.approx(half[0, 4], rel=1e-9)


# --- degenerate data and bad input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "treatment", "status"),
    [
        (ProportionStatistic(0, 0), ProportionStatistic(10, 3), "no_data"),
        (ProportionStatistic(100, 0), ProportionStatistic(100, 0), "zero_variance"),
        (SampleMeanStatistic(1, 2.0, 4.0), SampleMeanStatistic(9, 9.0, 20.0), "insufficient_data"),
        (SampleMeanStatistic(5, 10.0, 20.0), SampleMeanStatistic(5, 10.0, 20.0), "zero_variance"),
    ],
)  # fmt: skip
def test_degenerate_data_returns_status(
    control: ProportionStatistic, treatment: ProportionStatistic, status: str
) -> None:
    for fn in (confidence_sequence, msprt):
        r = fn(control, treatment)
        assert r.status == status
        assert r.p_value == 1.0 and not r.significant
        assert (r.ci_low, r.ci_high) == (-math.inf, math.inf)
        assert r.to_dict()["status"] == status


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 0.6, "alternative": "larger"}, "alpha"),
        ({"alternative": "greater"}, "alternative"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        confidence_sequence(ProportionStatistic(10, 1), ProportionStatistic(10, 2), **kwargs)
    assert exc.value.field == field


def test_bad_statistics_raise() -> None:
    with pytest.raises(InvalidInputError, match="same kind"):
        confidence_sequence(ProportionStatistic(10, 1), SampleMeanStatistic(10, 1.0, 1.0))
    with pytest.raises(InvalidInputError, match="successes"):
        confidence_sequence(ProportionStatistic(10, 11), ProportionStatistic(10, 1))
    with pytest.raises(
        InvalidInputError, match="ProportionStatistic, SampleMeanStatistic or RatioStatistic"
    ):
        confidence_sequence((10, 1), ProportionStatistic(10, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        msprt(ProportionStatistic(10, 1), ProportionStatistic(10, 1), previous_p_value=1.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_sample_size": 0}, "target_sample_size"),
        ({"rho": -1.0}, "rho"),
        ({"tau": 0.0}, "tau"),
        ({"null_value": math.nan}, "null_value"),
    ],
)
def test_config_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        SequentialConfig(**kwargs)
    assert exc.value.field == field


def test_confidence_sequence_on_ratios_uses_the_delta_method_variance() -> None:
    """Per-unit ratios: with one row per unit they are the plain mean; otherwise the SE is
    the delta-method SE (a user's repeated rows do not count as independent)."""
    from arbiter.stats.means import ratio_mean_and_variance
    from arbiter.stats.sufficient import RatioStatistic

    def ratio(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
        return RatioStatistic(m.size, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum())

    rng = np.random.default_rng(4)
    ya, yb = rng.normal(1.0, 1.0, 500), rng.normal(1.1, 1.0, 600)
    ones_a, ones_b = np.ones_like(ya), np.ones_like(yb)
    as_ratio = confidence_sequence(ratio(ya, ones_a), ratio(yb, ones_b))
    as_mean = confidence_sequence(
        SampleMeanStatistic(500, ya.sum(), (ya * ya).sum()),
        SampleMeanStatistic(600, yb.sum(), (yb * yb).sum()),
    )
    assert as_ratio.estimate == pytest.approx(as_mean.estimate, rel=1e-12)
    assert as_ratio.ci_low == pytest.approx(as_mean.ci_low, rel=1e-9)
    assert as_ratio.p_value == pytest.approx(as_mean.p_value, rel=1e-9)

    d_a, d_b = rng.integers(1, 9, 500).astype(float), rng.integers(1, 9, 600).astype(float)
    a, b = (
        ratio(rng.binomial(d_a.astype(int), 0.6) * 1.0, d_a),
        ratio(rng.binomial(d_b.astype(int), 0.62) * 1.0, d_b),
    )
    r = confidence_sequence(a, b)
    va, vb = ratio_mean_and_variance(a)[1], ratio_mean_and_variance(b)[1]
    assert r.status == "ok" and r.estimate == pytest.approx(b.mean - a.mean)
    assert r.std_error == pytest.approx(math.sqrt(va + vb), rel=1e-12)
    empty = RatioStatistic(3, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert confidence_sequence(empty, b).status == "insufficient_data"


# --- fixed-tau mixture in information time (canary harm, issue 15) ---------------------


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
@pytest.mark.parametrize("share", [0.5, 0.2])
def test_fixed_tau_mixture_equals_the_cs_at_a_fixed_split(alternative: str, share: float) -> None:
    """At a fixed split with equal arm variances, tau from the planned split gives exactly the
    e-value and bounds of confidence_sequence (the A/B default is unchanged there)."""
    n = 4000
    n_b = int(n * share)
    control = SampleMeanStatistic(n - n_b, 0.30 * (n - n_b), (0.30**2 + 1.0) * (n - n_b))
    treatment = SampleMeanStatistic(n_b, 0.36 * n_b, (0.36**2 + 1.0) * n_b)
    assert control.variance == pytest.approx(treatment.variance, rel=1e-3)
    sigma2 = (control.variance * (n - n_b - 1) + treatment.variance * (n_b - 1)) / (n - 2)
    cs = confidence_sequence(control, treatment, alpha=0.05, alternative=alternative)  # type: ignore[arg-type]
    # the CS's per-observation variance is n SE^2; tau^2 = rho^2 sigma^2 / (w (1 - w))
    tau = fixed_mixture_tau(
        cs.n * cs.std_error**2 * share * (1 - share),
        alpha=0.05,
        target_sample_size=5000.0,
        alternative=alternative,  # type: ignore[arg-type]
        allocation=share,
    )
    assert cs.n * cs.std_error**2 * share * (1 - share) == pytest.approx(sigma2, rel=2e-3)
    r = mixture_test(cs.estimate, cs.std_error**2, tau=tau, alpha=0.05, alternative=alternative)  # type: ignore[arg-type]
    assert r.p_value == pytest.approx(cs.p_value, rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((cs.ci_low, cs.ci_high), rel=1e-9)


def test_mixture_test_two_sided_is_the_msprt_likelihood_ratio() -> None:
    d, v, tau = 0.013, 0.004**2, 0.01
    r = mixture_test(d, v, tau=tau)
    log_lr = float(msprt_log_likelihood_ratio(d, v, tau))
    assert r.p_value == pytest.approx(math.exp(-log_lr), rel=1e-12)
    # the bound is where the likelihood ratio crosses 1/alpha
    edge = float(msprt_log_likelihood_ratio(r.ci_high, v, tau, null_value=d))
    assert edge == pytest.approx(-math.log(0.05), rel=1e-9)


def test_mixture_test_one_sided_matches_direct_integration() -> None:
    """Half-normal mixture of exp(theta S - theta^2 I / 2) over theta < 0, by quadrature."""
    d, v, tau = -0.011, 0.005**2, 0.008
    s, info = d / v, 1.0 / v

    def integrand(theta: float) -> float:
        return 2.0 * stats.norm.pdf(theta, scale=tau) * math.exp(theta * s - theta**2 * info / 2)

    m = integrate.quad(integrand, -np.inf, 0.0)[0]
    r = mixture_test(d, v, tau=tau, alternative="smaller")
    assert r.p_value == pytest.approx(1.0 / m, rel=1e-7)
    assert r.ci_low == -math.inf and r.ci_high > d


def test_mixture_test_non_inferiority_bound_and_null() -> None:
    r = mixture_test(-0.002, 0.003**2, tau=0.01, alternative="larger", null_value=-0.01)
    shifted = mixture_test(0.008, 0.003**2, tau=0.01, alternative="larger")
    assert r.p_value == pytest.approx(shifted.p_value, rel=1e-12)
    assert r.significant is (r.ci_low > -0.01)


def test_mixture_test_degenerate_and_bad_tau() -> None:
    assert mixture_test(math.nan, math.nan, tau=0.1).status == "no_data"
    assert mixture_test(0.1, 0.0, tau=0.1).status == "zero_variance"
    with pytest.raises(InvalidInputError) as info:
        mixture_test(0.1, 0.01, tau=0.0)
    assert info.value.field == "tau"
    with pytest.raises(InvalidInputError):
        fixed_mixture_tau(0.0, alpha=0.05, target_sample_size=100.0)


def test_fixed_tau_holds_its_level_under_a_changing_allocation() -> None:
    """A canary's split path (1 %, 5 %, 25 %, 50 %, 95 %), 70 looks, rows i.i.d. N(0, 1):
    the stratified difference's score is a Brownian motion in information time, and the
    fixed-tau mixture crosses 1/alpha at most alpha of the time. The CS of the pooled
    difference mixes with u = rho^2 n, whose implied tau follows the split."""
    rng = np.random.default_rng(15)
    runs, alpha = 4000, 0.05
    shares = np.repeat([0.01, 0.05, 0.25, 0.5, 0.95], [17, 10, 10, 15, 18])
    per_look = 600
    n_b = rng.binomial(per_look, shares, (runs, shares.size)).astype(float)
    n_a = per_look - n_b
    # per look, the within-look difference and its variance (sigma = 1 per row)
    diff = rng.standard_normal((runs, shares.size)) * np.sqrt(
        1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1)
    )
    w = np.where(n_b > 0, n_a * n_b / (n_a + n_b), 0.0)
    wsum = np.cumsum(w, axis=1)
    seen = wsum > 0  # no challenger row yet: no evidence
    safe = np.where(seen, wsum, 1.0)
    est = np.where(seen, np.cumsum(w * diff, axis=1) / safe, 0.0)
    var = np.cumsum(w * w * (1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1)), axis=1)
    var = np.where(seen, var / safe**2, np.inf)
    tau = fixed_mixture_tau(1.0, alpha=alpha, target_sample_size=5000.0, alternative="smaller")
    z = est / np.sqrt(var)
    log_m = normal_mixture_log_evalue(z, tau**2 / var, 1.0, "smaller")
    rate = float((log_m.max(axis=1) >= -math.log(alpha)).mean())
    assert rate > 0.005  # the test is not vacuous
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert rate <= alpha + 3 * se
