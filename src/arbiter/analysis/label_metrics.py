"""Model-quality metrics beyond accuracy, as per-row SQL summed per unit (docs/quality-metrics.md).

A :class:`~arbiter.metric_definitions.LabelMetric` (``recall: {label_metric: recall,
positive: 1}``) is analysed like an outcome metric: per randomisation unit, then per arm.
Every metric with a row form is a *ratio of sums*: each labelled row contributes a numerator
and a denominator, a unit's contributions are summed, and an arm's value is
``Σ num / Σ den`` over its units -- a :class:`~arbiter.stats.sufficient.RatioStatistic`,
tested with the delta method. :func:`label_row_sql` writes the two per-row expressions:

===========  ===================================  ==========================  =========
metric       numerator (per row)                  denominator (per row)       better
===========  ===================================  ==========================  =========
accuracy     prediction = label                   1                           increase
recall       TP: prediction = pos AND label = pos  label = pos                 increase
precision    TP                                   prediction = pos            increase
f1           2·TP                                 (prediction = pos) +        increase
                                                  (label = pos) = 2TP+FP+FN
log_loss     −ln clip(P(true label))              1                           decrease
brier        (P(pos) − [label = pos])²;           1                           decrease
             multi-class: Σ_k (p_k − [k = label])²
cost         costs[label][prediction]             1                           decrease
class_rate   prediction = pos                     1                           increase
===========  ===================================  ==========================  =========

A row lacking an input the metric needs (no label, no prediction, no probability for log loss
or Brier) contributes 0 to *both* sums, so it is left out rather than counted as a miss.
``pr_auc`` and ``roc_auc`` rank all rows at once and have no row form: :func:`auc_comparison`
compares them between arms with a unit-cluster bootstrap.

Values never reach the SQL text: the positive class and the cost matrix are bound ``$lm_*``
parameters, compared with the canonical text of labels and predictions
(:func:`~arbiter.events.schema.canonical_label`: ``positive: 1`` matches a label ``1.0``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import duckdb
import numpy as np

from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope
from arbiter.events.schema import canonical_label
from arbiter.metric_definitions import LabelMetric
from arbiter.stats.auc import AUC_METRICS, auc_difference_test, paired_auc_difference_test
from arbiter.stats.paired_ratio import paired_ratio_test
from arbiter.stats.results import finite_or_none
from arbiter.stats.verdict import Verdict

#: Label metrics with a per-row form (:func:`label_row_sql`).
ROW_METRICS: tuple[str, ...] = (
    "accuracy",
    "recall",
    "precision",
    "f1",
    "log_loss",
    "brier",
    "cost",
    "class_rate",
)
#: A binary classifier's positive class is *rare* below this share of the labels (either
#: class, whichever is smaller): accuracy then mostly measures the majority class (a model
#: that never flags fraud is 95 % accurate at 5 % fraud), and :func:`default_quality_metric`
#: judges on something else.
RARE_POSITIVE_RATE = 0.2
#: Probabilities are clipped to ``[eps, 1 − eps]`` before the log (float64 machine epsilon,
#: as ``sklearn.metrics.log_loss`` does): one confident miss costs about 36, not infinity.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
#: Bootstrap replicates of the AUC comparisons (see :func:`arbiter.stats.auc_difference_test`).
N_BOOT = 1000

_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")
# One class's probability is read with a quoted JSONPath, $."class" (quotes and backslashes
# escaped), so any class name is a key, never a path ("$.x", "a.b", "*"). Parsing the whole
# object into a MAP (from_json) is about 6x slower; a constant path (the positive class) is a
# bound parameter, the label's path is built per row.
_LABEL_PATH = r"""'$."' || replace(replace(label, '\', '\\'), '"', '\"') || '"'"""
_P_LABEL = f"coalesce(CAST(json_extract_string(probabilities, {_LABEL_PATH}) AS DOUBLE), 0.0)"
# Every class's probability, for the multi-class Brier score.
_P_ALL = "CAST(json_extract(probabilities, '$.*') AS DOUBLE[])"
_KNOWN = "label IS NOT NULL AND prediction IS NOT NULL"
_PROBABILISTIC = "label IS NOT NULL AND (probabilities IS NOT NULL OR score IS NOT NULL)"
# Served rows of the scope that carry a label; the shadow side pairs them with shadowed rows.
_SERVED_LABELED = "role = 'served' AND error IS NULL AND label IS NOT NULL"


def positive_text(metric: LabelMetric) -> str:
    """The canonical text of the metric's positive class (``"1"`` when none is configured)."""
    text, _ = canonical_label(1 if metric.positive is None else metric.positive)
    assert text is not None
    return text


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1.0 ELSE 0.0 END"


def _double(expr: str) -> str:
    return f"CAST(({expr}) AS DOUBLE)"


def json_path(key: str) -> str:
    """The JSONPath of one key of a JSON object, quoted: ``$."key"`` (``"`` and ``\\`` escaped)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _p_positive(path: str, probabilities: str = "probabilities", score: str = "score") -> str:
    # P(positive class): from the probabilities when logged (exact, whichever class `score`
    # refers to), else `score`, which a binary classifier logs as P(classes_[1]). `path` is a
    # parameter holding json_path(positive); column names are this module's, never input.
    return (
        f"(CASE WHEN {probabilities} IS NOT NULL THEN "
        f"coalesce(CAST(json_extract_string({probabilities}, {path}) AS DOUBLE), 0.0) "
        f"ELSE {score} END)"
    )


def label_row_sql(metric: LabelMetric, *, prefix: str = "lm") -> tuple[str, str, dict[str, Any]]:
    """Per-row numerator and denominator SQL of a label metric over the ``labeled`` view.

    Parameters
    ----------
    metric : LabelMetric
        The metric definition; ``positive`` defaults to the class ``1``.
    prefix : str, default "lm"
        Prefix of the parameter names (``$lm_pos``, ``$lm_c0_actual``...): give each metric of
        one query its own.

    Returns
    -------
    numerator_sql, denominator_sql : str
        DOUBLE expressions over the columns ``prediction``, ``score``, ``probabilities`` and
        ``label`` (as in the ``labeled`` view), never NULL: a row missing an input the metric
        needs gives 0 to both. The metric of a set of rows, or of an arm, is
        ``sum(numerator) / sum(denominator)``; per unit, the two sums are a
        :class:`~arbiter.stats.sufficient.RatioStatistic`'s ``m`` and ``d``.
    params : dict
        Values of the named parameters the expressions use (and only those).

    Raises
    ------
    InvalidInputError
        ``pr_auc``/``roc_auc`` (no row form: use :func:`auc_comparison`), ``cost`` without
        ``costs``, or a bad ``prefix``.
    """
    if not _PREFIX.match(prefix):
        raise InvalidInputError(f"prefix must be an SQL identifier, got {prefix!r}", field="prefix")
    kind = metric.label_metric
    if kind not in ROW_METRICS:
        raise InvalidInputError(
            f"label_metric {kind!r} ranks all rows at once and has no per-row form; compare "
            "it with auc_comparison",
            field="label_metric",
        )
    pos_name = f"{prefix}_pos"
    pos, path = f"${pos_name}", f"${prefix}_pos_path"
    pos_params = {pos_name: positive_text(metric)}
    path_params = {**pos_params, f"{prefix}_pos_path": json_path(positive_text(metric))}
    tp = f"{_KNOWN} AND prediction = {pos} AND label = {pos}"
    if kind == "accuracy":
        num, den, params = _flag(f"{_KNOWN} AND prediction = label"), _flag(_KNOWN), {}
    elif kind == "recall":
        num, den, params = _flag(tp), _flag(f"{_KNOWN} AND label = {pos}"), pos_params
    elif kind == "precision":
        num, den, params = _flag(tp), _flag(f"{_KNOWN} AND prediction = {pos}"), pos_params
    elif kind == "f1":
        # F1 = 2TP / (2TP + FP + FN), and 2TP + FP + FN = #predicted pos + #actual pos.
        num = f"2.0 * {_flag(tp)}"
        den = (
            f"{_flag(f'{_KNOWN} AND prediction = {pos}')} + {_flag(f'{_KNOWN} AND label = {pos}')}"
        )
        params = pos_params
    elif kind == "class_rate":
        num = _flag(f"prediction IS NOT NULL AND prediction = {pos}")
        den, params = _flag("prediction IS NOT NULL"), pos_params
    elif kind == "log_loss":
        # P(true label): a binary model (it logs `score`) needs only P(positive); a multi-class
        # one the probability of the row's label.
        p_true = (
            f"CASE WHEN score IS NOT NULL THEN (CASE WHEN label = {pos} THEN {_p_positive(path)} "
            f"ELSE 1.0 - {_p_positive(path)} END) ELSE {_P_LABEL} END"
        )
        eps = f"${prefix}_eps"
        num = (
            f"CASE WHEN {_PROBABILISTIC} THEN -ln(greatest(least({p_true}, 1.0 - {eps}), {eps})) "
            "ELSE 0.0 END"
        )
        den, params = _flag(_PROBABILISTIC), {**path_params, f"{prefix}_eps": LOG_LOSS_EPS}
    elif kind == "brier":
        # sklearn's convention: binary models, (p − y)² on the positive class; three or more
        # classes, the sum over classes Σ (p_k − [k = label])² = Σ p_k² − 2·p_label + 1 (half
        # of it for two classes, which is the binary form again).
        multi = (
            f"(list_inner_product({_P_ALL}, {_P_ALL}) - 2.0 * {_P_LABEL} + 1.0) "
            f"* CASE WHEN len({_P_ALL}) < 3 THEN 0.5 ELSE 1.0 END"
        )
        binary = f"({_p_positive(path)} - {_flag(f'label = {pos}')}) ^ 2"
        num = (
            f"CASE WHEN NOT ({_PROBABILISTIC}) THEN 0.0 "
            f"WHEN score IS NULL THEN {multi} ELSE {binary} END"
        )
        den, params = _flag(_PROBABILISTIC), path_params
    else:  # cost
        num, params = _cost_sql(metric, prefix)
        den = _flag(_KNOWN)
    return _double(num), _double(den), params


def _cost_sql(metric: LabelMetric, prefix: str) -> tuple[str, dict[str, Any]]:
    if not metric.costs:
        raise InvalidInputError(
            "label_metric cost needs costs: {actual: {predicted: cost}}", field="costs"
        )
    cases: list[str] = []
    params: dict[str, Any] = {}
    pairs = [(a, p, c) for a, row in metric.costs.items() for p, c in row.items()]
    for i, (actual, predicted, cost) in enumerate(pairs):
        if not math.isfinite(cost):
            raise InvalidInputError(
                f"costs[{actual!r}][{predicted!r}] must be finite", field="costs"
            )
        names = (f"{prefix}_c{i}_actual", f"{prefix}_c{i}_predicted", f"{prefix}_c{i}_cost")
        params.update(
            zip(
                names,
                (canonical_label(actual)[0], canonical_label(predicted)[0], float(cost)),
                strict=True,
            )
        )
        cases.append(f"WHEN label = ${names[0]} AND prediction = ${names[1]} THEN ${names[2]}")
    return f"CASE WHEN NOT ({_KNOWN}) THEN 0.0 {' '.join(cases)} ELSE 0.0 END", params


# --- defaults ---------------------------------------------------------------------------------


def default_quality_metric(
    task: str,
    positive_rate: float | None,
    *,
    scored: bool = True,
    positive: str | int | float | bool = 1,
) -> LabelMetric | None:
    """What a classifier is judged on when no ``primary_metric`` is set, if not accuracy.

    Parameters
    ----------
    task : {"classification", "regression"}
        From :func:`~arbiter.analysis.aggregate.detect_task`.
    positive_rate : float or None
        Share of labels that are the positive class (binary classifiers); None when unknown
        or not binary.
    scored : bool, default True
        Whether the models log probabilities (the ``score``/``probabilities`` columns) on
        (nearly) every row.
    positive : default 1
        The positive class of the returned metric.

    Returns
    -------
    LabelMetric or None
        None keeps today's default (accuracy for classifiers, loss for regressors). For a
        binary classifier whose rarer class is below :data:`RARE_POSITIVE_RATE` of the labels:
        ``log_loss`` when the models are scored, else ``f1`` on ``positive``.

    Notes
    -----
    Log loss is a strictly proper scoring rule: its expectation is minimised only by the true
    probabilities (Gneiting & Raftery 2007, *JASA* 102:359–378), so it rewards a model for
    ranking and calibrating the rare class rather than for predicting the majority, cannot be
    gamed by moving the decision threshold, and is a per-row mean that the delta method
    handles per unit. Without probabilities, F1 is the threshold-level choice: recall alone is
    maximised by flagging everything and precision by flagging almost nothing, while F1 is
    the harmonic mean of the two and ignores the true negatives that inflate accuracy.
    """
    if task != "classification" or positive_rate is None or not math.isfinite(positive_rate):
        return None
    if min(positive_rate, 1.0 - positive_rate) >= RARE_POSITIVE_RATE:
        return None
    if scored:
        return LabelMetric(label_metric="log_loss", positive=positive)
    return LabelMetric(label_metric="f1", positive=positive)


@dataclass(frozen=True, slots=True)
class LabelProfile:
    """What the labelled served rows of a scope look like, for :func:`default_quality_metric`.

    ``classes`` are the distinct labels; for exactly two, ``positive`` is the rarer one (the
    larger in sort order on a tie) and ``positive_rate`` its share, else both are None.
    ``scored_share`` is the share of labelled rows with a probability (``score`` or
    ``probabilities``).
    """

    rows: int
    classes: tuple[str, ...]
    positive: str | None
    positive_rate: float | None
    scored_share: float

    def default_metric(self, task: str) -> LabelMetric | None:
        """:func:`default_quality_metric` for these labels (scored: 95 % of rows or more).

        F1 is taken on the rarer class. Log loss does not depend on which class is called
        positive, as long as P(positive) is read right: it is the larger class in sort order,
        whose probability a binary classifier logs as ``score`` (``classes_[1]``), so rows
        with a ``score`` but no ``probabilities`` are read correctly.
        """
        scored = self.scored_share >= 0.95
        positive: str | int = self.positive if self.positive is not None else 1
        if scored and len(self.classes) == 2:
            positive = self.classes[1]
        return default_quality_metric(task, self.positive_rate, scored=scored, positive=positive)


def label_profile(
    con: duckdb.DuckDBPyConnection, scope: Scope, *, table: str | None = None
) -> LabelProfile:
    """Class balance and score coverage of the scope's labelled served rows (one query).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    scope : Scope
        Which model and experiment.
    table : str, optional
        A temporary table holding those rows where ``ok`` is true and ``label`` is not NULL
        (columns ``label``, ``scored``, ``ok``; its other rows are failed or unlabelled
        requests): :func:`~arbiter.analysis.aggregate.aggregate_experiment`'s ``keep_table``
        (A/B: the labelled rows, without ``exclude_crossed``; shadow: every successful
        served row), read instead of joining the served rows with the labels again.
        Interpolated into SQL: pass an identifier of your own.
    """
    if table is not None:
        rows = con.execute(
            f"SELECT label, count(*), count(*) FILTER (WHERE scored) FROM {table} "
            "WHERE ok AND label IS NOT NULL GROUP BY label ORDER BY label"
        ).fetchall()
    else:
        rows = con.execute(
            f"""
            SELECT label, count(*), count(*) FILTER (WHERE probabilities IS NOT NULL
                                                      OR score IS NOT NULL)
            FROM labeled WHERE {scope.where()} AND {_SERVED_LABELED}
            GROUP BY label ORDER BY label
            """,
            scope.params,
        ).fetchall()
    total = sum(int(r[1]) for r in rows)
    scored = sum(int(r[2]) for r in rows)
    classes = tuple(str(r[0]) for r in rows)
    positive = rate = None
    if len(rows) == 2:
        (c0, n0, _), (c1, n1, _) = rows
        positive, count = (str(c0), int(n0)) if n0 < n1 else (str(c1), int(n1))
        rate = count / total
    return LabelProfile(total, classes, positive, rate, scored / total if total else 0.0)


# --- AUC -------------------------------------------------------------------------------------


def _check_auc(metric: LabelMetric) -> Literal["roc_auc", "pr_auc"]:
    if metric.label_metric not in AUC_METRICS:
        raise InvalidInputError(
            f"auc_comparison compares {' and '.join(AUC_METRICS)}; {metric.label_metric!r} "
            "has a row form (label_row_sql)",
            field="label_metric",
        )
    return metric.label_metric  # type: ignore[return-value]


def _relative(diff: float, base: float) -> float | None:
    return finite_or_none(diff / base) if base and math.isfinite(base) else None


def auc_comparison(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    metric: LabelMetric,
    champion: str,
    challenger: str,
    *,
    alpha: float,
    n_boot: int = N_BOOT,
    random_state: int | None = 0,
    name: str | None = None,
) -> dict[str, Any]:
    """ROC-AUC or PR-AUC of two served arms and their difference, with a unit-cluster bootstrap.

    Reads the scope's labelled, successful, served rows of the two arms that have a
    probability of the positive class (rows without one are left out and not counted), with
    unit ``coalesce(unit_id, request_id)``. Units served by more than one arm of the scope are
    excluded and counted (``crossed_units``), as for every other metric.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    scope : Scope
        Model and experiment.
    metric : LabelMetric
        ``roc_auc`` or ``pr_auc`` (average precision), with its ``positive`` class.
    champion, challenger : str
        The two arms (``arm`` column).
    alpha : float
        CI coverage ``1 − alpha``.
    n_boot : int, default :data:`N_BOOT`
        Bootstrap replicates per arm.
    random_state : int or None, default 0
        Seed: by default the same log always gives the same interval.
    name : str, optional
        The metric's name in ``arbiter.yaml`` (default: ``metric.label_metric``).

    Returns
    -------
    dict
        The keys of ``MetricResult.to_dict()``: ``name``, ``arm`` (the challenger),
        ``estimate`` (challenger − champion), ``ci_low``, ``ci_high``, ``p_value``,
        ``relative_lift``, ``arms`` ``{arm: {units, mean, rows}}``, ``direction``, plus
        ``standard_error``, ``crossed_units``, ``method`` and ``status``
        (see :class:`~arbiter.stats.auc.AUCDifferenceResult`). Undefined numbers are None.
    """
    kind = _check_auc(metric)
    pos = positive_text(metric)
    params = {
        **scope.params,
        "lm_pos": pos,
        "lm_pos_path": json_path(pos),
        "lm_champion": champion,
        "lm_challenger": challenger,
    }
    crossed_sql = f"""
        SELECT coalesce(unit_id, request_id) AS unit FROM served WHERE {scope.where()}
        GROUP BY unit HAVING count(DISTINCT arm) > 1
    """
    crossed_row = con.execute(f"SELECT count(*) FROM ({crossed_sql})", scope.params).fetchone()
    crossed = int(crossed_row[0]) if crossed_row else 0
    data = con.execute(
        f"""
        SELECT arm = $lm_challenger AS is_b, (label = $lm_pos)::DOUBLE AS y, p,
               dense_rank() OVER (PARTITION BY arm ORDER BY unit) - 1 AS unit_ix
        FROM (
            SELECT arm, coalesce(unit_id, request_id) AS unit, label,
                   {_p_positive("$lm_pos_path")} AS p
            FROM labeled
            WHERE {scope.where()} AND {_SERVED_LABELED}
              AND arm IN ($lm_champion, $lm_challenger)
        ) AS t
        WHERE p IS NOT NULL AND isfinite(p) AND unit NOT IN ({crossed_sql})
        """,
        params,
    ).fetchnumpy()
    is_b = np.asarray(data["is_b"], dtype=bool)
    y, p = np.asarray(data["y"], dtype=float), np.asarray(data["p"], dtype=float)
    units = np.asarray(data["unit_ix"], dtype=np.int64)
    res = auc_difference_test(
        y[~is_b], p[~is_b], units[~is_b], y[is_b], p[is_b], units[is_b],
        metric=kind, alpha=alpha, n_resamples=n_boot, random_state=random_state,
    )  # fmt: skip
    return {
        "name": name or kind,
        "label_metric": kind,
        "arm": challenger,
        "estimate": finite_or_none(res.difference),
        "ci_low": finite_or_none(res.ci_low),
        "ci_high": finite_or_none(res.ci_high),
        "p_value": finite_or_none(res.p_value),
        "relative_lift": _relative(res.difference, res.estimate_a),
        "standard_error": finite_or_none(res.standard_error),
        "arms": {
            champion: {
                "units": res.units_a,
                "mean": finite_or_none(res.estimate_a),
                "rows": res.rows_a,
            },
            challenger: {
                "units": res.units_b,
                "mean": finite_or_none(res.estimate_b),
                "rows": res.rows_b,
            },
        },
        "direction": metric.better,
        "crossed_units": crossed,
        "method": res.method,
        "status": res.status,
    }


# --- shadow (paired) ---------------------------------------------------------------------------


def _side_columns(side: str) -> str:
    # One model's columns of the pairs table under the names label_row_sql reads.
    return (
        f"unit, label, pred_{side} AS prediction, score_{side} AS score, "
        f"probs_{side} AS probabilities"
    )


def paired_label_metrics(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    metrics: Mapping[str, LabelMetric],
    *,
    alpha: float = 0.05,
    n_boot: int = N_BOOT,
    random_state: int | None = 0,
    pairs_table: str | None = None,
) -> list[dict[str, Any]]:
    """Every label metric of a shadow experiment: champion, challenger and paired difference.

    Pairs each labelled served row with the shadow challenger's row for the same
    ``(request_id, row_index)`` (both without error), so both models are judged on exactly
    the same rows. Row metrics sum per unit and use the paired delta method
    (:func:`arbiter.stats.paired_ratio_test`); ``roc_auc``/``pr_auc`` use the paired unit
    bootstrap (:func:`arbiter.stats.paired_auc_difference_test`).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    scope : Scope
        Model and (shadow) experiment.
    metrics : mapping of str to LabelMetric
        The metrics by name, in report order.
    alpha : float, default 0.05
        CI coverage ``1 − alpha``.
    n_boot, random_state
        For the AUC bootstraps (see :func:`auc_comparison`).
    pairs_table : str, optional
        A temporary table of the same pairs, labelled or not, that the caller already built,
        as its ``paired`` rows
        (:func:`arbiter.analysis.aggregate.aggregate_experiment`'s ``keep_table``: columns
        ``paired``, ``unit``, ``label``, ``pred_a``/``pred_b``, ``score_a``/``score_b``,
        ``probs_a``/``probs_b``), read instead of joining served, shadow and label rows again
        (on a 10 M-event log that join was 3.4 of the analysis's ~20 CPU s). Interpolated
        into SQL: pass an identifier of your own.

    Returns
    -------
    list of dict
        One per metric, in the keys of ``MetricResult.to_dict()`` with arms ``champion`` and
        ``challenger``: ``name``, ``label_metric``, ``arm`` ("challenger"), ``estimate``
        (challenger − champion), ``ci_low``, ``ci_high``, ``p_value``, ``relative_lift``,
        ``arms`` ``{side: {units, mean}}``, ``direction``, ``pairs`` (labelled pairs read),
        ``method``, ``status``.
    """
    base: dict[str, Any] = dict(scope.params)
    pairs = f"""
        SELECT coalesce(s.unit_id, s.request_id) AS unit, f.label,
               s.prediction AS pred_a, c.prediction AS pred_b,
               s.score AS score_a, c.score AS score_b,
               s.probabilities AS probs_a, c.probabilities AS probs_b
        FROM served AS s
        JOIN shadowed AS c USING (request_id, row_index)
        JOIN latest_feedback AS f USING (request_id, row_index)
        WHERE {scope.where("s")} AND {scope.where("c")}
          AND s.error IS NULL AND c.error IS NULL AND f.label IS NOT NULL
    """
    if pairs_table is not None:
        base = {}
        pairs = (
            "SELECT unit, label, pred_a, pred_b, score_a, score_b, probs_a, probs_b "
            f"FROM {pairs_table} WHERE paired AND label IS NOT NULL"
        )
    out = []
    for name, metric in metrics.items():
        if metric.label_metric in AUC_METRICS:
            out.append(_paired_auc(con, base, pairs, name, metric, alpha, n_boot, random_state))
        else:
            out.append(_paired_ratio(con, base, pairs, name, metric, alpha))
    return out


def _paired_ratio(
    con: duckdb.DuckDBPyConnection,
    base: dict[str, Any],
    pairs: str,
    name: str,
    metric: LabelMetric,
    alpha: float,
) -> dict[str, Any]:
    num, den, params = label_row_sql(metric)
    data = con.execute(
        f"""
        WITH pairs AS ({pairs}),
        a AS (SELECT unit, sum({num}) AS m, sum({den}) AS d
              FROM (SELECT {_side_columns("a")} FROM pairs) GROUP BY unit),
        b AS (SELECT unit, sum({num}) AS m, sum({den}) AS d
              FROM (SELECT {_side_columns("b")} FROM pairs) GROUP BY unit),
        n AS (SELECT count(*) AS pairs FROM pairs)
        SELECT a.m AS m_a, a.d AS d_a, b.m AS m_b, b.d AS d_b, n.pairs
        FROM a JOIN b USING (unit), n
        """,
        {**base, **params},
    ).fetchnumpy()
    res = paired_ratio_test(data["m_a"], data["d_a"], data["m_b"], data["d_b"], alpha=alpha)
    n_pairs = int(data["pairs"][0]) if len(data["pairs"]) else 0
    units = {
        # Units that contribute to each side's denominator (recall: units with a positive).
        "champion": int(np.count_nonzero(data["d_a"])),
        "challenger": int(np.count_nonzero(data["d_b"])),
    }
    return _paired_dict(name, metric, res.estimate_a, res.estimate_b, res, units, n_pairs)


def _paired_auc(
    con: duckdb.DuckDBPyConnection,
    base: dict[str, Any],
    pairs: str,
    name: str,
    metric: LabelMetric,
    alpha: float,
    n_boot: int,
    random_state: int | None,
) -> dict[str, Any]:
    kind = _check_auc(metric)
    pos = positive_text(metric)
    p_a = _p_positive("$lm_pos_path", "probs_a", "score_a")
    p_b = _p_positive("$lm_pos_path", "probs_b", "score_b")
    data = con.execute(
        f"""
        SELECT (label = $lm_pos)::DOUBLE AS y, p_a, p_b,
               dense_rank() OVER (ORDER BY unit) - 1 AS unit_ix
        FROM (SELECT unit, label, {p_a} AS p_a, {p_b} AS p_b FROM ({pairs}))
        WHERE p_a IS NOT NULL AND p_b IS NOT NULL AND isfinite(p_a) AND isfinite(p_b)
        """,
        {**base, "lm_pos": pos, "lm_pos_path": json_path(pos)},
    ).fetchnumpy()
    res = paired_auc_difference_test(
        np.asarray(data["y"], dtype=float),
        np.asarray(data["p_a"], dtype=float),
        np.asarray(data["p_b"], dtype=float),
        np.asarray(data["unit_ix"], dtype=np.int64),
        metric=kind, alpha=alpha, n_resamples=n_boot, random_state=random_state,
    )  # fmt: skip
    units = {"champion": res.units_a, "challenger": res.units_b}
    return _paired_dict(name, metric, res.estimate_a, res.estimate_b, res, units, res.rows_a)


def _paired_dict(
    name: str,
    metric: LabelMetric,
    est_a: float,
    est_b: float,
    res: Any,
    units: dict[str, int],
    n_pairs: int,
) -> dict[str, Any]:
    diff = est_b - est_a
    return {
        "name": name,
        "label_metric": metric.label_metric,
        "arm": "challenger",
        "estimate": finite_or_none(diff),
        "ci_low": finite_or_none(res.ci_low),
        "ci_high": finite_or_none(res.ci_high),
        "p_value": finite_or_none(res.p_value),
        "relative_lift": _relative(diff, est_a),
        "arms": {
            "champion": {"units": units["champion"], "mean": finite_or_none(est_a)},
            "challenger": {"units": units["challenger"], "mean": finite_or_none(est_b)},
        },
        "direction": metric.better,
        "pairs": n_pairs,
        "method": res.method,
        "status": res.status,
    }


#: The verdict criteria that carry the test of the model-quality metric.
_QUALITY_CRITERIA = ("primary_improvement", "primary_no_harm", "non_inferiority")


def name_regression_loss(verdict: Verdict, loss: str, mode: str) -> Verdict:
    """The verdict with its quality criteria naming the regressor's loss.

    A regressor is judged on ``loss`` (``squared`` or ``absolute``) error, lower is better:
    per row and paired in a shadow test (the paired t test says so itself), per randomisation
    unit in an A/B test, whose ratio or Welch test does not know what it compares. A reader of
    the verdict (``arbiter analyze``, the decision record) then sees which loss decided.
    """
    scope = "per row, paired" if mode == "shadow" else "mean per unit"
    name = f"{loss} error ({scope}, lower is better)"
    reasons = tuple(
        replace(c, detail=f"{name}: {c.detail}")
        if c.name in _QUALITY_CRITERIA and f"{loss} loss" not in c.detail
        else c
        for c in verdict.reasons
    )
    return replace(verdict, reasons=reasons)


__all__ = [
    "LOG_LOSS_EPS",
    "N_BOOT",
    "RARE_POSITIVE_RATE",
    "ROW_METRICS",
    "LabelProfile",
    "auc_comparison",
    "default_quality_metric",
    "json_path",
    "label_profile",
    "label_row_sql",
    "name_regression_loss",
    "paired_label_metrics",
    "positive_text",
]
