"""``check_drift``: every column of a table against its reference, and the dataset verdict.

Method per column (overridable with ``DriftConfig.methods``), by kind and effective sample
size ``n_eff = M·N/(M + N)`` (``M`` reference rows, ``N`` current rows):

============  ===========================  ==========================
kind          ``n_eff <= exact_max_n``      larger
============  ===========================  ==========================
numeric       Kolmogorov–Smirnov            PSI (reference-quantile bins)
categorical   chi-square                    Jensen–Shannon distance
text          JS distance of token frequencies (vocabulary), any size
============  ===========================  ==========================

Each column also gets signals of its own (:mod:`arbiter.drift.signals`): its missing-value
rate, and for text columns the length and out-of-vocabulary rate. Their p-values join the
family below; a column drifts when its distribution test or one of its signals does.

Small samples get the most powerful exact tests; at large samples every test is significant
for negligible shifts, so an effect size with a floor (PSI ≥ 0.1, JS ≥ 0.1) decides, still
guarded by its sample-size-aware null quantile. p-values of the features form one family
corrected by Holm (default) or Benjamini–Hochberg; the dataset drifts when the share of
drifted features reaches ``DriftConfig.share``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from arbiter.drift._frame import (
    Frame,
    as_float,
    category_counts,
    column_names,
    infer_kind,
    text_values,
)
from arbiter.drift.config import METHODS_FOR_KIND, DriftConfig, default_method
from arbiter.drift.detectors import DETECTORS, Detector
from arbiter.drift.profile import PREDICTION, ColumnProfile, ReferenceProfile, text_profile
from arbiter.drift.results import DatasetDriftResult, DriftResult, Kind, Method
from arbiter.drift.signals import check_text, missing_signal
from arbiter.errors import InvalidInputError

#: Quantile-sketch size of a raw reference text column's length profile (build_profile's).
_SKETCH_SIZE = 1000


def _default_workers() -> int:
    sched = getattr(os, "sched_getaffinity", None)
    cpus = len(sched(0)) if sched is not None else (os.cpu_count() or 1)
    return max(1, min(cpus, 4))


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
) -> tuple[DriftResult, Detector | None]:
    """Test one column (raw values or a ColumnProfile as reference) on its own.

    Returns the result (with its missing-rate signal, except for the prediction) and the
    detector of its distribution test (None for a text column, tested by
    :func:`~arbiter.drift.signals.check_text`).
    """
    profile = reference if isinstance(reference, ColumnProfile) else None
    if profile is not None:
        kind = config.kinds.get(name, profile.kind) if name != PREDICTION else profile.kind
        if kind != profile.kind:
            raise InvalidInputError(
                f"column {name!r} is {profile.kind} in the reference profile; rebuild the "
                f"profile with kinds={{{name!r}: {kind!r}}} to test it as {kind}",
                field=f"kinds.{name}",
            )
    else:
        kind = kind or config.kinds.get(name) or infer_kind(reference)
    n_cur_total = len(current)
    detector: Detector | None = None
    if kind == "text":
        method = config.methods.get(name, "js")
        if method not in METHODS_FOR_KIND["text"]:
            raise InvalidInputError(
                f"method {method!r} is not defined for the text column {name!r}; use js",
                field=f"methods.{name}",
            )
        if profile is None:
            texts = text_values(reference)
            profile = text_profile(
                name,
                texts,
                vocabulary_size=config.vocabulary_size,
                bins=config.bins,
                sketch_size=_SKETCH_SIZE,
                n_missing=len(reference) - len(texts),
            )
            approximate = False
        else:
            approximate = True
        result = check_text(name, profile, text_values(current), config, approximate=approximate)
        n_ref, n_ref_missing = profile.n, profile.n_missing
    else:
        cur = as_float(current) if kind == "numeric" else category_counts(current)
        n_cur = cur.size if isinstance(cur, np.ndarray) else sum(cur.values())
        fit_on = reference
        if profile is not None:
            n_ref = profile.n
        elif kind == "numeric":
            # Converted once: its size (without missing values) decides the method.
            fit_on = as_float(reference)
            n_ref = int(fit_on.size)
        else:
            n_ref = len(reference)
        method = config.methods.get(name) or default_method(
            kind, n_ref, int(n_cur), config.exact_max_n
        )
        if method not in METHODS_FOR_KIND[kind]:
            raise InvalidInputError(
                f"method {method!r} is not defined for the {kind} column {name!r}; "
                f"use one of {', '.join(sorted(METHODS_FOR_KIND[kind]))}",
                field=f"methods.{name}",
            )
        detector = DETECTORS[method].from_config(config).fit(fit_on, name=name, kind=kind)
        result = detector.test_prepared(cur)
        n_ref = detector.ref_stats_.n
        n_ref_missing = profile.n_missing if profile is not None else len(reference) - n_ref
    if name == PREDICTION:
        # Scores of rows served by another version are null in a window: not a drift signal.
        return result, detector
    signal = missing_signal(
        n_ref, n_ref_missing, result.n_current, n_cur_total - result.n_current, config
    )
    if signal is not None:
        result = replace(
            result, signals=(signal, *result.signals), drifted=result.drifted or signal.drifted
        )
    return result, detector


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

    def one(name: str) -> tuple[DriftResult, Detector | None]:
        ref = profile.column(name) if profile is not None else reference[name]
        if name not in cur_names:
            kind = (
                ref.kind
                if isinstance(ref, ColumnProfile)
                else config.kinds.get(name) or infer_kind(ref)
            )
            n_ref = ref.n if isinstance(ref, ColumnProfile) else len(ref)
            return _missing(name, kind, n_ref, config.methods.get(name, "psi")), None
        return check_column(name, ref, current[name], config)

    # Columns are independent and numpy/pandas release the GIL in their sorts, comparisons
    # and hash counts, so threads check several at once (results do not depend on it).
    workers = min(config.workers or _default_workers(), len(names)) or 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            checked = list(pool.map(one, names))
    else:
        checked = [one(name) for name in names]
    results = [r for r, _ in checked]
    detectors = [d for _, d in checked]

    # One family: every feature's distribution test and every signal with a p-value.
    family: list[tuple[int, int, float]] = []  # (feature, signal or -1, p-value)
    for i, r in enumerate(results):
        if r.status == "ok" and r.p_value is not None:
            family.append((i, -1, r.p_value))
        family += [(i, j, s.p_value) for j, s in enumerate(r.signals) if s.p_value is not None]
    adjusted = _adjust([p for _, _, p in family], config)
    main_p: dict[int, float] = {}
    signal_p: dict[tuple[int, int], float] = {}
    for (i, j, _), p_adj in zip(family, adjusted, strict=True):
        if j < 0:
            main_p[i] = p_adj
        else:
            signal_p[(i, j)] = p_adj
    for i, r in enumerate(results):
        if r.status != "ok" and not r.signals:
            continue
        detector = detectors[i]
        signals = tuple(
            replace(
                s,
                p_value_adjusted=signal_p[(i, j)],
                drifted=signal_p[(i, j)] <= config.alpha and s.statistic >= s.min_effect,
            )
            if (i, j) in signal_p
            else s
            for j, s in enumerate(r.signals)
        )
        p_adj = main_p.get(i)
        if r.status != "ok":
            main = False
        elif detector is not None:
            main = detector.decide(r.statistic, p_adj, r.threshold)
        else:  # text: the vocabulary distance, as JSDetector decides
            main = p_adj is not None and p_adj <= config.alpha and r.statistic >= config.js_min
        results[i] = replace(
            r,
            p_value_adjusted=p_adj,
            signals=signals,
            drifted=bool(main or any(s.drifted for s in signals)),
        )

    # A column counts as tested when its distribution or one of its signals was.
    tested = [
        r for r in results if r.status == "ok" or any(s.p_value is not None for s in r.signals)
    ]
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
