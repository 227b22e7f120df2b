"""Alias moves with a memory: who moved which alias, when, from which version to which, and why.

Every move arbiter makes is recorded in the registry itself, as a tag on the registered model
(``arbiter.alias_move.<microseconds>`` → JSON), so every replica and every operator reads the
same history without another database. Moves are guarded by a compare step: the caller says
which version it expects the alias to point at, and the move is refused if another replica
moved it in the meantime.

MLflow has no compare-and-set on aliases, so a race window of one registry round trip
remains between the check and the move; the history then shows both moves, in order, and the
loser's record carries the version it actually replaced.

Changes to a running experiment (a new split, a stop, a start: :mod:`arbiter.experiments`)
are recorded the same way (``arbiter.experiment_change.<microseconds>`` → JSON of
:class:`ExperimentChange`), with who, why, when and the shares before and after. They are the
period boundaries the analysis reads (:mod:`arbiter.analysis.periods`).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from arbiter.errors import ArbiterError, NotFoundError, RegistryError
from arbiter.registry.mlflow_registry import MLflowRegistry

TAG_PREFIX = "arbiter.alias_move."
CHANGE_PREFIX = "arbiter.experiment_change."
PREVIOUS_ALIAS = "previous"


class AliasConflictError(ArbiterError):
    """The alias no longer points where the caller expected: another actor moved it."""


@dataclass(frozen=True)
class AliasMove:
    """One recorded alias move."""

    ts_us: int
    model: str
    alias: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    actor: str
    reason: str
    verdict: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExperimentChange:
    """One recorded change of a running experiment (split, stop or start).

    ``experiment`` is the experiment (hashing salt and logged name) the change applies to;
    ``shares_before``/``shares_after`` map each challenger arm to its share (``None``: the
    experiment was stopped, the champion served everything). ``grace_s`` is how long workers
    may take to apply it (two registry poll intervals and a second): the analysis leaves units
    first seen in that window out of the per-period SRM check. ``previous_experiment`` is set
    when a start under a new name ended an older experiment.
    """

    ts_us: int
    model: str
    experiment: str
    action: str  # "split" | "stop" | "start"
    shares_before: dict[str, float] | None
    shares_after: dict[str, float] | None
    actor: str
    reason: str
    grace_s: float
    previous_experiment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_experiment_change(registry: MLflowRegistry, change: ExperimentChange) -> None:
    """Store ``change`` as a registered-model tag (read by every replica and the analysis)."""
    try:
        registry.client.set_registered_model_tag(
            change.model,
            f"{CHANGE_PREFIX}{change.ts_us:020d}",
            json.dumps(change.to_dict(), sort_keys=True),
        )
    except Exception as exc:
        raise RegistryError(
            f"{change.model}: recording the experiment change failed: {exc}"
        ) from exc


def experiment_changes_from_tags(tags: dict[str, str]) -> list[ExperimentChange]:
    """The experiment changes among a registered model's tags, oldest first."""
    changes = []
    for key, value in tags.items():
        if key.startswith(CHANGE_PREFIX):
            try:
                changes.append(ExperimentChange(**json.loads(value)))
            except (ValueError, TypeError):
                continue  # an unreadable record is skipped, never fatal
    return sorted(changes, key=lambda c: c.ts_us)


def experiment_changes(registry: MLflowRegistry, model: str) -> list[ExperimentChange]:
    """Every recorded change of ``model``'s experiments, oldest first."""
    try:
        tags = registry.client.get_registered_model(model).tags or {}
    except Exception as exc:
        raise NotFoundError(f"registered model {model!r}: {exc}") from exc
    return experiment_changes_from_tags(dict(tags))


def default_actor() -> str:
    """``user@host`` of this process, or ``ARBITER_ACTOR`` when set (CI jobs, schedulers)."""
    if os.environ.get("ARBITER_ACTOR"):
        return os.environ["ARBITER_ACTOR"]
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _record(registry: MLflowRegistry, move: AliasMove) -> None:
    try:
        registry.client.set_registered_model_tag(
            move.model,
            f"{TAG_PREFIX}{move.ts_us:020d}",
            json.dumps(move.to_dict(), sort_keys=True),
        )
    except Exception as exc:  # MlflowException or a transport error: one arbiter error type
        raise RegistryError(
            f"{move.model}@{move.alias} moved to {_v(move.to_version)}, but recording the move "
            f"failed: {exc}"
        ) from exc


