"""compare_models(): the gate's criteria and paired tests on arrays (no registry)."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from arbiter.errors import InvalidInputError
from arbiter.gate import Comparison, GateConfig, GateCriterion, ModelOutputs, compare_models

DECIMALS = 10
FAST = 200  # bootstrap resamples: enough to run the code path, quick on a busy machine
CONFIG = GateConfig(n_resamples=FAST)


def _binary(n: int = 1_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    weak = np.clip(0.5 * y + rng.normal(0.25, 0.35, n), 0, 1)  # AUC ~ 0.85
    strong = np.clip(0.7 * y + rng.normal(0.15, 0.25, n), 0, 1)  # AUC ~ 0.97
    return y, weak, strong


def _out(scores: np.ndarray) -> ModelOutputs:
    return ModelOutputs((scores >= 0.5).astype(np.int64), scores)


def _criterion(comparison: Comparison, name: str) -> GateCriterion:
    return next(c for c in comparison.criteria if c.name == name)


def test_identical_challenger_does_not_pass() -> None:
    y, weak, _ = _binary()
    result = compare_models(y, _out(weak), _out(weak), classes=[0, 1], config=CONFIG)
    assert result.metric == "roc_auc" and result.primary_test == "delong"
    assert not result.passed
    assert not _criterion(result, "min_improvement").met
    assert _criterion(result, "min_improvement").observed == 0.0
    assert not _criterion(result, "significance").met
    assert result.tests["delong"].status == "zero_variance"
    assert result.tests["mcnemar"].status == "no_discordant_pairs"


def test_clearly_better_challenger_passes() -> None:
    y, weak, strong = _binary()
    result = compare_models(y, _out(weak), _out(strong), classes=[0, 1], config=CONFIG)
    assert result.passed, result.criteria
    assert result.improvement > 0.05
    assert set(result.tests) == {"delong", "mcnemar", "bootstrap"}
    assert result.tests["delong"].p_value < 1e-6
    # the bootstrap agrees with DeLong on the estimates
    assert result.tests["bootstrap"].estimate_b == pytest.approx(result.challenger_score)


def test_worse_challenger_fails_significance_and_improvement() -> None:
    y, weak, strong = _binary()
    result = compare_models(y, _out(strong), _out(weak), classes=[0, 1], config=CONFIG)
    assert not result.passed
    assert not _criterion(result, "significance").met  # significant, but the wrong way
    assert result.tests["delong"].p_value < 0.05


def test_min_improvement_absolute_and_relative() -> None:
    y, weak, strong = _binary()
    gain = compare_models(y, _out(weak), _out(strong), classes=[0, 1], config=CONFIG).improvement
    too_much = GateConfig(min_improvement=gain + 0.01, n_resamples=FAST)
    assert not compare_models(y, _out(weak), _out(strong), classes=[0, 1], config=too_much).passed
    relative = GateConfig(min_improvement=0.05, relative=True, n_resamples=FAST)
    result = compare_models(y, _out(weak), _out(strong), classes=[0, 1], config=relative)
    c = _criterion(result, "min_improvement")
    assert c.observed == pytest.approx(gain / result.champion_score)
    assert c.met and result.passed


def test_slice_regression_is_detected_with_counts() -> None:
    y, weak, strong = _binary()
    segment = np.where(np.arange(y.size) % 10 == 0, "web", "store")
    # On the "web" rows the challenger guesses: better overall, far worse there.
    noise = np.random.default_rng(1).random(y.size)
    challenger = np.where(segment == "web", noise, strong)
    config = GateConfig(slices=("segment",), n_resamples=FAST)
    result = compare_models(
        y, _out(weak), _out(challenger), classes=[0, 1], slices={"segment": segment}, config=config
    )
    assert _criterion(result, "min_improvement").met
    web = _criterion(result, "slice:segment=web")
    store = _criterion(result, "slice:segment=store")
    assert not web.met and store.met
    assert (web.n, store.n) == (100, 900)
    assert web.challenger < web.champion
    assert _criterion(result, "significance").met
    assert not result.passed


def test_small_or_undefined_slices_are_reported_not_judged() -> None:
    y, weak, strong = _binary(n=400)
    segment = np.where(np.arange(y.size) < 10, 1.0, 0.0)  # 10 rows: below min_slice_rows
    config = GateConfig(slices=("tiny",), n_resamples=FAST)
    result = compare_models(
        y, _out(weak), _out(strong), classes=[0, 1], slices={"tiny": segment}, config=config
    )
    tiny = _criterion(result, "slice:tiny=1")  # 1.0 prints as 1
    assert tiny.met and tiny.status == "insufficient_data" and tiny.n == 10
    with pytest.raises(InvalidInputError, match="distinct values"):
        compare_models(
            y, _out(weak), _out(strong), classes=[0, 1],
            slices={"id": np.arange(y.size)}, config=GateConfig(slices=("id",)),
        )  # fmt: skip


@pytest.mark.parametrize("exact", [True, False])
def test_mcnemar_equals_statsmodels(exact: bool) -> None:
    rng = np.random.default_rng(3)
    n = 300 if exact else 3_000
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.80, y, 1 - y)
    b = np.where(rng.random(n) < (0.82 if exact else 0.84), y, 1 - y)
    if exact:  # few discordant pairs: the exact binomial test
        b = np.where(rng.random(n) < 0.9, a, b)
    result = compare_models(
        y,
        ModelOutputs(a),
        ModelOutputs(b),
        classes=[0, 1],
        config=GateConfig(metric="accuracy", n_resamples=FAST),
    )
    assert result.primary_test == "mcnemar" and "delong" not in result.tests
    ours = result.tests["mcnemar"]
    ca, cb = a == y, b == y
    table = [[np.sum(ca & cb), np.sum(ca & ~cb)], [np.sum(~ca & cb), np.sum(~ca & ~cb)]]
    theirs = mcnemar(table, exact=exact, correction=True)
    assert ("exact" in ours.method) is exact
    assert round(ours.statistic, DECIMALS) == round(float(theirs.statistic), DECIMALS)
    assert round(ours.p_value, DECIMALS) == round(float(theirs.pvalue), DECIMALS)


def test_regression_uses_paired_t_on_losses() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=1_000)
    noisy = y + rng.normal(0, 1.0, y.size)
    sharp = y + rng.normal(0, 0.5, y.size)
    result = compare_models(
        y, ModelOutputs(noisy), ModelOutputs(sharp), classes=None, config=CONFIG
    )
    assert result.metric == "rmse" and result.primary_test == "paired_t"
    assert result.improvement == pytest.approx(result.champion_score - result.challenger_score)
    assert result.improvement > 0 and result.passed
    assert set(result.tests) == {"paired_t", "bootstrap"}
    mae = compare_models(
        y,
        ModelOutputs(noisy),
        ModelOutputs(sharp),
        classes=None,
        config=GateConfig(metric="mae", n_resamples=FAST),
    )
    assert "absolute" in mae.tests["paired_t"].method


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metric": "auc"}, "metric"),
        ({"alpha": 1.5}, "alpha"),
        ({"slice_tolerance": -0.1}, "slice_tolerance"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"min_slice_rows": 0}, "min_slice_rows"),
    ],
)
def test_config_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        GateConfig(**kwargs)
    assert info.value.field == field


def test_metric_must_fit_the_models() -> None:
    y, weak, strong = _binary(n=100)
    with pytest.raises(InvalidInputError, match="predict_proba"):
        compare_models(
            y, ModelOutputs(weak > 0.5), ModelOutputs(strong > 0.5), classes=[0, 1],
            config=GateConfig(metric="roc_auc"),
        )  # fmt: skip
    with pytest.raises(InvalidInputError, match="regressors"):
        compare_models(
            y, _out(weak), _out(strong), classes=[0, 1], config=GateConfig(metric="rmse")
        )
