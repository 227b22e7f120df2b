"""Canary releases through a real gateway: the four scenarios of the progressive-delivery issue.

Everything is real except the models' answers: an embedded MLflow registry, the gateway under
uvicorn on a loopback port, HTTP requests with user ids, labels posted to ``/feedback`` a
chosen number of requests late, the event log, and the canary controller deciding from it and
moving aliases in the registry. The models are :class:`arbiter.testing.SimulatedClassifier`:
binary classifiers with a chosen accuracy and failure rate, so "5 points less accurate" is
exactly that, independent of any dataset.

Scenarios (champion: accuracy 0.85, 0.5 % failed requests):

1. ``healthy``: accuracy 0.87, 0.5 % errors → ramps to 100 % and is promoted;
2. ``erroring``: 20 % of requests fail → rolled back; after how many challenger requests;
3. ``worse``: accuracy 0.80, no errors, labels ``label_delay`` requests late → rolled back
   once enough labels arrive; after how many challenger requests;
4. ``identical``: the champion's accuracy and error rate (errs on other rows) → must not be
   rolled back for quality.

:func:`run_scenario` runs one canary to its end (or a request budget) and reports what
happened; ``benchmarks/canary_sim.py`` repeats it, the tests run a reduced version, and
``arbiter demo`` shows one promotion and one rollback with their decision records.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.config import HomeConfig, ModelConfig, dump_config
from arbiter.home import Home

MODEL = "sim"
CHAMPION_ACCURACY = 0.85
CHAMPION_ERROR_RATE = 0.005
TERMINAL = ("promoted", "rolled_back", "aborted", "superseded")


@dataclass(frozen=True)
class Scenario:
    """A challenger's behaviour and the outcome a correct canary reaches."""

    name: str
    accuracy: float
    error_rate: float
    expect: str  # "promoted" or "rolled_back"
    label_delay: int = 0  # labels arrive this many requests after their request


SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario("healthy", 0.87, CHAMPION_ERROR_RATE, "promoted"),
    "erroring": Scenario("erroring", CHAMPION_ACCURACY, 0.20, "rolled_back"),
    "worse": Scenario("worse", 0.80, 0.0, "rolled_back", label_delay=500),
    "identical": Scenario("identical", CHAMPION_ACCURACY, CHAMPION_ERROR_RATE, "promoted"),
}


@dataclass(frozen=True)
class SimSettings:
    """The canary plan and the traffic of a simulated run.

    The plan is the default one scaled down (10 % → 50 % → 100 %, no minimum durations) so
    that a run takes seconds; the decision rules are the production ones. The 50 % stage is
    where quality is judged: it lasts until both arms have about ``min_sample_per_arm``
    labelled rows, the sample at which the sequential test detects a 5-point accuracy drop
    most of the time. (Once at 100 % the champion serves nothing, so a plan whose earlier
    stages cannot reach the minimum sample would hold at 100 % until an operator acts.)
    """

    stages: tuple[tuple[float, int], ...] = ((0.10, 100), (0.50, 3000), (1.00, 300))
    min_sample_per_arm: int = 2500
    analysis_interval_s: float = 0.25
    poll_interval_s: float = 0.25
    users: int = 50_000
    positive_rate: float = 0.3
    concurrency: int = 8
    max_requests: int = 12_000
    label_batch: int = 25
    check_every: int = 50  # requests between two looks at the canary's status


@dataclass
class CanaryRun:
    """What one canary did."""

    scenario: str
    outcome: str  # promoted | rolled_back | aborted | running (budget exhausted)
    expected: str
    requests: int  # requests sent until the outcome was seen
    challenger_requests: int  # requests the challenger served before the decision
    challenger_labels: int  # of which labelled by the time of the decision
    seconds: float
    reasons: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.outcome == self.expected

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "correct": self.correct}


def model_config(settings: SimSettings, experiment: str, **canary: Any) -> ModelConfig:
    """The ``models.sim`` block: a canary with the settings' stages and the default guardrails."""
    return ModelConfig.model_validate(
        {
            "experiment": {
                "name": experiment,
                "strategy": "canary",
                "canary": {
                    "stages": [{"share": s, "min_requests": n} for s, n in settings.stages],
                    "analysis_interval_s": settings.analysis_interval_s,
                    **canary,
                },
            },
            "decision": {"min_sample_per_arm": settings.min_sample_per_arm},
        }
    )


def register(home: Home, scenario: Scenario, seed: int) -> None:
    """Register champion v1 and the scenario's challenger v2 in the home's registry."""
    import pandas as pd

    from arbiter.registry import registry_for_home
    from arbiter.testing import SimulatedClassifier

    registry = registry_for_home(home.root)
    example = pd.DataFrame({"truth": [0, 1], "key": ["a", "b"]})
    champion = SimulatedClassifier(CHAMPION_ACCURACY, CHAMPION_ERROR_RATE, salt=f"A{seed}")
    challenger = SimulatedClassifier(scenario.accuracy, scenario.error_rate, salt=f"B{seed}")
    registry.log_pyfunc_model(MODEL, champion, example, aliases=("champion",))
    registry.log_pyfunc_model(MODEL, challenger, example, aliases=("challenger",))


