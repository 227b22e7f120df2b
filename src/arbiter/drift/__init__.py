"""Drift monitoring: is the data the model sees now still like the data it was trained on?

The functional core (:mod:`~arbiter.drift.methods`, :mod:`~arbiter.drift.detectors`,
:mod:`~arbiter.drift.profile`, :mod:`~arbiter.drift.check`) is pure numpy/scipy and does no
I/O. The shell reads the inputs: :mod:`~arbiter.drift.artifacts` stores reference profiles with
model versions in MLflow, :mod:`~arbiter.drift.window` reads a window of served traffic from
the event log; :mod:`arbiter.report.drift` renders reports. See docs/drift.md.

>>> profile = build_profile(train_frame, prediction=model.predict(train_frame))  # doctest: +SKIP
>>> result = check_drift(profile, current_frame)  # doctest: +SKIP
>>> result.drifted, result.share  # doctest: +SKIP
"""

from __future__ import annotations

from arbiter.drift.artifacts import PROFILE_ARTIFACT, load_profile, log_profile
from arbiter.drift.check import check_drift, default_method
from arbiter.drift.config import DriftConfig
from arbiter.drift.detectors import (
    ChiSquareDetector,
    JSDetector,
    KSDetector,
    NotFittedError,
    PSIDetector,
    WassersteinDetector,
)
from arbiter.drift.profile import ColumnProfile, ReferenceProfile, build_profile
from arbiter.drift.results import DatasetDriftResult, DriftResult, Histogram

__all__ = [
    "PROFILE_ARTIFACT",
    "ChiSquareDetector",
    "ColumnProfile",
    "DatasetDriftResult",
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
    "load_profile",
    "log_profile",
]
