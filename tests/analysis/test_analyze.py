"""``analyze_experiment`` on event logs with known truth."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from arbiter.analysis import (
    ExperimentAnalysis,
    analyze_experiment,
    analyze_model,
    to_decision_policy,
)
from arbiter.config import DecisionConfig, HomeConfig, ModelConfig
from arbiter.errors import ConfigError, InvalidInputError, NotFoundError
from arbiter.events import EventStore
from tests.analysis.conftest import T0_US, ab_columns, write_log

AB_CONFIG = ModelConfig.model_validate(
    {"experiment": {"name": "m-ab", "strategy": "ab", "challenger_share": 0.5}}
)


def _analyze(store: EventStore, experiment: str = "m-ab", **kwargs):  # type: ignore[no-untyped-def]
    with store.connect() as con:
        return analyze_experiment(con, "m", experiment, **kwargs)


def _criterion(analysis, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in analysis.criteria if c.name == name)


# --------------------------------------------------------------------------- A/B


def test_clearly_better_challenger_is_promoted(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(3000, 3000, 0.80, 0.88)
    a = _analyze(store, model_config=AB_CONFIG)
    assert a.decision == "promote"
    assert all(c.met for c in a.criteria)
    assert a.primary["name"] == "confidence_sequence"  # sequential is on by default
    assert a.primary["ci_low"] > 0
    assert a.srm is not None and not a.srm.mismatch and a.srm_basis == "units"
    assert a.bayesian is not None and a.bayesian.chance_to_beat_control > 0.99
    # The fixed-horizon test is shown too, and its interval is narrower than the sequence's.
    fixed = a.secondary["fixed_horizon"]
    assert fixed["ci_high"] - fixed["ci_low"] < a.primary["ci_high"] - a.primary["ci_low"]
    d = a.to_dict()
    assert d["decision"] == "promote" and d["verdict"]["decision"] == "promote"
    assert {g["status"] for g in d["guardrails"]} == {"met"}


def test_identical_models_continue(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(3000, 3000, 0.85, 0.85)
    a = _analyze(store, model_config=AB_CONFIG)
    assert a.decision == "continue"
    assert not _criterion(a, "primary_improvement").met
    assert _criterion(a, "primary_no_harm").met


def test_identical_models_keep_champion_at_the_planned_horizon(
    ab_log: Callable[..., EventStore],
) -> None:
    store = ab_log(3000, 3000, 0.85, 0.85)
    policy = DecisionConfig(max_sample_per_arm=2000)
    a = _analyze(store, policy=policy, model_config=AB_CONFIG)
    assert a.decision == "keep_champion"
    assert not _criterion(a, "max_sample").met


def test_srm_blocks_promotion(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(4200, 1800, 0.80, 0.90)  # 70/30 with 50/50 configured
    a = _analyze(store, model_config=AB_CONFIG)
    assert a.decision != "promote"
    srm = _criterion(a, "srm")
    assert not srm.met and srm.observed < 1e-6
    assert a.srm is not None and a.srm.mismatch and a.srm.weights == (0.5, 0.5)


def test_configured_share_is_the_expected_split(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(4200, 1800, 0.80, 0.90)
    config = AB_CONFIG.model_copy(
        update={"experiment": AB_CONFIG.experiment.model_copy(update={"challenger_share": 0.3})}
    )
    a = _analyze(store, model_config=config)
    assert a.srm is not None and not a.srm.mismatch
    assert a.decision == "promote"


def test_unknown_split_falls_back_to_equal_with_a_note(ab_log: Callable[..., EventStore]) -> None:
    a = _analyze(ab_log(1000, 1000, 0.8, 0.8))
    assert a.policy.traffic_weights == (0.5, 0.5)
    assert any("50/50" in n for n in a.notes)


def test_error_rate_guardrail_rolls_back(store: EventStore, rng: np.random.Generator) -> None:
    columns, y = ab_columns(rng, 3000, 3000, 0.80, 0.88)
    failing = (columns["arm"] == "challenger") & (rng.random(6000) < 0.2)
    columns["error"] = np.where(failing, "boom", None)
    write_log(store, columns, y)
    a = _analyze(store, model_config=AB_CONFIG)
    assert a.decision == "rollback"
    assert not _criterion(a, "guardrail:error_rate").met


def test_fixed_horizon_when_sequential_is_off(ab_log: Callable[..., EventStore]) -> None:
    a = _analyze(ab_log(3000, 3000, 0.80, 0.88), policy=DecisionConfig(sequential=False))
    assert a.primary["name"] == "two_proportion_z"
    assert a.verdict.primary is not None
    assert a.verdict.primary.p_value == pytest.approx(a.primary["p_value"])


# --------------------------------------------------------------------------- shadow


def _shadow_log(
    store: EventStore, rng: np.random.Generator, n: int, acc_a: float, acc_b: float
) -> pd.DataFrame:
    y = rng.integers(0, 2, n)
    correct_a = rng.random(n) < acc_a
    correct_b = np.where(rng.random(n) < 0.7, correct_a, rng.random(n) < acc_b)
    pred_a, pred_b = np.where(correct_a, y, 1 - y), np.where(correct_b, y, 1 - y)
    score_a = np.clip(pred_a * 0.6 + rng.normal(0.2, 0.15, n), 0, 1)
    score_b = np.clip(pred_b * 0.6 + rng.normal(0.2, 0.15, n), 0, 1)
    base = {
        "request_id": [f"r{i}" for i in range(n)] * 2,
        "ts": np.tile(T0_US + np.arange(n, dtype=np.int64) * 1_000_000, 2),
        "experiment": ["m-shadow"] * (2 * n),
        "strategy": ["shadow"] * (2 * n),
        "unit_id": [f"u{i}" for i in range(n)] * 2,
        "arm": ["champion"] * (2 * n),
        "role": ["served"] * n + ["shadow"] * n,
        "alias": ["champion"] * n + ["challenger"] * n,
        "prediction": np.concatenate([pred_a, pred_b]).astype(str),
        "prediction_num": np.concatenate([pred_a, pred_b]).astype(float),
        "score": np.concatenate([score_a, score_b]),
        "confidence": np.concatenate(
            [np.maximum(score_a, 1 - score_a), np.maximum(score_b, 1 - score_b)]
        ),
    }
    labels = np.concatenate([y, y]).astype(object)
    labels[: n // 10] = None  # some rows never got a label
    write_log(store, base, labels)
    return pd.DataFrame({"y": y, "a": pred_a, "b": pred_b, "labelled": np.arange(n) >= n // 10})


def test_shadow_mcnemar_equals_statsmodels(store: EventStore, rng: np.random.Generator) -> None:
    truth = _shadow_log(store, rng, 4000, 0.80, 0.86)
    a = _analyze(store, "m-shadow")
    rows = truth[truth["labelled"]]
    right_a, right_b = rows["a"] == rows["y"], rows["b"] == rows["y"]
    table = pd.crosstab(right_a, right_b).reindex(index=[True, False], columns=[True, False])
    expected = mcnemar(table.to_numpy(), exact=False, correction=True)
    assert a.primary["name"] == "mcnemar"
    assert a.primary["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert a.primary["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert a.primary["n"] == len(rows)
    assert a.srm is None and all(c.name != "srm" for c in a.criteria)
    assert a.secondary["delong_auc"]["status"] == "ok"
    assert a.secondary["paired_sequential"]["estimate"] == pytest.approx(a.primary["difference"])
    assert a.decision == "promote"
    # Discrepancy is over every pair, labelled or not.
    rail = next(g for g in a.guardrails if g["name"] == "shadow_discrepancy_rate")
    assert rail["challenger"] == pytest.approx(float((truth["a"] != truth["b"]).mean()))


def test_shadow_classic_preset(store: EventStore, rng: np.random.Generator) -> None:
    _shadow_log(store, rng, 2000, 0.80, 0.86)
    a = _analyze(store, "m-shadow", policy=DecisionConfig(preset="classic_shadow"))
    assert a.preset == "classic_shadow"
    assert {c.name for c in a.criteria} == {
        "min_labelled", "challenger_more_accurate", "discrepancy", "challenger_more_confident",
    }  # fmt: skip


def test_shadow_regression_uses_paired_t(store: EventStore, rng: np.random.Generator) -> None:
    n = 1500
    y = rng.normal(10.0, 2.0, n)
    pred_a = y + rng.normal(0.0, 1.0, n)
    pred_b = y + rng.normal(0.0, 0.7, n)
    columns = {
        "request_id": [f"r{i}" for i in range(n)] * 2,
        "experiment": ["m-shadow"] * (2 * n),
        "strategy": ["shadow"] * (2 * n),
        "arm": ["champion"] * (2 * n),
        "role": ["served"] * n + ["shadow"] * n,
        "alias": ["champion"] * n + ["challenger"] * n,
        "prediction": [repr(v) for v in np.concatenate([pred_a, pred_b])],
        "prediction_num": np.concatenate([pred_a, pred_b]),
    }
    write_log(store, columns, np.concatenate([y, y]))
    a = _analyze(store, "m-shadow", policy=DecisionConfig(loss="absolute", min_sample_per_arm=500))
    expected = stats.ttest_rel(np.abs(pred_b - y), np.abs(pred_a - y))
    assert a.task == "regression" and a.metric == "absolute_error" and not a.higher_is_better
    assert a.primary["name"] == "paired_t"
    assert a.primary["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert a.decision == "promote"
    assert all(g["name"] != "shadow_discrepancy_rate" for g in a.guardrails)


# --------------------------------------------------------------------------- errors, config


def test_unknown_model_and_experiment(ab_log: Callable[..., EventStore]) -> None:
    store = ab_log(10, 10, 0.8, 0.8)
    with store.connect() as con:
        with pytest.raises(NotFoundError, match="no events logged for model 'x'"):
            analyze_model(con, "x")
        with pytest.raises(NotFoundError, match="it has: m-ab"):
            analyze_experiment(con, "m", "nope")


def test_experiment_without_challenger(store: EventStore, rng: np.random.Generator) -> None:
    columns, y = ab_columns(rng, 20, 0, 0.8, 0.8, experiment="m-none")
    columns["strategy"] = ["none"] * 20
    write_log(store, columns, y)
    with store.connect() as con:
        with pytest.raises(InvalidInputError, match="no challenger"):
            analyze_experiment(con, "m", "m-none")
        with pytest.raises(NotFoundError, match="no experiment with a challenger"):
            analyze_model(con, "m")


def test_decision_yaml_maps_to_policy() -> None:
    text = """
    models:
      fraud:
        experiment: {strategy: ab, challenger_share: 0.2}
        decision:
          alpha: 0.01
          sequential: false
          min_sample_per_arm: 500
          max_sample_per_arm: 20000
          mde: 0.02
          srm_p_threshold: 0.0005
          guardrails:
            max_error_rate: 0.05
            max_latency_p99_ratio: 1.5
            max_shadow_discrepancy: null
    """
    config = HomeConfig.model_validate(yaml.safe_load(text)).models["fraud"]
    policy = to_decision_policy(
        config.decision, mode="ab", task="classification", traffic_weights=(0.8, 0.2)
    )
    assert (policy.alpha, policy.sequential, policy.min_sample_per_arm) == (0.01, False, 500)
    assert policy.min_detectable_effect == 0.02 and policy.srm_threshold == 0.0005
    assert policy.sequential_config is not None
    assert policy.sequential_config.target_sample_size == 40000
    rails = {g.name: g for g in policy.guardrails}
    assert set(rails) == {"error_rate", "latency_p99_ms"}
    assert rails["latency_p99_ms"].relative_to_champion
    assert rails["latency_p99_ms"].threshold == pytest.approx(0.5)
    regression = to_decision_policy(DecisionConfig(), mode="shadow", task="regression")
    assert regression.metric_kind == "mean" and not regression.higher_is_better


def test_decision_yaml_rejects_typos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from arbiter.config import load_config

    path = tmp_path / "arbiter.yaml"
    path.write_text("models:\n  m:\n    decision:\n      alpah: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.m\.decision\.alpah"):
        load_config(path)


def test_returning_users_are_analysed_per_user(store: EventStore) -> None:
    """Users send many requests and keep their arm: tests count users (delta method).

    Reference: statsmodels' cluster-robust (CR0, clusters = users) variance of each arm's
    row-level accuracy, times n/(n-1) (the delta method's sample covariances use n-1).
    """
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    n_users = 600
    user_arm = np.where(rng.random(n_users) < 0.5, "challenger", "champion")
    skill = rng.beta(3, 1.5, n_users)  # users differ: one user's rows are correlated
    per_user = rng.integers(1, 15, n_users)
    user = np.repeat(np.arange(n_users), per_user)
    n = user.size
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < skill[user]
    pred = np.where(correct, y, 1 - y)
    columns = {
        "request_id": [f"r{i}" for i in range(n)],
        "experiment": ["m-ab"] * n,
        "strategy": ["ab"] * n,
        "unit_id": [f"u{u}" for u in user],
        "arm": user_arm[user],
        "prediction": pred.astype(str),
        "prediction_num": pred.astype(float),
        "score": np.where(pred == 1, 0.8, 0.2),
        "confidence": np.full(n, 0.8),
    }
    write_log(store, columns, y)
    a = _analyze(store, model_config=AB_CONFIG, policy=DecisionConfig(sequential=False))

    assert any("labelled rows repeat units" in note for note in a.notes)
    assert not any(note.startswith("warning: few effective units") for note in a.notes)
    assert a.primary["name"] == "delta_method_z"
    variance = {}
    for side in ("champion", "challenger"):
        rows = user_arm[user] == side
        assert a.arms[side]["labelled"] == rows.sum()
        units = int((user_arm == side).sum())
        assert a.arms[side]["labelled_units"] == units == a.metric_stats[side].n
        fit = sm.OLS(correct[rows].astype(float), np.ones(rows.sum())).fit(
            cov_type="cluster", cov_kwds={"groups": user[rows], "use_correction": False}
        )
        assert a.metric_stats[side].mean == pytest.approx(float(fit.params[0]), rel=1e-12)
        variance[side] = float(fit.bse[0]) ** 2 * units / (units - 1)
    se = np.sqrt(variance["champion"] + variance["challenger"])
    assert a.primary["standard_error"] == pytest.approx(se, rel=1e-9)
    reference_p = stats.norm.sf(abs(a.primary["difference"]) / se) * 2
    assert a.primary["p_value"] == pytest.approx(reference_p, rel=1e-6)
    # A row-level standard error would have been 40 % too small here.
    rows_c, rows_t = (user_arm[user] == s for s in ("champion", "challenger"))
    row_se = np.sqrt(
        correct[rows_c].var(ddof=0) / rows_c.sum() + correct[rows_t].var(ddof=0) / rows_t.sum()
    )
    assert se > 1.5 * row_se
    # Sequential (the default): the confidence sequence on the same per-user statistics.
    seq = _analyze(store, model_config=AB_CONFIG)
    assert seq.primary["name"] == "confidence_sequence"
    assert seq.primary["std_error"] == pytest.approx(se, rel=1e-9)
    assert (
        seq.to_dict()["arms"]["champion"]["labelled_units"] == a.arms["champion"]["labelled_units"]
    )


def test_few_effective_units_warn_in_the_two_arm_test(store: EventStore) -> None:
    """Issue 15, small-cluster honesty: when a few heavy users carry an arm's rows, the
    per-unit test's normal approximation rests on them, and the analysis says so (the
    evenly active users of the test above get no such warning)."""
    rng = np.random.default_rng(3)

    def log(per_user: np.ndarray) -> ExperimentAnalysis:
        n_users = per_user.size
        user_arm = np.where(np.arange(n_users) % 2 == 0, "champion", "challenger")
        user = np.repeat(np.arange(n_users), per_user)
        n = user.size
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.8, y, 1 - y)
        columns = {
            "request_id": [f"r{i}" for i in range(n)],
            "experiment": ["m-ab"] * n,
            "strategy": ["ab"] * n,
            "unit_id": [f"u{u}" for u in user],
            "arm": user_arm[user],
            "prediction": pred.astype(str),
            "prediction_num": pred.astype(float),
            "score": np.where(pred == 1, 0.8, 0.2),
            "confidence": np.full(n, 0.8),
        }
        write_log(store, columns, y)
        return _analyze(store, model_config=AB_CONFIG, policy=DecisionConfig(sequential=False))

    # 40 users; two per arm have 400 rows each, the rest 2: about 2.3 effective units per arm.
    heavy = np.full(40, 2)
    heavy[:4] = 400
    skewed = log(heavy)
    assert any("labelled rows repeat units" in note for note in skewed.notes)
    assert any(note.startswith("warning: few effective units") for note in skewed.notes)
