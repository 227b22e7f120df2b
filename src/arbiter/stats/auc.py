"""ROC AUC and average precision with unit weights, and their unit-cluster bootstrap.

An AUC is not a sum over rows, so it has no per-unit sufficient statistic and no delta method:
its uncertainty when units (users) send several rows comes from resampling *units*. Resampling
units with replacement is the same as giving every row its unit's multinomial count as a
weight, so each replicate is a weighted AUC of the original rows. The rows are sorted once;
every replicate is then a few cumulative sums over tie groups, vectorised over replicates.

* :func:`roc_auc`, :func:`average_precision` -- point estimates, optionally weighted, equal to
  ``sklearn.metrics.roc_auc_score`` / ``average_precision_score`` (with ``sample_weight``).
* :func:`auc_difference_test` -- two independent arms (an A/B test): resample units within
  each arm.
* :func:`paired_auc_difference_test` -- two models scored on the same rows (shadow): resample
  units once and score both models on the same replicate.

Sign convention: ``difference = estimate_b − estimate_a`` (``a`` is the champion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse as _sparse
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN, check_alpha
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_OK,
    STATUS_SINGLE_CLASS,
    STATUS_ZERO_VARIANCE,
)

AUCMetric = Literal["roc_auc", "pr_auc"]
AUC_METRICS: tuple[AUCMetric, ...] = ("roc_auc", "pr_auc")

# Replicates x max(rows, units) held in memory per batch (8 bytes each): about 16 MB per array.
_BATCH_ELEMENTS = 2_000_000


@dataclass(frozen=True, slots=True)
class AUCDifferenceResult:
    """An AUC (ROC or PR) of two arms or models, their difference ``b − a`` and its CI.

    ``standard_error`` is the standard deviation of the bootstrap differences; the CI is
    ``difference ± z·standard_error`` and ``p_value`` the matching two-sided z-test, so the CI
    excludes 0 exactly when ``p_value < alpha``. ``units_*``/``rows_*`` count what was
    resampled (for a paired test both sides have the same). ``status`` is ``"single_class"``
    when an arm lacks positives or negatives, ``"insufficient_data"`` with fewer than two units
    in an arm, ``"zero_variance"`` when every replicate gives the same difference.
    """

    metric: str
    estimate_a: float
    estimate_b: float
    difference: float
    standard_error: float
    ci_low: float
    ci_high: float
    p_value: float
    units_a: int
    units_b: int
    rows_a: int
    rows_b: int
    n_resamples: int
    alpha: float
    method: str
    status: str = STATUS_OK

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_metric(metric: str) -> AUCMetric:
    if metric not in AUC_METRICS:
        raise InvalidInputError(
            f"metric must be one of {', '.join(AUC_METRICS)}, got {metric!r}", field="metric"
        )
    return metric  # type: ignore[return-value]


def _check_rows(y_true: ArrayLike, scores: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise InvalidInputError(
            f"y_true and {name} must be one-dimensional and of the same length; got shapes "
            f"{y.shape} and {s.shape}",
            field=name,
        )
    if not np.all(np.isfinite(s)):
        raise InvalidInputError(f"{name} contains NaN or infinite values", field=name)
    if not np.all(np.isin(y, (0, 1))):
        raise InvalidInputError("y_true must hold 0/1 (or boolean) labels", field="y_true")
    return y.astype(float), s


class _Ranked:
    """Rows sorted by decreasing score once, as sparse (block x unit) count matrices.

    ``pos[g, u]`` (``neg[g, u]``) counts unit ``u``'s positive (negative) rows in block ``g``.
    A block is a tie group (rows with equal scores: one threshold, one point of the curve, as
    in sklearn) that holds a positive row, or a run of consecutive tie groups without one:
    both AUCs only read the negatives *before* a positive threshold, so merging those runs
    changes nothing and leaves about two blocks per positive row (few, for a rare class). A
    replicate that weights units by ``c`` then has per-block weights ``pos @ c``: one sparse
    product for all replicates, no per-row gather.
    """

    __slots__ = ("neg", "pos")

    def __init__(self, y: np.ndarray, scores: np.ndarray, unit: np.ndarray, n_units: int) -> None:
        order = np.argsort(-scores, kind="stable")
        ranked, y_sorted, unit_sorted = scores[order], y[order], unit[order]
        group = np.zeros(ranked.size, dtype=np.int64)
        group[1:] = np.cumsum(np.diff(ranked) != 0)
        n_groups = int(group[-1]) + 1 if group.size else 0
        has_pos = np.zeros(n_groups, dtype=bool)
        has_pos[group[y_sorted > 0]] = True
        starts = np.ones(n_groups, dtype=bool)
        starts[1:] = has_pos[1:] | has_pos[:-1]
        block = (np.cumsum(starts) - 1)[group]
        shape = (int(block[-1]) + 1 if block.size else 0, n_units)
        self.pos = _sparse.csr_matrix((y_sorted, (block, unit_sorted)), shape=shape)
        self.neg = _sparse.csr_matrix((1.0 - y_sorted, (block, unit_sorted)), shape=shape)

    def auc(self, metric: AUCMetric, unit_weights: np.ndarray) -> np.ndarray:
        """The AUC under each row of ``unit_weights`` (shape ``(B, n_units)``)."""
        pos = np.asarray(self.pos @ unit_weights.T).T  # (B, blocks), by decreasing score
        neg = np.asarray(self.neg @ unit_weights.T).T
        total_pos = pos.sum(axis=1)
        total_neg = neg.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "roc_auc":
                # P(score of a positive > score of a negative) + half the ties (Mann–Whitney).
                neg_below = total_neg[:, None] - np.cumsum(neg, axis=1)
                out = np.sum(pos * (neg_below + 0.5 * neg), axis=1) / (total_pos * total_neg)
                return np.where((total_pos > 0) & (total_neg > 0), out, np.nan)
            # Average precision: sum over thresholds of (recall step) x precision.
            tp = np.cumsum(pos, axis=1)
            predicted = tp + np.cumsum(neg, axis=1)
            precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
            out = np.sum(pos * precision, axis=1) / total_pos
            return np.where(total_pos > 0, out, np.nan)


def _auc(metric: str, y_true: ArrayLike, scores: ArrayLike, weights: ArrayLike | None) -> float:
    y, s = _check_rows(y_true, scores, "scores")
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != s.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise InvalidInputError(
            "weights must be finite, non-negative and one per row", field="weights"
        )
    metric = _check_metric(metric)
    if y.size == 0:
        return NAN
    # Each row its own unit, weighted by its weight.
    ranked = _Ranked(y, s, np.arange(y.size), y.size)
    return float(ranked.auc(metric, w[None, :])[0])


def roc_auc(y_true: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Area under the ROC curve, ties counting one half; nan without both classes.

    Equals ``sklearn.metrics.roc_auc_score(y_true, scores, sample_weight=weights)``.

    Parameters
    ----------
    y_true : array-like of 0/1
        1 marks the positive class.
    scores : array-like of float
        Higher means more likely positive (``P(positive)`` of a classifier).
    weights : array-like of float, optional
        Row weights (a unit-bootstrap replicate's counts).
    """
    return _auc("roc_auc", y_true, scores, weights)


