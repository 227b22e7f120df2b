"""The offline gate's configuration and result dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

from arbiter.errors import InvalidInputError
from arbiter.stats.paired import BOOTSTRAP_METRICS
from arbiter.stats.results import PairedTestResult

#: Metrics where lower is better; the gate's "improvement" is champion − challenger for them.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "mse", "rmse"})


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Thresholds of the offline gate.

    Parameters
    ----------
    metric : str, optional
        A name from :data:`arbiter.stats.BOOTSTRAP_METRICS`. Default: ``roc_auc`` for binary
        classifiers that both have ``predict_proba``, ``accuracy`` for other classifiers,
        ``rmse`` for regressors.
    min_improvement : float, default 0.0
        The challenger's improvement on ``metric`` must be strictly greater than this
        (absolute, in the metric's units; or a fraction of the champion's score if
        ``relative``). With 0, a challenger no better than the champion fails.
    relative : bool, default False
    alpha : float, default 0.05
        Level of the two-sided primary test (DeLong, McNemar, paired t or bootstrap).
    require_significance : bool, default True
        Also require the primary test to be significant in the challenger's favour.
    slices : tuple of str
        Holdout columns to check per value: on no slice may the challenger be worse than the
        champion by more than ``slice_tolerance``.
    slice_tolerance : float, default 0.01
        Allowed per-slice regression, in the metric's units.
    min_slice_rows : int, default 30
        Slices with fewer rows (or an undefined metric, e.g. one class for AUC) are reported
        and not judged.
    max_slice_values : int, default 50
        More distinct values than this in a slice column is an error (bin it first).
    n_resamples : int, default 2000
        Paired bootstrap replicates.
    bootstrap_method : {"percentile", "BCa"}, default "percentile"
        Interval of the paired bootstrap. BCa's jackknife evaluates the metric once per
        left-out row, quadratic in the holdout size for AUC: fine for a few thousand rows,
        not for a hundred thousand.
    seed : int, default 0
        Bootstrap seed.
    """

    metric: str | None = None
    min_improvement: float = 0.0
    relative: bool = False
    alpha: float = 0.05
    require_significance: bool = True
    slices: tuple[str, ...] = ()
    slice_tolerance: float = 0.01
    min_slice_rows: int = 30
    max_slice_values: int = 50
    n_resamples: int = 2000
    bootstrap_method: Literal["percentile", "BCa"] = "percentile"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric is not None and self.metric not in BOOTSTRAP_METRICS:
            raise InvalidInputError(
                f"unknown gate metric {self.metric!r}; use one of "
                f"{', '.join(sorted(BOOTSTRAP_METRICS))}",
                field="metric",
            )
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha}", field="alpha")
        if not math.isfinite(self.min_improvement):
            raise InvalidInputError("min_improvement must be finite", field="min_improvement")
        if self.slice_tolerance < 0:
            raise InvalidInputError(
                f"slice_tolerance must be >= 0, got {self.slice_tolerance}",
                field="slice_tolerance",
            )
        if self.bootstrap_method not in ("percentile", "BCa"):
            raise InvalidInputError(
                f"bootstrap_method must be 'percentile' or 'BCa', got {self.bootstrap_method!r}",
                field="bootstrap_method",
            )
        for name in ("min_slice_rows", "max_slice_values", "n_resamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}", field=name)
        object.__setattr__(self, "slices", tuple(self.slices))

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["slices"] = list(self.slices)
        return out


@dataclass(frozen=True, slots=True)
class GateCriterion:
    """One condition of the gate, met or not, with the numbers behind it.

    ``observed`` is compared with ``threshold`` (see ``detail``). For slice criteria
    ``champion``/``challenger`` are the slice's metric values and ``n`` its rows.
    ``status`` is ``"ok"`` or why the criterion was not judged (``insufficient_data``).
    """

    name: str
    met: bool
    observed: float
    threshold: float
    detail: str
    n: int | None = None
    champion: float | None = None
    challenger: float | None = None
    status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Comparison:
    """What :func:`~arbiter.gate.compare_models` found (no I/O: arrays in, numbers out)."""

    metric: str
    task: str
    champion_score: float
    challenger_score: float
    improvement: float
    primary_test: str
    criteria: tuple[GateCriterion, ...]
    tests: dict[str, PairedTestResult]
    n: int

    @property
    def passed(self) -> bool:
        return all(c.met for c in self.criteria)


@dataclass(frozen=True, slots=True)
class GateResult:
    """The offline gate's verdict on a challenger version against the champion.

    ``passed`` is true when every criterion is met. ``tests`` maps a test name (``delong``,
    ``mcnemar``, ``bootstrap``, ``paired_t``) to its result, with model ``a`` the champion
    and ``b`` the challenger. The holdout is the snapshot at ``snapshot_path``.
    """

    passed: bool
    criteria: tuple[GateCriterion, ...]
    tests: dict[str, PairedTestResult]
    snapshot_path: str
    snapshot_sha256: str
    champion_version: str
    challenger_version: str
    model: str = ""
    metric: str = ""
    primary_test: str = ""
    champion_score: float = math.nan
    challenger_score: float = math.nan
    improvement: float = math.nan
    n_rows: int = 0
    recorded: bool = False

    @property
    def failed_criteria(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria if not c.met)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["criteria"] = [c.to_dict() for c in self.criteria]
        out["tests"] = {k: v.to_dict() for k, v in self.tests.items()}
        out["failed_criteria"] = list(self.failed_criteria)
        return out


__all__ = ["LOWER_IS_BETTER", "Comparison", "GateConfig", "GateCriterion", "GateResult"]
