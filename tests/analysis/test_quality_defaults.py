"""Label metrics in the two-arm analysis: the default quality metric of a binary classifier
with a rare class (A/B and shadow) and the paired label metrics of a shadow experiment."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import log_loss

from arbiter.analysis import analyze_experiment
from arbiter.analysis.aggregate import aggregate_experiment
from arbiter.analysis.label_metrics import label_profile, paired_label_metrics
from arbiter.analysis.metrics import metric_statistics_at
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.events.query import Scope
from arbiter.metric_definitions import LabelMetric
from arbiter.report.html import render_html
from arbiter.report.markdown import analysis_markdown
from arbiter.report.terminal import print_analysis
from tests.analysis.conftest import T0_US, write_log
from tests.analysis.labels_synthetic import classifier_log


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _scores(rng: np.random.Generator, y: np.ndarray, skill: float) -> np.ndarray:
    """P(fraud) of a model whose evidence for the rare class grows with ``skill``."""
    return _sigmoid(-2.5 + skill * y + rng.normal(0.0, 1.0, y.size))


def _ab_log(
    store: EventStore, rng: np.random.Generator, n: int, rate: float, *, scored: bool = True
) -> dict[str, Any]:
    """A/B log of a fraud model (positive rate ``rate``): the challenger separates better."""
    arm = np.array(["champion", "challenger"] * n)
    y = (rng.random(2 * n) < rate).astype(int)
    score = np.where(arm == "challenger", _scores(rng, y, 3.5), _scores(rng, y, 1.5))
    pred = (score > 0.5).astype(int)
    columns = {
        "request_id": [f"r{i}" for i in range(2 * n)],
        "experiment": ["m-ab"] * (2 * n),
        "strategy": ["ab"] * (2 * n),
        "unit_id": [f"u{i}" for i in range(2 * n)],
        "arm": arm,
        "prediction": pred.astype(str),
        "prediction_num": pred.astype(float),
        "score": score if scored else np.full(2 * n, np.nan),
        "confidence": np.maximum(score, 1 - score),
    }
    write_log(store, columns, y)
    return {"arm": arm, "y": y, "score": score, "pred": pred}


def _config(
    strategy: str = "ab", metrics: dict[str, Any] | None = None, **decision: Any
) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "experiment": {"name": f"m-{strategy}", "strategy": strategy},
            "decision": {"min_sample_per_arm": 500, **decision},
            "metrics": metrics or {},
        }
    )


def _analyze(store: EventStore, experiment: str, config: ModelConfig) -> Any:
    with store.connect() as con:
        return analyze_experiment(con, "m", experiment, model_config=config)


def test_ab_rare_positive_is_decided_on_log_loss(store: EventStore) -> None:
    truth = _ab_log(store, np.random.default_rng(1), 3000, 0.08)
    a = _analyze(store, "m-ab", _config())
    assert a.decided_on == "log_loss" and a.to_dict()["decided_on"] == "log_loss"
    assert a.decision == "promote"
    assert any("default quality metric" in n for n in a.notes)
    (row,) = a.to_dict()["metrics"]
    assert row["name"] == "log_loss" and row["role"] == "primary"
    # One row per unit: the per-unit ratio is sklearn's log loss of each arm's rows.
    ref = {
        side: log_loss(truth["y"][truth["arm"] == side], truth["score"][truth["arm"] == side])
        for side in ("champion", "challenger")
    }
    assert row["arms"]["champion"]["mean"] == pytest.approx(ref["champion"], abs=1e-9)
    assert row["arms"]["challenger"]["mean"] == pytest.approx(ref["challenger"], abs=1e-9)
    assert row["estimate"] == pytest.approx(ref["challenger"] - ref["champion"], abs=1e-9)
    # Accuracy stays reported: the built-in quality test and the arms' accuracy.
    assert a.metric == "accuracy" and math.isfinite(a.arms["challenger"]["accuracy"])
    assert a.primary["p_value"] is not None


def test_pinning_accuracy_and_balanced_labels_keep_accuracy(store: EventStore) -> None:
    _ab_log(store, np.random.default_rng(2), 1500, 0.08)
    pinned = _analyze(store, "m-ab", _config(default_quality="accuracy"))
    assert pinned.decided_on == "accuracy" and pinned.metrics is None
    assert not any("default quality metric" in n for n in pinned.notes)


def test_balanced_labels_keep_accuracy(tmp_path: Any) -> None:
    store = EventStore(tmp_path / "balanced")
    _ab_log(store, np.random.default_rng(3), 1500, 0.4)
    a = _analyze(store, "m-ab", _config())
    assert a.decided_on == "accuracy" and a.metrics is None


def test_unscored_rare_positive_is_decided_on_f1(store: EventStore) -> None:
    _ab_log(store, np.random.default_rng(4), 2000, 0.1, scored=False)
    a = _analyze(store, "m-ab", _config())
    assert a.decided_on == "f1"
    (row,) = a.to_dict()["metrics"]
    assert row["name"] == "f1" and row["direction"] == "increase"


def test_an_identical_defined_metric_is_reused(store: EventStore) -> None:
    _ab_log(store, np.random.default_rng(5), 1500, 0.08)
    config = _config(metrics={"ll": {"label_metric": "log_loss", "positive": "1"}})
    a = _analyze(store, "m-ab", config)
    assert a.decided_on == "ll" and [m["name"] for m in a.to_dict()["metrics"]] == ["ll"]


# --- shadow ------------------------------------------------------------------------------------


def _shadow_log(
    store: EventStore,
    rng: np.random.Generator,
    n: int,
    rate: float,
    skills: tuple[float, float] = (1.5, 3.5),
    *,
    failed_shadow_every: int = 0,
) -> None:
    y = (rng.random(n) < rate).astype(int)
    score_a, score_b = _scores(rng, y, skills[0]), _scores(rng, y, skills[1])
    pred_a, pred_b = (score_a > 0.5).astype(int), (score_b > 0.5).astype(int)
    columns = {
        "request_id": [f"r{i}" for i in range(n)] * 2,
        "ts": np.tile(T0_US + np.arange(n, dtype=np.int64) * 1_000_000, 2),
        "experiment": ["m-shadow"] * (2 * n),
        "strategy": ["shadow"] * (2 * n),
        "unit_id": [f"u{i % (n // 2)}" for i in range(n)] * 2,  # two rows per unit
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
    if failed_shadow_every:  # every k-th request's shadow call failed: no pair
        columns["error"] = [None] * n + [
            "boom" if i % failed_shadow_every == 0 else None for i in range(n)
        ]
    write_log(store, columns, np.concatenate([y, y]).astype(object))


SHADOW_METRICS = {
    "recall": {"label_metric": "recall", "positive": 1},
    "log_loss": {"label_metric": "log_loss"},
    "roc_auc": {"label_metric": "roc_auc"},
}


def test_shadow_reports_paired_label_metrics(store: EventStore) -> None:
    _shadow_log(store, np.random.default_rng(6), 3000, 0.3)  # balanced: no default metric
    config = _config("shadow", metrics=SHADOW_METRICS)
    a = _analyze(store, "m-shadow", config)
    assert a.decided_on == "accuracy"  # no primary_metric: McNemar decides
    got = a.to_dict()["metrics"]
    with store.connect() as con:
        ref = paired_label_metrics(
            con, Scope("m", "m-shadow"),
            {k: LabelMetric.model_validate(v) for k, v in SHADOW_METRICS.items()},
            alpha=0.05,
        )  # fmt: skip
    assert [m["name"] for m in got] == list(SHADOW_METRICS)
    keys = {"name", "arm", "estimate", "ci_low", "ci_high", "p_value", "relative_lift", "arms"}
    for m, r in zip(got, ref, strict=True):
        assert keys | {"role", "adjusted_p_value"} <= set(m)
        assert m["role"] == "secondary" and m["arm"] == "challenger"
        for k in ("estimate", "ci_low", "ci_high", "p_value", "relative_lift"):
            assert m[k] == pytest.approx(r[k], abs=1e-12), (m["name"], k)
        for side in ("champion", "challenger"):
            assert m["arms"][side]["units"] == r["arms"][side]["units"]
            assert m["arms"][side]["mean"] == pytest.approx(r["arms"][side]["mean"], rel=1e-12)
        assert 0.0 <= m["adjusted_p_value"] <= 1.0 and m["adjusted_p_value"] >= m["p_value"]
    console = Console(width=220, record=True)
    print_analysis(console, a)
    text = console.export_text()
    assert "log_loss" in text and "roc_auc" in text
    assert "roc_auc" in analysis_markdown(a)


def test_label_profile_from_the_ab_labelled_rows_table_equals_the_join(store: EventStore) -> None:
    # The A/B analysis reads the label profile from the aggregates' labelled rows; it must
    # be the profile of the label join, rows without a prediction included.
    _ab_log(store, np.random.default_rng(3), 3000, 0.08)
    scope = Scope("m", "m-ab")
    with store.connect() as con:
        aggregate_experiment(con, "m", "m-ab", keep_table="kept_rows")
        try:
            joined = label_profile(con, scope)
            assert label_profile(con, scope, table="kept_rows") == joined
            assert joined.rows > 0 and joined.positive is not None
        finally:
            con.execute("DROP TABLE kept_rows")


def test_label_metrics_from_the_ab_labelled_rows_table_equal_the_join(store: EventStore) -> None:
    # The A/B analysis reads its label metrics (every look) from the aggregates' labelled
    # rows: the same sums as the label join, which reads failed requests too (here some
    # failed rows still logged a prediction and a score, so they count) and skips rows
    # without a unit id.
    n = 2000
    rng = np.random.default_rng(7)
    arm = np.array(["champion", "challenger"] * n)
    y = (rng.random(2 * n) < 0.1).astype(int)
    score = _scores(rng, y, 2.0)
    pred = (score > 0.5).astype(int)
    write_log(
        store,
        {
            "request_id": [f"r{i}" for i in range(2 * n)],
            "experiment": ["m-ab"] * (2 * n),
            "strategy": ["ab"] * (2 * n),
            "unit_id": [None if i % 11 == 0 else f"u{i % 700}" for i in range(2 * n)],
            "arm": [arm[i % 700] for i in range(2 * n)],  # sticky per unit
            "prediction": pred.astype(str),
            "prediction_num": pred.astype(float),
            "score": score,
            "confidence": np.maximum(score, 1 - score),
            "error": ["boom" if i % 13 == 0 else None for i in range(2 * n)],
        },
        y,
    )
    config = ModelConfig.model_validate(
        {"metrics": {"ll": {"label_metric": "log_loss"}, "acc": {"label_metric": "accuracy"}}}
    )
    scope = Scope("m", "m-ab")
    ends = [datetime.fromtimestamp((T0_US + k * 1_000_000_000) / 1e6, UTC) for k in (1, 2, 3)]
    with store.connect() as con:
        aggregate_experiment(con, "m", "m-ab", keep_table="kept_rows")
        try:
            for looks in (None, [*ends, None]):
                joined = metric_statistics_at(con, scope, config, looks)
                kept = metric_statistics_at(con, scope, config, looks, labelled_rows="kept_rows")
                assert len(kept) == len(joined) == (1 if looks is None else 4)
                for a, b in zip(kept, joined, strict=True):
                    for name in ("ll", "acc"):
                        assert a[name].units == b[name].units and a[name].units
                        for side, stat in b[name].stats.items():
                            got = a[name].stats[side]
                            assert got.n == stat.n
                            assert dataclasses.astuple(got) == pytest.approx(
                                dataclasses.astuple(stat), rel=1e-12
                            )
        finally:
            con.execute("DROP TABLE kept_rows")


def test_label_profile_from_the_shadow_pairs_table_equals_the_join(store: EventStore) -> None:
    # The shadow analysis reads the label profile from the aggregates' pairs table: it must
    # count the labelled served rows whose shadow row failed too (they are no pair).
    n = 3000
    _shadow_log(store, np.random.default_rng(8), n, 0.1, failed_shadow_every=5)
    scope = Scope("m", "m-shadow")
    with store.connect() as con:
        aggregate_experiment(con, "m", "m-shadow", keep_table="kept_pairs")
        try:
            joined = label_profile(con, scope)
            assert label_profile(con, scope, table="kept_pairs") == joined
            pairs = con.execute("SELECT count(*) FROM kept_pairs WHERE paired").fetchone()
            assert pairs is not None and 0 < pairs[0] < joined.rows == n
        finally:
            con.execute("DROP TABLE kept_pairs")


def test_shadow_analysis_drops_the_pairs_table_it_shares(store: EventStore) -> None:
    # The paired label metrics read the aggregates' pairs table; it lives until they ran and
    # no longer: the caller's connection is left as it was (the label snapshot aside).
    _shadow_log(store, np.random.default_rng(6), 3000, 0.3)
    config = _config("shadow", metrics=SHADOW_METRICS)
    with store.connect() as con:
        a = analyze_experiment(con, "m", "m-shadow", model_config=config)
        assert [m["name"] for m in a.to_dict()["metrics"]] == list(SHADOW_METRICS)
        left = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '_arbiter_pairs%'"
        ).fetchall()
    assert left == []


def test_shadow_decides_on_a_label_primary_metric(store: EventStore) -> None:
    _shadow_log(store, np.random.default_rng(7), 3000, 0.3)
    config = _config("shadow", primary_metric="log_loss", metrics=SHADOW_METRICS)
    a = _analyze(store, "m-shadow", config)
    assert a.decided_on == "log_loss" and a.decision == "promote"
    row = next(m for m in a.to_dict()["metrics"] if m["name"] == "log_loss")
    assert row["role"] == "primary" and row["estimate"] < 0
    crit = next(c for c in a.criteria if c.name == "primary_improvement")
    assert crit.met and crit.observed == pytest.approx(row["p_value"])


def test_shadow_rare_positive_defaults_to_log_loss(store: EventStore) -> None:
    _shadow_log(store, np.random.default_rng(8), 3000, 0.08)
    a = _analyze(store, "m-shadow", _config("shadow"))
    assert a.decided_on == "log_loss" and a.decision == "promote"
    (row,) = a.to_dict()["metrics"]
    assert row["name"] == "log_loss" and row["method"].startswith("paired")
    pinned = _analyze(store, "m-shadow", _config("shadow", default_quality="accuracy"))
    assert pinned.decided_on == "accuracy" and pinned.metrics is None


def test_shadow_default_reuses_a_defined_log_loss(store: EventStore) -> None:
    _shadow_log(store, np.random.default_rng(9), 2000, 0.08)
    a = _analyze(store, "m-shadow", _config("shadow", metrics=SHADOW_METRICS))
    assert a.decided_on == "log_loss"
    roles = {m["name"]: m["role"] for m in a.to_dict()["metrics"]}
    assert roles == {"recall": "secondary", "log_loss": "primary", "roc_auc": "secondary"}
    page = render_html([a], model="m")
    assert "Label metrics (paired)" in page and "decided on log_loss" in page
    assert "decided on: log_loss" in analysis_markdown(a)


def _aa_shadow_decisions(runs: int) -> tuple[int, set[str]]:
    """Shadow A/A on rare positives (equally skilled models): verdicts that are not continue."""
    config = ModelConfig.model_validate(
        {"decision": {"min_sample_per_arm": 100, "sequential": False}}
    )
    decided, on = 0, set()
    for i in range(runs):
        con, _ = classifier_log(
            np.random.default_rng(1000 + i), n_units=400, positive_rate=0.08,
            skill=(1.0, 1.0), shadow=True,
        )  # fmt: skip
        a = analyze_experiment(con, "fraud", "fraud-ab", model_config=config)
        decided += a.decision != "continue"
        on.add(a.decided_on)
    return decided, on


def test_shadow_default_metric_aa_false_decisions() -> None:
    # 40 runs at alpha 0.05: 6 or more false decisions has probability 0.05 (fixed seeds).
    decided, on = _aa_shadow_decisions(40)
    assert on <= {"log_loss", "f1"} and decided <= 6


@pytest.mark.slow
def test_shadow_default_metric_aa_false_decision_rate_full() -> None:
    runs = 1000
    decided, _ = _aa_shadow_decisions(runs)
    assert decided / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)


def test_shadow_label_guardrail_metrics_are_paired_non_inferiority(tmp_path: Any) -> None:
    rails = [{"metric": "recall", "max_decrease": 0.0}, {"metric": "roc_auc", "max_decrease": 0.0}]
    better = EventStore(tmp_path / "better")
    _shadow_log(better, np.random.default_rng(10), 3000, 0.3)
    a = _analyze(
        better, "m-shadow",
        _config("shadow", metrics=SHADOW_METRICS, primary_metric="log_loss",
                guardrail_metrics=rails),
    )  # fmt: skip
    assert a.decision == "promote"
    rows = {m["name"]: m for m in a.to_dict()["metrics"]}
    assert rows["recall"]["role"] == "guardrail" and rows["recall"]["guardrail"]["status"] == "met"
    crit = next(c for c in a.criteria if c.name == "guardrail_metric:roc_auc")
    assert crit.met and crit.observed > 0.0
    # One-sided bound at alpha = the paired two-sided interval at 2 alpha.
    with better.connect() as con:
        (ref,) = paired_label_metrics(
            con, Scope("m", "m-shadow"), {"recall": LabelMetric(label_metric="recall", positive=1)},
            alpha=0.10,
        )  # fmt: skip
    assert rows["recall"]["guardrail"]["bound"] == pytest.approx(ref["ci_high"], rel=1e-9)

    worse = EventStore(tmp_path / "worse")  # the challenger loses recall: not promoted
    _shadow_log(worse, np.random.default_rng(11), 3000, 0.3, skills=(3.5, 1.5))
    b = _analyze(worse, "m-shadow", _config("shadow", metrics=SHADOW_METRICS,
                                            guardrail_metrics=rails))  # fmt: skip
    assert b.decision == "keep_champion"
    assert not next(c for c in b.criteria if c.name == "guardrail_metric:recall").met
