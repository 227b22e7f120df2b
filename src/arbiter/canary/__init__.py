"""Canary releases in the shell: shared state, checkpoint measurement, registry side effects.

The state machine itself is pure (:mod:`arbiter.routing.canary`); this package stores its
state as registered-model tags every worker and replica reads (:mod:`~arbiter.canary.store`),
measures checkpoints from the event log (:mod:`~arbiter.canary.measure`), applies promotions
and rollbacks to the registry (:mod:`~arbiter.canary.actions`) and offers one entry point for
the gateway controller, the CLI and the admin API (:class:`CanaryService`). See docs/canary.md.
"""

from __future__ import annotations

from arbiter.canary.actions import apply_promote, apply_rollback, plan_from_config
from arbiter.canary.measure import Measurement, measure_checkpoint
from arbiter.canary.service import OPERATIONS, CanaryService, CheckpointResult
from arbiter.canary.store import (
    LEASE_TAG,
    MAX_RECORDS,
    MAX_TAG_VALUE,
    RECORD_PREFIX,
    STATE_TAG,
    CanaryConflictError,
    Lease,
    Snapshot,
    StoredCanary,
    new_holder_id,
    read_lease,
    read_snapshot,
    write_record,
    write_state,
)

__all__ = [
    "LEASE_TAG",
    "MAX_RECORDS",
    "MAX_TAG_VALUE",
    "OPERATIONS",
    "RECORD_PREFIX",
    "STATE_TAG",
    "CanaryConflictError",
    "CanaryService",
    "CheckpointResult",
    "Lease",
    "Measurement",
    "Snapshot",
    "StoredCanary",
    "apply_promote",
    "apply_rollback",
    "measure_checkpoint",
    "new_holder_id",
    "plan_from_config",
    "read_lease",
    "read_snapshot",
    "write_record",
    "write_state",
]
