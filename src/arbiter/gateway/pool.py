"""The models a gateway serves, and their hot swap when a registry alias moves.

:meth:`ModelPool.refresh` asks the registry which version each alias points at and loads any
version it does not have yet. The new model replaces the old one by a single reference
assignment; requests already running keep the model object they started with, so a swap
never fails or drops an in-flight request. When the registry cannot be reached, the pool keeps
what it has and records the failure for ``/readyz`` and the logs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from arbiter.config import HomeConfig, ModelConfig
from arbiter.errors import ArbiterError, NotFoundError
from arbiter.registry.base import ModelRegistry
from arbiter.routing import Strategy
from arbiter.servable import ServableModel
from arbiter.strategies import spec_for

log = logging.getLogger(__name__)

#: How old (seconds) every stamp of a registry fingerprint must be before an unchanged
#: fingerprint lets a poll skip the registry (see :meth:`ModelPool._fingerprint`).
FINGERPRINT_SETTLE_S = 2.0


def build_strategy(name: str, config: ModelConfig) -> Strategy:
    """The routing strategy configured for model ``name``, as it starts.

    Built by the strategy's spec (:mod:`arbiter.strategies`). Canary and bandit strategies
    start here (canary at 0 %, bandit uniform) and are replaced by their controllers
    (:mod:`arbiter.gateway.controllers`) from the shared state before the gateway takes
    traffic.
    """
    return spec_for(config.experiment.strategy).routing(name, config)


@dataclass
class Endpoint:
    """One served model name: its config, strategy and the loaded version of each alias."""

    name: str
    config: ModelConfig
    strategy: Strategy
    models: dict[str, ServableModel] = field(default_factory=dict)  # alias -> model
    load_errors: dict[str, str] = field(default_factory=dict)  # alias -> last load error
    canary: dict[str, Any] | None = None  # set by the canary controller (arbiter.gateway.canary)
    bandit: dict[str, Any] | None = None  # the bandit controller's last update (GET /models)
    control: dict[str, Any] | None = None  # an A/B experiment's live control (split, stop)
    experiment_override: str | None = None  # the logged experiment name, when controlled

    @property
    def experiment(self) -> str:
        return self.experiment_override or self.config.experiment_name(self.name)

    @property
    def arms(self) -> dict[str, str]:
        """Arm name -> alias (see :meth:`ModelConfig.arms`)."""
        return self.config.arms()

    @property
    def aliases_needed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.config.arms().values()))

    def model(self, alias: str) -> ServableModel | None:
        return self.models.get(alias)

    @property
    def ready(self) -> bool:
        return self.config.champion_alias in self.models

    def experiment_state(self) -> str:
        """``running`` when every arm is loaded, else what it waits for."""
        if not self.ready:
            return "no_champion"
        if not self.config.experiment.challenger_arms():
            return "champion_only"
        if any(alias not in self.models for alias in self.aliases_needed):
            return "waiting_for_challenger"
        return "running"


@dataclass
class RegistryStatus:
    reachable: bool = False
    last_success: float | None = None  # time.time() of the last successful poll
    last_error: str | None = None
    polls: int = 0


def input_ranges(registry: Any, name: str, version: str) -> dict[str, tuple[float, float]] | None:
    """Column -> (min, max) from the reference profile stored with ``name`` v``version``.

    For ``inputs.out_of_range: reject``. None, with a warning, when the registry has no
    tracking URI (not MLflow) or the version has no profile: the version is served unchecked
    rather than not at all.
    """
    from arbiter.registry.profiles import load_profile

    tracking_uri = getattr(registry, "tracking_uri", None)
    if tracking_uri is None:
        return None
    try:
        profile = load_profile(
            tracking_uri, name, version, registry_uri=getattr(registry, "registry_uri", None)
        )
    except ArbiterError as exc:
        log.warning(
            "%s v%s: inputs.out_of_range is on but no range is known, inputs are not "
            "range-checked: %s",
            name,
            version,
            exc,
        )
        return None
    return {
        column.name: (column.min, column.max)
        for column in profile.columns
        if column.kind == "numeric" and math.isfinite(column.min) and math.isfinite(column.max)
    }


class ModelPool:
    """Holds every endpoint's models and refreshes them from the registry."""

    def __init__(self, registry: ModelRegistry, config: HomeConfig) -> None:
        self.registry = registry
        self.config = config
        self.endpoints: dict[str, Endpoint] = {
            name: Endpoint(name, cfg, build_strategy(name, cfg))
            for name, cfg in config.models.items()
        }
        self.status = RegistryStatus()
        self._lock = threading.Lock()  # one refresh at a time
        self.swaps = 0
        # The registry's fingerprint after the last clean poll, when it can be trusted.
        self._unchanged_since: Any = None
        self.skipped_polls = 0
        # Seconds each version took to load at start-up, "model@alias vN" -> s (its log line).
        self.load_seconds: dict[str, float] = {}

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise NotFoundError(
                f"model {name!r} is not served here; served models: {sorted(self.endpoints)}"
            ) from None

    def _fingerprint(self) -> tuple[Any, bool]:
        """The registry's fingerprint (None: it has none) and whether it may be trusted.

        A file's mtime has the file system's granularity (a few ms on ext4): a write in the
        same tick as the one we saw, after we read, would leave it unchanged. So a fingerprint
        is trusted only when every stamp in it is older than :data:`FINGERPRINT_SETTLE_S`.
        """
        fingerprint = getattr(self.registry, "fingerprint", None)
        if fingerprint is None:
            return None, False
        now_ns = time.time_ns()
        value = fingerprint()
        if value is None:
            return None, False
        settle_ns = int(FINGERPRINT_SETTLE_S * 1e9)
        return value, all(now_ns - mtime_ns > settle_ns for mtime_ns, _size in value)

    def refresh(self) -> list[tuple[str, str, str | None, str]]:
        """Poll the registry once; returns the swaps made as (model, alias, old, new).

        Cheap when nothing changed: a registry with a fingerprint (the embedded SQLite store)
        is asked nothing when its fingerprint equals the one after the last clean poll (no
        error, every alias loaded), so the usual poll is a few ``stat`` calls rather than an
        MLflow query per model. Loading a new version runs only when an alias moved.
        """
        swaps: list[tuple[str, str, str | None, str]] = []
        with self._lock:
            fingerprint, trusted = self._fingerprint()
            if fingerprint is not None and fingerprint == self._unchanged_since:
                self.status.polls += 1
                self.status.last_success = time.time()
                self.skipped_polls += 1
                return swaps
            errors: list[str] = []
            for endpoint in self.endpoints.values():
                try:
                    aliases = self.registry.aliases(endpoint.name)
                except NotFoundError as exc:  # the registry answered: this model is not there
                    endpoint.load_errors["*"] = str(exc)
                    continue
                except ArbiterError as exc:
                    errors.append(str(exc))
                    continue
                models = dict(endpoint.models)
                for alias in endpoint.aliases_needed:
                    version = aliases.get(alias)
                    current = models.get(alias)
                    if version is None:
                        if current is None:
                            endpoint.load_errors[alias] = f"alias {alias!r} is not set"
                        continue  # an alias removed from the registry keeps serving what it had
                    if current is not None and current.version == version:
                        continue
                    try:
                        started = time.perf_counter()
                        models[alias] = self.registry.load(endpoint.name, version)
                        if self.status.polls == 0:  # the start-up's loads only: bounded
                            self.load_seconds[f"{endpoint.name}@{alias} v{version}"] = (
                                time.perf_counter() - started
                            )
                        if endpoint.config.inputs.out_of_range != "off":
                            models[alias].ranges = input_ranges(
                                self.registry, endpoint.name, version
                            )
                    except ArbiterError as exc:
                        endpoint.load_errors[alias] = str(exc)
                        log.error(
                            "could not load %s@%s v%s: %s", endpoint.name, alias, version, exc
                        )
                        continue
                    endpoint.load_errors.pop(alias, None)
                    swaps.append(
                        (endpoint.name, alias, current.version if current else None, version)
                    )
                    log.info(
                        "%s@%s now serves v%s (was %s)",
                        endpoint.name,
                        alias,
                        version,
                        f"v{current.version}" if current else "nothing",
                    )
                endpoint.models = models  # one reference assignment: the swap is atomic
            self.status.polls += 1
            if errors:
                if self.status.reachable or self.status.last_error is None:
                    log.warning("registry unreachable, serving the loaded versions: %s", errors[0])
                self.status.reachable = False
                self.status.last_error = errors[0]
            else:
                if not self.status.reachable and self.status.polls > 1:
                    log.info("registry reachable again")
                self.status.reachable = True
                self.status.last_success = time.time()
                self.status.last_error = None
            self.swaps += len(swaps)
            clean = not errors and not any(e.load_errors for e in self.endpoints.values())
            self._unchanged_since = fingerprint if clean and trusted else None
        return swaps

    def describe_loads(self) -> str:
        """How long each loaded version took, e.g. ``fraud@champion v3 0.21 s``."""
        return ", ".join(f"{k} {s:.2f} s" for k, s in self.load_seconds.items()) or "none"

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /models`` returns."""
        out = []
        for endpoint in self.endpoints.values():
            exp = endpoint.config.experiment
            item: dict[str, Any] = {
                "name": endpoint.name,
                "aliases": {alias: m.version for alias, m in endpoint.models.items()},
                "ready": endpoint.ready,
                "experiment": {
                    "name": endpoint.experiment,
                    "strategy": exp.strategy,
                    "state": endpoint.experiment_state(),
                    "champion_alias": endpoint.config.champion_alias,
                },
            }
            item["experiment"].update(spec_for(exp.strategy).describe(exp, endpoint))
            if endpoint.load_errors:
                item["load_errors"] = dict(endpoint.load_errors)
            out.append(item)
        return out


__all__ = ["Endpoint", "ModelPool", "RegistryStatus", "build_strategy"]
