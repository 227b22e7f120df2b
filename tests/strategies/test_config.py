"""The ``experiment:`` block is validated by the model of its strategy.

Each strategy keeps its keys (same names, defaults and messages), dumps and loads back
unchanged, and a key of another strategy says which strategy it belongs to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from arbiter.config import (
    ABExperimentConfig,
    BanditExperimentConfig,
    CanaryExperimentConfig,
    ExperimentConfig,
    HomeConfig,
    InterleaveExperimentConfig,
    ModelConfig,
    NoneExperimentConfig,
    ShadowExperimentConfig,
    dump_config,
    load_config,
)
from arbiter.errors import ConfigError

# One experiment per strategy, each with non-default values for its own keys.
EXPERIMENTS: dict[str, tuple[type[ExperimentConfig], dict[str, Any]]] = {
    "none": (NoneExperimentConfig, {"unit_field": "user_id"}),
    "shadow": (
        ShadowExperimentConfig,
        {
            "challenger_alias": "next",
            "shadow_sample_rate": 0.25,
            "shadow_max_in_flight": 16,
            "shadow_timeout_s": 2.0,
            "shadow_executor": "thread",
            "shadow_workers": 2,
        },
    ),
    "ab": (
        ABExperimentConfig,
        {"challenger_share": 0.2, "isolate_arms": True, "challenger_timeout_s": 1.5},
    ),
    "abn": (
        ABExperimentConfig,
        {"challengers": [{"alias": "b", "share": 0.3}, {"alias": "c", "share": 0.3}]},
    ),
    "canary": (
        CanaryExperimentConfig,
        {
            "canary": {
                "stages": [{"share": 0.1, "min_requests": 10}, {"share": 1.0}],
                "analysis_interval_s": 5.0,
                "on_rollback": "flag",
            }
        },
    ),
    "interleave": (InterleaveExperimentConfig, {"interleave": {"method": "balanced", "length": 5}}),
    "bandit": (
        BanditExperimentConfig,
        {"challengers": [{"alias": "b"}], "bandit": {"reward": "bounded", "floor": 0.1}},
    ),
}


def _load(tmp_path: Path, experiment: dict[str, Any]) -> HomeConfig:
    path = tmp_path / "arbiter.yaml"
    path.write_text(yaml.safe_dump({"models": {"m": {"experiment": experiment}}}))
    return load_config(path)


@pytest.mark.parametrize("case", sorted(EXPERIMENTS))
def test_each_strategy_round_trips_through_yaml(tmp_path: Path, case: str) -> None:
    model, keys = EXPERIMENTS[case]
    strategy = "ab" if case == "abn" else case
    config = _load(tmp_path, {"strategy": strategy, **keys})
    exp = config.models["m"].experiment
    assert type(exp) is model and exp.strategy == strategy
    text = dump_config(config)
    assert yaml.safe_load(text)["models"]["m"]["experiment"]["strategy"] == strategy
    (tmp_path / "again.yaml").write_text(text)
    assert load_config(tmp_path / "again.yaml") == config


def test_no_experiment_and_no_strategy_mean_none(tmp_path: Path) -> None:
    path = tmp_path / "arbiter.yaml"
    path.write_text("models:\n  a: {}\n  b:\n    experiment: {unit_field: user_id}\n")
    config = load_config(path)
    assert type(config.models["a"].experiment) is NoneExperimentConfig
    assert config.models["b"].experiment.strategy == "none"
    assert config.models["a"].arms() == {"champion": "champion"}
    assert config.models["a"].experiment_name("a") == "a-none"


def test_arms_and_isolation_per_strategy() -> None:
    ab = ModelConfig.model_validate({"experiment": {"strategy": "ab"}})
    assert ab.arms() == {"champion": "champion", "challenger": "challenger"}
    assert ab.experiment.arms_isolated()  # every strategy has deadlines by default
    assert ab.experiment.falls_back()
    abn = ModelConfig.model_validate(
        {"experiment": {"strategy": "ab", "challengers": [{"alias": "b", "share": 0.5}]}}
    )
    assert abn.arms() == {"champion": "champion", "b": "b"}
    assert ModelConfig(experiment=CanaryExperimentConfig()).experiment.arms_isolated()
    assert ModelConfig(experiment=ShadowExperimentConfig()).arms() == {
        "champion": "champion",
        "challenger": "challenger",
    }


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        (
            {"strategy": "ab", "canary": {"analysis_interval_s": 5}},
            "canary settings apply to strategy canary, not 'ab'; remove experiment.canary or "
            "set strategy: canary",
        ),
        (
            {"strategy": "shadow", "challenger_share": 0.2},
            "challenger_share applies to strategy ab, not 'shadow'",
        ),
        (
            {"strategy": "canary", "challengers": [{"alias": "b"}]},
            "challengers applies to strategy ab or bandit, not 'canary'",
        ),
        (
            {"strategy": "none", "challenger_alias": "b"},
            "challenger_alias applies to strategy ab, bandit, canary, interleave or shadow",
        ),
    ],
)
def test_a_key_of_another_strategy_names_its_strategy(
    tmp_path: Path, experiment: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match="models.m.experiment: .*" + message):
        _load(tmp_path, experiment)


def test_an_unknown_strategy_lists_the_known_ones(tmp_path: Path) -> None:
    # (other tests may register more strategies: fixed_arm sorts between them)
    known = r"ab, bandit, canary, (\w+, )*interleave, none, shadow"
    with pytest.raises(ConfigError, match=f"unknown strategy 'canery'; known strategies: {known}"):
        _load(tmp_path, {"strategy": "canery"})


def test_an_unknown_key_is_still_a_typo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.experiment\.shadow_rate: Extra inputs"):
        _load(tmp_path, {"strategy": "shadow", "shadow_rate": 0.5})


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        (
            {
                "strategy": "ab",
                "challengers": [{"alias": "b", "share": 0.6}, {"alias": "c", "share": 0.6}],
            },
            "challenger shares sum to more than 1",
        ),
        ({"strategy": "bandit", "challengers": [{"alias": "b"}] * 2}, "must be distinct"),
        ({"strategy": "ab", "challengers": [{"alias": "champion"}]}, "champion's arm name"),
        (
            {
                "strategy": "bandit",
                "bandit": {"floor": 0.5},
                "challengers": [{"alias": "b"}, {"alias": "c"}],
            },
            "exceeds 1",
        ),
        ({"strategy": "canary", "canary": {"stages": [{"share": 0.5}]}}, "share 1.0"),
        ({"strategy": "shadow", "challenger_alias": "champion"}, "are both 'champion'"),
        ({"strategy": "bandit", "challengers": [{"alias": "top"}]}, None),
    ],
)
def test_each_strategy_keeps_its_validation(
    tmp_path: Path, experiment: dict[str, Any], message: str | None
) -> None:
    if message is None:
        _load(tmp_path, experiment)
        return
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, experiment)


def test_the_shared_base_is_not_built_directly() -> None:
    with pytest.raises(TypeError, match="model_validate"):
        ExperimentConfig(strategy="ab")
    assert type(ExperimentConfig.model_validate({"strategy": "ab"})) is ABExperimentConfig
