"""Drift monitoring: is the data the model sees now still like the data it was trained on?

This package is pure core (numpy/scipy; statsmodels for the multiple-testing correction) and
does no I/O: :mod:`~arbiter.drift.methods` holds the statistics, :mod:`~arbiter.drift.detectors`
the per-column estimators (registered by method name in :data:`DETECTORS`),
:mod:`~arbiter.drift.profile` the reference profile, :mod:`~arbiter.drift.check` the dataset
check. The shell feeds it: :mod:`arbiter.registry.profiles` stores reference profiles with model
versions in MLflow and :mod:`arbiter.events.window` reads a window of served traffic from the
event log, and :mod:`arbiter.report.drift` renders reports. See docs/drift.md.

>>> profile = build_profile(train_frame, prediction=model.predict(train_frame))  # doctest: +SKIP
>>> result = check_drift(profile, current_frame)  # doctest: +SKIP
>>> result.drifted, result.share  # doctest: +SKIP
"""

from __future__ import annotations

from arbiter.drift.check import check_drift, default_method
from arbiter.drift.config import DriftConfig
from arbiter.drift.detectors import (
    DETECTORS,
    ChiSquareDetector,
    Detector,
    JSDetector,
    KSDetector,
    NotFittedError,
    PSIDetector,
    WassersteinDetector,
)
from arbiter.drift.profile import ColumnProfile, ReferenceProfile, build_profile
from arbiter.drift.results import DatasetDriftResult, DriftResult, Histogram

__all__ = [
    "DETECTORS",
    "ChiSquareDetector",
    "ColumnProfile",
    "DatasetDriftResult",
    "Detector",
    "DriftConfig",
    "DriftResult",
    "Histogram",
    "JSDetector",
    "KSDetector",
    "NotFittedError",
    "PSIDetector",
    "ReferenceProfile",
    "WassersteinDetector",
    "build_profile",
    "check_drift",
    "default_method",
]
