"""Result dataclasses of the frequentist tests, power analysis, SRM and paired/interleaving tests.

Every result is a frozen, slotted dataclass with snake_case fields and a ``to_dict()`` that
returns plain Python values (nested results become dicts, tuples become lists), so the shell
can serialise it without knowing the type. Degenerate but valid data never raises: the
``status`` field says what happened (``"ok"`` or a short code such as ``"insufficient_data"``),
and undefined numbers are ``nan``.

Sign convention throughout: arm/model ``a`` is the baseline (control), ``b`` the challenger, and
``difference = b - a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, SupportsFloat

# Status codes shared by the results in this module.
STATUS_OK = "ok"
STATUS_INSUFFICIENT_DATA = "insufficient_data"
STATUS_ZERO_VARIANCE = "zero_variance"
STATUS_ZERO_BASELINE = "zero_baseline"
STATUS_NO_DATA = "no_data"
STATUS_NO_DISCORDANT = "no_discordant_pairs"
STATUS_SINGLE_CLASS = "single_class"
STATUS_COMPLETE = "complete"
STATUS_RUNNING = "running"


def finite_or_none(value: SupportsFloat | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, NaN or infinite.

    JSON has no NaN or infinity (and other tools reject them), so results use this when they
    write an undefined number (a p-value of an empty arm, a score of a failed model) into a
    dict, a record or a tag. Accepts numpy scalars and ints.
    """
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class _AsDict:
    """Mixin: ``to_dict`` over the dataclass fields (works with ``slots=True``)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TwoProportionResult(_AsDict):
    """Two-proportion z-test with CIs for the absolute and relative difference ``b - a``."""

    statistic: float
    p_value: float
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    alpha: float
    alternative: str
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class MarascuiloPair(_AsDict):
    """One pairwise comparison of the Marascuilo procedure (arms indexed from 0)."""

    a: int
    b: int
    difference: float
    critical_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class KProportionResult(_AsDict):
    """Chi-square test of independence over k arms plus all Marascuilo pairs."""

    chi2: float
    p_value: float
    dof: int
    proportions: tuple[float, ...]
    pairs: tuple[MarascuiloPair, ...]
    alpha: float
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class MeansResult(_AsDict):
    """Difference ``b - a`` of two means (or ratio metrics) with absolute and relative CIs.

    ``dof`` is the Welch–Satterthwaite degrees of freedom, or ``inf`` for normal-theory tests
    (ratio metrics via the delta method).
    """

    statistic: float
    p_value: float
    dof: float
    mean_a: float
    mean_b: float
    difference: float
    standard_error: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    alpha: float
    alternative: str
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class MultipleTestingResult(_AsDict):
    """Adjusted p-values (in input order) and which hypotheses are rejected at ``alpha``."""

    p_values: tuple[float, ...]
    adjusted_p_values: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float
    method: str


@dataclass(frozen=True, slots=True)
class SampleSizeResult(_AsDict):
    """Required sample size per arm for a two-arm test with equal allocation.

    ``n_per_arm`` is rounded up; ``n_per_arm_exact`` is the unrounded formula value.
    ``effect`` is the absolute difference ``b - a`` the design detects.
    """

    n_per_arm: int
    n_total: int
    n_per_arm_exact: float
    baseline: float
    effect: float
    relative_effect: float
    alpha: float
    power: float
    alternative: str
    metric: str
    method: str


@dataclass(frozen=True, slots=True)
class PowerResult(_AsDict):
    """Power of a two-arm test with ``n_per_arm`` units in each arm."""

    power: float
    n_per_arm: float
    baseline: float
    effect: float
    relative_effect: float
    alpha: float
    alternative: str
    metric: str
    method: str


@dataclass(frozen=True, slots=True)
class MDEResult(_AsDict):
    """Minimum detectable effect (absolute and relative to the baseline) at ``n_per_arm``."""

    mde: float
    relative_mde: float
    n_per_arm: float
    baseline: float
    alpha: float
    power: float
    alternative: str
    metric: str
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class RemainingSampleResult(_AsDict):
    """How many more units each arm of a running test needs to reach its planned size."""

    required_n_per_arm: int
    current_n: tuple[int, ...]
    remaining_per_arm: tuple[int, ...]
    remaining_total: int
    fraction_complete: float
    status: str


@dataclass(frozen=True, slots=True)
class SRMResult(_AsDict):
    """Sample-ratio-mismatch check: chi-square goodness of fit of arm counts to weights."""

    statistic: float
    p_value: float
    mismatch: bool
    dof: int
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    weights: tuple[float, ...]
    threshold: float
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class PairedTestResult(_AsDict):
    """Two models scored on the same rows: estimates of each, their difference ``b - a`` and CI."""

    statistic: float
    p_value: float
    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    n: int
    alpha: float
    method: str
    status: str = STATUS_OK


@dataclass(frozen=True, slots=True)
class InterleavingResult(_AsDict):
    """Interleaving outcome: ``delta = (wins_a - wins_b) / (wins_a + wins_b + ties)`` with CI.

    ``p_value`` is the z-test of ``delta = 0`` with the (cluster-robust, if clustered)
    standard error; ``sign_test_p_value`` is the exact binomial test of wins against losses.
    ``dof`` is the reference t distribution's degrees of freedom (``inf``: normal) and
    ``effective_clusters`` the clusters' effective number ``1 / Σ p_g²`` (``p_g`` a user's share
    of the impressions; NaN when not clustered).
    """

    delta: float
    standard_error: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    sign_test_p_value: float
    wins_a: int
    wins_b: int
    ties: int
    n_impressions: int
    n_clusters: int
    alpha: float
    method: str
    status: str = STATUS_OK
    dof: float = math.inf
    effective_clusters: float = math.nan


__all__ = [
    "InterleavingResult",
    "KProportionResult",
    "MDEResult",
    "MarascuiloPair",
    "MeansResult",
    "MultipleTestingResult",
    "PairedTestResult",
    "PowerResult",
    "RemainingSampleResult",
    "SRMResult",
    "SampleSizeResult",
    "TwoProportionResult",
    "finite_or_none",
]