def move_alias(
    registry: MLflowRegistry,
    model: str,
    alias: str,
    to_version: str | None,
    *,
    expected_version: str | None,
    reason: str,
    actor: str | None = None,
    verdict: dict[str, Any] | None = None,
) -> AliasMove:
    """Point ``alias`` at ``to_version`` (``None`` removes it) if it still points at
    ``expected_version`` (``None``: the alias must not exist), and record the move.

    Raises
    ------
    AliasConflictError
        The alias moved since the caller read it.
    """
    current = registry.aliases(model).get(alias)
    if current != expected_version:
        raise AliasConflictError(
            f"{model}@{alias} points at {_v(current)}, expected {_v(expected_version)}: "
            "another actor moved it; re-read and decide again"
        )
    if to_version is None:
        registry.delete_alias(model, alias)
    else:
        registry.set_alias(model, alias, to_version)
    move = AliasMove(
        ts_us=time.time_ns() // 1000,
        model=model,
        alias=alias,
        from_version=current,
        to_version=to_version,
        actor=actor or default_actor(),
        reason=reason,
        verdict=verdict,
    )
    _record(registry, move)
    return move


def history(registry: MLflowRegistry, model: str) -> list[AliasMove]:
    """Every recorded move of ``model``'s aliases, oldest first."""
    try:
        tags = registry.client.get_registered_model(model).tags or {}
    except Exception as exc:
        raise NotFoundError(f"registered model {model!r}: {exc}") from exc
    moves = [
        AliasMove(**json.loads(value)) for key, value in tags.items() if key.startswith(TAG_PREFIX)
    ]
    return sorted(moves, key=lambda m: m.ts_us)


def promote(
    registry: MLflowRegistry,
    model: str,
    version: str,
    *,
    expected_champion: str | None,
    reason: str,
    champion_alias: str = "champion",
    actor: str | None = None,
    verdict: dict[str, Any] | None = None,
) -> list[AliasMove]:
    """Make ``version`` the champion; the old champion keeps the ``previous`` alias."""
    moves = [
        move_alias(
            registry,
            model,
            champion_alias,
            version,
            expected_version=expected_champion,
            reason=reason,
            actor=actor,
            verdict=verdict,
        )
    ]
    if expected_champion is not None:
        moves.append(
            move_alias(
                registry,
                model,
                PREVIOUS_ALIAS,
                expected_champion,
                expected_version=registry.aliases(model).get(PREVIOUS_ALIAS),
                reason=f"kept as previous when v{version} was promoted",
                actor=actor,
            )
        )
    return moves


def rollback(
    registry: MLflowRegistry,
    model: str,
    *,
    reason: str = "manual rollback",
    champion_alias: str = "champion",
    actor: str | None = None,
) -> AliasMove:
    """Move the champion back to the ``previous`` version, in one step.

    The version rolled back from becomes ``previous``, so a second rollback undoes the first.
    """
    aliases = registry.aliases(model)
    target = aliases.get(PREVIOUS_ALIAS)
    if target is None:
        raise NotFoundError(
            f"{model} has no {PREVIOUS_ALIAS!r} alias to roll back to; "
            f"see `arbiter history --model {model}`"
        )
    current = aliases.get(champion_alias)
    move = move_alias(
        registry,
        model,
        champion_alias,
        target,
        expected_version=current,
        reason=reason,
        actor=actor,
    )
    if current is not None:
        move_alias(
            registry,
            model,
            PREVIOUS_ALIAS,
            current,
            expected_version=target,
            reason=f"kept as previous after rolling back from v{current}",
            actor=actor,
        )
    return move


def _v(version: str | None) -> str:
    return "nothing" if version is None else f"v{version}"


__all__ = [
    "CHANGE_PREFIX",
    "PREVIOUS_ALIAS",
    "AliasConflictError",
    "AliasMove",
    "ExperimentChange",
    "default_actor",
    "experiment_changes",
    "experiment_changes_from_tags",
    "history",
    "move_alias",
    "promote",
    "record_experiment_change",
    "rollback",
]