def average_precision(
    y_true: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Average precision, the step-wise area under the precision–recall curve (PR-AUC).

    ``AP = Σ_k (R_k − R_{k−1}) · P_k`` over the distinct score thresholds, without the
    interpolation of the trapezoidal rule, which is optimistic (Davis & Goadrich 2006). Equals
    ``sklearn.metrics.average_precision_score(y_true, scores, sample_weight=weights)``; nan
    without positives.

    Parameters
    ----------
    y_true, scores, weights
        As for :func:`roc_auc`.
    """
    return _auc("pr_auc", y_true, scores, weights)


def _unit_index(units: ArrayLike, n: int, name: str) -> tuple[np.ndarray, int]:
    u = np.asarray(units)
    if u.shape != (n,):
        raise InvalidInputError(f"{name} must give one unit per row", field=name)
    _, index = np.unique(u, return_inverse=True)
    return index.reshape(-1), int(index.max()) + 1 if n else 0


def _replicates(rng: np.random.Generator, n_units: int, size: int) -> np.ndarray:
    """Unit counts of ``size`` bootstrap resamples, each ``n_units`` draws with replacement.

    Counting the draws (one ``bincount`` over all replicates, rows offset by ``n_units``) is
    about 4x faster than ``rng.multinomial`` and has the same distribution.
    """
    dtype = np.int32 if size * n_units < 2**31 else np.int64
    draws = rng.integers(0, n_units, size=(size, n_units), dtype=dtype)
    draws += (np.arange(size, dtype=dtype) * n_units)[:, None]
    counts = np.bincount(draws.ravel(), minlength=size * n_units)
    return counts.reshape(size, n_units).astype(float)


def _check_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 2:
        raise InvalidInputError(
            f"n_resamples must be an integer >= 2, got {n_resamples!r}", field="n_resamples"
        )


def _summarise(
    metric: AUCMetric,
    est_a: float,
    est_b: float,
    diffs: np.ndarray,
    counts: tuple[int, int, int, int],
    n_resamples: int,
    alpha: float,
    method: str,
) -> AUCDifferenceResult:
    diff = est_b - est_a
    diffs = diffs[np.isfinite(diffs)]  # a replicate without a class has no AUC
    if diffs.size < 2:
        return AUCDifferenceResult(
            metric, est_a, est_b, diff, NAN, NAN, NAN, NAN, *counts, n_resamples, alpha,
            method, STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    se = float(np.std(diffs, ddof=1))
    if se == 0.0:
        return AUCDifferenceResult(
            metric, est_a, est_b, diff, 0.0, diff, diff, NAN, *counts, n_resamples, alpha,
            method, STATUS_ZERO_VARIANCE,
        )  # fmt: skip
    z = float(_st.norm.ppf(1.0 - alpha / 2.0))
    p_value = float(2.0 * _st.norm.sf(abs(diff) / se))
    return AUCDifferenceResult(
        metric, est_a, est_b, diff, se, diff - z * se, diff + z * se, p_value, *counts,
        n_resamples, alpha, method,
    )  # fmt: skip


def _degenerate(
    metric: AUCMetric,
    est_a: float,
    est_b: float,
    counts: tuple[int, int, int, int],
    n_resamples: int,
    alpha: float,
    method: str,
    status: str,
) -> AUCDifferenceResult:
    return AUCDifferenceResult(
        metric, est_a, est_b, est_b - est_a, NAN, NAN, NAN, NAN, *counts, n_resamples, alpha,
        method, status,
    )  # fmt: skip


def auc_difference_test(
    y_a: ArrayLike,
    scores_a: ArrayLike,
    units_a: ArrayLike,
    y_b: ArrayLike,
    scores_b: ArrayLike,
    units_b: ArrayLike,
    *,
    metric: AUCMetric = "roc_auc",
    alpha: float = 0.05,
    n_resamples: int = 1000,
    random_state: int | np.random.Generator | None = None,
) -> AUCDifferenceResult:
    """Difference of the ROC AUC (or average precision) of two independent arms, by units.

    Parameters
    ----------
    y_a, scores_a, units_a : array-like
        The champion arm's labelled rows: 0/1 labels, the model's ``P(positive)`` and the
        randomisation unit of each row (a user id; any hashable values).
    y_b, scores_b, units_b : array-like
        The challenger arm's rows.
    metric : {"roc_auc", "pr_auc"}, default "roc_auc"
        ``pr_auc`` is :func:`average_precision`.
    alpha : float, default 0.05
        CI coverage ``1 − alpha``.
    n_resamples : int, default 1000
        Bootstrap replicates per arm. The standard error of a bootstrap SE is about
        ``SE/sqrt(2B)``: 1000 replicates give it to about 2 %.
    random_state : int or numpy Generator, optional
        Seed for reproducible resampling.

    Returns
    -------
    AUCDifferenceResult

    Notes
    -----
    The arms are independent (each unit sees one arm), so each arm is resampled on its own:
    ``K`` units drawn with replacement from its ``K`` units (cluster bootstrap, Davison &
    Hinkley 1997, §3.8), each drawn unit bringing all its rows. Resampling rows instead would
    understate the variance whenever a unit's rows are correlated. The difference's standard
    error is the standard deviation of ``AUC_b* − AUC_a*`` and the interval is normal
    (the bootstrap-SE interval, Efron & Tibshirani 1993, §6), which keeps the p-value
    continuous and consistent with the interval.
    """
    metric = _check_metric(metric)
    alpha = check_alpha(alpha)
    _check_resamples(n_resamples)
    ya, sa = _check_rows(y_a, scores_a, "scores_a")
    yb, sb = _check_rows(y_b, scores_b, "scores_b")
    ia, ka = _unit_index(units_a, ya.size, "units_a")
    ib, kb = _unit_index(units_b, yb.size, "units_b")
    counts = (ka, kb, int(ya.size), int(yb.size))
    method = f"unit-cluster bootstrap ({n_resamples} resamples per arm) of {metric} difference"
    ranked_a, ranked_b = _Ranked(ya, sa, ia, ka), _Ranked(yb, sb, ib, kb)
    est_a = float(ranked_a.auc(metric, np.ones((1, ka)))[0]) if ya.size else NAN
    est_b = float(ranked_b.auc(metric, np.ones((1, kb)))[0]) if yb.size else NAN
    if math.isnan(est_a) or math.isnan(est_b):
        status = STATUS_SINGLE_CLASS if ya.size and yb.size else STATUS_INSUFFICIENT_DATA
        return _degenerate(metric, est_a, est_b, counts, n_resamples, alpha, method, status)
    if ka < 2 or kb < 2:
        return _degenerate(
            metric, est_a, est_b, counts, n_resamples, alpha, method, STATUS_INSUFFICIENT_DATA
        )
    rng = np.random.default_rng(random_state)
    reps = np.empty((2, n_resamples))
    for side, (ranked, k, rows) in enumerate(((ranked_a, ka, ya.size), (ranked_b, kb, yb.size))):
        batch = max(1, _BATCH_ELEMENTS // max(k, rows))
        for start in range(0, n_resamples, batch):
            size = min(batch, n_resamples - start)
            reps[side, start : start + size] = ranked.auc(metric, _replicates(rng, k, size))
    return _summarise(metric, est_a, est_b, reps[1] - reps[0], counts, n_resamples, alpha, method)


def paired_auc_difference_test(
    y_true: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    units: ArrayLike,
    *,
    metric: AUCMetric = "roc_auc",
    alpha: float = 0.05,
    n_resamples: int = 1000,
    random_state: int | np.random.Generator | None = None,
) -> AUCDifferenceResult:
    """Difference of two models' ROC AUC (or average precision) on the same rows, by units.

    For a shadow test: both models scored every row. One set of unit resamples is drawn and
    both models are scored on each, so the correlation between them (the reason a paired
    comparison is powerful) is kept, and so is the correlation of a unit's rows.

    Parameters
    ----------
    y_true : array-like of 0/1
        Labels of the paired rows.
    scores_a, scores_b : array-like of float
        Champion's and challenger's ``P(positive)`` on the same rows.
    units : array-like
        The unit of each row (a request without a unit is its own unit).
    metric, alpha, n_resamples, random_state
        As for :func:`auc_difference_test`.

    Returns
    -------
    AUCDifferenceResult
        ``units_a == units_b`` and ``rows_a == rows_b``.

    Notes
    -----
    For ROC AUC with one row per unit, DeLong's test (:func:`arbiter.stats.delong_test`) is
    the closed form of the same comparison; this bootstrap also covers average precision,
    which has no DeLong variance, and units with several rows.
    """
    metric = _check_metric(metric)
    alpha = check_alpha(alpha)
    _check_resamples(n_resamples)
    y, sa = _check_rows(y_true, scores_a, "scores_a")
    _, sb = _check_rows(y_true, scores_b, "scores_b")
    index, k = _unit_index(units, y.size, "units")
    counts = (k, k, int(y.size), int(y.size))
    method = f"paired unit-cluster bootstrap ({n_resamples} resamples) of {metric} difference"
    ranked_a, ranked_b = _Ranked(y, sa, index, k), _Ranked(y, sb, index, k)
    ones = np.ones((1, k))
    est_a = float(ranked_a.auc(metric, ones)[0]) if y.size else NAN
    est_b = float(ranked_b.auc(metric, ones)[0]) if y.size else NAN
    if math.isnan(est_a) or math.isnan(est_b):
        status = STATUS_SINGLE_CLASS if y.size else STATUS_INSUFFICIENT_DATA
        return _degenerate(metric, est_a, est_b, counts, n_resamples, alpha, method, status)
    if k < 2:
        return _degenerate(
            metric, est_a, est_b, counts, n_resamples, alpha, method, STATUS_INSUFFICIENT_DATA
        )
    rng = np.random.default_rng(random_state)
    diffs = np.empty(n_resamples)
    batch = max(1, _BATCH_ELEMENTS // max(k, y.size))
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        weights = _replicates(rng, k, size)
        diffs[start : start + size] = ranked_b.auc(metric, weights) - ranked_a.auc(metric, weights)
    return _summarise(metric, est_a, est_b, diffs, counts, n_resamples, alpha, method)


__all__ = [
    "AUC_METRICS",
    "AUCDifferenceResult",
    "AUCMetric",
    "auc_difference_test",
    "average_precision",
    "paired_auc_difference_test",
    "roc_auc",
]
