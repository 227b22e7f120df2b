"""One model's canary, as every caller sees it: gateway workers, the CLI and the admin API.

:class:`CanaryService` ties the pure state machine (:mod:`arbiter.routing.canary`) to the
shared storage (:mod:`arbiter.canary.store`), the measurement (:mod:`arbiter.canary.measure`)
and the registry side effects (:mod:`arbiter.canary.actions`). Every method reads the stored
state afresh and writes with compare, write and read-back (:func:`~arbiter.canary.store.
write_state`), so any number of workers, replicas and operators can call it at once: a writer
whose write was overwritten gets :class:`~arbiter.canary.store.CanaryConflictError` (or, in a
checkpoint, quietly steps aside) and runs no side effect. This is not a true compare-and-set
(MLflow has none): the residual window in which two writers both succeed is described in
:mod:`arbiter.canary.store`. Only the holder of the checkpoint lease (:meth:`CanaryService.
try_lease`) should run checkpoints, which keeps concurrent writers rare.

A canary is keyed to the pair (challenger version, champion version) behind the configured
aliases. When an alias moves under a live canary, :meth:`CanaryService.ensure_started` ends it
with a ``superseded`` record and starts a new canary for the new pair at stage 0; a terminal
canary for the *current* pair stays terminal, and a version an earlier canary rolled back
(``arbiter.canary.outcome=rolled_back``) or archived is never started again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from arbiter.canary.actions import (
    TAG_OUTCOME,
    apply_promote,
    apply_rollback,
    plan_from_config,
)
from arbiter.canary.store import (
    SETTLE_S,
    CanaryConflictError,
    Snapshot,
    StoredCanary,
    confirm_state,
    history_records,
    json_safe,
    plan_fingerprint,
    read_snapshot,
    release_lease,
    try_lease,
    write_record,
    write_state,
)
from arbiter.config import CanaryExperimentConfig, ModelConfig
from arbiter.errors import ArbiterError, ConfigError, InvalidInputError
from arbiter.registry.history import default_actor
from arbiter.routing.canary import (
    CanaryPlan,
    CanaryState,
    CanaryStrategy,
    abort,
    advance,
    force_promote,
    pause,
    resume,
    supersede,
)

log = logging.getLogger(__name__)

OPERATIONS = ("pause", "resume", "promote", "abort")
#: The status each operation leads to: repeating an operation that already took effect is a
#: success (an idempotent retry after a timeout), not a conflict.
_TARGET = {"pause": ("paused",), "resume": ("running",), "promote": ("promoted",),
           "abort": ("rolled_back", "aborted")}  # fmt: skip
LEASE_INTERVALS = 3  # the checkpoint lease lasts this many analysis intervals
#: The alert each recorded transition raises (arbiter.alerts); supersede raises none.
_ALERT_EVENTS = {"advance": "canary_advance", "promote": "canary_promote",
                 "rollback": "canary_rollback", "abort": "canary_rollback"}  # fmt: skip


@dataclass(frozen=True)
class CheckpointResult:
    """What one checkpoint did: the action, the state after it, the evidence (if measured)."""

    action: str
    stored: StoredCanary | None
    evidence: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    duration_s: float = 0.0


class CanaryService:
    """The canary of one served model.

    Parameters
    ----------
    registry : MLflowRegistry
        Shared storage and the aliases.
    home_root : Path
        The home (decision record files go to ``HOME/canary/<model>/``).
    model : str
        Registered model name.
    config : ModelConfig
        Its configuration; ``experiment.strategy`` must be ``"canary"``.
    clock : callable, default time.time
        Wall-clock seconds: canary timestamps and lease expiry are shared across machines.
    poll_interval_s : float, default 5.0
        The gateways' ``registry.poll_interval_s``: how long a new share takes to reach every
        worker, which sets the SRM check's grace window after a stage starts.
    settle_s : float, default SETTLE_S
        Delay before the read-back that confirms a write (:func:`write_state`).
    alerts : AlertSink, optional
        Told about every advance, promotion and rollback this service writes
        (:mod:`arbiter.alerts`); the writer of a transition is the one that alerts.
    """

    def __init__(
        self,
        registry: Any,
        home_root: str | Path,
        model: str,
        config: ModelConfig,
        *,
        clock: Callable[[], float] = time.time,
        settle_s: float | None = None,
        poll_interval_s: float = 5.0,
        alerts: Any = None,
    ) -> None:
        if not isinstance(config.experiment, CanaryExperimentConfig):
            raise ConfigError(
                f"models.{model}.experiment.strategy is {config.experiment.strategy!r}, not "
                "'canary'; set it to 'canary' to run a canary release"
            )
        self.registry = registry
        self.home_root = Path(home_root)
        self.model = model
        self.config = config
        self.plan: CanaryPlan = plan_from_config(config.experiment.canary)
        self.plan_fingerprint = plan_fingerprint(self.plan)
        self.clock = clock
        self.settle_s = SETTLE_S if settle_s is None else settle_s
        self.poll_interval_s = poll_interval_s
        self.champion_alias = config.champion_alias
        self.challenger_alias = config.experiment.challenger_alias
        self.salt = config.experiment_name(model)
        self._logged: set[str] = set()
        self.alerts = alerts

    # --- checkpoint lease -------------------------------------------------------------------

    @property
    def lease_ttl_s(self) -> float:
        """How long a lease lasts: :data:`LEASE_INTERVALS` analysis intervals."""
        return LEASE_INTERVALS * self.plan.analysis_interval_s

    def try_lease(self, holder_id: str) -> bool:
        """Take or renew this model's checkpoint lease for ``holder_id``; whether it holds it.

        Call it before every checkpoint (it renews the lease) with a holder id unique to the
        worker process (:func:`arbiter.canary.store.new_holder_id`); run the checkpoint only
        when it returns True. Other workers keep polling and applying the stored share.

        Raises
        ------
        RegistryError
            The registry failed: skip this checkpoint.
        """
        return try_lease(
            self.registry,
            self.model,
            holder_id,
            ttl_s=self.lease_ttl_s,
            now=self.clock(),
            settle_s=self.settle_s,
        )

    def checkpoint_if_leased(self, store: Any, holder_id: str) -> CheckpointResult:
        """:meth:`try_lease`, then :meth:`checkpoint` only if this holder has the lease.

        Blocking (registry calls, the settle delay): run it in a thread, once per analysis
        interval, in place of :meth:`checkpoint`. Without the lease the result's action is
        ``"not_leased"`` and nothing was measured or written.
        """
        if not self.try_lease(holder_id):
            return CheckpointResult("not_leased", None)
        return self.checkpoint(store)

    def release_lease(self, holder_id: str) -> bool:
        """Give the lease up at shutdown (if held), so another worker takes it at once."""
        return release_lease(self.registry, self.model, holder_id)

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """One registry read (aliases, stored state, records)."""
        return read_snapshot(self.registry, self.model)

    def versions(self, snap: Snapshot) -> tuple[str | None, str | None]:
        """(challenger, champion) versions behind the configured aliases."""
        return snap.aliases.get(self.challenger_alias), snap.aliases.get(self.champion_alias)

    def current(self, snap: Snapshot) -> StoredCanary | None:
        """The stored canary when it tests the current alias pair, else None.

        A promoted canary stays current after its side effects moved the aliases (challenger
        gone, champion = the promoted version), and also when a crash left them half-moved
        (champion = challenger = the promoted version), so its status remains visible and
        :meth:`checkpoint` can finish the move.
        """
        stored = snap.stored
        if stored is None:
            return None
        challenger, champion = self.versions(snap)
        if stored.tests(challenger, champion):
            return stored
        if challenger is None and stored.state.terminal:
            return stored  # the challenger alias was removed by the canary's own end
        if (
            stored.state.status == "promoted"
            and champion == stored.challenger_version
            and challenger in (None, stored.challenger_version)
        ):
            return stored  # promoted; the challenger alias is removed at the next checkpoint
        return None

    def plan_problem(self, stored: StoredCanary | None) -> str | None:
        """Why the stored canary cannot run under the configured plan, or None.

        A live canary's stage index only means something for the plan it was reached under;
        a changed plan (other stages, or fewer than the stored stage) stops it at 0 %.
        """
        if stored is None or stored.state.status not in ("running", "paused"):
            return None
        state = stored.state
        if state.stage < len(self.plan.stages) and stored.plan in (None, self.plan_fingerprint):
            return None
        return (
            f"{self.model}: the plan changed under a running canary (stage {state.stage}, "
            f"stored plan {stored.plan or 'unknown'}, configured plan {self.plan_fingerprint} "
            f"with {len(self.plan.stages)} stages): abort it (`arbiter canary abort --model "
            f"{self.model}`); the challenger gets 0 % until then"
        )

    def _log_once(self, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            log.warning("%s", message)

    def share(self, snap: Snapshot, loaded_champion: str | None = None) -> float:
        """The challenger share a worker should route now.

        0 without a challenger alias or a current canary (nothing to test yet), and when the
        plan changed under the canary; the stored state's share otherwise. A promoted canary
        routes everything to the challenger only until this worker's champion is the
        promoted version (then 0: the champion is it).
        """
        stored = self.current(snap)
        if stored is None:
            return 0.0
        if stored.state.status == "promoted":
            return 0.0 if loaded_champion == stored.challenger_version else 1.0
        if self.versions(snap)[0] is None:
            return 0.0
        problem = self.plan_problem(stored)
        if problem is not None:
            self._log_once(problem)
            return 0.0
        return stored.state.share(self.plan)

    def strategy(self, share: float) -> CanaryStrategy:
        return CanaryStrategy(self.champion_alias, self.challenger_alias, share, self.salt)

    def refusal(self, version: str) -> str | None:
        """Why ``version`` may not get a canary (an earlier one rolled it back), or None."""
        tags = self.registry.model_version_tags(self.model, version)
        if tags.get(TAG_OUTCOME) == "rolled_back":
            return (
                f"v{version} was rolled back by an earlier canary ({TAG_OUTCOME}=rolled_back): "
                f"it is not tested again; point {self.challenger_alias!r} at a new version"
            )
        if str(tags.get("arbiter.archived", "")).lower() == "true":
            return (
                f"v{version} is archived (arbiter.archived=true): it is not tested; point "
                f"{self.challenger_alias!r} at a new version"
            )
        return None

    def status(self, snap: Snapshot | None = None) -> dict[str, Any]:
        """Everything an operator wants to see, as plain JSON-able values."""
        snap = snap or self.snapshot()
        challenger, champion = self.versions(snap)
        stored = self.current(snap)
        out: dict[str, Any] = {
            "model": self.model,
            "champion_alias": self.champion_alias,
            "challenger_alias": self.challenger_alias,
            "champion_version": champion,
            "challenger_version": challenger,
            "plan": {
                "stages": [
                    {
                        "share": s.share,
                        "min_requests": s.min_requests,
                        "min_duration_s": s.min_duration_s,
                    }
                    for s in self.plan.stages
                ],
                "analysis_interval_s": self.plan.analysis_interval_s,
                "require_primary_sample": self.plan.require_primary_sample,
                "on_rollback": self.config.experiment.canary.on_rollback,
                "fingerprint": self.plan_fingerprint,
            },
            "status": "none" if stored is None else stored.state.status,
            "share": self.share(snap, champion),
            "records": list(snap.records[-10:]),
            "latest_decision": snap.records[-1] if snap.records else None,
        }
        if stored is None:
            if challenger is None:
                out["detail"] = f"no {self.challenger_alias!r} alias: nothing to test"
            elif challenger == champion:
                out["detail"] = f"{self.challenger_alias!r} is the champion: nothing to test"
            else:
                refused = self.refusal(challenger)
                out["detail"] = refused or (
                    f"v{challenger} has no canary yet: a gateway starts it at its next poll"
                )
            return out
        state = stored.state
        out.update(
            tested_challenger_version=stored.challenger_version,
            tested_champion_version=stored.champion_version,
            stage=state.stage,
            stages=len(self.plan.stages),
            stage_share=self.plan.stages[min(state.stage, self.plan.last_stage)].share,
            started_at=state.started_at,
            stage_started_at=state.stage_started_at,
            state_version=state.version,
            history=history_records(state),
        )
        problem = self.plan_problem(stored)
        if problem is not None:
            out["problem"] = problem
            out["detail"] = problem
        return out

    # --- writing ----------------------------------------------------------------------------

    def _write(self, new: StoredCanary, expected: StoredCanary | None) -> StoredCanary:
        return write_state(
            self.registry,
            self.model,
            replace(new, plan=self.plan_fingerprint),
            expected=expected,
            settle_s=self.settle_s,
        )

    def ensure_started(self, snap: Snapshot) -> tuple[Snapshot, StoredCanary | None]:
        """Start a canary for the current alias pair when none is stored; returns the fresh view.

        A live canary for another pair (an alias moved under it), or a promotion whose alias
        move never happened, is first ended with a ``superseded`` record. A challenger version
        an earlier canary rolled back or archived gets no canary (:meth:`refusal`). Two
        workers starting at once: one write wins, the other sees a conflict and re-reads.
        """
        stored = self.current(snap)
        challenger, champion = self.versions(snap)
        if stored is not None or challenger is None or challenger == champion:
            return snap, stored
        refused = self.refusal(challenger)
        if refused is not None:
            self._log_once(f"{self.model}: no canary started: {refused}")
            return snap, None
        expected = snap.stored
        try:
            if expected is not None and self._supersedable(expected, champion):
                expected = self._supersede(snap, expected, challenger, champion)
            new = StoredCanary(challenger, champion, CanaryState.start(self.clock()))
            written = self._write(new, expected)
        except CanaryConflictError:
            snap = self.snapshot()
            return snap, self.current(snap)
        log.info("%s: canary of v%s against v%s started", self.model, challenger, champion)
        record = {
            "action": "start",
            "model": self.model,
            "at": written.state.started_at,
            "challenger_version": challenger,
            "champion_version": champion,
            "reasons": [f"challenger v{challenger} found behind {self.challenger_alias!r}"],
            "actor": default_actor(),
        }
        self._write_record(record, snap)
        snap = self.snapshot()
        return snap, self.current(snap)

    @staticmethod
    def _supersedable(stored: StoredCanary, champion: str | None) -> bool:
        """Whether ``stored`` (not current) is a live canary, or an unapplied promotion."""
        status = stored.state.status
        if status in ("running", "paused"):
            return True
        return status == "promoted" and champion != stored.challenger_version

    def _supersede(
        self,
        snap: Snapshot,
        stored: StoredCanary,
        challenger: str | None,
        champion: str | None,
    ) -> StoredCanary:
        """End ``stored`` with a ``superseded`` record: the aliases no longer match it."""
        moved = []
        if stored.state.status == "promoted":
            moved.append(f"the promotion of v{stored.challenger_version} was not applied")
        if champion != stored.champion_version:
            moved.append(
                f"{self.champion_alias!r} moved from v{stored.champion_version} to "
                f"v{champion} during the canary (another actor)"
            )
        if challenger != stored.challenger_version:
            moved.append(
                f"{self.challenger_alias!r} moved from v{stored.challenger_version} to "
                f"v{challenger} during the canary"
            )
        reason = "; ".join(moved) or "the aliases moved during the canary"
        new = replace(stored, state=supersede(stored.state, self.clock(), reason))
        written = self._write(new, stored)
        log.warning("%s: canary superseded: %s", self.model, reason)
        self._act(written, evidence=None, snap=snap)
        return written

    def operate(self, operation: str, reason: str | None = None) -> dict[str, Any]:
        """Run an operator action (pause, resume, promote, abort); returns the new status.

        An action whose target status the canary already has (a retried abort) succeeds
        without a write (``"unchanged"`` in the result). Once the state is written, a failing
        side effect or record write does not make the action fail: the result's record says
        what failed (``registry: {"error": ...}``).

        Raises
        ------
        InvalidInputError
            Unknown operation (``field="action"``) or a bad reason (``field="reason"``).
        CanaryConflictError
            No canary for the current challenger, the action does not apply to its status,
            the plan changed under it (anything but abort), or another actor changed it
            meanwhile (including a concurrent write detected by the read-back).
        """
        if operation not in OPERATIONS:
            raise InvalidInputError(
                f"action must be one of {list(OPERATIONS)}, got {operation!r}", field="action"
            )
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise InvalidInputError(
                "reason must be a string of at most 1000 characters", field="reason"
            )
        snap = self.snapshot()
        stored = self.current(snap)
        if stored is None:
            challenger = self.versions(snap)[0]
            raise CanaryConflictError(
                f"{self.model}: no canary to {operation}: "
                + (
                    f"no {self.challenger_alias!r} alias"
                    if challenger is None
                    else (
                        self.refusal(challenger)
                        or "it has not started yet (a gateway starts it at its next poll)"
                    )
                )
            )
        if stored.state.status in _TARGET[operation]:
            return {
                "status": self.status(snap),
                "record": None,
                "unchanged": f"the canary is already {stored.state.status}",
            }
        problem = self.plan_problem(stored)
        if problem is not None and operation != "abort":
            raise CanaryConflictError(problem)
        now = self.clock()
        try:
            if operation == "pause":
                state = pause(stored.state, now, reason)
            elif operation == "resume":
                state = resume(stored.state, now, reason)
            elif operation == "promote":
                state = force_promote(stored.state, self.plan, now, reason)
            else:
                state = abort(stored.state, now, reason)
        except InvalidInputError as exc:
            raise CanaryConflictError(f"{self.model}: {exc}") from exc
        written = self._write(replace(stored, state=state), stored)
        if written.state.terminal:
            confirm_state(self.registry, self.model, written)  # last check before acting
        record = self._act(written, evidence=None, snap=snap)
        try:
            status = self.status()
        except ArbiterError as exc:  # the action took effect; only the re-read failed
            status = {"model": self.model, "status": written.state.status, "error": str(exc)}
        return {"status": status, "record": record}

    def checkpoint(self, store: Any, snap: Snapshot | None = None) -> CheckpointResult:
        """Run one checkpoint: measure, :func:`advance`, and on a transition write and act.

        ``store`` is an :class:`arbiter.events.EventStore`. A conflict (another worker wrote
        first, or overwrote this write) is not an error: the result's action is
        ``"conflict"`` and no side effect ran. Run it only while holding the lease
        (:meth:`try_lease`).
        """
        from arbiter.canary.measure import measure_checkpoint

        snap = snap or self.snapshot()
        snap, stored = self.ensure_started(snap)
        if stored is None:
            return CheckpointResult("none", None)
        if stored.state.terminal:
            self._reconcile(snap, stored)
            return CheckpointResult("none", stored)
        if stored.state.status != "running":
            return CheckpointResult("none", stored)
        problem = self.plan_problem(stored)
        if problem is not None:
            self._log_once(problem)
            return CheckpointResult("none", stored)
        con = store.connect()
        try:
            measured = measure_checkpoint(
                con,
                model=self.model,
                experiment=self.salt,
                config=self.config,
                plan=self.plan,
                state=stored.state,
                champion_version=stored.champion_version,
                challenger_version=stored.challenger_version,
                poll_interval_s=self.poll_interval_s,
            )
        finally:
            con.close()
        evidence = measured.evidence()
        state, action = advance(stored.state, self.plan, measured.inputs, self.clock())
        evidence["action"] = action
        if action in ("hold", "none"):
            return CheckpointResult(action, stored, evidence, duration_s=measured.duration_s)
        try:
            written = self._write(replace(stored, state=state), stored)
            if written.state.terminal:
                confirm_state(self.registry, self.model, written)
        except CanaryConflictError as exc:
            log.info("%s: checkpoint %s not written: %s", self.model, action, exc)
            return CheckpointResult("conflict", stored, evidence, duration_s=measured.duration_s)
        # A checkpoint's decision (advance, promote, rollback) is the canary doing its job:
        # INFO, shown by `arbiter serve` and by `arbiter demo -v`; failures stay WARNING.
        log.info(
            "%s: canary %s (stage %d -> %d): %s",
            self.model,
            action,
            stored.state.stage,
            state.stage,
            "; ".join(state.history[-1].reasons),
        )
        record = self._act(written, evidence=evidence, snap=snap)
        return CheckpointResult(action, written, evidence, record, measured.duration_s)

    # --- side effects -----------------------------------------------------------------------

    def _side_effects(
        self, new: StoredCanary, reason: str, evidence: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if new.state.status in ("rolled_back", "aborted"):
            return apply_rollback(
                self.registry,
                self.model,
                version=new.challenger_version,
                challenger_alias=self.challenger_alias,
                on_rollback=self.config.experiment.canary.on_rollback,
                reason=reason,
                champion_alias=self.champion_alias,
            )
        if new.state.status == "promoted":
            return apply_promote(
                self.registry,
                self.model,
                version=new.challenger_version,
                champion_version=new.champion_version,
                champion_alias=self.champion_alias,
                challenger_alias=self.challenger_alias,
                reason=reason,
                evidence=_compact(evidence),
            )
        return None

    def _act(
        self,
        new: StoredCanary,
        *,
        evidence: dict[str, Any] | None,
        snap: Snapshot,
    ) -> dict[str, Any]:
        """Apply the registry side effects of a written transition and write its record.

        The state is already written, so a failure here does not undo the transition: it is
        logged and reported in the record (``registry.error``, ``record_error``), and
        :meth:`_reconcile` retries the side effects later.
        """
        last = new.state.history[-1]
        reason = "; ".join(last.reasons) or last.action
        effects: dict[str, Any] | None
        try:
            effects = self._side_effects(new, reason, evidence)
        except Exception as exc:  # reported, never swallowed: the record carries it
            log.error("%s: side effects of %s failed: %s", self.model, last.action, exc)
            effects = {"error": f"{type(exc).__name__}: {exc}"}
        record = {
            "action": last.action,
            "model": self.model,
            "at": last.at,
            "from_stage": last.from_stage,
            "to_stage": last.to_stage,
            "status": new.state.status,
            "share": new.state.share(self.plan),
            "state_version": new.state.version,
            "writer": new.writer,
            "challenger_version": new.challenger_version,
            "champion_version": new.champion_version,
            "reasons": list(last.reasons),
            "actor": default_actor(),
            "evidence": evidence,
            "registry": effects,
        }
        written = self._write_record(record, snap)
        self._alert(record)
        if effects is not None and effects.get("champion_conflict") is not None:
            # The champion moved under the promotion: say so in a terminal record now rather
            # than leave "promoted" with unmoved aliases.
            try:
                self._supersede(
                    snap, new, self.versions(snap)[0], str(effects["champion_conflict"])
                )
            except ArbiterError as exc:
                log.error("%s: could not record the failed promotion: %s", self.model, exc)
        return written

    def _alert(self, record: dict[str, Any]) -> None:
        """Tell the alert sink about an advance, promotion, rollback or abort (not supersede)."""
        event = _ALERT_EVENTS.get(record["action"])
        if self.alerts is None or event is None:
            return
        reasons = "; ".join(str(r) for r in record.get("reasons") or []) or record["action"]
        verb = {"abort": "aborted", "rollback": "rolled back", "promote": "promoted"}.get(
            record["action"], f"advanced to {record.get('share', 0):.0%}"
        )
        evidence = record.get("evidence") or {}
        details = {
            "action": record["action"],
            "status": record.get("status"),
            "from_stage": record.get("from_stage"),
            "to_stage": record.get("to_stage"),
            "share": record.get("share"),
            "challenger_version": record.get("challenger_version"),
            "champion_version": record.get("champion_version"),
            "actor": record.get("actor"),
            "reasons": [str(r) for r in record.get("reasons") or []],
            "breaches": evidence.get("breaches"),
        }
        self.alerts.notify(
            event,
            f"{self.model}: canary of v{record.get('challenger_version')} {verb}: {reasons}",
            model=self.model,
            details=json_safe(details),
        )

    def _write_record(self, record: dict[str, Any], snap: Snapshot) -> dict[str, Any]:
        try:
            return write_record(
                self.registry, self.home_root, self.model, record, prune=snap.record_keys
            )
        except (ArbiterError, OSError) as exc:
            log.error("%s: decision record %s not written: %s", self.model, record["action"], exc)
            return {**json_safe(record), "record_error": str(exc)}

    def _reconcile(self, snap: Snapshot, stored: StoredCanary) -> None:
        """Finish the side effects of a terminal canary whose writer died half-way.

        Only once the transition is older than one analysis interval, so the worker that
        wrote it has had time to act; both side effects are compare-before-move anyway.
        Covers a promotion that moved the champion but not the challenger alias (champion =
        challenger = the tested version).
        """
        state = stored.state
        if self.clock() - state.history[-1].at < self.plan.analysis_interval_s:
            return
        challenger, champion = self.versions(snap)
        if challenger != stored.challenger_version:
            return  # the challenger alias is gone or moved: nothing left to do
        reason = "; ".join(state.history[-1].reasons) or state.status
        if state.status == "promoted" and champion in (
            stored.champion_version,
            stored.challenger_version,
        ):
            apply_promote(
                self.registry,
                self.model,
                version=stored.challenger_version,
                champion_version=stored.champion_version,
                champion_alias=self.champion_alias,
                challenger_alias=self.challenger_alias,
                reason=reason,
            )
        elif (
            state.status in ("rolled_back", "aborted")
            and self.config.experiment.canary.on_rollback == "archive"
        ):
            apply_rollback(
                self.registry,
                self.model,
                version=stored.challenger_version,
                challenger_alias=self.challenger_alias,
                on_rollback="archive",
                reason=reason,
                champion_alias=self.champion_alias,
            )


def _compact(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """The evidence an alias move carries (its tag must stay small)."""
    if evidence is None:
        return None
    keep = ("arms", "stage_requests", "psi", "primary", "verdict", "breaches", "action")
    return json_safe({k: evidence.get(k) for k in keep})


__all__ = ["OPERATIONS", "CanaryService", "CheckpointResult"]
