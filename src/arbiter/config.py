"""The home's configuration file, ``HOME/arbiter.yaml``.

Parsed once at start-up into frozen pydantic models and passed down; nothing reads it
globally. Unknown keys are errors, so a typo (``stratgy:``) does not silently fall back to a
default. The schema is documented in the README ("Configuration").
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator

from arbiter.errors import ConfigError
from arbiter.metric_definitions import (
    EventMetric,
    LabelMetric,
    MetricDefinition,
    MetricGuardrail,
    RatioMetric,
    check_metrics,
)
from arbiter.routing import CHALLENGER, CHAMPION
from arbiter.strategies import ExperimentConfig
from arbiter.strategies.ab import ABExperimentConfig
from arbiter.strategies.bandit import BanditExperimentConfig, BanditSettings
from arbiter.strategies.base import ChallengerConfig
from arbiter.strategies.base import Frozen as _Frozen
from arbiter.strategies.canary import (
    CanaryConfig,
    CanaryExperimentConfig,
    CanaryRampConfig,
    CanaryStageConfig,
)
from arbiter.strategies.interleave import InterleaveConfig, InterleaveExperimentConfig
from arbiter.strategies.none import NoneExperimentConfig
from arbiter.strategies.shadow import ShadowExperimentConfig

CONFIG_FILE = "arbiter.yaml"

#: Schemes ``events.url`` accepts (arbiter.events.location opens each).
EVENT_URL_SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs", "postgresql", "postgres")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


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
    primary_metric: str | None = Field(
        default=None,
        description="A metric defined under the model's metrics that decides the experiment. "
        "Default: model quality (accuracy for a classifier, the loss for a regressor).",
    )
    guardrail_metrics: tuple[MetricGuardrail, ...] = Field(
        default=(), description="Metrics that must not get worse beyond a margin."
    )
    cuped: bool = Field(
        default=False,
        description="Outcome metrics: use each unit's same metric before its first exposure "
        "as a covariate (CUPED variance reduction).",
    )
    default_quality: Literal["auto", "accuracy"] = Field(
        default="auto",
        description="Without primary_metric, what a classifier is judged on. auto: log loss "
        "(F1 without scores) when a binary classifier's rarer class is below 20 % of the "
        "labels, else accuracy; accuracy: always accuracy (docs/quality-metrics.md).",
    )

    @model_validator(mode="after")
    def _max_sample(self) -> DecisionConfig:
        if self.max_sample_per_arm is not None and self.max_sample_per_arm < max(
            self.min_sample_per_arm, 1
        ):
            raise ValueError("max_sample_per_arm must be >= min_sample_per_arm")
        return self


class LoopConfig(_Frozen):
    """The closed loop of one model (``arbiter loop``, docs/loop.md)."""

    online: Literal["shadow", "ab", "canary"] = Field(
        default="shadow",
        description="How a candidate that passed the offline gate is tested online before it "
        "is promoted: shadow (mirrored traffic), ab (an A/B test decided on "
        "decision.primary_metric) or canary (a ramp that promotes or rolls back itself). "
        "The experiment's strategy must match.",
    )


class InputsConfig(_Frozen):
    """How requests' inputs are checked against the model's signature (docs/protocols.md)."""

    allow_non_finite: bool = Field(
        default=False,
        description="Let NaN and ±Infinity through to double/float columns, on every "
        "protocol. Off: they are refused with a 422/400 naming the field, before any model "
        "runs. Turn it on only for a model that handles them (NaN as missing, say).",
    )
    out_of_range: Literal["off", "reject"] = Field(
        default="off",
        description="reject: refuse (422/400, naming the field) a numeric value outside the "
        "[min, max] seen in training, read from the reference profile stored with the served "
        "version (`arbiter drift profile`); a version without a profile is served unchecked, "
        "with a warning. off: any finite value is valid (1e308 included).",
    )


class ModelConfig(_Frozen):
    """One registered model served at ``/models/{name}``."""

    champion_alias: str = "champion"
    # Validated by the model of its ``strategy`` (arbiter.strategies); SerializeAsAny dumps
    # that model's keys, not only the shared ones.
    experiment: SerializeAsAny[ExperimentConfig] = NoneExperimentConfig()
    decision: DecisionConfig = DecisionConfig()
    metrics: dict[str, MetricDefinition] = Field(
        default_factory=dict,
        description="Business and quality metrics by name (docs/metrics.md).",
    )
    loop: LoopConfig = LoopConfig()
    inputs: InputsConfig = InputsConfig()
    # Adaptive batching (docs/batching.md): concurrent requests for one model version share
    # one model call. Either setting at 0 turns it off.
    max_batch_size: int = Field(
        default=32,
        ge=0,
        le=100_000,
        description="Most rows one batched model call takes (a request's rows all count); "
        "also the most queued shadow rows a shadow worker scores in one call. 0 or 1: off.",
    )
    max_batch_delay_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=1_000.0,
        description="Longest a request waits for others to join its batch while a call of the "
        "same version is running; an idle model is called at once (after one event-loop "
        "turn). 0: off, every request is its own call.",
    )

    @model_validator(mode="after")
    def _metric_references(self) -> ModelConfig:
        check_metrics(self.metrics, self.decision.primary_metric, self.decision.guardrail_metrics)
        exp = self.experiment
        reward = exp.bandit.reward_metric if isinstance(exp, BanditExperimentConfig) else None
        if reward is not None:
            found = self.metrics.get(reward)
            if not (isinstance(found, EventMetric) and found.aggregate == "any"):
                raise ValueError(
                    f"experiment.bandit.reward.metric {reward!r} must be an event metric with "
                    "aggregate: any (0/1 per unit) defined under metrics"
                )
        return self

    def experiment_name(self, model: str) -> str:
        return self.experiment.name or f"{model}-{self.experiment.strategy}"

    def arms(self) -> dict[str, str]:
        """Arm name -> registry alias, champion first.

        One challenger: ``{"champion": ..., "challenger": challenger_alias}``. Several
        (``experiment.challengers``): each challenger's arm is named after its alias. No
        experiment: the champion only.
        """
        return {CHAMPION: self.champion_alias, **self.experiment.challenger_arms()}


class RegistryConfig(_Frozen):
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI. Default: sqlite:///HOME/mlflow.db"
    )
    registry_uri: str | None = None
    poll_interval_s: float = Field(default=5.0, gt=0.0)


#: Default body budget per batch row (a 20-feature JSON row is about 400 bytes).
BODY_BYTES_PER_ROW = 512


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
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="Largest request body, in bytes, on the wire and after gzip/deflate "
        "decoding. Unset: max_batch_rows x BODY_BYTES_PER_ROW (at least 1 MiB), so a full "
        "batch fits.",
    )
    max_batch_rows: int = Field(default=10_000, ge=1)
    # Limits of the HTTP layer (arbiter.gateway.http_limits): see docs/limits.md.
    max_header_bytes: int = Field(
        default=32_768, ge=1_024, description="Request line plus headers, in bytes (431 above)."
    )
    max_header_count: int = Field(default=100, ge=8, description="Headers per request (431 above).")
    read_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3_600.0,
        description="A request (line, headers and body) must arrive within this time of its "
        "first byte, and a new connection must send one within it; else 408 and close.",
    )
    drain_max_bytes: int = Field(
        default=64 * 1_048_576,
        ge=0,
        description="Before a 413, up to this many body bytes are read and discarded so the "
        "client, still sending, can read the JSON error instead of a connection reset.",
    )
    drain_timeout_s: float = Field(
        default=10.0, ge=0.0, le=600.0, description="Time bound of that drain."
    )

    @model_validator(mode="before")
    @classmethod
    def _body_fits_batch(cls, data: object) -> object:
        """Derive an unset max_body_bytes from max_batch_rows, so a full batch fits.

        With a fixed 1 MiB, ``max_batch_rows: 10000`` could not be reached (8,810 demo rows at
        most). An explicit value is kept: the operator chose it (and files written by
        ``dump_config`` carry both values).
        """
        if isinstance(data, dict) and data.get("max_body_bytes") is None:
            rows = data.get("max_batch_rows", 10_000)
            if isinstance(rows, int) and rows >= 1:  # else the field's own check reports it
                return {**data, "max_body_bytes": max(1_048_576, rows * BODY_BYTES_PER_ROW)}
        return data


class EventsConfig(_Frozen):
    flush_interval_s: float = Field(default=0.5, gt=0.0, le=60.0)
    max_batch: int = Field(default=50_000, ge=1)
    # Storage faults (docs/design/event-store.md, "When the disk fails").
    fallback_dir: Path | None = Field(
        default=None,
        description="Where buffered predictions are spilled at shutdown when HOME/events "
        "cannot be written (disk full, read-only). Unset: a per-home folder in the system "
        "temporary directory. The next start (or `arbiter compact`) moves them back.",
    )
    shutdown_retry_s: float = Field(
        default=5.0,
        ge=0.0,
        le=300.0,
        description="At shutdown, how long to keep retrying a failing flush before spilling "
        "to fallback_dir; rows neither written nor spilled are counted and logged as lost.",
    )
    # /feedback and /outcomes (issue 14): how far in the future a posted ts may lie, and how
    # many recent request ids a worker remembers to check labels against.
    max_clock_skew_s: float = Field(
        default=300.0,
        ge=0.0,
        le=86_400.0,
        description="How far past the server's clock a feedback or outcome ts may lie (clock "
        "skew between hosts); a later ts is refused with 422, so no label can outrank every "
        "later correction.",
    )
    recent_requests: int = Field(
        default=100_000,
        ge=0,
        description="Request ids each gateway worker remembers to check /feedback against "
        "(row_index, label type, clicks); older or other workers' ids are stored unverified.",
    )
    # One event log for every replica (issue 11, docs/scaling.md): where the log lives.
    url: str | None = Field(
        default=None,
        description="Where the event log lives. Unset: HOME/events. A directory path (relative "
        "to the home) or file:// URL on storage every replica mounts (NFS, EFS, a mounted "
        "bucket); or s3://, gs://, abfs:// (pyarrow filesystems). Every replica and every "
        "command (report, analyze, drift, canary, loop, export, compact) reads and writes it.",
    )
    compaction_lease_s: float = Field(
        default=300.0,
        gt=0.0,
        le=86_400.0,
        description="How long the compaction lease (events/.compact.lease) holds before its "
        "holder renews it; a compactor that died is taken over after this plus 30 s.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else "file"
        if scheme not in EVENT_URL_SCHEMES:
            raise ValueError(
                f"scheme {scheme!r} is not supported; use a path, file://, "
                + ", ".join(f"{s}://" for s in EVENT_URL_SCHEMES if s != "file")
            )
        return value.strip()


#: What an alert can be about (docs/alerts.md). A webhook subscribes to some or all of them.
AlertEvent = Literal[
    "canary_advance",
    "canary_rollback",
    "canary_promote",
    "srm_detected",
    "drift_detected",
    "loop_decision",
    "gateway_degraded",
    "gateway_recovered",
    "shadow_drop_rate",
]
ALERT_EVENTS: tuple[str, ...] = AlertEvent.__args__  # type: ignore[attr-defined]


class WebhookConfig(_Frozen):
    """One receiver of alerts: a generic signed JSON webhook or a Slack incoming webhook.

    The URL and the secret can both come from environment variables, so neither is written
    in ``arbiter.yaml`` (a Slack webhook URL is itself a credential).
    """

    name: str = Field(description="Names the webhook in logs, counters and the dead-letter file.")
    url: str | None = Field(default=None, description="Where alerts are POSTed (http/https).")
    url_env: str | None = Field(
        default=None, description="Environment variable holding the URL (instead of url)."
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description="json: arbiter's alert document, signed when secret_env is set; slack: "
        "a Slack incoming-webhook message (text + blocks).",
    )
    secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the HMAC-SHA256 key; every delivery then "
        "carries X-Arbiter-Timestamp and X-Arbiter-Signature (docs/alerts.md).",
    )
    events: tuple[AlertEvent, ...] = Field(
        default=ALERT_EVENTS, description="The events sent to this webhook (default: all)."
    )
    models: tuple[str, ...] | None = Field(
        default=None,
        description="Only alerts about these models (alerts about no model, such as a "
        "degraded gateway, are always sent). Default: every model.",
    )

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"webhook {self.name!r}: set exactly one of url and url_env")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.name!r}: url must start with http:// or https://")
        return self


class AlertsConfig(_Frozen):
    """Webhooks told about canary moves, SRM, drift, loop decisions and gateway trouble.

    Delivery runs in a background thread of each process (gateway worker, CLI, loop), never
    on a request's path; see docs/alerts.md.
    """

    webhooks: tuple[WebhookConfig, ...] = ()
    timeout_s: float = Field(default=5.0, gt=0.0, le=120.0, description="Per HTTP attempt.")
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Attempts per alert and webhook before it is "
        "dead-lettered (HTTP 5xx, 408, 429 and network errors are retried; other 4xx are not).",
    )
    backoff_s: float = Field(
        default=1.0,
        gt=0.0,
        le=600.0,
        description="Delay before the first retry; doubles "
        "after each failed attempt (with jitter), up to max_backoff_s.",
    )
    max_backoff_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    queue_size: int = Field(
        default=1000, ge=1, description="Deliveries waiting in a process; beyond, dead-lettered."
    )
    flush_timeout_s: float = Field(
        default=5.0,
        ge=0.0,
        le=300.0,
        description="At exit, how long pending deliveries "
        "may still take; what is left is dead-lettered.",
    )
    dead_letter_file: Path | None = Field(
        default=None,
        description="JSON lines of undeliverable alerts. Default: HOME/alerts/dead-letter.jsonl.",
    )
    check_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86_400.0,
        description="How often a gateway refreshes its "
        "drift, SRM, verdict and shadow gauges (and raises their alerts), off the request path.",
    )
    drift_window: str = Field(
        default="5000 rows",
        description="Served traffic the gateway's drift check compares "
        "with the champion's reference profile (a duration such as 1h, or N rows).",
    )
    shadow_drop_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="shadow_drop_rate fires when more than this "
        "share of the mirrored requests since the last check were dropped.",
    )
    shadow_min_requests: int = Field(
        default=100, ge=1, description="Mirrored requests a check needs before it may fire."
    )

    @field_validator("drift_window")
    @classmethod
    def _window(cls, value: str) -> str:
        from arbiter.durations import parse_window

        parse_window(value, field="alerts.drift_window")  # InvalidInputError is a ValueError
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
        names = [w.name for w in value]
        if len(set(names)) != len(names):
            raise ValueError("webhook names must be unique")
        return value


class AnalysisConfig(_Frozen):
    """Which engine runs the analysis queries (docs/design/query-engines.md)."""

    engine: Literal["duckdb", "spark", "postgres"] = Field(
        default="duckdb",
        description="duckdb: embedded, reads HOME/events (the default, no service). spark: "
        "Spark SQL over the same Parquet log (PySpark, Java 17+). postgres: the PostgreSQL "
        "event store of events.url. `--engine` on analyze, report and drift overrides it.",
    )
    spark_master: str = Field(
        default="local[2]",
        min_length=1,
        description="Spark master URL for engine spark: local[N], spark://host:7077, yarn...",
    )


class HomeConfig(_Frozen):
    """Everything in ``arbiter.yaml``."""

    registry: RegistryConfig = RegistryConfig()
    server: ServerConfig = ServerConfig()
    events: EventsConfig = EventsConfig()
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    alerts: AlertsConfig = AlertsConfig()
    analysis: AnalysisConfig = AnalysisConfig()

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
            for arm, alias in model.experiment.challenger_arms().items():
                if alias != model.champion_alias:
                    continue
                if arm == CHALLENGER:
                    raise ValueError(
                        f"models.{name}: challenger_alias and champion_alias are both {alias!r}"
                    )
                raise ValueError(
                    f"models.{name}: a challenger alias equals champion_alias {alias!r}"
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
    "ALERT_EVENTS",
    "CONFIG_FILE",
    "ABExperimentConfig",
    "AlertEvent",
    "AlertsConfig",
    "AnalysisConfig",
    "BanditExperimentConfig",
    "BanditSettings",
    "CanaryConfig",
    "CanaryExperimentConfig",
    "CanaryRampConfig",
    "CanaryStageConfig",
    "ChallengerConfig",
    "DecisionConfig",
    "EventMetric",
    "EventsConfig",
    "ExperimentConfig",
    "GuardrailsConfig",
    "HomeConfig",
    "InterleaveConfig",
    "InterleaveExperimentConfig",
    "LabelMetric",
    "LoopConfig",
    "MetricGuardrail",
    "ModelConfig",
    "NoneExperimentConfig",
    "RatioMetric",
    "RegistryConfig",
    "ServerConfig",
    "ShadowExperimentConfig",
    "WebhookConfig",
    "dump_config",
    "load_config",
]
