"""The home's configuration file, ``HOME/arbiter.yaml``.

Parsed once at start-up into frozen pydantic models and passed down; nothing reads it
globally. Unknown keys are errors, so a typo (``stratgy:``) does not silently fall back to a
default. The schema is documented in the README ("Configuration").
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from arbiter.errors import ConfigError

CONFIG_FILE = "arbiter.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChallengerConfig(_Frozen):
    """One challenger of an A/B/n test or a bandit: its alias (also its arm name) and share."""

    alias: str
    share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="A/B/n: share of units sent to this challenger."
    )


class CanaryStageConfig(_Frozen):
    """One stage of a canary plan (see arbiter.routing.canary.CanaryStage)."""

    share: float = Field(gt=0.0, le=1.0, description="Challenger share during the stage.")
    min_requests: int = Field(default=0, ge=0, description="Challenger requests in the stage.")
    min_duration_s: float = Field(default=0.0, ge=0.0, description="Seconds the stage lasts.")


class CanaryRampConfig(_Frozen):
    """A time-based linear ramp instead of explicit stages."""

    start_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_share: float = Field(default=1.0, gt=0.0, le=1.0)
    duration_s: float = Field(gt=0.0, description="Seconds from start_share to target_share.")
    step_s: float = Field(gt=0.0, description="The share changes every step_s seconds.")
    min_requests: int = Field(default=0, ge=0, description="Challenger requests per step.")

    @model_validator(mode="after")
    def _shape(self) -> CanaryRampConfig:
        if self.start_share >= self.target_share:
            raise ValueError("start_share must be below target_share")
        if self.step_s > self.duration_s:
            raise ValueError("step_s must be <= duration_s")
        return self


class CanaryConfig(_Frozen):
    """How a canary ramps, how often it is checked, and what a rollback does."""

    stages: list[CanaryStageConfig] | None = Field(
        default=None,
        description="Explicit plan; default 1% -> 5% -> 25% -> 50% -> 100% (docs/canary.md).",
    )
    ramp: CanaryRampConfig | None = Field(
        default=None, description="Time-based linear ramp instead of stages."
    )
    analysis_interval_s: float = Field(
        default=60.0, gt=0.0, description="Seconds between checkpoint analyses."
    )
    require_primary_sample: bool = Field(
        default=True,
        description="Promote only once the primary metric reached decision.min_sample_per_arm "
        "labelled rows per arm; false for models without labels (guardrails only).",
    )
    max_prediction_psi: float | None = Field(
        default=0.25,
        gt=0.0,
        description="Guardrail: PSI of the challenger's predictions against the champion's "
        "since the canary started (null disables).",
    )
    on_rollback: Literal["archive", "flag"] = Field(
        default="archive",
        description="archive: remove the challenger alias and tag the version archived; "
        "flag: only tag the version.",
    )

    @model_validator(mode="after")
    def _one_plan(self) -> CanaryConfig:
        if self.stages is not None and self.ramp is not None:
            raise ValueError("give either stages or ramp, not both")
        if self.stages is not None:
            if not self.stages:
                raise ValueError("stages must not be empty")
            shares = [s.share for s in self.stages]
            if any(b <= a for a, b in itertools.pairwise(shares)):
                raise ValueError("stage shares must be strictly increasing")
            if shares[-1] != 1.0:
                raise ValueError("the last stage must have share 1.0 (the promotion stage)")
        return self


class InterleaveConfig(_Frozen):
    """Interleaving of two rankers (ranking models answer an ordered list of item ids)."""

    method: Literal["team_draft", "balanced"] = "team_draft"
    length: int | None = Field(
        default=10, ge=1, description="Items in the merged list (null: as long as both lists)."
    )


class BanditSettings(_Frozen):
    """Thompson sampling over the champion and the challengers."""

    reward: Literal["binary", "bounded"] = Field(
        default="binary", description="binary: labels 0/1; bounded: any reward in [0, 1]."
    )
    floor: float = Field(default=0.05, ge=0.0, lt=1.0, description="Minimum share of every arm.")
    warmup: int = Field(
        default=100, ge=0, description="Uniform allocation until every arm has this many rewards."
    )
    update_interval_s: float = Field(
        default=10.0, gt=0.0, description="Seconds between allocation updates from the event log."
    )


class ExperimentConfig(_Frozen):
    """How challengers get traffic for one model."""

    name: str | None = Field(
        default=None, description="Experiment name; also the hashing salt. Default: MODEL-STRATEGY."
    )
    strategy: Literal["none", "shadow", "ab", "canary", "interleave", "bandit"] = "none"
    challenger_alias: str = "challenger"
    challenger_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="A/B: share of units sent to the challenger."
    )
    challengers: list[ChallengerConfig] = Field(
        default_factory=list,
        description="A/B/n and bandit: several challengers (each alias is also its arm name); "
        "replaces challenger_alias/challenger_share.",
    )
    unit_field: str = Field(
        default="unit_id", description="Request field (arbiter JSON) that identifies the unit."
    )
    unit_header: str = Field(
        default="X-Unit-Id", description="HTTP header that identifies the unit (any protocol)."
    )
    shadow_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    shadow_max_in_flight: int = Field(default=8, ge=1, le=10_000)
    shadow_timeout_s: float = Field(default=5.0, gt=0.0)
    shadow_executor: Literal["process", "thread"] = Field(
        default="process",
        description="process: low-priority worker processes (a CPU-bound challenger cannot "
        "slow the champion); thread: threads in the gateway process (light challengers).",
    )
    shadow_workers: int = Field(default=1, ge=1, le=64, description="process: worker count.")
    isolate_arms: bool | None = Field(
        default=None,
        description="Score the arms serving users off the event loop, each side in its own "
        "small thread pool, with challenger_timeout_s: a slow or hung challenger cannot stall "
        "the worker. Default (null): on for canary (the untrusted new model), off for ab and "
        "bandit, where scoring inline saves about 0.3 ms p50 and 2 ms p99 per request.",
    )
    challenger_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        description="With isolate_arms: a challenger slower than this answers 504 and the "
        "request is logged as its error (so a canary rolls a hung challenger back).",
    )

    def arms_isolated(self) -> bool:
        """Whether the served arms score in thread pools (see ``isolate_arms``)."""
        if self.strategy not in ("ab", "canary", "bandit"):
            return False
        return self.strategy == "canary" if self.isolate_arms is None else self.isolate_arms

    canary: CanaryConfig = CanaryConfig()
    interleave: InterleaveConfig = InterleaveConfig()
    bandit: BanditSettings = BanditSettings()

    @model_validator(mode="after")
    def _challengers(self) -> ExperimentConfig:
        if not self.challengers:
            return self
        if self.strategy not in ("ab", "bandit"):
            raise ValueError(
                f"challengers (several challengers) apply to strategy ab or bandit, "
                f"not {self.strategy!r}; use challenger_alias"
            )
        aliases = [c.alias for c in self.challengers]
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"challenger aliases must be distinct, got {aliases}")
        if "champion" in aliases:
            raise ValueError("'champion' is the champion's arm name; use another alias")
        if self.strategy == "ab" and sum(c.share for c in self.challengers) > 1.0 + 1e-9:
            raise ValueError("challenger shares sum to more than 1")
        return self


class GuardrailsConfig(_Frozen):
    """Limits the challenger must respect whatever the primary metric says (null disables one)."""

    max_error_rate: float | None = Field(
        default=0.01, ge=0.0, le=1.0, description="Challenger share of failed requests."
    )
    max_latency_p99_ratio: float | None = Field(
        default=2.0, ge=1.0, description="Challenger p99 latency / champion p99 latency."
    )
    max_shadow_discrepancy: float | None = Field(
        default=0.30, ge=0.0, le=1.0, description="Shadow: share of rows where the models disagree."
    )


class DecisionConfig(_Frozen):
    """How ``arbiter analyze`` turns an experiment's evidence into a decision (docs/analysis.md)."""

    preset: Literal["default", "classic_shadow"] = Field(
        default="default",
        description="default: paired/sequential tests; classic_shadow: the point-estimate "
        "shadow heuristic (shadow experiments only).",
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Two-sided test level.")
    sequential: bool = Field(
        default=True, description="A/B: always-valid confidence sequence, safe to peek."
    )
    min_sample_per_arm: int = Field(default=1000, ge=0, description="Labelled rows per arm.")
    max_sample_per_arm: int | None = Field(
        default=None, ge=1, description="Planned horizon: reached without a win keeps the champion."
    )
    mde: float | None = Field(
        default=None, gt=0.0, description="Smallest absolute effect worth detecting."
    )
    power: float = Field(default=0.8, gt=0.0, lt=1.0)
    loss: Literal["squared", "absolute"] = Field(
        default="squared", description="Regression: per-row loss compared between models."
    )
    srm_p_threshold: float = Field(default=0.001, gt=0.0, lt=1.0)
    guardrails: GuardrailsConfig = GuardrailsConfig()

    @model_validator(mode="after")
    def _max_sample(self) -> DecisionConfig:
        if self.max_sample_per_arm is not None and self.max_sample_per_arm < max(
            self.min_sample_per_arm, 1
        ):
            raise ValueError("max_sample_per_arm must be >= min_sample_per_arm")
        return self


class ModelConfig(_Frozen):
    """One registered model served at ``/models/{name}``."""

    champion_alias: str = "champion"
    experiment: ExperimentConfig = ExperimentConfig()
    decision: DecisionConfig = DecisionConfig()

    def experiment_name(self, model: str) -> str:
        return self.experiment.name or f"{model}-{self.experiment.strategy}"

    def arms(self) -> dict[str, str]:
        """Arm name -> registry alias, champion first.

        One challenger: ``{"champion": ..., "challenger": challenger_alias}``. Several
        (``experiment.challengers``): each challenger's arm is named after its alias. No
        experiment: the champion only.
        """
        exp = self.experiment
        arms = {"champion": self.champion_alias}
        if exp.strategy == "none":
            return arms
        if exp.challengers:
            arms.update({c.alias: c.alias for c in exp.challengers})
        else:
            arms["challenger"] = exp.challenger_alias
        return arms


class RegistryConfig(_Frozen):
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI. Default: sqlite:///HOME/mlflow.db"
    )
    registry_uri: str | None = None
    poll_interval_s: float = Field(default=5.0, gt=0.0)


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    api_token_env: str = Field(
        default="ARBITER_API_TOKEN",
        description="Environment variable holding the API token (never stored in the file).",
    )
    admin_token_env: str = Field(
        default="ARBITER_ADMIN_TOKEN",
        description="Environment variable holding a separate token for /admin (operator "
        "actions: promote, abort...). Unset: /admin takes the API token, so anyone who may "
        "post labels may also steer canaries.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_batch_rows: int = Field(default=10_000, ge=1)


class EventsConfig(_Frozen):
    flush_interval_s: float = Field(default=0.5, gt=0.0, le=60.0)
    max_batch: int = Field(default=50_000, ge=1)


class HomeConfig(_Frozen):
    """Everything in ``arbiter.yaml``."""

    registry: RegistryConfig = RegistryConfig()
    server: ServerConfig = ServerConfig()
    events: EventsConfig = EventsConfig()
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"model name {name!r} must match {_NAME.pattern}")
        return value

    @model_validator(mode="after")
    def _aliases_differ(self) -> HomeConfig:
        for name, model in self.models.items():
            exp = model.experiment
            if exp.strategy != "none" and exp.challenger_alias == model.champion_alias:
                raise ValueError(
                    f"models.{name}: challenger_alias and champion_alias are both "
                    f"{model.champion_alias!r}"
                )
            if exp.strategy == "bandit" and exp.bandit.floor * len(model.arms()) > 1.0:
                raise ValueError(
                    f"models.{name}: bandit.floor {exp.bandit.floor} times "
                    f"{len(model.arms())} arms exceeds 1; use at most {1 / len(model.arms()):.4g}"
                )
            if any(c.alias == model.champion_alias for c in exp.challengers):
                raise ValueError(
                    f"models.{name}: a challenger alias equals champion_alias "
                    f"{model.champion_alias!r}"
                )
        return self

    def api_token(self) -> str | None:
        """The API token from the environment, or None when none is set."""
        return os.environ.get(self.server.api_token_env) or None

    def admin_token(self) -> str | None:
        """The token of the admin API: its own when set, else the API token."""
        return os.environ.get(self.server.admin_token_env) or self.api_token()


def load_config(path: Path) -> HomeConfig:
    """Read and validate ``arbiter.yaml``; a missing file means all defaults and no models."""
    if not path.exists():
        return HomeConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return HomeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def dump_config(config: HomeConfig) -> str:
    """YAML text for ``config`` (defaults included, so the file documents itself)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "CONFIG_FILE",
    "BanditSettings",
    "CanaryConfig",
    "CanaryRampConfig",
    "CanaryStageConfig",
    "ChallengerConfig",
    "DecisionConfig",
    "EventsConfig",
    "ExperimentConfig",
    "GuardrailsConfig",
    "HomeConfig",
    "InterleaveConfig",
    "ModelConfig",
    "RegistryConfig",
    "ServerConfig",
    "dump_config",
    "load_config",
]
