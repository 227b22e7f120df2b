"""A running A/B or A/B/n experiment's live control: its split, stopped or running, its name.

The control is kept where every gateway worker and replica already looks on its registry
poll: a tag on the MLflow registered model (as the canary's state, :mod:`arbiter.canary.store`).

``arbiter.experiment.control``
    JSON of :class:`Control`: the experiment name configured in ``arbiter.yaml`` it belongs
    to (``base``; a control written for another configured experiment is ignored), the
    experiment name in effect (the hashing salt and the logged ``experiment``; a start under a
    new name salts a fresh assignment), ``status`` (``running`` or ``stopped``) and the
    challengers' shares (``None``: the configured ones).
``arbiter.experiment_change.<ts_us>``
    One :class:`~arbiter.registry.history.ExperimentChange` per change (who, why, when, shares
    before and after): the history ``arbiter history`` shows and the period boundaries the
    analysis reads (:mod:`arbiter.analysis.periods`).

A gateway worker reads both with the one ``get_registered_model`` call of its poll and swaps
its routing object (:mod:`arbiter.gateway.experiment_control`), so every worker applies a
change within one poll interval. While stopped, the champion serves everything and requests
are logged under ``<experiment>-stopped`` with strategy ``none``: the stopped experiment's
rows end at the stop, and its analysis reads exactly them.

Writes compare the stored ``version`` with the one read just before (a concurrent writer
makes the write fail with :class:`ExperimentConflictError`); MLflow has no conditional write,
so two writers within one registry round trip can still both succeed, the later one winning
(both changes are in the history).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from arbiter.errors import ArbiterError, InvalidInputError, NotFoundError, RegistryError
from arbiter.registry.history import (
    ExperimentChange,
    default_actor,
    experiment_changes_from_tags,
    record_experiment_change,
)

if TYPE_CHECKING:
    from arbiter.config import ModelConfig
    from arbiter.routing import Strategy

CONTROL_TAG = "arbiter.experiment.control"
STOPPED_SUFFIX = "-stopped"
_MAX_REASON = 300

Status = Literal["running", "stopped"]


class ExperimentConflictError(ArbiterError):
    """The model's experiment cannot take this change (not A/B, already stopped, changed
    meanwhile). HTTP 409."""


@dataclass(frozen=True)
class Control:
    """The live control of one model's A/B experiment (see the module docstring)."""

    base: str
    experiment: str
    status: Status = "running"
    shares: dict[str, float] | None = None
    version: int = 0
    updated_at: float | None = None
    actor: str | None = None
    reason: str | None = None

    @property
    def logged_experiment(self) -> str:
        """The experiment name requests are logged under now."""
        return self.experiment + STOPPED_SUFFIX if self.status == "stopped" else self.experiment

    def key(self) -> tuple[Any, ...]:
        """What routing depends on (a worker swaps its strategy when this changes)."""
        shares = None if self.shares is None else tuple(sorted(self.shares.items()))
        return (self.experiment, self.status, shares)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, raw: str | None, base: str) -> Control | None:
        """The stored control if it belongs to configured experiment ``base``, else None."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            control = cls(
                base=str(data["base"]),
                experiment=str(data["experiment"]),
                status="stopped" if data.get("status") == "stopped" else "running",
                shares=None
                if data.get("shares") is None
                else {str(k): float(v) for k, v in data["shares"].items()},
                version=int(data.get("version", 0)),
                updated_at=data.get("updated_at"),
                actor=data.get("actor"),
                reason=data.get("reason"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(
                f"the tag {CONTROL_TAG} does not hold an experiment control ({exc}); delete it "
                "to go back to the configured split"
            ) from exc
        return control if control.base == base else None


def configured_shares(config: ModelConfig) -> dict[str, float]:
    """Challenger arm -> share as configured in ``arbiter.yaml`` (A/B: arm ``challenger``)."""
    exp: Any = config.experiment
    if exp.challengers:
        return {c.alias: float(c.share) for c in exp.challengers}
    return {"challenger": float(exp.challenger_share)}


def _check_ab(model: str, config: ModelConfig) -> None:
    strategy = config.experiment.strategy
    if strategy != "ab":
        hint = "; steer a canary with `arbiter canary`" if strategy == "canary" else ""
        raise ExperimentConflictError(
            f"model {model!r} runs strategy {strategy!r}; split changes, stop and start apply "
            f"to A/B and A/B/n experiments (strategy: ab) only{hint}"
        )


def build_strategy(model: str, config: ModelConfig, control: Control) -> Strategy:
    """The routing object for ``control``: the split at its shares, or the champion alone.

    The slots of the hash space come from the *configured* shares, so a changed share moves
    units only between the champion and that challenger (:mod:`arbiter.routing.split`).

    Raises
    ------
    InvalidInputError
        A share outside [0, 1], beyond its challenger's slot, or shares summing above 1.
    """
    from arbiter.routing import ChampionOnly
    from arbiter.strategies.ab import routing_with_shares

    if control.status == "stopped":
        return ChampionOnly(config.champion_alias)
    return routing_with_shares(
        config, control.shares or configured_shares(config), control.experiment
    )


def _validate_shares(config: ModelConfig, shares: Mapping[str, Any]) -> dict[str, float]:
    known = configured_shares(config)
    if not shares:
        raise InvalidInputError("give at least one share", field="shares")
    out: dict[str, float] = {}
    for arm, value in shares.items():
        if arm not in known:
            raise InvalidInputError(
                f"unknown challenger {arm!r}; the experiment's challengers are {sorted(known)}",
                field=f"shares.{arm}",
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"share of {arm!r} must be a number", field=f"shares.{arm}")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidInputError(
                f"share of {arm!r} must be within [0, 1], got {value}", field=f"shares.{arm}"
            )
        out[arm] = float(value)
    return out


class ExperimentControl:
    """Read and change one model's live experiment control in the registry.

    Parameters
    ----------
    registry : MLflowRegistry
        The shared registry (its ``client``).
    model : str
        The registered model (endpoint) name.
    config : ModelConfig
        The model's configuration (strategy ``ab``).
    poll_interval_s : float
        The gateways' registry poll interval: a change is applied within it; the analysis
        leaves ``2 * poll_interval_s + 1`` seconds after each change out of the SRM check.
    """

    def __init__(
        self, registry: Any, model: str, config: ModelConfig, *, poll_interval_s: float
    ) -> None:
        self.registry = registry
        self.model = model
        self.config = config
        self.base = config.experiment_name(model)
        self.grace_s = 2.0 * poll_interval_s + 1.0

    def default(self) -> Control:
        return Control(base=self.base, experiment=self.base)

    def tags(self) -> dict[str, str]:
        try:
            found = self.registry.client.get_registered_model(self.model)
        except Exception as exc:
            code = getattr(exc, "error_code", None)
            if code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
                raise NotFoundError(f"registered model {self.model!r} does not exist") from exc
            raise RegistryError(f"registered model {self.model!r}: {exc}") from exc
        return dict(found.tags or {})

    def read(self, tags: Mapping[str, str] | None = None) -> Control:
        """The control in effect (the configured split when nothing is stored for it)."""
        tags = self.tags() if tags is None else tags
        return Control.parse(tags.get(CONTROL_TAG), self.base) or self.default()

    def strategy(self, control: Control) -> Strategy:
        return build_strategy(self.model, self.config, control)

    def effective_shares(self, control: Control) -> dict[str, float] | None:
        if control.status == "stopped":
            return None
        return dict(control.shares or configured_shares(self.config))

    def status(self) -> dict[str, Any]:
        """What ``arbiter split --json`` and the admin endpoints answer."""
        tags = self.tags()
        control = self.read(tags)
        changes = [
            c.to_dict()
            for c in experiment_changes_from_tags(tags)
            if c.experiment == control.experiment or c.previous_experiment == control.experiment
        ]
        return {
            "model": self.model,
            "experiment": control.experiment,
            "logged_experiment": control.logged_experiment,
            "status": control.status,
            "shares": self.effective_shares(control),
            "configured_shares": configured_shares(self.config),
            "version": control.version,
            "changes": changes,
        }

    # --- changes -----------------------------------------------------------------------------

    def set_split(
        self, shares: Mapping[str, Any], *, reason: str | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        """Change the challengers' shares (those not given keep theirs)."""
        _check_ab(self.model, self.config)
        new = _validate_shares(self.config, shares)
        current = self.read()
        if current.status == "stopped":
            raise ExperimentConflictError(
                f"the experiment {current.experiment!r} of {self.model!r} is stopped; start it "
                "before changing its split"
            )
        before = self.effective_shares(current) or {}
        after = {**before, **new}
        candidate = replace(current, shares=after)
        self.strategy(candidate)  # InvalidInputError when the split is impossible
        return self._write(current, candidate, "split", before, after, reason, actor)

    def stop(self, *, reason: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """End the experiment: the champion serves everything, logged apart."""
        _check_ab(self.model, self.config)
        current = self.read()
        if current.status == "stopped":
            return {**self.status(), "unchanged": "the experiment is already stopped"}
        before = self.effective_shares(current)
        return self._write(current, replace(current, status="stopped"), "stop", before, None,
                           reason, actor)  # fmt: skip

    def start(
        self, *, name: str | None = None, reason: str | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        """Restart the experiment, or start a fresh one under ``name`` (a new salt)."""
        _check_ab(self.model, self.config)
        current = self.read()
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200 or name.endswith(STOPPED_SUFFIX):
                raise InvalidInputError(
                    f"experiment name must be 1-200 characters, not ending in {STOPPED_SUFFIX!r}",
                    field="name",
                )
        fresh = name is not None and name != current.experiment
        if current.status == "running" and not fresh:
            return {**self.status(), "unchanged": "the experiment is already running"}
        if fresh:
            # A new experiment: a new salt and the configured split.
            candidate = replace(current, experiment=name, status="running", shares=None)
        else:
            candidate = replace(current, status="running")
        before = self.effective_shares(current)
        after = self.effective_shares(candidate)
        previous = current.experiment if fresh else None
        return self._write(current, candidate, "start", before, after, reason, actor, previous)

    def _write(
        self,
        current: Control,
        new: Control,
        action: str,
        before: dict[str, float] | None,
        after: dict[str, float] | None,
        reason: str | None,
        actor: str | None,
        previous: str | None = None,
    ) -> dict[str, Any]:
        actor = actor or default_actor()
        reason = (reason or f"manual {action}")[:_MAX_REASON]
        now = time.time()
        stored = replace(
            new, version=current.version + 1, updated_at=now, actor=actor, reason=reason
        )
        if self.read().version != current.version:  # compare (see the module docstring)
            raise ExperimentConflictError(
                f"the experiment control of {self.model!r} changed meanwhile; re-read and retry"
            )
        try:
            self.registry.client.set_registered_model_tag(
                self.model, CONTROL_TAG, json.dumps(stored.to_dict(), sort_keys=True)
            )
        except Exception as exc:
            raise RegistryError(
                f"{self.model}: writing the experiment control failed: {exc}"
            ) from exc
        change = ExperimentChange(
            ts_us=int(now * 1_000_000),
            model=self.model,
            experiment=new.experiment,
            action=action,
            shares_before=before,
            shares_after=after,
            actor=actor,
            reason=reason,
            grace_s=self.grace_s,
            previous_experiment=previous,
        )
        record_experiment_change(self.registry, change)
        return {**self.status(), "change": change.to_dict()}


def attach_experiment_changes(con: Any, registry: Any, model: str) -> None:
    """Register ``model``'s recorded experiment changes on ``con`` as ``experiment_changes``,
    so the analysis tests SRM per split period (:mod:`arbiter.analysis.periods`).

    A registry that cannot be read leaves the table out: the analysis then checks SRM against
    the configured split, as it does for an experiment whose split never changed.
    """
    from arbiter.registry.history import experiment_changes

    try:
        changes = experiment_changes(registry, model)
    except ArbiterError:
        return
    con.register("experiment_changes", changes_table(changes))


def attach_for_home(con: Any, home: Any, model: str) -> None:
    """:func:`attach_experiment_changes` with the registry of ``home`` (an arbiter Home)."""
    from arbiter.registry import MLflowRegistry

    config = home.config()
    registry = MLflowRegistry(
        home.tracking_uri(config),
        registry_uri=config.registry.registry_uri,
        artifact_location=home.artifact_location(),
    )
    attach_experiment_changes(con, registry, model)


def changes_table(changes: list[ExperimentChange]) -> Any:
    """The changes as the Arrow table ``experiment_changes`` the analysis reads
    (:func:`arbiter.analysis.periods.attach_changes`)."""
    import pyarrow as pa

    return pa.table(
        {
            "model": pa.array([c.model for c in changes], pa.string()),
            "experiment": pa.array([c.experiment for c in changes], pa.string()),
            "previous_experiment": pa.array([c.previous_experiment for c in changes], pa.string()),
            "ts": pa.array([c.ts_us / 1e6 for c in changes], pa.float64()),
            "action": pa.array([c.action for c in changes], pa.string()),
            "shares_before": pa.array(
                [None if c.shares_before is None else json.dumps(c.shares_before) for c in changes],
                pa.string(),
            ),
            "shares_after": pa.array(
                [None if c.shares_after is None else json.dumps(c.shares_after) for c in changes],
                pa.string(),
            ),
            "grace_s": pa.array([c.grace_s for c in changes], pa.float64()),
        }
    )


__all__ = [
    "CONTROL_TAG",
    "STOPPED_SUFFIX",
    "Control",
    "ExperimentConflictError",
    "ExperimentControl",
    "attach_experiment_changes",
    "build_strategy",
    "changes_table",
    "configured_shares",
]
