"""The knobs of a drift check, as one frozen dataclass validated once at the public edge."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from arbiter.drift.results import Kind, Method
from arbiter.errors import InvalidInputError

METHODS: tuple[str, ...] = ("ks", "psi", "chi2", "js", "wasserstein")
KINDS: tuple[str, ...] = ("numeric", "categorical", "text")
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "by", "none")
# Methods defined on each kind of column: KS and Wasserstein need an order.
METHODS_FOR_KIND: dict[str, frozenset[str]] = {
    "numeric": frozenset(METHODS),
    "categorical": frozenset({"psi", "chi2", "js"}),
    # Tokens are not independent draws (they come in rows), so only the effect size with a
    # row-based null (methods.vocabulary_test) is offered for a text column's vocabulary.
    "text": frozenset({"js"}),
}
PSI_FLOOR = 1e-4

Correction = Literal["holm", "bh", "by", "none"]


@dataclass(frozen=True)
class DriftConfig:
    """How :func:`~arbiter.drift.check_drift` tests each column.

    Parameters
    ----------
    methods : mapping of str to method, optional
        Per-column override of the method (``{"age": "psi"}``); others follow the default rule:
        numeric → KS when the effective sample size ``n_eff = M·N/(M+N)`` is at most
        ``exact_max_n``, else PSI; categorical → chi-square when ``n_eff <= exact_max_n``, else
        Jensen–Shannon.
    kinds : mapping of str to kind, optional
        Per-column override of the kind (``"numeric"``, ``"categorical"`` or ``"text"``; e.g.
        an integer code that is really categorical). By default the rule of
        :mod:`arbiter.column_kinds`: int/float columns are numeric, bool columns categorical,
        string columns text when their median value has at least 3 tokens, else categorical.
    columns : tuple of str, optional
        Only these columns (default: every reference column but ``prediction_column``).
    bins : int, default 10
        Quantile bins of the reference for PSI (and JS/chi-square on numeric columns).
    alpha : float, default 0.01
        Family-wise (Holm) or FDR (BH, BY) level of the p-value decisions.
    correction : {"holm", "bh", "by", "none"}, default "holm"
        Multiple-testing correction across the features of one check. Holm and BY hold under
        any dependence between features; BH's FDR bound needs independent or positively
        dependent (PRDS) tests (:mod:`arbiter.stats.multiple`).
    share : float, default 0.5
        The dataset drifts when at least this share of tested features drifts.
    exact_max_n : int, default 1000
        Largest effective sample size tested with KS / chi-square by default.
    psi_min, js_min, wasserstein_min : float
        Smallest effect that counts as drift however significant (defaults 0.1, 0.1, 0.1): at
        large samples a significance test alone flags shifts too small to matter.
    missing_min : float, default 0.1
        Smallest change of a column's missing-value rate that counts as drift, as Cohen's
        ``h = |2·asin(√p₁) − 2·asin(√p₀)|`` (0.1 is e.g. 1 % → 3.5 % or 20 % → 24.7 %).
    oov_min : float, default 0.1
        The same floor (Cohen's h) for a text column's out-of-vocabulary token rate.
    vocabulary_size : int, default 1000
        Most frequent reference tokens kept per text column (the rest are out of vocabulary).
    psi_floor : float, default 1e-4
        Proportion given to an empty bin in PSI (``ln(0)`` is undefined); not renormalised.
    prediction_column : str, optional
        Column of the frames holding the model's output; tested as prediction drift, not as a
        feature.
    histograms : bool, default True
        Attach reference/current histograms to the results (for the HTML report).
    workers : int, optional
        Threads checking columns at once (default: the usable CPUs, at most 4; 1 for none).
        Results do not depend on it.
    """

    methods: Mapping[str, Method] = field(default_factory=dict)
    kinds: Mapping[str, Kind] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    bins: int = 10
    alpha: float = 0.01
    correction: Correction = "holm"
    share: float = 0.5
    exact_max_n: int = 1000
    psi_min: float = 0.1
    js_min: float = 0.1
    wasserstein_min: float = 0.1
    missing_min: float = 0.1
    oov_min: float = 0.1
    vocabulary_size: int = 1000
    psi_floor: float = PSI_FLOOR
    prediction_column: str | None = None
    histograms: bool = True
    workers: int | None = None

    def validate(self) -> DriftConfig:
        """Raise :class:`~arbiter.errors.InvalidInputError` naming the first bad field."""
        for column, method in self.methods.items():
            if method not in METHODS:
                raise InvalidInputError(
                    f"method for column {column!r} must be one of {', '.join(METHODS)}; "
                    f"got {method!r}",
                    field=f"methods.{column}",
                )
        for column, kind in self.kinds.items():
            if kind not in KINDS:
                raise InvalidInputError(
                    f"kind for column {column!r} must be numeric, categorical or text; "
                    f"got {kind!r}",
                    field=f"kinds.{column}",
                )
        check_bins(self.bins)
        check_level(self.alpha, "alpha")
        if self.correction not in CORRECTIONS:
            raise InvalidInputError(
                f"correction must be one of {', '.join(CORRECTIONS)}; got {self.correction!r}",
                field="correction",
            )
        if not 0.0 < self.share <= 1.0:
            raise InvalidInputError(f"share must be in (0, 1], got {self.share!r}", field="share")
        if self.exact_max_n < 0:
            raise InvalidInputError(
                f"exact_max_n must be >= 0, got {self.exact_max_n!r}", field="exact_max_n"
            )
        for name in ("psi_min", "js_min", "wasserstein_min", "missing_min", "oov_min"):
            check_nonnegative(getattr(self, name), name)
        check_vocabulary_size(self.vocabulary_size)
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise InvalidInputError(
                f"workers must be an int >= 1, got {self.workers!r}", field="workers"
            )
        if not 0.0 < self.psi_floor < 0.1:
            raise InvalidInputError(
                f"psi_floor must be in (0, 0.1), got {self.psi_floor!r}", field="psi_floor"
            )
        return self


def default_method(kind: Kind, n_reference: int, n_current: int, exact_max_n: int) -> Method:
    """The default method of a column: see :mod:`arbiter.drift.check`."""
    total = n_reference + n_current
    n_eff = n_reference * n_current / total if total else 0.0
    if kind == "numeric":
        return "ks" if n_eff <= exact_max_n else "psi"
    if kind == "text":
        return "js"
    return "chi2" if n_eff <= exact_max_n else "js"


def check_bins(bins: object) -> int:
    """Validate a bin count (an int >= 2)."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2 or bins > 10_000:
        raise InvalidInputError(f"bins must be an int in [2, 10000], got {bins!r}", field="bins")
    return bins


def check_vocabulary_size(size: object) -> int:
    """Validate a vocabulary size (an int >= 1)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInputError(
            f"vocabulary_size must be an int >= 1, got {size!r}", field="vocabulary_size"
        )
    return size


def check_level(alpha: object, name: str = "alpha") -> float:
    """Validate a significance level in (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidInputError(f"{name} must be in (0, 1), got {alpha!r}", field=name)
    return float(alpha)


def check_nonnegative(value: object, name: str) -> float:
    """Validate a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}", field=name)
    return float(value)


__all__ = ["CORRECTIONS", "KINDS", "METHODS", "PSI_FLOOR", "DriftConfig", "default_method"]
