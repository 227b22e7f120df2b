"""What a canary's end does in the registry, and the plan built from the YAML.

Both side effects are *compare-before-move* (:func:`arbiter.registry.history.move_alias`) and
idempotent: a second worker repeating them finds the aliases already moved and does nothing,
and version tags are simply overwritten with the same values. They also refuse to undo each
other, for the rare case where two writers both believed they ended the canary (see
:mod:`arbiter.canary.store`): a rollback leaves a version that is already the champion alone,
and a promotion refuses a version already tagged ``arbiter.canary.outcome=rolled_back``.

* rollback (or an operator abort), ``on_rollback: archive``: the challenger alias is removed
  (a recorded move, expected to still point at the tested version) and the version is tagged
  ``arbiter.archived`` / ``arbiter.archived_reason`` as the closed loop's archive step does;
  ``on_rollback: flag``: only the ``arbiter.canary.*`` version tags, the alias stays (the
  stored terminal state keeps that version at 0 %).
* promote: :func:`arbiter.registry.history.promote` moves the champion alias to the tested
  version (expected: the champion the canary compared against), keeping the old champion as
  ``previous``, with the checkpoint evidence as the move's verdict; then the challenger alias
  is removed (recorded too): the challenger *is* the champion now.
"""

from __future__ import annotations

import logging
from typing import Any

from arbiter.config import CanaryConfig
from arbiter.registry.history import AliasConflictError, move_alias, promote
from arbiter.routing.canary import DEFAULT_STAGES, CanaryPlan, CanaryStage, LinearRamp

log = logging.getLogger(__name__)

TAG_ARCHIVED = "arbiter.archived"  # the closed loop's archive tags (arbiter.loop.steps)
TAG_ARCHIVED_REASON = "arbiter.archived_reason"
TAG_OUTCOME = "arbiter.canary.outcome"
TAG_REASON = "arbiter.canary.reason"
_MAX_TAG = 5000


def plan_from_config(config: CanaryConfig) -> CanaryPlan:
    """The :class:`CanaryPlan` of ``experiment.canary``: its stages, its ramp, or the default."""
    options = {
        "analysis_interval_s": config.analysis_interval_s,
        "require_primary_sample": config.require_primary_sample,
        "holdback": config.holdback,
    }
    if config.ramp is not None:
        r = config.ramp
        ramp = LinearRamp(r.start_share, r.target_share, r.duration_s, r.step_s)
        return ramp.to_plan(min_requests=r.min_requests, **options)
    if config.stages is not None:
        stages = tuple(
            CanaryStage(s.share, s.min_requests, s.min_duration_s) for s in config.stages
        )
        return CanaryPlan(stages, **options)
    return CanaryPlan(DEFAULT_STAGES, **options)


def apply_rollback(
    registry: Any,
    model: str,
    *,
    version: str,
    challenger_alias: str,
    on_rollback: str,
    reason: str,
    actor: str | None = None,
    champion_alias: str | None = None,
) -> dict[str, Any]:
    """Take ``version`` out of the canary as ``on_rollback`` says; returns what was done.

    With ``champion_alias`` given, a version that already is the champion (a concurrent
    promotion won) is left untouched: ``skipped`` says why.
    """
    done: dict[str, Any] = {"on_rollback": on_rollback, "version": version, "alias_removed": False}
    aliases = registry.aliases(model)
    if champion_alias is not None and aliases.get(champion_alias) == version:
        done["skipped"] = f"v{version} is the {champion_alias} (promoted meanwhile)"
        log.warning("%s: rollback of v%s skipped: %s", model, version, done["skipped"])
        return done
    tags = {TAG_OUTCOME: "rolled_back", TAG_REASON: reason[:_MAX_TAG]}
    if on_rollback == "archive":
        if aliases.get(challenger_alias) == version:
            try:
                move_alias(
                    registry,
                    model,
                    challenger_alias,
                    None,
                    expected_version=version,
                    reason=f"canary rolled back: {reason}"[:_MAX_TAG],
                    actor=actor,
                )
                done["alias_removed"] = True
            except AliasConflictError as exc:  # another worker or an operator moved it
                done["alias_conflict"] = str(exc)
        tags.update({TAG_ARCHIVED: "true", TAG_ARCHIVED_REASON: f"canary: {reason}"[:_MAX_TAG]})
    registry.set_model_version_tags(model, version, tags)
    return done


def apply_promote(
    registry: Any,
    model: str,
    *,
    version: str,
    champion_version: str | None,
    champion_alias: str,
    challenger_alias: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion (old one kept as ``previous``), drop the challenger alias."""
    done: dict[str, Any] = {"version": version, "promoted": False, "alias_removed": False}
    aliases = registry.aliases(model)
    if aliases.get(champion_alias) != version:
        outcome = registry.model_version_tags(model, version).get(TAG_OUTCOME)
        if outcome == "rolled_back":  # a concurrent rollback won: never promote it
            done["skipped"] = f"v{version} was rolled back meanwhile"
            log.warning("%s: promotion of v%s skipped: %s", model, version, done["skipped"])
            return done
        try:
            moves = promote(
                registry,
                model,
                version,
                expected_champion=champion_version,
                reason=f"canary promoted: {reason}"[:_MAX_TAG],
                champion_alias=champion_alias,
                actor=actor,
                verdict=evidence,
            )
            done["promoted"] = True
            done["moves"] = [m.to_dict() | {"verdict": None} for m in moves]
        except AliasConflictError as exc:
            done["alias_conflict"] = str(exc)
            done["champion_conflict"] = registry.aliases(model).get(champion_alias)
            log.warning("%s: promotion of v%s refused: %s", model, version, exc)
            return done
    if registry.aliases(model).get(challenger_alias) == version:
        try:
            move_alias(
                registry,
                model,
                challenger_alias,
                None,
                expected_version=version,
                reason=f"canary promoted v{version} to {champion_alias}",
                actor=actor,
            )
            done["alias_removed"] = True
        except AliasConflictError as exc:
            done["alias_conflict"] = str(exc)
    registry.set_model_version_tags(model, version, {TAG_OUTCOME: "promoted", TAG_REASON: reason})
    return done


__all__ = [
    "TAG_OUTCOME",
    "TAG_REASON",
    "apply_promote",
    "apply_rollback",
    "plan_from_config",
]
