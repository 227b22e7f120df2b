"""Control of running experiments: split changes, stop and start, stored in the registry.

See :mod:`arbiter.experiments.split_store` (storage and the service the CLI and the admin API
call) and :mod:`arbiter.gateway.experiment_control` (how every gateway worker applies it).
"""

from __future__ import annotations

from arbiter.experiments.split_store import (
    CONTROL_TAG,
    Control,
    ExperimentConflictError,
    ExperimentControl,
    attach_experiment_changes,
)

__all__ = [
    "CONTROL_TAG",
    "Control",
    "ExperimentConflictError",
    "ExperimentControl",
    "attach_experiment_changes",
]
