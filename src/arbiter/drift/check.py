"""``check_drift``: every column of a table against its reference, and the dataset verdict.

Method per column (overridable with ``DriftConfig.methods``), by kind and effective sample
size ``n_eff = M·N/(M + N)`` (``M`` reference rows, ``N`` current rows):

============  ===========================  ==========================
kind          ``n_eff <= exact_max_n``      larger
============  ===========================  ==========================
numeric       Kolmogorov–Smirnov            PSI (reference-quantile bins)
categorical   chi-square                    Jensen–Shannon distance
============  ===========================  ==========================

Small samples get the most powerful exact tests; at large samples every test is significant
for negligible shifts, so an effect size with a floor (PSI ≥ 0.1, JS ≥ 0.1) decides, still
guarded by its sample-size-aware null quantile. p-values of the features form one family
corrected by Holm (default) or Benjamini–Hochberg; the dataset drifts when the share of
drifted features reaches ``DriftConfig.share``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from arbiter.drift._frame import Frame, as_float, category_counts, column_names, infer_kind
from arbiter.drift.config import METHODS_FOR_KIND, DriftConfig
from arbiter.drift.detectors import DETECTORS, Detector
from arbiter.drift.profile import PREDICTION, ColumnProfile, ReferenceProfile
from arbiter.drift.results import DatasetDriftResult, DriftResult, Kind, Method
from arbiter.errors import InvalidInputError


def default_method(kind: Kind, n_reference: int, n_current: int, exact_max_n: int) -> Method:
    """The method of the table in the module docstring."""
    total = n_reference + n_current
    n_eff = n_reference * n_current / total if total else 0.0
    if kind == "numeric":
        return "ks" if n_eff <= exact_max_n else "psi"
    return "chi2" if n_eff <= exact_max_n else "js"


def _missing(name: str, kind: Kind, n_ref: int, method: Method) -> DriftResult:
    return DriftResult(
        name, kind, method, np.nan, None, np.nan, False, n_ref, 0, status="missing_in_current"
    )


def check_column(
    name: str,
    reference: Any,
    current: Any,
    config: DriftConfig,
    *,
    kind: Kind | None = None,
) -> tuple[DriftResult, Detector]:
    """Test one column (raw values or a ColumnProfile as reference) on its own."""
    if isinstance(reference, ColumnProfile):
        kind = config.kinds.get(name, reference.kind) if name != PREDICTION else reference.kind
        if kind != reference.kind:
            raise InvalidInputError(
                f"column {name!r} is {reference.kind} in the reference profile; rebuild the "
                f"profile with kinds={{{name!r}: {kind!r}}} to test it as {kind}",
                field=f"kinds.{name}",
            )
        n_ref = reference.n
    else:
        kind = kind or config.kinds.get(name) or infer_kind(reference)
        n_ref = -1  # known after the detector reads it
    cur = as_float(current) if kind == "numeric" else category_counts(current)
    n_cur = cur.size if isinstance(cur, np.ndarray) else sum(cur.values())
    if n_ref < 0:
        # The raw reference's size without missing values decides the method; counting it
        # costs one pass, done again by the detector's fit (cheap next to the test).
        n_ref = int(as_float(reference).size) if kind == "numeric" else len(reference)
    method = config.methods.get(name) or default_method(kind, n_ref, int(n_cur), config.exact_max_n)
    if method not in METHODS_FOR_KIND[kind]:
        raise InvalidInputError(
            f"method {method!r} is not defined for the {kind} column {name!r}; "
            f"use one of {', '.join(sorted(METHODS_FOR_KIND[kind]))}",
            field=f"methods.{name}",
        )
    detector = DETECTORS[method].from_config(config).fit(reference, name=name, kind=kind)
    return detector.test_prepared(cur), detector


def _adjust(p_values: list[float], config: DriftConfig) -> list[float]:
    if config.correction == "none" or not p_values:
        return list(p_values)
    # Imported here: statsmodels is slow to import and only needed for a family.
    from arbiter.stats.multiple import adjust_p_values

    return list(
        adjust_p_values(p_values, method=config.correction, alpha=config.alpha).adjusted_p_values
    )


def check_drift(
    reference: ReferenceProfile | Frame,
    current: Frame,
    config: DriftConfig | None = None,
    *,
    reference_prediction: Any = None,
    current_prediction: Any = None,
) -> DatasetDriftResult:
    """Compare a current table with a reference (raw table or stored profile).

    Parameters
    ----------
    reference : ReferenceProfile, DataFrame or mapping of str to array-like
        Raw reference values give exact tests (KS equals ``scipy.stats.ks_2samp``); a profile
        gives approximate KS/Wasserstein (see :mod:`arbiter.drift.profile`).
    current : DataFrame or mapping of str to array-like
    config : DriftConfig, optional
        Methods, levels and thresholds (defaults: ``DriftConfig()``).
    reference_prediction, current_prediction : array-like, optional
        The model's outputs, for prediction drift. Default: ``config.prediction_column`` of
        the frames, or the profile's stored prediction.

    Returns
    -------
    DatasetDriftResult

    Raises
    ------
    InvalidInputError
        Bad config, unknown column, or a method not defined for a column's kind.
    """
    config = (config or DriftConfig()).validate()
    profile = reference if isinstance(reference, ReferenceProfile) else None
    ref_names = list(profile.names) if profile is not None else column_names(reference)
    cur_names = set(column_names(current))
    skip = {config.prediction_column}
    names = [c for c in (config.columns or ref_names) if c not in skip]
    unknown = [c for c in names if c not in ref_names]
    if unknown:
        raise InvalidInputError(f"columns not in the reference: {unknown}", field="columns")
    unknown = [c for c in config.methods if c not in ref_names and c != PREDICTION]
    if unknown:
        raise InvalidInputError(
            f"methods given for columns not in the reference: {unknown}", field="methods"
        )

    results: list[DriftResult] = []
    detectors: list[Detector | None] = []
    for name in names:
        ref = profile.column(name) if profile is not None else reference[name]
        if name not in cur_names:
            kind = (
                ref.kind
                if isinstance(ref, ColumnProfile)
                else config.kinds.get(name) or infer_kind(ref)
            )
            n_ref = ref.n if isinstance(ref, ColumnProfile) else len(ref)
            results.append(_missing(name, kind, n_ref, config.methods.get(name, "psi")))
            detectors.append(None)
            continue
        result, detector = check_column(name, ref, current[name], config)
        results.append(result)
        detectors.append(detector)

    # One family: every feature with a p-value (KS, chi-square, PSI, JS).
    family = [i for i, r in enumerate(results) if r.status == "ok" and r.p_value is not None]
    adjusted = _adjust([results[i].p_value for i in family], config)  # type: ignore[misc]
    for i, p_adj in zip(family, adjusted, strict=True):
        r, detector = results[i], detectors[i]
        assert detector is not None
        results[i] = replace(
            r, p_value_adjusted=p_adj, drifted=detector.decide(r.statistic, p_adj, r.threshold)
        )

    tested = [r for r in results if r.status == "ok"]
    n_drifted = sum(r.drifted for r in tested)
    share = n_drifted / len(tested) if tested else 0.0
    return DatasetDriftResult(
        features=tuple(results),
        drifted=bool(tested) and share >= config.share,
        share=share,
        share_threshold=config.share,
        n_drifted=n_drifted,
        n_tested=len(tested),
        alpha=config.alpha,
        correction=config.correction,
        prediction=_prediction_drift(
            reference, current, config, profile, reference_prediction, current_prediction
        ),
    )


def _prediction_drift(
    reference: Any,
    current: Any,
    config: DriftConfig,
    profile: ReferenceProfile | None,
    reference_prediction: Any,
    current_prediction: Any,
) -> DriftResult | None:
    column = config.prediction_column
    ref = reference_prediction
    if ref is None:
        if profile is not None:
            ref = profile.prediction
        elif column is not None and column in column_names(reference):
            ref = reference[column]
    cur = current_prediction
    if cur is None and column is not None and column in column_names(current):
        cur = current[column]
    if ref is None or cur is None:
        return None
    result, _ = check_column(PREDICTION, ref, cur, config, kind=config.kinds.get(PREDICTION))
    return result


__all__ = ["check_column", "check_drift", "default_method"]
