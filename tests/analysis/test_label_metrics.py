"""Label metrics per unit: row SQL summed per unit equals sklearn on the pooled rows; the
delta-method variance matches a unit bootstrap; AUC comparisons and the shadow (paired) path.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from arbiter.analysis.label_metrics import (
    RARE_POSITIVE_RATE,
    ROW_METRICS,
    auc_comparison,
    default_quality_metric,
    label_profile,
    label_row_sql,
    paired_label_metrics,
)
from arbiter.errors import InvalidInputError
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables
from arbiter.metric_definitions import LabelMetric
from arbiter.stats.sufficient import RatioStatistic
from tests.analysis.labels_synthetic import (
    SCOPE,
    Rows,
    classifier_log,
    per_unit_statistics,
    per_unit_sums,
    table,
)

COSTS_BINARY = {"1": {"0": 25.0, "1": -1.0}, "0": {"1": 2.0}}
COSTS_MULTI = {"a": {"b": 1.0, "c": 4.0}, "b": {"a": 2.0}, "c": {"a": 3.5, "b": 0.5}}


def _reference(rows: Rows, metric: LabelMetric, mask: np.ndarray) -> float:
    """The metric by sklearn on the pooled rows ``mask`` selects (labelled, no error)."""
    keep = mask & (rows.label != None) & (rows.prediction != None)  # noqa: E711
    y, pred = rows.label[keep].astype(str), rows.prediction[keep].astype(str)
    pos = "1" if metric.positive is None else str(metric.positive)
    kind = metric.label_metric
    binary = len(rows.classes) == 2
    if kind == "accuracy":
        return accuracy_score(y, pred)
    if kind == "recall":
        return recall_score(y, pred, labels=[pos], average="micro", zero_division=0)
    if kind == "precision":
        return precision_score(y, pred, labels=[pos], average="micro", zero_division=0)
    if kind == "f1":
        return f1_score(y, pred, labels=[pos], average="micro", zero_division=0)
    if kind == "class_rate":
        return float(np.mean(pred == pos))
    if kind == "cost":
        cm = confusion_matrix(y, pred, labels=rows.classes)
        costs = np.array(
            [[metric.costs.get(a, {}).get(p, 0.0) for p in rows.classes] for a in rows.classes]
        )
        return float((cm * costs).sum() / cm.sum())
    scored = keep & rows.has_proba
    y, proba = rows.label[scored].astype(str), rows.proba[scored]
    order = np.argsort(rows.classes)  # sklearn wants the labels sorted
    labels = [rows.classes[i] for i in order]
    if kind == "log_loss":
        return log_loss(y, proba[:, order], labels=labels)
    assert kind == "brier"
    if binary:
        return brier_score_loss(y == pos, proba[:, rows.classes.index(pos)])
    return brier_score_loss(y, proba[:, order], labels=labels)


def _metrics(classes: tuple[str, ...]) -> list[LabelMetric]:
    pos = "1" if classes == ("0", "1") else "b"
    costs = COSTS_BINARY if classes == ("0", "1") else COSTS_MULTI
    out = []
    for kind in ROW_METRICS:
        out.append(
            LabelMetric(
                label_metric=kind,
                positive=1 if pos == "1" else pos,
                costs=costs if kind == "cost" else None,
            )
        )
    return out


@pytest.mark.parametrize("classes", [("0", "1"), ("a", "b", "c")], ids=["binary", "multiclass"])
def test_per_unit_ratio_equals_sklearn_on_pooled_rows(classes: tuple[str, ...]) -> None:
    # Repeated units, unlabelled rows, failed rows and rows without probabilities: each
    # metric summed per unit then per arm equals sklearn on the rows it should read.
    con, rows = classifier_log(np.random.default_rng(7), n_units=400, classes=classes)
    served = rows.role == "served"
    for metric in _metrics(classes):
        stats = per_unit_statistics(con, metric)
        assert set(stats) == {"champion", "challenger"}
        for arm, stat in stats.items():
            expected = _reference(rows, metric, served & (rows.arm == arm))
            assert stat.mean == pytest.approx(expected, abs=1e-9), (metric.label_metric, arm)


def test_the_positive_class_can_be_any_label() -> None:
    # positive: 0 on a 0/1 classifier: the score column is P(1), so P(0) must come from the
    # probabilities -- Brier and recall of class 0 still equal sklearn.
    con, rows = classifier_log(np.random.default_rng(3), score_only=False)
    served = rows.role == "served"
    for kind in ("recall", "precision", "f1", "brier", "log_loss"):
        metric = LabelMetric(label_metric=kind, positive=0)
        for arm, stat in per_unit_statistics(con, metric).items():
            expected = _reference(rows, metric, served & (rows.arm == arm))
            assert stat.mean == pytest.approx(expected, abs=1e-9), kind


def test_label_one_point_zero_matches_positive_one() -> None:
    # Canonical text: a float label 1.0 is "1", as is the configured positive 1.
    con, _ = classifier_log(np.random.default_rng(1), n_units=50)
    num, den, params = label_row_sql(LabelMetric(label_metric="recall", positive=1.0))
    assert params == {"lm_pos": "1"}
    row = con.execute(
        f"SELECT sum({num}), sum({den}) FROM labeled WHERE label IS NOT NULL", params
    ).fetchone()
    assert row is not None and row[1] > 0


@pytest.mark.parametrize("kind", ["recall", "f1", "log_loss", "cost"])
def test_delta_method_variance_matches_a_unit_bootstrap(kind: str) -> None:
    con, _ = classifier_log(
        np.random.default_rng(11), n_units=1200, rows_per_unit=4.0, positive_rate=0.15
    )
    metric = LabelMetric(
        label_metric=kind, positive=1, costs=COSTS_BINARY if kind == "cost" else None
    )
    stat = per_unit_statistics(con, metric)["challenger"]
    m, d = per_unit_sums(con, metric, "challenger")
    assert stat.n == m.size and stat.m_sum == pytest.approx(m.sum())
    rng = np.random.default_rng(5)
    draws = rng.integers(0, m.size, size=(3000, m.size))
    boot = m[draws].sum(axis=1) / d[draws].sum(axis=1)
    # The bootstrap variance's own relative error is ~sqrt(2/B) = 2.6 %.
    assert stat.variance / stat.n == pytest.approx(boot.var(ddof=1), rel=0.12)


def test_unlabelled_and_unscored_rows_count_in_neither_sum() -> None:
    con, _ = classifier_log(np.random.default_rng(2), n_units=200)
    num, den, params = label_row_sql(LabelMetric(label_metric="log_loss"))
    row = con.execute(
        f"""
        SELECT sum({num}) FILTER (WHERE label IS NULL OR (score IS NULL AND probabilities IS NULL)),
               sum({den}) FILTER (WHERE label IS NULL OR (score IS NULL AND probabilities IS NULL)),
               count(*) FILTER (WHERE {num} IS NULL OR {den} IS NULL)
        FROM labeled
        """,
        params,
    ).fetchone()
    assert row == (0.0, 0.0, 0)


def test_values_are_parameters_never_sql_text() -> None:
    evil = "1' OR '1'='1"
    metric = LabelMetric(
        label_metric="cost", positive=evil, costs={evil: {"x'--": 3.0}, "a": {"b": 1.0}}
    )
    num, den, params = label_row_sql(metric, prefix="m2")
    assert evil not in num + den and "x'--" not in num
    assert set(params) == {f"m2_c{i}_{f}" for i in (0, 1) for f in ("actual", "predicted", "cost")}
    # Every parameter returned is used and every one used is returned: DuckDB binds them.
    con, _ = classifier_log(np.random.default_rng(4), n_units=20)
    for m in [*_metrics(("0", "1")), metric]:
        n_sql, d_sql, p = label_row_sql(m, prefix="m2")
        con.execute(f"SELECT sum({n_sql}), sum({d_sql}) FROM labeled", p).fetchone()


def test_a_quote_in_a_class_name_is_just_a_value() -> None:
    con, rows = classifier_log(
        np.random.default_rng(8), n_units=80, classes=("o'k", 'sp"am', "$.x")
    )
    served = rows.role == "served"
    for kind in ("recall", "log_loss", "brier"):
        metric = LabelMetric(label_metric=kind, positive="$.x")
        for arm, stat in per_unit_statistics(con, metric).items():
            assert stat.mean == pytest.approx(_reference(rows, metric, served & (rows.arm == arm)))


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        (LabelMetric(label_metric="roc_auc"), "label_metric"),
        (LabelMetric(label_metric="pr_auc"), "label_metric"),
        (LabelMetric(label_metric="cost"), "costs"),
    ],
)
def test_metrics_without_a_row_form_are_refused(metric: LabelMetric, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        label_row_sql(metric)
    assert err.value.field == field


def test_a_bad_prefix_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        label_row_sql(LabelMetric(label_metric="recall"), prefix="x; DROP")


# --- the rare-positive default --------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "rate", "scored", "expected"),
    [
        ("classification", 103 / 10_000, True, "log_loss"),
        ("classification", 0.05, False, "f1"),
        ("classification", 0.95, True, "log_loss"),  # the rare class is the other one
        ("classification", RARE_POSITIVE_RATE, True, None),
        ("classification", 0.5, True, None),
        ("classification", None, True, None),
        ("regression", 0.01, True, None),
    ],
)
def test_default_quality_metric(
    task: str, rate: float | None, scored: bool, expected: str | None
) -> None:
    metric = default_quality_metric(task, rate, scored=scored)
    assert (metric.label_metric if metric else None) == expected
    if metric is not None:
        assert metric.better == ("decrease" if expected == "log_loss" else "increase")


def test_label_profile_finds_the_rare_class() -> None:
    con, rows = classifier_log(np.random.default_rng(6), n_units=300, positive_rate=0.08)
    profile = label_profile(con, SCOPE)
    labelled = (rows.role == "served") & (rows.label != None) & (rows.prediction != None)  # noqa: E711
    assert profile.rows == int(labelled.sum())
    assert profile.classes == ("0", "1") and profile.positive == "1"
    assert profile.positive_rate == pytest.approx(np.mean(rows.label[labelled] == "1"))
    assert profile.default_metric("classification") == LabelMetric(
        label_metric="log_loss", positive="1"
    )


# --- AUC between arms -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["roc_auc", "pr_auc"])
def test_auc_comparison_estimates_equal_sklearn(kind: str) -> None:
    con, rows = classifier_log(np.random.default_rng(9), n_units=300)
    result = auc_comparison(
        con, SCOPE, LabelMetric(label_metric=kind), "champion", "challenger", alpha=0.05,
        n_boot=300, name="quality",
    )  # fmt: skip
    ok = (rows.role == "served") & (rows.label != None) & (rows.prediction != None)  # noqa: E711
    ok &= rows.has_proba
    reference = roc_auc_score if kind == "roc_auc" else average_precision_score
    means = {}
    for arm in ("champion", "challenger"):
        mask = ok & (rows.arm == arm)
        means[arm] = reference(rows.label[mask] == "1", rows.proba[mask, 1])
        assert result["arms"][arm]["mean"] == pytest.approx(means[arm], abs=1e-12)
        assert result["arms"][arm]["rows"] == int(mask.sum())
        assert result["arms"][arm]["units"] == len(set(rows.unit[mask]))
    assert result["estimate"] == pytest.approx(means["challenger"] - means["champion"])
    assert result["name"] == "quality" and result["arm"] == "challenger"
    assert result["ci_low"] < result["estimate"] < result["ci_high"]
    assert 0.0 <= result["p_value"] <= 1.0 and result["crossed_units"] == 0
    assert result["relative_lift"] == pytest.approx(result["estimate"] / means["champion"])


def test_auc_comparison_excludes_and_counts_crossed_units() -> None:
    con, rows = classifier_log(np.random.default_rng(10), n_units=120)
    tables = {
        "predictions": con.sql("SELECT * FROM predictions").to_arrow_table(),
        "feedback": con.sql("SELECT * FROM feedback").to_arrow_table(),
    }
    # Move unit u0's first row and u1's first row to the other arm: both become crossed.
    pred = tables["predictions"].to_pylist()
    crossed = {"u0", "u1"}
    for unit in crossed:
        first = next(r for r in pred if r["unit_id"] == unit)
        others = [r for r in pred if r["unit_id"] == unit]
        if len(others) == 1:  # a single-row unit cannot cross: give it a second row
            twin = dict(first, request_id=first["request_id"] + "-b")
            pred.append(twin)
            others.append(twin)
        others[-1]["arm"] = "challenger" if first["arm"] == "champion" else "champion"
    con2 = connect_tables(
        pa.Table.from_pylist(pred, schema=tables["predictions"].schema), tables["feedback"]
    )
    result = auc_comparison(
        con2, SCOPE, LabelMetric(label_metric="roc_auc"), "champion", "challenger",
        alpha=0.05, n_boot=50,
    )  # fmt: skip
    assert result["crossed_units"] == 2
    kept = (rows.role == "served") & (rows.label != None) & (rows.prediction != None)  # noqa: E711
    kept &= rows.has_proba & ~np.isin(rows.unit, [0, 1])
    total = result["arms"]["champion"]["units"] + result["arms"]["challenger"]["units"]
    assert total == len(set(rows.unit[kept]))


def test_auc_comparison_refuses_row_metrics() -> None:
    con, _ = classifier_log(np.random.default_rng(1), n_units=20)
    with pytest.raises(InvalidInputError):
        auc_comparison(con, SCOPE, LabelMetric(label_metric="recall"), "a", "b", alpha=0.05)


# --- shadow: paired metrics -------------------------------------------------------------------


def test_paired_label_metrics_on_shadow_pairs() -> None:
    con, rows = classifier_log(np.random.default_rng(12), n_units=500, shadow=True)
    metrics = {
        "recall": LabelMetric(label_metric="recall", positive=1),
        "log_loss": LabelMetric(label_metric="log_loss"),
        "pr_auc": LabelMetric(label_metric="pr_auc"),
        "roc_auc": LabelMetric(label_metric="roc_auc"),
    }
    results = paired_label_metrics(con, SCOPE, metrics, n_boot=400)
    assert [r["name"] for r in results] == list(metrics)
    n = rows.unit.size // 2
    champ, chall = slice(0, n), slice(n, 2 * n)
    # Pairs: labelled rows where neither model failed.
    both = (rows.prediction[champ] != None) & (rows.prediction[chall] != None)  # noqa: E711
    both &= rows.label[champ] != None  # noqa: E711
    for res in results:
        metric = metrics[res["name"]]
        for side, part in (("champion", champ), ("challenger", chall)):
            sub = Rows(
                arm=rows.arm[part], unit=rows.unit[part], label=rows.label[part],
                prediction=rows.prediction[part], proba=rows.proba[part], classes=rows.classes,
                has_proba=rows.has_proba[part], role=rows.role[part],
            )  # fmt: skip
            if metric.label_metric in ("pr_auc", "roc_auc"):
                mask = both & rows.has_proba[champ] & rows.has_proba[chall]
                ref = roc_auc_score if metric.label_metric == "roc_auc" else average_precision_score
                expected = ref(sub.label[mask] == "1", sub.proba[mask, 1])
            else:
                expected = _reference(sub, metric, both)
            assert res["arms"][side]["mean"] == pytest.approx(expected, abs=1e-9), res["name"]
        assert res["estimate"] == pytest.approx(
            res["arms"]["challenger"]["mean"] - res["arms"]["champion"]["mean"]
        )
        assert res["ci_low"] < res["estimate"] < res["ci_high"]
        assert res["status"] == "ok"
    # The better challenger (skill 1.5 vs 1.0) wins on log loss, clearly.
    by_name = {r["name"]: r for r in results}
    assert by_name["log_loss"]["estimate"] < 0 and by_name["log_loss"]["p_value"] < 0.05


def test_paired_delta_ci_matches_a_paired_unit_bootstrap() -> None:
    con, _ = classifier_log(np.random.default_rng(13), n_units=800, shadow=True)
    metric = LabelMetric(label_metric="f1", positive=1)
    (res,) = paired_label_metrics(con, SCOPE, {"f1": metric})
    num, den, params = label_row_sql(metric)
    sides = {}
    for side, role in (("a", "served"), ("b", "shadow")):
        sides[side] = con.execute(
            f"""
            SELECT sum({num}) AS m, sum({den}) AS d FROM (
                SELECT l.* FROM labeled AS l
                WHERE l.role = $role AND l.label IS NOT NULL AND l.error IS NULL
                  AND (request_id, row_index) IN (
                      SELECT (request_id, row_index) FROM predictions GROUP BY ALL
                      HAVING count(*) FILTER (WHERE error IS NULL) = 2)
            ) GROUP BY unit_id ORDER BY unit_id
            """,
            {**params, "role": role},
        ).fetchnumpy()
    ma, da = sides["a"]["m"], sides["a"]["d"]
    mb, db = sides["b"]["m"], sides["b"]["d"]
    assert mb.sum() / db.sum() - ma.sum() / da.sum() == pytest.approx(res["estimate"])
    draws = np.random.default_rng(0).integers(0, ma.size, size=(3000, ma.size))
    boot = mb[draws].sum(1) / db[draws].sum(1) - ma[draws].sum(1) / da[draws].sum(1)
    se = (res["ci_high"] - res["ci_low"]) / (2 * 1.959963984540054)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.12)

    # Pairing matters: the independent-arms standard error is much wider.
    def ratio(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
        return RatioStatistic(m.size, m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum())

    indep = math.sqrt(ratio(ma, da).variance / ma.size + ratio(mb, db).variance / mb.size)
    assert se < indep


def test_empty_sides_report_a_status_not_an_error() -> None:
    con, _ = classifier_log(np.random.default_rng(14), n_units=40)
    result = auc_comparison(
        con, SCOPE, LabelMetric(label_metric="pr_auc"), "champion", "nobody", alpha=0.05,
        n_boot=20,
    )  # fmt: skip
    assert result["status"] == "insufficient_data" and result["estimate"] is None
    assert result["arms"]["nobody"] == {"units": 0, "mean": None, "rows": 0}
    # An A/B log has no shadow pairs.
    metrics = {"r": LabelMetric(label_metric="recall"), "a": LabelMetric(label_metric="roc_auc")}
    for res in paired_label_metrics(con, SCOPE, metrics, n_boot=20):
        assert res["status"] == "insufficient_data" and res["pairs"] == 0
        assert res["p_value"] is None


def test_the_worked_example_of_docs_quality_metrics() -> None:
    # 10,000 transactions per arm, 103 frauds. Champion: 13 caught, 7 false alarms;
    # challenger: 60 caught, 140 false alarms (docs/quality-metrics.md).
    columns: dict[str, list] = {
        c: [] for c in ("request_id", "row_index", "model", "experiment", "arm", "role")
    }
    columns.update(unit_id=[], prediction=[], forced=[])
    labels: list[str] = []
    for arm, tp, fp in (("champion", 13, 7), ("challenger", 60, 140)):
        fn, tn = 103 - tp, 10_000 - 103 - fp
        pairs = [("1", "1")] * tp + [("0", "1")] * fp + [("1", "0")] * fn + [("0", "0")] * tn
        for i, (label, pred) in enumerate(pairs):
            columns["request_id"].append(f"{arm}-{i}")
            columns["unit_id"].append(f"{arm}-u{i}")
            columns["prediction"].append(pred)
            labels.append(label)
        n = len(pairs)
        columns["row_index"] += [0] * n
        columns["model"] += ["fraud"] * n
        columns["experiment"] += ["fraud-ab"] * n
        columns["arm"] += [arm] * n
        columns["role"] += ["served"] * n
        columns["forced"] += [False] * n
    feedback = table(
        {"request_id": columns["request_id"], "row_index": columns["row_index"], "label": labels},
        FEEDBACK_SCHEMA,
    )
    con = connect_tables(table(columns, PREDICTIONS_SCHEMA), feedback)
    expected = {
        "accuracy": (0.9903, 0.9817),
        "recall": (13 / 103, 60 / 103),
        "precision": (13 / 20, 60 / 200),
        "f1": (26 / 123, 120 / 303),
        "cost": (0.9035, 0.5),
    }
    for kind, (champion, challenger) in expected.items():
        metric = LabelMetric(label_metric=kind, positive=1, costs={"1": {"0": 100}, "0": {"1": 5}})
        stats = per_unit_statistics(con, metric)
        assert stats["champion"].mean == pytest.approx(champion, abs=1e-12), kind
        assert stats["challenger"].mean == pytest.approx(challenger, abs=1e-12), kind
    assert default_quality_metric("classification", 103 / 10_000, scored=False).label_metric == "f1"


def test_a_binary_log_with_probabilities_but_no_score() -> None:
    # Another tool's log: probabilities JSON, no score column. Two classes in the JSON still
    # give the binary Brier score and log loss.
    con, rows = classifier_log(np.random.default_rng(15), n_units=200, score_only=False)
    predictions = con.sql("SELECT * REPLACE (NULL::DOUBLE AS score) FROM predictions")
    feedback = con.sql("SELECT * FROM feedback").to_arrow_table()
    con2 = connect_tables(predictions.to_arrow_table(), feedback)
    served = rows.role == "served"
    for kind in ("brier", "log_loss"):
        for positive in (1, 0):
            metric = LabelMetric(label_metric=kind, positive=positive)
            for arm, stat in per_unit_statistics(con2, metric).items():
                expected = _reference(rows, metric, served & (rows.arm == arm))
                assert stat.mean == pytest.approx(expected, abs=1e-9), (kind, positive)
