"""The gate's statistics: champion and challenger outputs on the same rows in, criteria out.

Pure numpy over :mod:`arbiter.stats.paired` (no models, no registry), so it is tested on
arrays. Model ``a`` is the champion and ``b`` the challenger throughout.

Primary test per metric: ``roc_auc`` → DeLong; ``accuracy`` → McNemar; ``rmse``/``mse`` →
paired t on squared losses, ``mae`` → on absolute losses; any other metric → paired bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbiter.errors import InvalidInputError
from arbiter.gate.result import LOWER_IS_BETTER, Comparison, GateConfig, GateCriterion
from arbiter.stats.paired import (
    BOOTSTRAP_METRICS,
    delong_test,
    mcnemar_test,
    paired_bootstrap,
    paired_t_test,
)
from arbiter.stats.results import PairedTestResult

# Metrics defined on scores (P(positive)) rather than predicted labels.
_SCORE_METRICS = frozenset({"roc_auc", "log_loss"})
_BINARY_METRICS = frozenset({"precision", "recall", "f1", "roc_auc", "log_loss"})
_REGRESSION_METRICS = frozenset({"mae", "mse", "rmse", "r2"})


@dataclass(frozen=True, slots=True)
class ModelOutputs:
    """One model's outputs on the holdout rows.

    ``predictions`` are labels (classifiers) or values (regressors); ``scores`` the
    probability of the positive class for binary classifiers with ``predict_proba``.
    """

    predictions: np.ndarray
    scores: np.ndarray | None = None


def default_gate_metric(classes: Sequence[Any] | None, has_scores: bool) -> str:
    """``roc_auc`` for binary classifiers with scores, ``accuracy`` other classifiers, ``rmse``."""
    if classes is None:
        return "rmse"
    return "roc_auc" if len(classes) == 2 and has_scores else "accuracy"


def _improvement(metric: str, champion: float, challenger: float) -> float:
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def _metric_inputs(
    metric: str, y: np.ndarray, out: ModelOutputs, pos_label: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, pred)`` as the vectorised metric expects (binary metrics: positive label = 1)."""
    if metric in _SCORE_METRICS:
        return (y == pos_label).astype(np.int64), np.asarray(out.scores, dtype=np.float64)
    if metric in _BINARY_METRICS:
        return (y == pos_label).astype(np.int64), (out.predictions == pos_label).astype(np.int64)
    if metric in _REGRESSION_METRICS:
        return y.astype(np.float64), out.predictions.astype(np.float64)
    return y, out.predictions


def _slice_labels(values: np.ndarray) -> np.ndarray:
    # Integral floats read from CSV/Parquet (1.0) print as the integers they stand for.
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.size, dtype=object)
    for i, v in enumerate(arr.tolist()):  # the distinct values only: a handful
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        out[i] = "null" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return out


def _slice_criteria(
    metric: str,
    y_m: np.ndarray,
    a_m: np.ndarray,
    b_m: np.ndarray,
    slices: Mapping[str, np.ndarray],
    config: GateConfig,
) -> list[GateCriterion]:
    fn = BOOTSTRAP_METRICS[metric]
    criteria = []
    for column, raw in slices.items():
        distinct, inverse = np.unique(raw, return_inverse=True)
        if distinct.size > config.max_slice_values:
            raise InvalidInputError(
                f"slice column {column!r} has {distinct.size} distinct values (more than "
                f"{config.max_slice_values}); bin it into a few groups first",
                field="slices",
            )
        labels = _slice_labels(distinct)
        for code, label in enumerate(labels):
            mask = inverse == code
            n = int(mask.sum())
            champion = float(fn(y_m[mask], a_m[mask]))
            challenger = float(fn(y_m[mask], b_m[mask]))
            change = _improvement(metric, champion, challenger)
            name = f"slice:{column}={label}"
            if n < config.min_slice_rows or not math.isfinite(change):
                criteria.append(
                    GateCriterion(
                        name, True, change, -config.slice_tolerance,
                        f"not judged: {n} rows (need {config.min_slice_rows}) or {metric} "
                        "undefined on this slice",
                        n, champion, challenger, "insufficient_data",
                    )
                )  # fmt: skip
                continue
            met = change >= -config.slice_tolerance
            criteria.append(
                GateCriterion(
                    name, met, change, -config.slice_tolerance,
                    f"{metric} champion {champion:.4f} → challenger {challenger:.4f} on {n} rows; "
                    f"change {change:+.4f} must be >= {-config.slice_tolerance:+.4f}",
                    n, champion, challenger,
                )
            )  # fmt: skip
    return criteria


def _favours_challenger(name: str, result: PairedTestResult) -> bool:
    # difference = b − a: a gain for scores and accuracy, a loss increase for paired t.
    d = result.difference
    return math.isfinite(d) and (d < 0 if name == "paired_t" else d > 0)


