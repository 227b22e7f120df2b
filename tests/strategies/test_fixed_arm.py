"""A strategy added in one module plus its registry line: served, logged, analysed, reported.

``fixed_arm`` always serves one named alias (``{strategy: fixed_arm, alias: ...}``). Everything
it needs is below: its config model, its routing, its analysis and the ``register`` line
(docs/design/strategies.md shows the same example). Nothing else in arbiter knows about it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import httpx
from typer.testing import CliRunner

from arbiter.analysis.aggregate import arm_traffic
from arbiter.routing import Route
from arbiter.strategies import ExperimentConfig, StrategySpec, register
from arbiter.strategies.base import describe_arms

if TYPE_CHECKING:
    from arbiter.config import ModelConfig

# --- the strategy: one module -------------------------------------------------------------


class FixedArmExperimentConfig(ExperimentConfig):
    """Serve ``alias`` to everyone (its arm is named after it)."""

    strategy: Literal["fixed_arm"] = "fixed_arm"
    alias: str

    def challenger_arms(self) -> dict[str, str]:
        return {self.alias: self.alias}


@dataclass(frozen=True, slots=True)
class FixedArm:
    """The routing: every request to one alias."""

    alias: str
    name: str = "fixed_arm"

    def route(self, unit_id: str | None, draw: float) -> Route:
        return Route(self.alias, self.alias, None, unit_random=not unit_id)

    def weights(self) -> dict[str, float]:
        return {self.alias: 1.0}


def routing(model: str, config: ModelConfig) -> FixedArm:
    exp = config.experiment
    assert isinstance(exp, FixedArmExperimentConfig)
    return FixedArm(exp.alias)


@dataclass(frozen=True)
class FixedArmAnalysis:
    """Traffic per arm: there is nothing to compare, so the decision is to keep going."""

    model: str
    experiment: str
    strategy: str
    traffic: dict[str, dict[str, Any]]

    @property
    def decision(self) -> str:
        return "continue"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "experiment": self.experiment,
            "strategy": self.strategy,
            "decision": self.decision,
            "traffic": self.traffic,
        }


def analyze_fixed_arm(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: Any = None,
) -> FixedArmAnalysis:
    traffic = {side: t.to_dict() for side, t in arm_traffic(con, model, experiment).items()}
    return FixedArmAnalysis(model, experiment, "fixed_arm", traffic)


SPEC = StrategySpec(
    name="fixed_arm",
    config=FixedArmExperimentConfig,
    routing=routing,
    analysis=analyze_fixed_arm,
    describe=describe_arms,
)

# --- the registry line ----------------------------------------------------------------------

register(SPEC)

# --- the test -------------------------------------------------------------------------------

MODELS = {"fraud": {"experiment": {"strategy": "fixed_arm", "alias": "challenger"}}}


def test_fixed_arm_is_served_logged_analysed_and_reported(
    running: Callable[..., Any], fraud_rows: list[dict[str, float]], template_home: Any
) -> None:
    from arbiter.analysis import analyze_model
    from arbiter.cli import app
    from arbiter.config import load_config
    from arbiter.events import EventStore

    server, home = running(MODELS)  # a real gateway (uvicorn) on the home's arbiter.yaml
    config = load_config(home.config_path)
    assert isinstance(config.models["fraud"].experiment, FixedArmExperimentConfig)
    challenger = template_home.versions["fraud"]["challenger"]

    with httpx.Client(base_url=server.url) as client:
        models = client.get("/models").json()["models"]
        assert models[0]["experiment"]["strategy"] == "fixed_arm"
        assert models[0]["experiment"]["state"] == "running"
        assert models[0]["experiment"]["split"] == {"challenger": 1.0}
        for i in range(10):
            r = client.post(
                "/models/fraud/predict",
                json={"features": fraud_rows[i]},
                headers={"X-Unit-Id": f"u{i}"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["arm"] == "challenger" and body["version"] == challenger
            assert body["strategy"] == "fixed_arm"
    server.stop()  # flushes the event log

    with EventStore(home.root).connect() as con:
        logged = con.execute(
            "SELECT strategy, arm, alias, count(*) FROM predictions GROUP BY ALL"
        ).fetchall()
        assert logged == [("fixed_arm", "challenger", "challenger", 10)]
        (analysis,) = analyze_model(con, "fraud", model_config=config.models["fraud"])
    assert isinstance(analysis, FixedArmAnalysis)
    assert analysis.traffic["challenger"]["requests"] == 10

    runner = CliRunner()
    analysed = runner.invoke(
        app, ["analyze", "--home", str(home.root), "-m", "fraud", "--json", "--no-html"]
    )
    assert analysed.exit_code == 0, analysed.output
    (result,) = json.loads(analysed.stdout)["experiments"]
    assert result["strategy"] == "fixed_arm" and result["decision"] == "continue"

    # No renderer was written for FixedArmAnalysis: the terminal and the HTML report show
    # the generic section (decision, criteria, values).
    shown = runner.invoke(app, ["analyze", "--home", str(home.root), "-m", "fraud"])
    assert shown.exit_code == 0, shown.output
    assert "fraud-fixed_arm" in shown.output and "continue" in shown.output
    (page,) = (home.root / "reports").glob("*.html")
    html = page.read_text(encoding="utf-8")
    assert "fraud-fixed_arm" in html and 'class="decision continue"' in html

    reported = runner.invoke(app, ["report", "--home", str(home.root), "-m", "fraud", "--json"])
    assert reported.exit_code == 0, reported.output
    (section,) = json.loads(reported.stdout)["experiments"]
    assert section["strategy"] == "fixed_arm" and section["requests"] == 10
    assert [(a["arm"], a["requests"]) for a in section["arms"]] == [("challenger", 10)]
