"""The registry: which strategies are known, and every hook they name resolves."""

from __future__ import annotations

import pytest

from arbiter.errors import ConfigError
from arbiter.routing import Strategy
from arbiter.strategies import SPECS, StrategySpec, register, resolve_hook, spec_for
from arbiter.strategies.none import NoneExperimentConfig

BUILTIN = ("none", "shadow", "ab", "canary", "interleave", "bandit")


def test_the_registry_lists_every_built_in_strategy() -> None:
    assert set(BUILTIN) <= set(SPECS)  # tests may register more (tests/strategies)
    for name in BUILTIN:
        spec = spec_for(name)
        assert spec.name == name
        assert spec.config.model_fields["strategy"].default == name


@pytest.mark.parametrize("name", BUILTIN)
def test_every_hook_resolves(name: str) -> None:
    """A typo in an import string fails here, not in production on first use."""
    spec = SPECS[name]
    for hook in ("analysis", "report", "run", "prime"):
        target = spec.hook(hook)  # type: ignore[arg-type]
        assert target is None or callable(target)
    if spec.controller is not None:
        assert spec.hook("run") is not None


@pytest.mark.parametrize("name", BUILTIN)
def test_every_spec_routes_its_default_config(name: str) -> None:
    from arbiter.config import ModelConfig

    spec = SPECS[name]
    config = ModelConfig(experiment=spec.config())
    strategy: Strategy = spec.routing("m", config)
    route = strategy.route("user-1", 0.5)
    assert route.arm in config.arms()
    assert strategy.name == name  # the event log's strategy column
    assert abs(sum(strategy.weights().values()) - 1.0) < 1e-9


def test_which_strategies_have_analysis_controller_and_metrics() -> None:
    analysed = {n for n in BUILTIN if SPECS[n].analysis is not None}
    controlled = {n for n in BUILTIN if SPECS[n].controller is not None}
    assert analysed == {"shadow", "ab", "interleave", "bandit"}
    assert controlled == {"canary", "bandit", "ab"}  # ab: split changes, stop/start
    assert {m.name for n in BUILTIN for m in SPECS[n].metrics} == {
        "arbiter_canary_share",
        "arbiter_canary_transitions_total",
        "arbiter_bandit_share",
    }


def test_an_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'canery'; known strategies: .*canary"):
        spec_for("canery")


def test_a_taken_name_cannot_be_registered_again() -> None:
    register(SPECS["none"])  # the same spec again: a no-op
    other = StrategySpec(name="none", config=NoneExperimentConfig, routing=SPECS["none"].routing)
    with pytest.raises(ConfigError, match="already registered"):
        register(other)


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("arbiter.analysis.analyze", "must look like"),
        ("arbiter.no_such_module:f", "cannot import"),
        ("arbiter.analysis.analyze:no_such_function", "has no 'no_such_function'"),
        ("arbiter.analysis.analyze:MIN_LATENCY_REQUESTS", "not callable"),
    ],
)
def test_a_bad_hook_says_what_is_wrong(hook: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_hook(hook)
