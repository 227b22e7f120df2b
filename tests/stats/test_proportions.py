"""Two- and k-proportion tests: cross-checked against statsmodels/scipy and a published example."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from arbiter.errors import InvalidInputError
from arbiter.stats.proportions import k_proportion_test, two_proportion_test
from arbiter.stats.sufficient import ProportionStatistic

DECIMALS = 9
RTOL = 1e-9
ALTERNATIVES = ["two-sided", "larger", "smaller"]


@st.composite
def proportion_stat(draw: st.DrawFn) -> ProportionStatistic:
    n = draw(st.integers(min_value=2, max_value=20_000))
    return ProportionStatistic(n=n, successes=draw(st.integers(min_value=1, max_value=n - 1)))


@settings(max_examples=50, deadline=None)
@given(
    a=proportion_stat(),
    b=proportion_stat(),
    alternative=st.sampled_from(ALTERNATIVES),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_two_proportion_matches_statsmodels(
    a: ProportionStatistic, b: ProportionStatistic, alternative: str, alpha: float
) -> None:
    res = two_proportion_test(a, b, alpha=alpha, alternative=alternative)
    # statsmodels tests count[0] - count[1], so b goes first for our b − a convention.
    z, p = proportions_ztest([b.successes, a.successes], [b.n, a.n], alternative=alternative)
    assert res.statistic == pytest.approx(z, rel=RTOL)
    assert res.p_value == pytest.approx(p, rel=RTOL, abs=1e-300)

    two_sided_alpha = alpha if alternative == "two-sided" else 2 * alpha
    lo, hi = confint_proportions_2indep(
        b.successes, b.n, a.successes, a.n, method="wald", compare="diff", alpha=two_sided_alpha
    )
    if alternative in ("two-sided", "larger"):
        assert res.ci_low == pytest.approx(lo, rel=RTOL, abs=1e-15)
    else:
        assert res.ci_low == -math.inf
    if alternative in ("two-sided", "smaller"):
        assert res.ci_high == pytest.approx(hi, rel=RTOL, abs=1e-15)
    else:
        assert res.ci_high == math.inf

    # Relative lift: an independent delta-method implementation (numerical gradient).
    pa, pb = a.mean, b.mean
    delta = NonlinearDeltaCov(
        lambda p: np.atleast_1d(p[1] / p[0] - 1.0),
        np.array([pa, pb]),
        np.diag([pa * (1 - pa) / a.n, pb * (1 - pb) / b.n]),
    )
    se = float(delta.se_vectorized()[0])
    assert res.relative_lift == pytest.approx(pb / pa - 1.0, rel=RTOL)
    q = sps.norm.ppf(1 - two_sided_alpha / 2)
    if alternative != "smaller":
        assert res.relative_ci_low == pytest.approx(res.relative_lift - q * se, rel=1e-6)
    if alternative != "larger":
        assert res.relative_ci_high == pytest.approx(res.relative_lift + q * se, rel=1e-6)


@settings(max_examples=50, deadline=None)
@given(a=proportion_stat(), b=proportion_stat())
def test_two_sided_z_squared_is_pearson_chi_square(
    a: ProportionStatistic, b: ProportionStatistic
) -> None:
    res = two_proportion_test(a, b)
    table = [[a.successes, a.n - a.successes], [b.successes, b.n - b.successes]]
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert res.statistic**2 == pytest.approx(chi2, rel=RTOL)
    assert res.p_value == pytest.approx(p, rel=1e-8, abs=1e-300)


def test_two_proportion_golden() -> None:
    res = two_proportion_test(ProportionStatistic(1000, 100), ProportionStatistic(1000, 130))
    assert round(res.difference, DECIMALS) == 0.03
    # z = 0.03 / sqrt(0.115·0.885·2/1000)
    assert round(res.statistic, DECIMALS) == round(0.03 / math.sqrt(0.115 * 0.885 / 500), 9)
    assert round(res.relative_lift, DECIMALS) == 0.3
    assert res.status == "ok"


def test_two_proportion_degenerate_statuses() -> None:
    empty = two_proportion_test(ProportionStatistic(0, 0), ProportionStatistic(10, 3))
    assert empty.status == "insufficient_data" and math.isnan(empty.p_value)
    none = two_proportion_test(ProportionStatistic(10, 0), ProportionStatistic(10, 0))
    assert none.status == "zero_variance" and math.isnan(none.statistic)
    zero_base = two_proportion_test(ProportionStatistic(100, 0), ProportionStatistic(100, 5))
    assert zero_base.status == "zero_baseline"
    assert math.isnan(zero_base.relative_lift) and zero_base.p_value < 0.05


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"a": ProportionStatistic(10, 11), "b": ProportionStatistic(10, 1)}, "a"),
        ({"a": ProportionStatistic(10, 1), "b": ProportionStatistic(-1, 0)}, "b"),
        ({"a": ProportionStatistic(10, 1), "b": ProportionStatistic(10, 1), "alpha": 1.5}, "alpha"),
        (
            {"a": ProportionStatistic(10, 1), "b": ProportionStatistic(10, 1), "alternative": "up"},
            "alternative",
        ),
    ],
)
def test_two_proportion_rejects_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        two_proportion_test(**kwargs)
    assert info.value.field == field


@settings(max_examples=50, deadline=None)
@given(
    arms=st.lists(proportion_stat(), min_size=2, max_size=6),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_k_proportions_match_scipy_and_reference_marascuilo(
    arms: list[ProportionStatistic], alpha: float
) -> None:
    res = k_proportion_test(arms, alpha=alpha)
    table = np.array([[s.successes for s in arms], [s.n - s.successes for s in arms]])
    chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
    assert res.chi2 == pytest.approx(chi2, rel=RTOL)
    assert res.p_value == pytest.approx(p, rel=1e-8, abs=1e-300)
    assert res.dof == dof == len(arms) - 1
    # Reference: the NIST e-Handbook §7.4.7.4 recipe written out longhand.
    crit = math.sqrt(sps.chi2.ppf(1 - alpha, len(arms) - 1))
    expected = []
    for i, j in itertools.combinations(range(len(arms)), 2):
        pi, pj = arms[i].successes / arms[i].n, arms[j].successes / arms[j].n
        r = crit * math.sqrt(pi * (1 - pi) / arms[i].n + pj * (1 - pj) / arms[j].n)
        expected.append((i, j, pj - pi, r, abs(pi - pj) > r))
    assert len(res.pairs) == len(expected)
    for pair, (i, j, d, r, sig) in zip(res.pairs, expected, strict=True):
        assert (pair.a, pair.b) == (i, j)
        assert pair.difference == pytest.approx(d, rel=RTOL, abs=1e-15)
        assert pair.critical_value == pytest.approx(r, rel=RTOL)
        if abs(abs(d) - r) > 1e-12:
            assert pair.significant is sig


def test_marascuilo_published_example() -> None:
    # Worked example with R output (critical ranges to 15 digits) in "Assessing Significant
    # Difference In Pairwise Combinations via the Marascuilo Procedure (in R)", datalackey.com,
    # 2019-04-16: "yes" counts GP=128, PR=199, PP=126; "no" counts 88, 33, 66; 95% level.
    arms = [
        ProportionStatistic(216, 128),
        ProportionStatistic(232, 199),
        ProportionStatistic(192, 126),
    ]
    res = k_proportion_test(arms, alpha=0.05)
    got = [
        (round(abs(p.difference), 9), round(p.critical_value, 9), p.significant) for p in res.pairs
    ]
    assert got == [
        (round(0.265166028097063, 9), round(0.0992354018215412, 9), True),
        (round(0.0636574074074074, 9), round(0.117201905174372, 9), False),
        (round(0.201508620689655, 9), round(0.100947721261772, 9), True),
    ]


def test_k_proportions_two_arms_equal_z_squared() -> None:
    a, b = ProportionStatistic(500, 40), ProportionStatistic(480, 61)
    assert k_proportion_test([a, b]).chi2 == pytest.approx(two_proportion_test(a, b).statistic ** 2)


def test_k_proportions_degenerate_and_bad_input() -> None:
    res = k_proportion_test(
        [ProportionStatistic(10, 2), ProportionStatistic(0, 0), ProportionStatistic(5, 1)]
    )
    assert res.status == "insufficient_data" and res.pairs == ()
    flat = k_proportion_test([ProportionStatistic(10, 0)] * 3)
    assert flat.status == "zero_variance" and math.isnan(flat.chi2)
    assert all(not p.significant for p in flat.pairs)
    with pytest.raises(InvalidInputError):
        k_proportion_test([ProportionStatistic(10, 2)])
    with pytest.raises(InvalidInputError) as info:
        k_proportion_test([ProportionStatistic(10, 2), ProportionStatistic(10, 12)])
    assert info.value.field == "arms[1]"


def test_results_serialise_to_plain_dicts() -> None:
    res = k_proportion_test([ProportionStatistic(100, 10)] * 3)
    data = res.to_dict()
    assert isinstance(data["pairs"], list) and isinstance(data["pairs"][0], dict)
    assert set(data["pairs"][0]) == {"a", "b", "difference", "critical_value", "significant"}
    with pytest.raises(AttributeError):
        res.chi2 = 1.0  # type: ignore[misc]


def test_core_modules_never_import_the_shell() -> None:
    code = (
        "import sys\n"
        "import arbiter.stats.proportions, arbiter.stats.means, arbiter.stats.multiple\n"
        "import arbiter.stats.power, arbiter.stats.srm, arbiter.stats.paired\n"
        "import arbiter.stats.interleaving, arbiter.stats.results\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] in (['arbiter', 'gateway'],"
        " ['arbiter', 'registry'], ['arbiter', 'events'], ['arbiter', 'cli'])]\n"
        # statsmodels itself imports pandas, so only sklearn and mlflow are checked.
        "bad += [m for m in ('sklearn', 'mlflow') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
