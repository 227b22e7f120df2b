"""The pydantic base of every strategy's experiment config, and the blocks several share.

:class:`ExperimentConfig` holds the keys every strategy has (``name``, ``strategy``, how a
request names its unit). Validating a mapping against it picks the model registered for the
mapping's ``strategy`` (:func:`arbiter.strategies.spec.spec_for`), so the ``experiment:`` block
of ``arbiter.yaml`` is a union discriminated by ``strategy`` that includes strategies
registered at run time. A key that belongs to another strategy is refused with a message
naming that strategy.

Lives apart from :mod:`arbiter.config`, which imports the registry, so that the strategy
modules can subclass these without importing the config module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    field_validator,
    model_validator,
)

from arbiter.strategies.spec import SPECS, LiveEndpoint, spec_for


class Frozen(BaseModel):
    """Immutable, and unknown keys are errors (a typo must not fall back to a default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ExperimentConfig(Frozen):
    """How challengers get traffic for one model: the keys every strategy shares.

    Validate a mapping with ``ExperimentConfig.model_validate(raw)`` to get the model of
    ``raw["strategy"]`` (default ``none``); build a known strategy's config with its own class.
    """

    name: str | None = Field(
        default=None, description="Experiment name; also the hashing salt. Default: MODEL-STRATEGY."
    )
    strategy: str = "none"
    unit_field: str = Field(
        default="unit_id", description="Request field (arbiter JSON) that identifies the unit."
    )
    unit_header: str = Field(
        default="X-Unit-Id", description="HTTP header that identifies the unit (any protocol)."
    )
    # Deadlines (docs/canary.md, "Deadlines and isolation"): every strategy, since a hung
    # champion freezes a worker as surely as a hung challenger.
    isolate_arms: bool | None = Field(
        default=None,
        description="Score the served arms off the event loop, the champion and the other arms "
        "each in its own small thread pool, with a deadline (champion_timeout_s, "
        "challenger_timeout_s): a slow or hung model cannot stall the worker or /healthz. "
        "Default (null): on for every strategy; false scores inline, with no deadline "
        "(about 0.3 ms p50 less per request, docs/benchmarks.md).",
    )
    champion_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        description="With isolate_arms: a champion slower than this answers 504 "
        "(model_timeout), logged as its error. Generous: it only stops a hung model.",
    )

    def __init__(self, **data: Any) -> None:
        if type(self) is ExperimentConfig:
            # __init__ cannot return another class: point at what can.
            raise TypeError(
                "ExperimentConfig is the shared base; use ExperimentConfig.model_validate(raw) "
                "or the strategy's own model (e.g. arbiter.config.ABExperimentConfig)"
            )
        super().__init__(**data)

    @model_validator(mode="wrap")
    @classmethod
    def _by_strategy(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if cls is not ExperimentConfig or not isinstance(data, Mapping):
            return handler(data)
        strategy = data.get("strategy", "none")
        if not isinstance(strategy, str):
            raise ValueError(f"strategy must be a name, got {strategy!r}")
        model = spec_for(strategy).config
        _refuse_foreign_keys(data, model, strategy)
        return model.model_validate(data)

    def challenger_arms(self) -> dict[str, str]:
        """Arm name -> registry alias of every arm besides the champion's."""
        return {}

    def arms_isolated(self) -> bool:
        """Whether the served arms score in thread pools, with deadlines (``isolate_arms``)."""
        return self.isolate_arms is not False

    def timeout_s(self, arm: str) -> float:
        """The deadline of one call by ``arm`` (the champion's, or a challenger's)."""
        return self.champion_timeout_s

    def falls_back(self) -> bool:
        """Whether a failed challenger call is answered by the champion instead."""
        return False


def _refuse_foreign_keys(data: Mapping[str, Any], model: type[BaseModel], strategy: str) -> None:
    """Name the strategy a misplaced key belongs to (unknown keys are left to pydantic)."""
    for key in data:
        if key in model.model_fields:
            continue
        owners = [name for name, spec in sorted(SPECS.items()) if key in spec.config.model_fields]
        if not owners:
            continue
        block = isinstance(_default(owners[0], key), BaseModel)
        what = f"{key} settings apply" if block else f"{key} applies"
        raise ValueError(
            f"{what} to strategy {_either(owners)}, not {strategy!r}; remove "
            f"experiment.{key} or set strategy: {owners[0]}"
        )


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _default(strategy: str, key: str) -> Any:
    """The default of ``key`` in the config model of ``strategy``."""
    return SPECS[strategy].config.model_fields[key].get_default(call_default_factory=True)


class ChallengerConfig(Frozen):
    """One challenger of an A/B/n test or a bandit: its alias (also its arm name) and share."""

    alias: str
    share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="A/B/n: share of units sent to this challenger."
    )


class OneChallenger(ExperimentConfig):
    """A strategy with one challenger alias (served or shadowed as arm ``challenger``)."""

    challenger_alias: str = "challenger"

    def challenger_arms(self) -> dict[str, str]:
        return {"challenger": self.challenger_alias}


class SeveralChallengers(OneChallenger):
    """One challenger, or several in ``challengers`` (each arm named after its alias)."""

    challengers: list[ChallengerConfig] = Field(
        default_factory=list,
        description="A/B/n and bandit: several challengers (each alias is also its arm name); "
        "replaces challenger_alias/challenger_share.",
    )

    def challenger_arms(self) -> dict[str, str]:
        if self.challengers:
            return {c.alias: c.alias for c in self.challengers}
        return super().challenger_arms()

    @field_validator("challengers")
    @classmethod
    def _distinct(cls, value: list[ChallengerConfig]) -> list[ChallengerConfig]:
        aliases = [c.alias for c in value]
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"challenger aliases must be distinct, got {aliases}")
        if "champion" in aliases:
            raise ValueError("'champion' is the champion's arm name; use another alias")
        return value


class IsolatedArms(Frozen):
    """Settings of strategies whose challenger serves users (ab, canary, bandit)."""

    challenger_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        description="With isolate_arms: a challenger slower than this is stopped waiting for "
        "and the call is logged as its error (model_timeout), which a canary's guardrail "
        "counts; the user gets the champion's answer (fallback_to_champion) or a 504.",
    )
    fallback_to_champion: bool = Field(
        default=True,
        description="A challenger that raises or times out is answered by the champion for "
        "that request: the failure is logged as the challenger's error, the champion's answer "
        "with role 'fallback' (docs/analysis.md, 'Fallback requests'). false: the user gets "
        "the error (500, or 504 on a timeout).",
    )

    def timeout_s(self, arm: str) -> float:
        """The champion's deadline for the champion, ``challenger_timeout_s`` for the others."""
        champion = getattr(self, "champion_timeout_s", self.challenger_timeout_s)
        return champion if arm == "champion" else self.challenger_timeout_s

    def falls_back(self) -> bool:
        return self.fallback_to_champion


def describe_arms(config: ExperimentConfig, endpoint: LiveEndpoint) -> dict[str, Any]:
    """The ``GET /models`` keys of any strategy with challengers: arms and the live split."""
    arms = endpoint.arms
    out: dict[str, Any] = {}
    if "challenger" in arms:
        out["challenger_alias"] = arms["challenger"]
    out["arms"] = arms
    out["split"] = endpoint.strategy.weights()
    return out


__all__ = [
    "ChallengerConfig",
    "ExperimentConfig",
    "Frozen",
    "IsolatedArms",
    "OneChallenger",
    "SeveralChallengers",
    "describe_arms",
]
