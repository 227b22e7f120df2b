"""What a strategy declares, and the registry that maps its name to it.

A :class:`StrategySpec` is everything arbiter knows about one strategy: its configuration
model, how it routes, its optional live controller, its analysis and what it adds to
``GET /models``, ``/metrics`` and ``arbiter report``. The gateway, the analysis, the report and
the CLI look the spec up by the experiment's ``strategy`` instead of switching on names.

The pure parts (config model, routing, describe) are plain objects. The hooks that live in the
shell (a controller in :mod:`arbiter.gateway`, an analysis in :mod:`arbiter.analysis`, a report
section in :mod:`arbiter.report`) are named by an import string ``"package.module:attr"`` and
imported on first use, the way pip's ``commands/__init__.py`` loads its commands: those
modules import :mod:`arbiter.config`, which imports this registry, so importing them here
would be a cycle. A callable is accepted too (a strategy defined in a test).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from arbiter.errors import ConfigError

if TYPE_CHECKING:
    from arbiter.config import ModelConfig
    from arbiter.routing import Strategy
    from arbiter.strategies.base import ExperimentConfig

#: An import string ``"package.module:attr"``, or the object itself.
Hook = str | Callable[..., Any]


def resolve_hook(hook: Hook) -> Callable[..., Any]:
    """The object an import string names (imported now), or ``hook`` itself if callable.

    Raises
    ------
    ConfigError
        The string is not ``"module:attr"``, the module cannot be imported, or it has no such
        attribute.
    """
    if callable(hook):
        return hook
    module_name, sep, attr = hook.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"hook {hook!r} must look like 'package.module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"hook {hook!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"hook {hook!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ConfigError(f"hook {hook!r} is not callable")
    return target


class LiveEndpoint(Protocol):
    """What a spec's ``describe`` reads of a served model (``arbiter.gateway.pool.Endpoint``)."""

    @property
    def arms(self) -> dict[str, str]: ...

    strategy: Strategy
    canary: dict[str, Any] | None
    bandit: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Controller:
    """A strategy's live controller in the gateway (one asyncio task per model).

    ``run(state, model)`` is the task; ``prime(state, model)``, when given, applies the stored
    state once before the gateway takes traffic. Both are awaited with the gateway's
    ``GatewayState`` and the model's name.
    """

    run: Hook
    prime: Hook | None = None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One Prometheus metric a strategy adds to ``/metrics``.

    The gateway creates it once per app and exposes it as ``GatewayMetrics.<attr>``; the
    strategy's controller updates it.
    """

    attr: str
    kind: Literal["counter", "gauge"]
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    multiprocess_mode: str = "liveall"  # gauges only (see prometheus_client.Gauge)


def _no_description(config: Any, endpoint: LiveEndpoint) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """Everything one strategy declares (see docs/design/strategies.md).

    Parameters
    ----------
    name : str
        The value of ``experiment.strategy``; also the ``strategy`` column of the event log.
    config : type of ExperimentConfig
        The pydantic model of the ``experiment:`` block under this strategy (only its keys).
    routing : callable
        ``routing(model, model_config) -> Strategy``: the pure routing object of
        :mod:`arbiter.routing` the gateway starts with for model ``model``.
    controller : Controller, optional
        The live controller that replaces the routing object while the gateway runs (canary
        share, bandit allocation).
    analysis : hook, optional
        ``analysis(con, model, experiment, *, model_config, policy) -> Analysis`` for
        ``arbiter analyze``; None: the strategy has nothing to analyse there.
    describe : callable
        ``describe(experiment_config, endpoint) -> dict`` of keys added to the experiment of
        ``GET /models``.
    metrics : tuple of MetricSpec
        Metrics the strategy adds to ``/metrics``.
    report : hook, optional
        ``report(con, model, experiment, task, *, decision) -> dict`` of keys added to the
        experiment's section of ``arbiter report`` (``decision``: the model's ``decision:``
        section, or None when the home has no config for it).
    labels_score_models : bool
        Whether a label is the ground truth of each model's prediction, so ``arbiter report``
        shows accuracy or error per model (false for interleaving: labels are clicks).
    """

    name: str
    config: type[ExperimentConfig]
    routing: Callable[[str, ModelConfig], Strategy]
    controller: Controller | None = None
    analysis: Hook | None = None
    describe: Callable[[Any, LiveEndpoint], dict[str, Any]] = _no_description
    metrics: tuple[MetricSpec, ...] = ()
    report: Hook | None = None
    labels_score_models: bool = True
    _resolved: dict[str, Callable[..., Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def hook(
        self, name: Literal["analysis", "report", "run", "prime"]
    ) -> Callable[..., Any] | None:
        """The hook ``name`` imported and cached (``run``/``prime``: the controller's)."""
        if name in self._resolved:
            return self._resolved[name]
        if name in ("run", "prime"):
            target = None if self.controller is None else getattr(self.controller, name)
        else:
            target = getattr(self, name)
        resolved = None if target is None else resolve_hook(target)
        if resolved is not None:
            self._resolved[name] = resolved
        return resolved


#: The registered strategies, by name (filled by ``arbiter.strategies``; see :func:`register`).
SPECS: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    """Add ``spec`` to :data:`SPECS`, the one line that makes a strategy known.

    Registering the same spec again is a no-op; another spec under a taken name is an error.
    """
    current = SPECS.get(spec.name)
    if current is not None and current is not spec:
        raise ConfigError(f"strategy {spec.name!r} is already registered")
    if spec.config.model_fields["strategy"].default != spec.name:
        raise ConfigError(
            f"strategy {spec.name!r}: its config model's strategy field must default to "
            f"{spec.name!r}"
        )
    SPECS[spec.name] = spec
    return spec


def spec_for(name: str) -> StrategySpec:
    """The spec registered under ``name``.

    Raises
    ------
    ConfigError
        No strategy of that name; the message lists the known ones.
    """
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; known strategies: {', '.join(sorted(SPECS))}"
        ) from None


__all__ = [
    "SPECS",
    "Controller",
    "Hook",
    "LiveEndpoint",
    "MetricSpec",
    "StrategySpec",
    "register",
    "resolve_hook",
    "spec_for",
]
