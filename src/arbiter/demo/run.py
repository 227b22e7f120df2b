"""``arbiter demo``: the whole job end to end on embedded defaults.

1. Generate card-fraud-like transactions (fixed seed).
2. Train a champion (logistic regression) and a better challenger (gradient boosting), register
   both in the home's MLflow registry with the aliases ``champion`` and ``challenger``.
3. Start the gateway as a real uvicorn server on a free loopback port.
4. Shadow phase: send traffic over HTTP with user ids; the challenger scores every request off
   the request path. Post the labels to /feedback as they "arrive".
5. A/B phase: restart with a 50/50 sticky split; send traffic and labels again, and the
   business outcomes of each decision through ``POST /outcomes``: an approved transaction is
   a purchase, a blocked good customer a lost one, a missed fraud a chargeback later
   (:func:`arbiter.demo.data.purchase_outcomes`). The phase ends with a verdict on the
   primary metric (conversion) with revenue beside it and a chargeback guardrail.
6. Canaries: the challenger ramps 10 % → 50 % → 100 % and is promoted (the old champion keeps
   ``previous``); then a broken release (fails one request in five) is rolled back within a
   few dozen of its requests and archived. Decision records: ``arbiter canary status``.
7. Interleaving: two rankers of a synthetic catalogue are interleaved on ``/rank`` and the
   clicks decide which ranks better (:mod:`arbiter.demo.ranking`).
8. Print the report and the analysis (tests and a verdict per experiment); write both to
   HOME/reports/ (Markdown and a self-contained HTML file with plots).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.config import ExperimentConfig, HomeConfig, ModelConfig, dump_config
from arbiter.demo.traffic import MODEL, send_traffic, wait_for_arms_loaded
from arbiter.errors import ConfigError
from arbiter.home import Home

log = logging.getLogger(__name__)

MARKER = ".arbiter-demo"


@dataclass(frozen=True)
class DemoOptions:
    requests: int = 2_000  # per phase
    concurrency: int = 16
    label_batch: int = 250
    seed: int = 7
    canary_requests: int = 2_000  # the most each canary may take (they end sooner)
    ranking_queries: int = 1_500  # interleaving demo; 0 skips it


def prepare_home(
    root: Path, *, force: bool = False, say: Callable[[str], None] | None = None
) -> Home:
    """Create the demo home, or start it over.

    A folder that holds only the demo's marker (the demo just created it) is reused. An earlier
    demo's home is deleted only with ``force`` (``arbiter demo --force``, ``make demo
    FORCE=1``), after saying what goes; a folder the demo did not create is never deleted.
    The caller holds :func:`arbiter.serve_lock.rebuilding`, so no server uses the home.
    """
    from arbiter.serve_lock import LOCK_NAME

    root = Path(root)
    entries = (
        sorted(p for p in root.iterdir() if p.name not in (LOCK_NAME, MARKER))
        if root.exists()
        else []
    )
    if entries:
        if not (root / MARKER).exists():
            raise ConfigError(
                f"{root} exists and was not created by `arbiter demo`; "
                "choose another --home (the demo starts from an empty folder)"
            )
        if not force:
            raise ConfigError(
                f"{root} holds an earlier demo ({describe_home(entries)}); rerun with --force "
                "(`make demo FORCE=1`) to delete it and start over, or choose another --home"
            )
        if say is not None:
            say(f"deleting the earlier demo in {root}: {describe_home(entries)}")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    home = Home.at(root, create=True)
    (home.root / MARKER).write_text("created by `arbiter demo`; safe to delete\n")
    return home


def describe_home(entries: list[Path]) -> str:
    """What a home's top-level entries are, for the message before deleting them."""
    parts = []
    for entry in entries:
        if entry.is_dir():
            files = sum(1 for p in entry.rglob("*") if p.is_file())
            parts.append(f"{entry.name}/ ({files:,} files)")
        else:
            parts.append(entry.name)
    return ", ".join(parts)


# Each strategy's own keys (a key of another strategy is a config error).
_STRATEGY_SETTINGS: dict[str, dict[str, Any]] = {
    "shadow": {"shadow_sample_rate": 1.0},  # shadow_max_in_flight: the default (docs/batching.md)
    "ab": {"challenger_share": 0.5},
    "canary": {},
}


#: The business metrics of the demo's fraud model (docs/metrics.md): what a decision to block
#: or approve does to the shop, per user after their first exposure.
METRICS: dict[str, dict[str, Any]] = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "revenue": {"event": "purchase", "aggregate": "sum"},
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
}
#: Conversion decides; more chargebacks per user than the champion's blocks a promotion. The
#: A/B phase reaches about 600 users per arm, so the minimum is set below that: the phase ends
#: with a decision rather than "continue" (a real experiment sizes it with arbiter stats).
BUSINESS_DECISION: dict[str, Any] = {
    "min_sample_per_arm": 500,
    "primary_metric": "conversion",
    "guardrail_metrics": [{"metric": "chargebacks", "max_increase": 0.0}],
}