def compare_models(
    y_true: Any,
    champion: ModelOutputs,
    challenger: ModelOutputs,
    *,
    classes: Sequence[Any] | None,
    slices: Mapping[str, Any] | None = None,
    config: GateConfig | None = None,
) -> Comparison:
    """Compare two models' outputs on the same rows against the gate's criteria.

    Parameters
    ----------
    y_true : array-like
        True labels or targets.
    champion, challenger : ModelOutputs
        Outputs of each model on the rows of ``y_true``, in the same order.
    classes : sequence or None
        The classifiers' classes (``classes_``; the positive class of a binary problem is
        the last, as in scikit-learn), or None for regressors.
    slices : mapping of str to array-like, optional
        Segment values per row, by column name (the columns of ``config.slices``).
    config : GateConfig, optional

    Returns
    -------
    Comparison
        Criteria ``min_improvement``, ``significance`` (if required) and one
        ``slice:<column>=<value>`` per slice value, plus every paired test that applies.
    """
    config = config or GateConfig()
    y = np.asarray(y_true)
    n = int(y.size)
    a, b = champion, challenger
    has_scores = a.scores is not None and b.scores is not None
    metric = config.metric or default_gate_metric(classes, has_scores)
    task = "regression" if classes is None else "classification"
    binary = classes is not None and len(classes) == 2
    if metric in _BINARY_METRICS and not binary:
        raise InvalidInputError(f"metric {metric!r} needs a binary classifier", field="metric")
    if metric in _SCORE_METRICS and not has_scores:
        raise InvalidInputError(
            f"metric {metric!r} needs predict_proba on both models", field="metric"
        )
    if task == "classification" and metric in _REGRESSION_METRICS:
        raise InvalidInputError(f"metric {metric!r} is for regressors", field="metric")
    if task == "regression" and metric not in _REGRESSION_METRICS:
        raise InvalidInputError(f"metric {metric!r} is for classifiers", field="metric")
    pos_label = classes[-1] if binary and classes is not None else 1

    tests: dict[str, PairedTestResult] = {}
    if task == "classification":
        tests["mcnemar"] = mcnemar_test(y, a.predictions, b.predictions, alpha=config.alpha)
        if binary and has_scores:
            tests["delong"] = delong_test(
                y, a.scores, b.scores, pos_label=pos_label, alpha=config.alpha
            )
    else:
        loss = "absolute" if metric == "mae" else "squared"
        tests["paired_t"] = paired_t_test(y, a.predictions, b.predictions, loss=loss)
    y_m, a_m = _metric_inputs(metric, y, a, pos_label)
    _, b_m = _metric_inputs(metric, y, b, pos_label)
    tests["bootstrap"] = paired_bootstrap(
        y_m, a_m, b_m, metric, n_resamples=config.n_resamples, alpha=config.alpha,
        method=config.bootstrap_method, random_state=config.seed,
    )  # fmt: skip
    primary = {"roc_auc": "delong", "accuracy": "mcnemar"}.get(metric)
    if metric in ("rmse", "mse", "mae"):
        primary = "paired_t"
    primary = primary if primary in tests else "bootstrap"

    fn = BOOTSTRAP_METRICS[metric]
    champion_score, challenger_score = float(fn(y_m, a_m)), float(fn(y_m, b_m))
    improvement = _improvement(metric, champion_score, challenger_score)
    observed = improvement
    unit = "absolute"
    if config.relative:
        unit = "relative to the champion"
        observed = improvement / abs(champion_score) if champion_score else math.nan
    met = math.isfinite(observed) and observed > config.min_improvement
    criteria = [
        GateCriterion(
            "min_improvement", met, observed, config.min_improvement,
            f"{metric}: champion {champion_score:.4f}, challenger {challenger_score:.4f}; "
            f"improvement ({unit}) {observed:+.4g} must be > {config.min_improvement:g}",
            n, champion_score, challenger_score,
        )
    ]  # fmt: skip
    if config.require_significance:
        test = tests[primary]
        significant = (
            math.isfinite(test.p_value)
            and test.p_value < config.alpha
            and _favours_challenger(primary, test)
        )
        criteria.append(
            GateCriterion(
                "significance", significant, test.p_value, config.alpha,
                f"{test.method}: p = {test.p_value:.4g} (must be < {config.alpha:g}, in the "
                f"challenger's favour); status {test.status}",
                n, test.estimate_a, test.estimate_b, test.status,
            )
        )  # fmt: skip
    if slices:
        columns = {c: np.asarray(v) for c, v in slices.items()}
        for column, values in columns.items():
            if values.shape != y.shape:
                raise InvalidInputError(
                    f"slice column {column!r} has {values.size} values for {n} rows",
                    field="slices",
                )
        criteria.extend(_slice_criteria(metric, y_m, a_m, b_m, columns, config))
    return Comparison(
        metric=metric,
        task=task,
        champion_score=champion_score,
        challenger_score=challenger_score,
        improvement=improvement,
        primary_test=primary,
        criteria=tuple(criteria),
        tests=tests,
        n=n,
    )


__all__ = ["ModelOutputs", "compare_models", "default_gate_metric"]
