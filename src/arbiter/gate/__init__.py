"""The offline gate: is the challenger better than the champion on the same holdout?

:func:`offline_gate` scores both versions on one content-addressed holdout snapshot, runs the
paired tests of :mod:`arbiter.stats.paired`, checks the thresholds of a :class:`GateConfig`
(minimum improvement, significance, per-slice non-regression) and records the verdict on the
challenger's model version; :func:`is_blessed` reads it back. See ``docs/retrain-and-gate.md``.
"""

from __future__ import annotations

from arbiter.gate.blessing import (
    TAG_CHAMPION,
    TAG_METRIC,
    TAG_PASSED,
    TAG_SNAPSHOT,
    TAG_SUMMARY,
    TAG_TS,
    is_blessed,
    read_blessing,
    record_blessing,
)
from arbiter.gate.compare import ModelOutputs, compare_models, default_gate_metric
from arbiter.gate.offline import offline_gate
from arbiter.gate.result import LOWER_IS_BETTER, Comparison, GateConfig, GateCriterion, GateResult
from arbiter.gate.snapshot import SNAPSHOT_DIR, read_snapshot, write_snapshot

__all__ = [
    "LOWER_IS_BETTER",
    "SNAPSHOT_DIR",
    "TAG_CHAMPION",
    "TAG_METRIC",
    "TAG_PASSED",
    "TAG_SNAPSHOT",
    "TAG_SUMMARY",
    "TAG_TS",
    "Comparison",
    "GateConfig",
    "GateCriterion",
    "GateResult",
    "ModelOutputs",
    "compare_models",
    "default_gate_metric",
    "is_blessed",
    "offline_gate",
    "read_blessing",
    "read_snapshot",
    "record_blessing",
    "write_snapshot",
]