def write_config(home: Home, strategy: str, *, poll_interval_s: float = 2.0) -> HomeConfig:
    """Write the home's ``arbiter.yaml`` for one phase of the demo, as that phase runs it.

    The canary phase's plan is the one the demo's canaries ran (10 % → 50 % → 100 %, see
    :func:`arbiter.demo.canary.fraud_canary_config`), so `arbiter canary status` on the demo's
    home shows the plan that produced its decision records, not the default plan.
    """
    settings = dict(_STRATEGY_SETTINGS[strategy])
    if strategy == "canary":
        from arbiter.demo.canary import fraud_canary_config

        ran = fraud_canary_config(MODEL).models[MODEL].experiment
        settings["canary"] = ran.model_dump(include={"canary"})["canary"]
    experiment = ExperimentConfig.model_validate(
        {
            "name": f"{MODEL}-{strategy}",
            "strategy": strategy,
            "unit_field": "user_id",
            **settings,
        }
    )
    model = ModelConfig.model_validate(
        {
            "experiment": experiment.model_dump(),
            "metrics": METRICS,
            "decision": BUSINESS_DECISION,
        }
    )
    config = HomeConfig.model_validate(
        {
            "registry": {"poll_interval_s": poll_interval_s},
            "events": {"flush_interval_s": 0.2},
            "models": {MODEL: model.model_dump()},
        }
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return config


def run_demo(home_dir: Path, options: DemoOptions, *, console: Any = None) -> dict[str, Any]:
    """Run the demo; returns the report summary (also written to HOME/reports)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from arbiter.analysis import analyze_model
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion
    from arbiter.events.location import open_event_store
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.registry import registry_for_home
    from arbiter.registry.model_info import describe_analysis_models, describe_summary_models
    from arbiter.report.html import write_html
    from arbiter.report.summary import summarize

    console = console or Console()
    started = time.perf_counter()
    home = prepare_home(home_dir)
    console.print(f"[bold]arbiter demo[/bold] in {home.root}")

    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        step = progress.add_task("Generating transactions", total=2)
        train = make_transactions(30_000, seed=options.seed)
        traffic = make_transactions(2 * options.requests, seed=options.seed + 1)
        progress.advance(step, 2)

        step = progress.add_task("Training champion and challenger", total=2)
        champion = train_champion(train.features, train.labels)
        progress.advance(step)
        challenger = train_challenger(train.features, train.labels, seed=options.seed)
        progress.advance(step)

        step = progress.add_task("Registering in MLflow, with profiles", total=2)
        registry = registry_for_home(home.root)
        # Float columns: the signature says double for every feature, as the gateway scores
        # them (an integer column in a signature cannot carry a missing value).
        example = train.features.head(5).astype("float64")
        for model, alias in ((champion, "champion"), (challenger, "challenger")):
            version = registry.log_sklearn_model(
                MODEL, model, example, aliases=(alias,), tags={"arbiter.role": alias}
            )
            store_profile(registry, version, train.features, model)
            progress.advance(step)

        rows = traffic.features.to_dict("records")
        users = traffic.users.tolist()
        labels = traffic.labels.tolist()
        results: dict[str, Any] = {}
        for phase, strategy in enumerate(("shadow", "ab")):
            config = write_config(home, strategy)
            lo, hi = phase * options.requests, (phase + 1) * options.requests
            task = progress.add_task(f"{strategy:>6}: requests + labels", total=hi - lo)
            with ServerThread(create_app(home, config=config)) as server:
                # Traffic counts once every arm is loaded (shadow: in the shadow workers too).
                wait_for_arms_loaded(server.url, MODEL, shadow=strategy == "shadow")
                results[strategy] = asyncio.run(
                    send_traffic(
                        server.url,
                        rows[lo:hi],
                        users[lo:hi],
                        labels[lo:hi],
                        concurrency=options.concurrency,
                        label_batch=options.label_batch,
                        advance=lambda n, task=task: progress.advance(task, n),
                        outcomes=_outcomes(rows, users, labels, lo) if strategy == "ab" else None,
                    )
                )
                results[strategy]["url"] = server.url
        ab_metrics = _ab_metric_verdict(home, write_config(home, "ab").models[MODEL])
        canaries = _canaries(home, registry, example, options, progress, train.features)
    # Leave the home with the canary plan the demo ran, as `arbiter serve` will pick it up: it
    # serves the champion, `arbiter canary status` shows the demo's last canary and its plan
    # (10 % → 50 % → 100 %), and a newly registered challenger starts a canary on that plan.
    write_config(home, "canary")
    ranking = None
    if options.ranking_queries:
        from arbiter.demo.ranking import run_ranking_demo

        ranking = run_ranking_demo(
            home, console, n_queries=options.ranking_queries, seed=options.seed, render=False
        )
    store = open_event_store(home)
    with console.status("Analysing: SRM, paired and sequential tests, guardrails, verdicts…"):
        with store.connect() as con:
            config = home.config().models.get(MODEL)
            summary = summarize(con, MODEL, decision=None if config is None else config.decision)
            analyses = analyze_model(con, MODEL, model_config=config)
        # The shadow report names the models it compared (flavor, estimator class).
        describe_summary_models(home, MODEL, summary)
        analyses = [describe_analysis_models(home, MODEL, a) for a in analyses]
        html = write_html(analyses, home.reports / f"{MODEL}-analysis.html", model=MODEL)
    summary["analysis"] = [a.to_dict() for a in analyses]
    summary["analysis_html"] = str(html)
    summary["_analyses"] = analyses  # for printing; dropped before JSON output
    summary["canaries"] = canaries
    summary["ab_metrics"] = ab_metrics
    if ranking is not None:
        summary["_ranking_analysis"] = ranking.pop("_analysis")
        summary["ranking"] = ranking
    summary["demo"] = {
        "phases": results,
        "seconds": round(time.perf_counter() - started, 1),
        "home": str(home.root),
    }
    return summary


def store_profile(registry: Any, version: str, features: Any, model: Any = None) -> None:
    """Store the drift reference profile of ``version``: its training data and, for a
    classifier, its scores on them, so `arbiter drift --model fraud` works on the demo's home
    (the closed loop does the same for the versions it registers)."""
    from arbiter.drift import build_profile
    from arbiter.registry.profiles import log_profile

    scores = None
    if model is not None and hasattr(model, "predict_proba"):
        scores = model.predict_proba(features.to_numpy())[:, 1]
    log_profile(
        registry.tracking_uri,
        MODEL,
        version,
        build_profile(features, prediction=scores),
        registry_uri=registry.registry_uri,
    )


def _outcomes(rows: list[dict[str, Any]], users: list[str], labels: list[int], offset: int) -> Any:
    """The A/B phase's outcome callback: the served decision's purchases and chargebacks."""
    from arbiter.demo.data import purchase_outcomes

    def outcomes(i: int, answer: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        j = offset + i
        blocked = float(answer["predictions"][0]) == 1.0
        return purchase_outcomes(users[j], rows[j]["amount"], labels[j], blocked)

    return outcomes


def _ab_metric_verdict(home: Home, config: ModelConfig) -> dict[str, Any]:
    """The A/B phase's verdict on its business metrics (per user, after first exposure)."""
    from arbiter.analysis import analyze_experiment
    from arbiter.events.location import open_event_store

    experiment = config.experiment_name(MODEL)
    with open_event_store(home).connect() as con:
        analysis = analyze_experiment(con, MODEL, experiment, model_config=config)
    metrics = getattr(analysis, "metrics", None)
    verdict = analysis.verdict
    return {
        "experiment": experiment,
        "primary_metric": config.decision.primary_metric,
        "decision": verdict.decision,
        "reasons": [c.to_dict() for c in verdict.reasons],
        "estimated_remaining_sample": verdict.estimated_remaining_sample,
        "metrics": [] if metrics is None else metrics.to_list(),
        "crossed_units": None if metrics is None else metrics.crossed_units,
    }


def _canaries(
    home: Home, registry: Any, example: Any, options: DemoOptions, progress: Any, features: Any
) -> dict[str, Any]:
    """Two canaries: the better challenger ramps and is promoted; a broken release that
    fails one request in five is rolled back and archived."""
    from arbiter.demo.canary import fraud_canary_config, run_canary_phase
    from arbiter.demo.data import make_transactions
    from arbiter.testing import FailingModel

    traffic = make_transactions(2 * options.canary_requests, seed=options.seed + 2)
    rows = traffic.features.to_dict("records")
    users = [f"c-{u}" for u in traffic.users.tolist()]  # new users: a fresh sticky split
    labels = traffic.labels.tolist()
    config = fraud_canary_config(MODEL)
    out: dict[str, Any] = {}
    n = options.canary_requests
    for phase, lo in (("promote", 0), ("rollback", n)):
        if phase == "rollback":
            version = registry.log_pyfunc_model(
                MODEL, FailingModel(rate=0.2), example, aliases=("challenger",)
            )
            # The broken release was trained on the same data; it has no scores to profile.
            store_profile(registry, version, features)
        task = progress.add_task(f"canary ({phase} expected)", total=n)
        out[phase] = run_canary_phase(
            home,
            config,
            MODEL,
            rows[lo : lo + n],
            users[lo : lo + n],
            labels[lo : lo + n],
            concurrency=options.concurrency,
            advance=lambda k, task=task: progress.advance(task, k),
        )
        progress.update(task, completed=n)
    return out


def _np_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError


__all__ = [
    "BUSINESS_DECISION",
    "METRICS",
    "MODEL",
    "DemoOptions",
    "prepare_home",
    "run_demo",
    "write_config",
]
