"""The canary scenarios of the progressive-delivery issue through a real gateway.

Reduced version of ``benchmarks/canary_sim.py``: one run per scenario (the benchmark repeats
them, and ``benchmarks/canary_sim_pure.py`` runs thousands of pure-core runs). The models are
:class:`arbiter.testing.SimulatedClassifier` registered in a real MLflow store; requests,
labels and the canary controller's decisions go through a real uvicorn gateway.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from arbiter.demo.canary import SCENARIOS, SimSettings, run_scenario
from arbiter.registry import registry_for_home

#: Smaller stages where the scenario does not need labels to decide.
QUICK = SimSettings(stages=((0.10, 50), (0.50, 200), (1.00, 100)), min_sample_per_arm=200)


def test_a_healthy_better_challenger_ramps_to_100_percent_and_is_promoted(tmp_path: Path) -> None:
    run = run_scenario(tmp_path / "home", SCENARIOS["healthy"], QUICK, seed=1)
    assert run.outcome == "promoted", run.reasons
    actions = [r["action"] for r in run.records]
    assert actions[0] == "start" and actions.count("advance") == 2 and actions[-1] == "promote"
    aliases = registry_for_home(tmp_path / "home").aliases("sim")
    assert aliases["champion"] == "2" and aliases["previous"] == "1"
    assert "challenger" not in aliases


def test_a_challenger_failing_20_percent_is_rolled_back_within_a_few_dozen_requests(
    tmp_path: Path,
) -> None:
    run = run_scenario(tmp_path / "home", SCENARIOS["erroring"], QUICK, seed=2)
    assert run.outcome == "rolled_back"
    assert any("error_rate" in r for r in run.reasons), run.reasons
    # One-sided exact 99.9 % bound over 1 %: about 20 requests at a 20 % error rate.
    assert run.challenger_requests <= 100
    aliases = registry_for_home(tmp_path / "home").aliases("sim")
    assert aliases == {"champion": "1"}  # challenger alias archived


def test_a_5_point_worse_challenger_is_rolled_back_once_delayed_labels_arrive(
    tmp_path: Path,
) -> None:
    scenario = replace(SCENARIOS["worse"], label_delay=300)
    run = run_scenario(tmp_path / "home", scenario, seed=3)
    assert run.outcome == "rolled_back", (run.outcome, run.reasons)
    assert any("significant harm" in r for r in run.reasons), run.reasons
    assert run.challenger_labels < run.challenger_requests  # labels were still in flight


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_an_identical_challenger_is_not_rolled_back(tmp_path: Path, seed: int) -> None:
    run = run_scenario(tmp_path / "home", SCENARIOS["identical"], seed=seed)
    assert run.outcome == "promoted", run.reasons
