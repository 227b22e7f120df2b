"""Paired comparisons of two models scored on the same rows (offline holdouts, shadow traffic).

Because both models see identical inputs, row-level outcomes are correlated and a paired test
is far more powerful than comparing two independent samples. Functions take aligned arrays
``(y_true, a, b)``; they are vectorised, which is fine at holdout scale.

* :func:`mcnemar_test` — accuracy of two classifiers (McNemar 1947), exact or chi-square.
* :func:`delong_test` — two correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988) with the
  O(n log n) midrank algorithm of Sun & Xu (2014).
* :func:`paired_bootstrap` — any metric, percentile or BCa interval (``scipy.stats.bootstrap``).
* :func:`paired_t_test` — per-row losses of two regressors (``scipy.stats.ttest_rel``).

Sign convention: ``difference = estimate_b − estimate_a``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import (
    NAN,
    Alternative,
    check_alpha,
    check_alternative,
    interval,
    p_value_from_statistic,
)
from arbiter.stats.results import (
    STATUS_INSUFFICIENT_DATA,
    STATUS_NO_DISCORDANT,
    STATUS_OK,
    STATUS_SINGLE_CLASS,
    STATUS_ZERO_VARIANCE,
    PairedTestResult,
)

Metric = Callable[[np.ndarray, np.ndarray], float]
Loss = Literal["squared", "absolute"] | Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Below this many discordant pairs :func:`mcnemar_test` uses the exact binomial test by default
#: (a common rule of thumb: the chi-square approximation is poor for small ``b + c``).
MCNEMAR_EXACT_BELOW = 25


def _aligned(y_true: ArrayLike, a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.asarray(x) for x in (y_true, a, b))
    for name, arr in zip(("y_true", "a", "b"), arrays, strict=True):
        if arr.ndim != 1:
            raise InvalidInputError(
                f"{name} must be one-dimensional, got shape {arr.shape}", field=name
            )
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise InvalidInputError(
            "y_true, a and b must have the same length; got "
            f"{arrays[0].size}, {arrays[1].size}, {arrays[2].size}",
            field="y_true",
        )
    return arrays


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    try:
        out = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric", field=name) from exc
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(f"{name} contains NaN or infinite values", field=name)
    return out


# --------------------------------------------------------------------------- McNemar


def mcnemar_test(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    exact: bool | None = None,
    correction: bool = True,
    alpha: float = 0.05,
) -> PairedTestResult:
    """McNemar's test that two classifiers have the same accuracy on the same rows.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of labels
        True and predicted labels (any hashable labels; binary or multi-class).
    exact : bool, optional
        Exact binomial test on the discordant pairs. Default: exact when there are fewer than
        :data:`MCNEMAR_EXACT_BELOW` discordant pairs, else the chi-square test.
    correction : bool, default True
        Continuity correction of the chi-square statistic (Edwards 1948).
    alpha : float, default 0.05
        For the CI of the accuracy difference.

    Returns
    -------
    PairedTestResult
        ``estimate_a``/``estimate_b`` are the accuracies. ``statistic`` and ``p_value`` equal
        ``statsmodels.stats.contingency_tables.mcnemar``: ``min(n10, n01)`` with the two-sided
        exact binomial p-value, or ``(|n10 − n01| − c)²/(n10 + n01)`` with χ²₁. ``status`` is
        ``"no_discordant_pairs"`` (p = 1) when the models are right and wrong on the same rows.

    Notes
    -----
    ``n10`` counts rows only ``a`` gets right and ``n01`` rows only ``b`` gets right
    (McNemar 1947, *Psychometrika* 12:153–157). The CI is the Wald interval for a difference
    of dependent proportions, ``(n01 − n10)/n ± z·sqrt(n10 + n01 − (n01 − n10)²/n)/n``
    (Agresti, *Categorical Data Analysis*, comparing dependent proportions).
    """
    y, a, b = _aligned(y_true, pred_a, pred_b)
    alpha = check_alpha(alpha)
    n = int(y.size)
    correct_a = a == y
    correct_b = b == y
    n10 = int(np.sum(correct_a & ~correct_b))
    n01 = int(np.sum(~correct_a & correct_b))
    acc_a = float(correct_a.mean()) if n else NAN
    acc_b = float(correct_b.mean()) if n else NAN
    discordant = n10 + n01
    use_exact = discordant < MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    if use_exact:
        method = "McNemar exact binomial test"
    else:
        method = "McNemar chi-square test" + (" with continuity correction" if correction else "")
    if n == 0:
        return PairedTestResult(
            NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, alpha, method, STATUS_INSUFFICIENT_DATA
        )
    diff = (n01 - n10) / n
    se = math.sqrt(max(discordant - (n01 - n10) ** 2 / n, 0.0)) / n
    lo, hi = interval(diff, se, alpha, "two-sided")
    if discordant == 0:
        return PairedTestResult(
            0.0, 1.0, acc_a, acc_b, diff, lo, hi, n, alpha, method, STATUS_NO_DISCORDANT
        )
    if use_exact:
        statistic = float(min(n10, n01))
        # Two-sided exact p-value: double the smaller tail of Binomial(n10 + n01, 1/2).
        p_value = min(1.0, 2.0 * float(_st.binom.cdf(statistic, discordant, 0.5)))
    else:
        statistic = (abs(n10 - n01) - int(correction)) ** 2 / discordant
        p_value = float(_st.chi2.sf(statistic, 1))
    return PairedTestResult(statistic, p_value, acc_a, acc_b, diff, lo, hi, n, alpha, method)


# --------------------------------------------------------------------------- DeLong


def _binary_labels(y: np.ndarray, pos_label: Any) -> np.ndarray:
    classes = np.unique(y)
    if classes.size > 2:
        raise InvalidInputError(
            f"y_true must be binary for ROC AUC; found {classes.size} classes", field="y_true"
        )
    if classes.size == 2 and pos_label not in classes:
        raise InvalidInputError(
            f"pos_label {pos_label!r} is not one of the labels {classes.tolist()}",
            field="pos_label",
        )
    return y == pos_label


def delong_components(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and DeLong covariance matrix for ``k`` score sets, by the Sun & Xu midrank method.

    Parameters
    ----------
    positives : ndarray of shape (k, m)
        Scores of the ``m`` positive rows under each of ``k`` models.
    negatives : ndarray of shape (k, n)
        Scores of the ``n`` negative rows. The covariance is nan unless ``m, n >= 2``.

    Returns
    -------
    auc : ndarray of shape (k,)
    covariance : ndarray of shape (k, k)
        ``S10/m + S01/n``, DeLong et al. (1988) eq. for the covariance of the AUC estimates.

    Notes
    -----
    Sun & Xu (2014), "Fast Implementation of DeLong's Algorithm for Comparing the Areas Under
    Correlated Receiver Operating Characteristic Curves", *IEEE Signal Processing Letters*
    21(11):1389–1393. With midranks ``T_z`` of the pooled scores, ``T_x`` within positives
    and ``T_y`` within negatives, the structural components are
    ``V10_i = (T_z,i − T_x,i)/n`` and ``V01_j = 1 − (T_z,m+j − T_y,j)/m`` and
    ``AUC = mean(V10)``: three sorts, O((m + n) log(m + n)) instead of O(mn) comparisons.
    Ties count one half, as in the Mann–Whitney statistic.
    """
    m, n = positives.shape[1], negatives.shape[1]
    tx, ty, tz = _delong_midranks(np.asarray(positives, float), np.asarray(negatives, float))
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    auc = v10.mean(axis=1)
    if m < 2 or n < 2:
        return auc, np.full((positives.shape[0],) * 2, np.nan)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def _sorted_midranks(values: np.ndarray) -> np.ndarray:
    """1-based midranks of an already sorted array, ties averaged, in its own order.

    A run of equal values at 0-based positions ``start .. end - 1`` shares the rank
    ``(start + 1 + end) / 2``: the same number ``scipy.stats.rankdata(method="average")``
    computes, exactly (integers halved).
    """
    size = values.size
    if size == 0:
        return np.empty(0)
    first = np.empty(size, dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], size)
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def _delong_midranks(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midranks within the positives, within the negatives and of the pooled scores, per model.

    One sort of the pooled scores per model gives all three: the positives (and the
    negatives) appear in that sorted order already sorted, so their own midranks need only a
    pass over ties. ``scipy.stats.rankdata`` on each of the three arrays sorted twice as many
    values (on a 10 M-event shadow analysis, 2.5 M pairs, DeLong's sorts were about 2 s).
    """
    k, m = positives.shape
    n = negatives.shape[1]
    tx, ty, tz = np.empty((k, m)), np.empty((k, n)), np.empty((k, m + n))
    for row in range(k):
        pooled = np.concatenate([positives[row], negatives[row]])
        # Any sort will do: tied values share one midrank whatever their order, and numpy's
        # default (vectorised) float sort is several times faster than a stable one.
        order = np.argsort(pooled)
        ranked = pooled[order]
        tz[row, order] = _sorted_midranks(ranked)
        from_pos = order < m
        tx[row, order[from_pos]] = _sorted_midranks(ranked[from_pos])
        ty[row, order[~from_pos] - m] = _sorted_midranks(ranked[~from_pos])
    return tx, ty, tz


def delong_test(
    y_true: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    *,
    pos_label: Any = 1,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> PairedTestResult:
    """DeLong's test of two correlated ROC AUCs computed on the same rows.

    Parameters
    ----------
    y_true : array-like
        Binary labels.
    scores_a, scores_b : array-like of float
        Scores of the two models (higher means more likely positive).
    pos_label : default 1
        The label of the positive class.
    alpha : float, default 0.05
        For the CI of ``AUC_b − AUC_a``.
    alternative : {"two-sided", "larger", "smaller"}
        ``"larger"`` tests ``AUC_b > AUC_a``.

    Returns
    -------
    PairedTestResult
        ``estimate_a``/``estimate_b`` are the AUCs (equal to
        ``sklearn.metrics.roc_auc_score``), ``statistic`` the z statistic. ``status`` is
        ``"single_class"`` when one class is absent, ``"insufficient_data"`` with fewer than
        two rows of a class, ``"zero_variance"`` when the variance of the difference is 0.

    Notes
    -----
    ``z = (AUC_b − AUC_a) / sqrt(S_aa + S_bb − 2 S_ab)`` with ``S`` from
    :func:`delong_components` (DeLong, DeLong & Clarke-Pearson 1988, *Biometrics*
    44:837–845); normal CI ``AUC_b − AUC_a ± z_{1−α/2}·se``.
    """
    y, a, b = _aligned(y_true, scores_a, scores_b)
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    a, b = _finite(a, "scores_a"), _finite(b, "scores_b")
    is_pos = _binary_labels(y, pos_label)
    method = "DeLong test for correlated ROC AUCs (Sun & Xu 2014 fast algorithm)"
    n = int(y.size)
    m_pos, m_neg = int(is_pos.sum()), int((~is_pos).sum())
    if m_pos == 0 or m_neg == 0:
        return PairedTestResult(
            NAN, NAN, NAN, NAN, NAN, NAN, NAN, n, alpha, method, STATUS_SINGLE_CLASS
        )
    scores = np.vstack([a, b])
    auc, cov = delong_components(scores[:, is_pos], scores[:, ~is_pos])
    auc_a, auc_b = float(auc[0]), float(auc[1])
    diff = auc_b - auc_a
    if m_pos < 2 or m_neg < 2:
        return PairedTestResult(
            NAN, NAN, auc_a, auc_b, diff, NAN, NAN, n, alpha, method, STATUS_INSUFFICIENT_DATA
        )
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    # Tolerance: identical score vectors give var ≈ 1e-18 from rounding, not a real variance.
    if var <= 1e-15 * max(float(cov[0, 0] + cov[1, 1]), 1e-300):
        return PairedTestResult(
            NAN, NAN, auc_a, auc_b, diff, diff, diff, n, alpha, method, STATUS_ZERO_VARIANCE
        )
    se = math.sqrt(var)
    z = diff / se
    lo, hi = interval(diff, se, alpha, alternative)
    p = p_value_from_statistic(z, alternative)
    return PairedTestResult(z, p, auc_a, auc_b, diff, lo, hi, n, alpha, method)


# --------------------------------------------------------------------------- bootstrap
# Built-in metrics are vectorised over the last axis so that scipy can evaluate thousands of
# resamples in one call: sklearn's metrics validate their inputs on every call and are two
# orders of magnitude slower per resample. Each equals its ``sklearn.metrics`` namesake (tested).


def _accuracy(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y == p, axis=axis)


def _binary_counts(y: np.ndarray, p: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    pos_true, pos_pred = y == 1, p == 1
    tp = np.sum(pos_true & pos_pred, axis=axis)
    fp = np.sum(~pos_true & pos_pred, axis=axis)
    fn = np.sum(pos_true & ~pos_pred, axis=axis)
    return tp, fp, fn


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # sklearn's zero_division default scores an undefined ratio as 0.
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _precision(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    tp, fp, _ = _binary_counts(y, p, axis)
    return _safe_ratio(tp, tp + fp)


def _recall(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    tp, _, fn = _binary_counts(y, p, axis)
    return _safe_ratio(tp, tp + fn)


def _f1(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    tp, fp, fn = _binary_counts(y, p, axis)
    return _safe_ratio(2 * tp, 2 * tp + fp + fn)


def _roc_auc(y: np.ndarray, s: np.ndarray, axis: int = -1) -> np.ndarray:
    # Mann–Whitney form: AUC = (Σ ranks of positives − m(m+1)/2) / (m·n), midranks for ties.
    y, s = np.moveaxis(y, axis, -1), np.moveaxis(s, axis, -1)
    pos = y == 1
    ranks = _st.rankdata(s, method="average", axis=-1)
    m = pos.sum(axis=-1).astype(float)
    n = (~pos).sum(axis=-1).astype(float)
    num = np.sum(ranks * pos, axis=-1) - m * (m + 1.0) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((m > 0) & (n > 0), num / (m * n), np.nan)


def _log_loss(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    eps = np.finfo(float).eps  # sklearn clips probabilities to [eps, 1 − eps] the same way
    p = np.clip(p.astype(float), eps, 1.0 - eps)
    return -np.mean(np.where(y == 1, np.log(p), np.log1p(-p)), axis=axis)


def _mae(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.abs(y - p), axis=axis)


def _mse(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean((y - p) ** 2, axis=axis)


def _rmse(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt(_mse(y, p, axis=axis))


def _r2(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    ss_res = np.sum((y - p) ** 2, axis=axis)
    ss_tot = np.sum((y - np.mean(y, axis=axis, keepdims=True)) ** 2, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - ss_res / ss_tot


#: Vectorised metrics accepted by name in :func:`paired_bootstrap`. Binary metrics use
#: positive label 1; ``roc_auc`` and ``log_loss`` take scores/probabilities of class 1.
BOOTSTRAP_METRICS: dict[str, Callable[..., np.ndarray]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "log_loss": _log_loss,
    "mae": _mae,
    "mse": _mse,
    "precision": _precision,
    "r2": _r2,
    "recall": _recall,
    "rmse": _rmse,
    "roc_auc": _roc_auc,
}

# Keep each vectorised batch around this many elements per array (memory, not speed).
_BATCH_ELEMENTS = 2_000_000


def paired_bootstrap(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    metric: str | Metric,
    *,
    n_resamples: int = 2000,
    method: Literal["BCa", "percentile"] = "BCa",
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> PairedTestResult:
    """Paired bootstrap CI and p-value for ``metric(y, pred_b) − metric(y, pred_a)``.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like
        Aligned rows; resampled together so the pairing is kept.
    metric : str or callable
        A name from :data:`BOOTSTRAP_METRICS` (vectorised, fast), or any
        ``metric(y_true, pred) -> float`` such as an ``sklearn.metrics`` function (called once
        per resample, so slower). It must be defined on every resample (ROC AUC needs both
        classes).
    n_resamples : int, default 2000
        Bootstrap replicates.
    method : {"BCa", "percentile"}, default "BCa"
        Interval type (Efron 1987, "Better Bootstrap Confidence Intervals", *JASA*
        82:171–185, for BCa).
    alpha : float, default 0.05
        Interval coverage ``1 − alpha``.
    random_state : int or numpy Generator, optional
        Seed for reproducible resampling.

    Returns
    -------
    PairedTestResult
        ``statistic`` is the observed difference. ``status`` is ``"zero_variance"`` (nan CI)
        when the replicates do not give a usable interval (e.g. all equal).

    Notes
    -----
    Resampling is ``scipy.stats.bootstrap(..., paired=True)``. The two-sided p-value inverts
    the percentile interval, ``p = min(1, 2·min(#{Δ* ≤ 0}+1, #{Δ* ≥ 0}+1)/(B+1))`` (the
    smallest α whose percentile interval excludes 0; the +1 keeps p > 0 with finite B,
    Davison & Hinkley 1997, *Bootstrap Methods and their Application*).
    """
    y, a, b = _aligned(y_true, pred_a, pred_b)
    alpha = check_alpha(alpha)
    if method not in ("BCa", "percentile"):
        raise InvalidInputError(
            f"method must be 'BCa' or 'percentile', got {method!r}", field="method"
        )
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise InvalidInputError(
            f"n_resamples must be a positive integer, got {n_resamples!r}", field="n_resamples"
        )
    if isinstance(metric, str):
        if metric not in BOOTSTRAP_METRICS:
            raise InvalidInputError(
                f"unknown metric {metric!r}; built-in metrics are "
                f"{', '.join(sorted(BOOTSTRAP_METRICS))}, or pass a callable",
                field="metric",
            )
        name, fn, vectorized = metric, BOOTSTRAP_METRICS[metric], True
    elif callable(metric):
        name, fn, vectorized = getattr(metric, "__name__", "metric"), metric, False
    else:
        raise InvalidInputError(
            "metric must be a name or a callable metric(y, pred)", field="metric"
        )
    label = f"paired bootstrap ({method}, {n_resamples} resamples) of {name}"
    n = int(y.size)
    if n < 2:
        return PairedTestResult(
            NAN, NAN, NAN, NAN, NAN, NAN, NAN, n, alpha, label, STATUS_INSUFFICIENT_DATA
        )

    if vectorized:

        def difference(y_s: np.ndarray, a_s: np.ndarray, b_s: np.ndarray, axis: int = -1) -> Any:
            return fn(y_s, b_s, axis=axis) - fn(y_s, a_s, axis=axis)

    else:

        def difference(y_s: np.ndarray, a_s: np.ndarray, b_s: np.ndarray) -> Any:
            return float(fn(y_s, b_s)) - float(fn(y_s, a_s))

    try:
        est_a, est_b = float(fn(y, a)), float(fn(y, b))
        with warnings.catch_warnings():
            # A constant bootstrap distribution makes scipy warn and return nan; we report
            # that as a status instead.
            warnings.simplefilter("ignore", _st.DegenerateDataWarning)
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"scipy\.stats")
            res = _st.bootstrap(
                (y, a, b),
                difference,
                paired=True,
                vectorized=vectorized,
                batch=max(1, _BATCH_ELEMENTS // n) if vectorized else None,
                n_resamples=n_resamples,
                confidence_level=1.0 - alpha,
                method=method,
                rng=np.random.default_rng(random_state),
            )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metric {name} failed on the data or on a bootstrap resample: {exc}",
            field="metric",
        ) from exc
    observed = est_b - est_a
    dist = np.asarray(res.bootstrap_distribution)
    n_boot = dist.size
    p_value = min(
        1.0,
        2.0 * min(np.sum(dist <= 0) + 1, np.sum(dist >= 0) + 1) / (n_boot + 1),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    status = STATUS_ZERO_VARIANCE if math.isnan(lo) or math.isnan(hi) else STATUS_OK
    return PairedTestResult(
        observed, float(p_value), est_a, est_b, observed, lo, hi, n, alpha, label, status
    )


# --------------------------------------------------------------------------- paired t


def _losses(y: np.ndarray, pred: np.ndarray, loss: Loss) -> np.ndarray:
    if callable(loss):
        out = np.asarray(loss(y, pred), dtype=float)
        if out.shape != y.shape:
            raise InvalidInputError(
                f"loss must return one value per row; got shape {out.shape}", field="loss"
            )
        return out
    if loss == "squared":
        return (y - pred) ** 2
    if loss == "absolute":
        return np.abs(y - pred)
    raise InvalidInputError(
        f"loss must be 'squared', 'absolute' or a callable, got {loss!r}", field="loss"
    )


def paired_t_test(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    loss: Loss = "squared",
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> PairedTestResult:
    """Paired t-test on the per-row losses of two regressors.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of float
        Targets and the two models' predictions.
    loss : {"squared", "absolute"} or callable, default "squared"
        Per-row loss; a callable gets ``(y_true, pred)`` and returns one loss per row.
    alpha : float, default 0.05
        Interval coverage ``1 − alpha``.
    alternative : {"two-sided", "larger", "smaller"}
        On ``mean(loss_b − loss_a)``: ``"smaller"`` tests that ``b`` has the lower loss.

    Returns
    -------
    PairedTestResult
        ``estimate_a``/``estimate_b`` are the mean losses (MSE or MAE), ``difference`` is
        ``mean(loss_b − loss_a)`` with its t interval. ``status`` is ``"insufficient_data"``
        for fewer than two rows and ``"zero_variance"`` when every row has the same loss
        difference.

    Notes
    -----
    ``t = mean(d)/(sd(d)/√n)`` with ``d = loss_b − loss_a`` and ``n − 1`` degrees of freedom
    (Student 1908); computed by ``scipy.stats.ttest_rel``. Rows are assumed independent.
    """
    y, a, b = _aligned(y_true, pred_a, pred_b)
    alpha = check_alpha(alpha)
    check_alternative(alternative)
    y, a, b = _finite(y, "y_true"), _finite(a, "pred_a"), _finite(b, "pred_b")
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
    method = f"paired t-test on per-row {loss_name} loss"
    la, lb = _losses(y, a, loss), _losses(y, b, loss)
    n = int(y.size)
    if n < 2:
        est_a = float(la.mean()) if n else NAN
        est_b = float(lb.mean()) if n else NAN
        return PairedTestResult(
            NAN, NAN, est_a, est_b, est_b - est_a, NAN, NAN, n, alpha, method,
            STATUS_INSUFFICIENT_DATA,
        )  # fmt: skip
    d = lb - la
    est_a, est_b, diff = float(la.mean()), float(lb.mean()), float(d.mean())
    if np.ptp(d) == 0.0:
        return PairedTestResult(
            NAN, NAN, est_a, est_b, diff, diff, diff, n, alpha, method, STATUS_ZERO_VARIANCE
        )
    # scipy's "greater" is our "larger" (b − a > 0).
    sp_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    res = _st.ttest_rel(lb, la, alternative=sp_alt)
    ci = res.confidence_interval(confidence_level=1.0 - alpha)
    return PairedTestResult(
        float(res.statistic), float(res.pvalue), est_a, est_b, diff,
        float(ci.low), float(ci.high), n, alpha, method,
    )  # fmt: skip


__all__ = [
    "BOOTSTRAP_METRICS",
    "MCNEMAR_EXACT_BELOW",
    "delong_components",
    "delong_test",
    "mcnemar_test",
    "paired_bootstrap",
    "paired_t_test",
]