def clone_home(template: Home, root: Path) -> Home:
    """A new home whose registry is a copy of ``template``'s (the artifacts stay shared).

    Registering two models and migrating a fresh SQLite store takes seconds; repeated runs
    copy the store instead. Each copy has its own canary state and event log. Give every run
    its own ``root``: MLflow caches one store per tracking URI in the process, so a store
    replaced under the same path would still be read through the old connection.
    """
    if root.exists():
        shutil.rmtree(root)
    home = Home.at(root, create=True)
    shutil.copy(template.mlflow_db, home.mlflow_db)
    return home


async def _drive(
    url: str,
    scenario: Scenario,
    settings: SimSettings,
    rng: np.random.Generator,
    finished: Callable[[], bool],
    key_prefix: str,
) -> int:
    """Send requests (and labels, late) until ``finished()`` or the budget; returns requests."""
    import httpx

    sent = 0
    stop = False
    labels: collections.deque[dict[str, Any]] = collections.deque()
    batch: list[dict[str, Any]] = []
    lock = asyncio.Lock()
    truths = (rng.random(settings.max_requests) < settings.positive_rate).astype(int)
    users = rng.integers(0, settings.users, settings.max_requests)

    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def post_labels(rows: list[dict[str, Any]]) -> None:
            if rows:
                response = await client.post("/feedback", json={"feedback": rows})
                response.raise_for_status()

        async def worker() -> None:
            nonlocal sent, stop, batch
            while not stop:
                async with lock:
                    if sent >= settings.max_requests:
                        stop = True
                        return
                    i = sent
                    sent += 1
                    check = sent % settings.check_every == 0
                body = {
                    "unit_id": f"user-{users[i]}",
                    "features": {"truth": int(truths[i]), "key": f"{key_prefix}-{i}"},
                }
                response = await client.post(f"/models/{MODEL}/predict", json=body)
                ready: list[dict[str, Any]] = []
                if response.status_code == 200:
                    rid = response.json()["request_id"]
                    labels.append({"request_id": rid, "label": int(truths[i])})
                while len(labels) > scenario.label_delay:
                    batch.append(labels.popleft())
                if len(batch) >= settings.label_batch:
                    ready, batch = batch, []
                await post_labels(ready)
                if check and await asyncio.to_thread(finished):
                    stop = True

        await asyncio.gather(*(worker() for _ in range(settings.concurrency)))
    return sent


