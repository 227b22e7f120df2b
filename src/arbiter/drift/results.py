"""Result dataclasses of drift checks: one :class:`DriftResult` per column, one
:class:`DatasetDriftResult` per check.

Degenerate but valid data (an empty window, a constant reference column) is not an error: the
result carries a ``status`` other than ``"ok"`` and ``drifted=False``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from arbiter.stats import finite_or_none

Kind = Literal["numeric", "categorical", "text"]
Method = Literal["ks", "psi", "chi2", "js", "wasserstein"]
Status = Literal["ok", "empty", "missing_in_current", "zero_reference_spread"]
SignalName = Literal["missing_rate", "length", "oov_rate"]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Reference and current proportions over the same bins, for plots.

    ``labels`` name the bins: category values, or ``"[a, b)"`` ranges whose numeric ``edges``
    (``len(labels) + 1`` values, outer bins open-ended) are given for numeric columns.
    """

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    edges: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """One more drift signal of a column, beside its distribution test.

    Attributes
    ----------
    name : {"missing_rate", "length", "oov_rate"}
        ``missing_rate``: share of rows without a value (every kind of column);
        ``length``: tokens per value of a text column; ``oov_rate``: share of a text column's
        tokens outside the reference vocabulary (its ``vocabulary_size`` most frequent tokens).
    method : str
        ``"two_proportion"`` (Cohen's h with a pooled two-proportion z-test) for rates; the
        numeric method (``"ks"``/``"psi"``...) for ``length``.
    statistic : float
        ``|h|`` for rates, the numeric method's statistic for ``length``.
    p_value : float or None
    threshold : float
        As :attr:`DriftResult.threshold`.
    drifted : bool
        ``p_value_adjusted <= alpha`` and ``statistic >= min_effect`` (after the correction).
    reference, current : float
        The rate on each side (``length``: the median tokens per value).
    min_effect : float
        Smallest statistic that counts as drift however significant.
    p_value_adjusted : float or None
        After the multiple-testing correction (the signal is one more member of the family).
    """

    name: SignalName
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference: float
    current: float
    min_effect: float = 0.0
    p_value_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become ``None``)."""
        return {
            "method": self.method,
            "statistic": finite_or_none(self.statistic),
            "p_value": finite_or_none(self.p_value),
            "p_value_adjusted": finite_or_none(self.p_value_adjusted),
            "threshold": finite_or_none(self.threshold),
            "drifted": self.drifted,
            "reference": finite_or_none(self.reference),
            "current": finite_or_none(self.current),
        }


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one column (a feature or the model's output) between reference and current.

    Attributes
    ----------
    column : str
        Column name (``"<prediction>"`` for prediction drift).
    kind : {"numeric", "categorical", "text"}
        A text column's distribution test compares its token frequencies (vocabulary).
    method : {"ks", "psi", "chi2", "js", "wasserstein"}
    statistic : float
        KS D, PSI, chi-square statistic, Jensen–Shannon distance (base 2) or normalised
        Wasserstein-1 distance. NaN when ``status`` is not ``"ok"``.
    p_value : float or None
        Single-test p-value (KS, chi-square, and the χ² approximation of PSI and JS); ``None``
        for Wasserstein.
    threshold : float
        Statistic value above which this column counts as drifted on its own (a single test at
        ``alpha``, floored by the method's minimum effect). See docs/drift.md.
    drifted : bool
        The decision, after the multiple-testing correction when run by ``check_drift``: the
        distribution test or any of ``signals`` drifted.
    n_reference, n_current : int
        Non-missing values on each side.
    p_value_adjusted : float or None
        ``p_value`` after the correction across the columns of one check (Holm by default).
    approximate : bool
        True when the reference came from a profile (quantile sketch) rather than raw values.
    status : str
        ``"ok"``, or why no test ran (``"empty"``, ``"missing_in_current"``...).
    histogram : Histogram or None
        Reference vs current proportions for reports.
    unseen : tuple of (str, float)
        Categorical columns: categories present now and absent from the reference, most
        frequent first (at most 20), with their share of the current values. Empty when the
        reference profile pooled its rarest categories (see docs/drift.md).
    unseen_share : float
        Share of the current values in any unseen category (all of them, not only the 20).
    signals : tuple of Signal
        The column's other signals: ``missing_rate`` (when either side has missing values),
        and for text columns ``length`` and ``oov_rate``.
    """

    column: str
    kind: Kind
    method: Method
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    p_value_adjusted: float | None = None
    approximate: bool = False
    status: Status = "ok"
    histogram: Histogram | None = None
    unseen: tuple[tuple[str, float], ...] = ()
    unseen_share: float = 0.0
    signals: tuple[Signal, ...] = ()

    def signal(self, name: str) -> Signal | None:
        """The signal called ``name``, or None when the column has none of that name."""
        for s in self.signals:
            if s.name == name:
                return s
        return None

    def to_dict(self, *, histogram: bool = False) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become ``None``); the histogram only when asked."""
        out = {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "statistic": finite_or_none(self.statistic),
            "p_value": finite_or_none(self.p_value),
            "p_value_adjusted": finite_or_none(self.p_value_adjusted),
            "threshold": finite_or_none(self.threshold),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "approximate": self.approximate,
            "status": self.status,
            "signals": {s.name: s.to_dict() for s in self.signals},
        }
        if self.kind == "categorical":
            out["unseen_categories"] = [{"category": c, "share": p} for c, p in self.unseen]
            out["unseen_share"] = self.unseen_share
        if histogram and self.histogram is not None:
            out["histogram"] = asdict(self.histogram)
        return out


@dataclass(frozen=True, slots=True)
class DatasetDriftResult:
    """Drift of a whole table: per-column results, the dataset verdict and prediction drift.

    Attributes
    ----------
    features : tuple of DriftResult
        One per feature column, in reference column order.
    drifted : bool
        ``share >= share_threshold`` (and at least one column tested).
    share : float
        Drifted columns / columns tested (status ``"ok"``).
    share_threshold : float
    n_drifted, n_tested : int
    alpha : float
        Family level of the p-value decisions.
    correction : str
        ``"holm"``, ``"bh"`` or ``"none"``.
    prediction : DriftResult or None
        Drift of the model's output (scores or labels), tested on its own (not in the family).
    """

    features: tuple[DriftResult, ...]
    drifted: bool
    share: float
    share_threshold: float
    n_drifted: int
    n_tested: int
    alpha: float
    correction: str
    prediction: DriftResult | None = None

    def feature(self, column: str) -> DriftResult:
        """The result of ``column``; raises ``KeyError`` if it was not checked."""
        for result in self.features:
            if result.column == column:
                return result
        raise KeyError(column)

    def to_dict(self, *, histogram: bool = False) -> dict[str, Any]:
        """JSON-ready dict of the verdict, every feature and the prediction drift."""
        return {
            "dataset": {
                "drifted": self.drifted,
                "share": self.share,
                "share_threshold": self.share_threshold,
                "n_drifted": self.n_drifted,
                "n_tested": self.n_tested,
                "alpha": self.alpha,
                "correction": self.correction,
            },
            "features": {r.column: r.to_dict(histogram=histogram) for r in self.features},
            "prediction": None
            if self.prediction is None
            else self.prediction.to_dict(histogram=histogram),
        }


__all__ = [
    "DatasetDriftResult",
    "DriftResult",
    "Histogram",
    "Kind",
    "Method",
    "Signal",
    "SignalName",
    "Status",
]