def run_scenario(
    root: Path,
    scenario: Scenario,
    settings: SimSettings | None = None,
    *,
    seed: int = 0,
    template: Home | None = None,
    canary_options: dict[str, Any] | None = None,
) -> CanaryRun:
    """Run one canary through a real gateway until it ends (or the request budget is spent).

    Parameters
    ----------
    root : Path
        Home folder for this run (emptied first).
    scenario : Scenario
        The challenger's behaviour.
    settings : SimSettings, optional
        Plan and traffic; default :class:`SimSettings`.
    seed : int
        Traffic seed (truths, users, row keys) and, without ``template``, the models' salts.
    template : Home, optional
        A home where :func:`register` already ran for ``scenario``: its registry is copied.
    canary_options : dict, optional
        Extra ``experiment.canary`` keys (e.g. ``on_rollback``).
    """
    from arbiter.canary import CanaryService
    from arbiter.events.location import open_event_store
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.registry import registry_for_home

    settings = settings or SimSettings()
    if template is not None:
        home = clone_home(template, root)
    else:
        if root.exists():
            shutil.rmtree(root)
        home = Home.at(root, create=True)
        register(home, scenario, seed)
    experiment = f"{MODEL}-canary-{scenario.name}-{seed}"
    cfg = model_config(settings, experiment, **(canary_options or {}))
    config = HomeConfig.model_validate(
        {
            "registry": {"poll_interval_s": settings.poll_interval_s},
            "events": {"flush_interval_s": 0.1},
            "models": {MODEL: cfg.model_dump()},
        }
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    service = CanaryService(registry_for_home(home.root), home.root, MODEL, cfg)

    def finished() -> bool:
        return service.status()["status"] in TERMINAL

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with ServerThread(create_app(home, config=config)) as server:
        sent = asyncio.run(_drive(server.url, scenario, settings, rng, finished, f"{seed}"))
        # The last look may have been just before the decision: give the controller one more
        # interval to act on what was sent.
        deadline = time.monotonic() + 10 * settings.analysis_interval_s + 2.0
        while not finished() and time.monotonic() < deadline and sent >= settings.max_requests:
            time.sleep(settings.analysis_interval_s)
    seconds = time.perf_counter() - started
    status = service.status()
    outcome = status["status"] if status["status"] in TERMINAL else "running"
    history = status.get("history") or []
    decided_at = history[-1]["at"] if outcome != "running" and history else None
    reasons = list(history[-1].get("reasons", [])) if decided_at is not None else []
    challenger, labelled = _challenger_counts(open_event_store(home), experiment, decided_at)
    return CanaryRun(
        scenario=scenario.name,
        outcome=outcome,
        expected=scenario.expect,
        requests=sent,
        challenger_requests=challenger,
        challenger_labels=labelled,
        seconds=round(seconds, 2),
        reasons=reasons,
        records=list(status.get("records") or []),
    )


def _challenger_counts(store: Any, experiment: str, until: float | None) -> tuple[int, int]:
    """Challenger requests served up to ``until`` (epoch s; None: all), and how many had a
    label by then (a label is counted by its arrival time)."""
    with store.connect() as con:
        params = {"experiment": experiment, "until": until}
        row = con.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM feedback f WHERE f.request_id = p.request_id
                       AND ($until IS NULL OR epoch_us(f.ts) <= $until * 1e6)))
            FROM served p
            WHERE p.experiment = $experiment AND p.arm = 'challenger'
              AND ($until IS NULL OR epoch_us(p.ts) <= $until * 1e6)
            """,
            params,
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# --- the demo's two canaries ---------------------------------------------------------------


def fraud_canary_config(model: str, *, poll_interval_s: float = 0.25) -> HomeConfig:
    """The demo's canary: 10 % → 50 % → 100 %, checked four times a second.

    The quality test needs ``min_sample_per_arm`` labelled rows per arm before promotion; the
    demo posts labels right after each prediction, which production traffic rarely does.
    """
    return HomeConfig.model_validate(
        {
            "registry": {"poll_interval_s": poll_interval_s},
            "events": {"flush_interval_s": 0.1},
            "models": {
                model: {
                    "experiment": {
                        "name": f"{model}-canary",
                        "strategy": "canary",
                        "unit_field": "user_id",
                        "canary": {
                            "stages": [
                                {"share": 0.10, "min_requests": 60},
                                {"share": 0.50, "min_requests": 250},
                                {"share": 1.00, "min_requests": 100},
                            ],
                            "analysis_interval_s": 0.25,
                        },
                    },
                    "decision": {"min_sample_per_arm": 200},
                }
            },
        }
    )


def run_canary_phase(
    home: Home,
    config: HomeConfig,
    model: str,
    rows: list[dict[str, Any]],
    users: list[str],
    labels: list[Any],
    *,
    concurrency: int,
    chunk: int = 100,
    advance: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Serve ``rows`` through a canary until it is promoted or rolled back.

    Requests go out in chunks of ``chunk`` once the gateway has both versions loaded; after
    each the canary's status is read from the registry, as an operator would with ``arbiter
    canary status`` (:func:`arbiter.demo.traffic.send_until`). After the last chunk the
    controller gets up to a minute to act on it (a busy machine checks late).
    """
    from arbiter.canary import CanaryService
    from arbiter.demo.traffic import (
        EvidenceTimeoutError,
        send_traffic,
        send_until,
        wait_for_arms_loaded,
        wait_until,
    )
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.registry import registry_for_home

    service = CanaryService(registry_for_home(home.root), home.root, model, config.models[model])
    before = service.status()

    def finished() -> bool:
        return service.status()["status"] in TERMINAL

    with ServerThread(create_app(home, config=config)) as server:
        wait_for_arms_loaded(server.url, model)

        def one_chunk(lo: int, n: int) -> None:
            asyncio.run(
                send_traffic(
                    server.url,
                    rows[lo : lo + n],
                    users[lo : lo + n],
                    labels[lo : lo + n],
                    concurrency=concurrency,
                    label_batch=20,
                    advance=advance,
                    model=model,
                )
            )

        rounds = send_until(
            one_chunk, finished, round_size=chunk, max_requests=len(rows), timeout_s=900.0
        )
        sent = rounds.sent
        with contextlib.suppress(EvidenceTimeoutError):
            wait_until(finished, timeout_s=60.0, interval_s=0.25, what="the canary's end")
    status = service.status()
    return {
        "challenger_version": before.get("challenger_version"),
        "champion_version": before.get("champion_version"),
        "outcome": status["status"],
        "requests": sent,
        "history": status.get("history") or [],
        "aliases": registry_for_home(home.root).aliases(model),
        "records_dir": str(home.root / "canary" / model),
    }


__all__ = [
    "CHAMPION_ACCURACY",
    "CHAMPION_ERROR_RATE",
    "MODEL",
    "SCENARIOS",
    "CanaryRun",
    "Scenario",
    "SimSettings",
    "clone_home",
    "fraud_canary_config",
    "model_config",
    "register",
    "run_canary_phase",
    "run_scenario",
]
