"""``arbiter demo --scenario drift``: the closed loop on traffic whose distribution shifts.

1. Train a champion (logistic regression) on pre-shift transactions, register it as
   ``champion`` with its drift reference profile.
2. Start the gateway with a shadow experiment (the loop's online test mirrors traffic to
   whatever version ``challenger`` points at) and a 1 s alias poll.
3. Send labelled HTTP traffic: the first half as in training, the second half shifted (larger,
   more foreign and online transactions), where the champion is clearly worse.
4. Run the loop in-process (:func:`arbiter.loop.run_cycle`): drift on the shifted window →
   retrain (a small Optuna search on part of the champion's data plus the labelled traffic) →
   offline gate on a shifted holdout → the candidate shadows; wait until the gateway and its
   shadow workers have loaded it, then send shifted, labelled traffic in rounds and run the
   cycle again after each until the online test decides, then promote (bounded in requests
   and time: a busy machine takes more rounds, not another verdict).
5. Write the drift report and the candidate's shadow-test analysis (HTML) to HOME/reports/.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from arbiter.config import (
    DecisionConfig,
    HomeConfig,
    ModelConfig,
    ShadowExperimentConfig,
    dump_config,
)
from arbiter.demo.run import MODEL, prepare_home
from arbiter.demo.traffic import (
    EvidenceTimeoutError,
    describe_model,
    send_traffic,
    send_until,
    wait_for_arms_loaded,
    wait_until,
)

if TYPE_CHECKING:
    from arbiter.demo.data import FraudData
    from arbiter.events import EventStore
    from arbiter.home import Home
    from arbiter.loop import CycleRecord, LoopRun, StepOutcome

LABEL = "is_fraud"
EXPERIMENT = f"{MODEL}-shadow"


@dataclass(frozen=True)
class DriftDemoOptions:
    """Sizes of the drift scenario (the defaults run in about 1-2 minutes on 2 cores).

    Parameters
    ----------
    requests : int
        Labelled requests before the shift, and as many after it.
    online_requests : int
        Shifted, labelled requests per round of the online shadow test.
    max_online_rounds : int
        At most this many rounds of online traffic + ``run_cycle`` (the bound on requests:
        the test stops at the first verdict; more rounds run only when a busy machine dropped
        shadows and the sample was not reached yet).
    online_timeout_s : float
        At most this long sending online rounds before giving up on a verdict.
    load_timeout_s : float
        How long to wait for the gateway (and its shadow workers) to load the candidate before
        its traffic counts (loading a model on a saturated machine takes tens of seconds).
    train_rows, holdout_rows : int
        The champion's (pre-shift) training set; the gate's (shifted) holdout.
    retrain_rows : int
        Rows of the champion's training set the loop retrains on, with the labelled traffic.
    shift : float
        Size of the distribution shift (:func:`arbiter.demo.data.make_transactions`).
    trials, cv, search
        The loop's retrain: Optuna trials, folds, model space (``"sklearn"``: logistic
        regression and HistGradientBoosting).
    min_sample_per_arm : int
        Labelled rows per side before the online test may decide.
    shadow_executor : {"process", "thread"}
        Where the candidate scores its shadow requests (``experiment.shadow_executor``):
        low-priority worker processes (the default), or threads of the gateway process.
    """

    requests: int = 1_000
    online_requests: int = 600
    max_online_rounds: int = 8
    online_timeout_s: float = 900.0
    load_timeout_s: float = 300.0
    train_rows: int = 20_000
    holdout_rows: int = 3_000
    retrain_rows: int = 5_000
    shift: float = 1.0
    trials: int = 5
    cv: int = 3
    search: str = "sklearn"
    min_sample_per_arm: int = 500
    concurrency: int = 16
    label_batch: int = 250
    seed: int = 7
    shadow_executor: Literal["process", "thread"] = "process"


def write_drift_config(home: Home, options: DriftDemoOptions) -> HomeConfig:
    """A shadow experiment the loop can drive; aliases polled every second."""
    config = HomeConfig.model_validate(
        {
            "registry": {"poll_interval_s": 1.0},
            "events": {"flush_interval_s": 0.2},
            "models": {
                MODEL: ModelConfig(
                    experiment=ShadowExperimentConfig(
                        name=EXPERIMENT,
                        unit_field="user_id",
                        shadow_sample_rate=1.0,
                        shadow_max_in_flight=options.concurrency,
                        shadow_executor=options.shadow_executor,
                    ),
                    decision=DecisionConfig(min_sample_per_arm=options.min_sample_per_arm),
                ).model_dump()
            },
        }
    )
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return config


# --- narration -------------------------------------------------------------------------------


def _describe_step(name: str, evidence: Mapping[str, Any], *, waiting: bool) -> list[str]:
    """Rich markup lines for one finished step of the loop."""
    summary = evidence.get("summary", "")
    if name == "drift":
        head = "[bold red]DRIFT[/]" if evidence.get("drifted") else "[green]no drift[/]"
        lines = [f"{head}: {summary} (window {evidence.get('window')}, "
                 f"reference v{evidence.get('reference_version')})"]  # fmt: skip
        if evidence.get("prediction_drifted") is not None:
            moved = "drifted" if evidence["prediction_drifted"] else "stable"
            lines.append(f"champion's scores: {moved}")
        return lines
    if name == "retrain":
        family = (evidence.get("best_params") or {}).get("model", "")
        return [f"registered [bold]v{evidence.get('version')}[/] ({family}): cv "
                f"{evidence.get('metric')} = {evidence.get('best_score', float('nan')):.4f}, "
                f"{evidence.get('n_trials')} trials on {evidence.get('n_rows')} rows, "
                f"{evidence.get('n_traffic_rows')} of them labelled traffic"]  # fmt: skip
    if name == "gate":
        head = "[bold green]PASSED[/]" if evidence.get("passed") else "[bold red]FAILED[/]"
        lines = [f"{head}: {summary}"]
        for c in evidence.get("criteria", []):
            mark = "[green]✓[/]" if c["met"] else "[red]✗[/]"
            lines.append(f"  {mark} {c['name']}: {c['detail']}")
        return lines
    if name == "online":
        primary = evidence.get("primary") or {}
        line = f"[bold]{evidence.get('decision')}[/]: {summary}"
        if primary.get("estimate") is not None:
            line += (f"; {primary.get('method')} accuracy difference "
                     f"{primary['estimate']:+.4f} [{primary.get('ci_low', float('nan')):+.4f}, "
                     f"{primary.get('ci_high', float('nan')):+.4f}]")  # fmt: skip
        if waiting:
            line += " (waiting for more labelled shadow traffic)"
        return [line]
    return [summary]


@dataclass
class _Narrator:
    """Wraps the loop's step functions to print each outcome as it happens."""

    console: Any
    events: list[dict[str, Any]]

    def steps(self) -> dict[str, Any]:
        from arbiter.loop import DEFAULT_STEPS

        return {name: self._wrap(name, fn) for name, fn in DEFAULT_STEPS.items()}

    def _wrap(self, name: str, fn: Callable[..., StepOutcome]) -> Callable[..., StepOutcome]:
        def step(ctx: Any, record: CycleRecord, reason: str) -> StepOutcome:
            started = time.perf_counter()
            with self.console.status(f"loop · {name}: {reason}…"):
                outcome = fn(ctx, record, reason)
            seconds = round(time.perf_counter() - started, 1)
            lines = _describe_step(name, outcome.evidence, waiting=outcome.waiting)
            self.console.print(f"[bold cyan]loop · {name:<8}[/] {lines[0]} [dim]({seconds} s)[/]")
            for line in lines[1:]:
                self.console.print(f"{'':15}{line}")
            self.events.append(
                {
                    "step": name,
                    "status": "waiting" if outcome.waiting else "done",
                    "summary": outcome.evidence.get("summary", ""),
                    "seconds": seconds,
                }
            )
            return outcome

        return step


# --- traffic ---------------------------------------------------------------------------------


def _send(console: Any, url: str, data: FraudData, what: str, options: DriftDemoOptions) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description:<38}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(what, total=len(data))
        return asyncio.run(
            send_traffic(
                url,
                data.features.to_dict("records"),
                data.users.tolist(),
                data.labels.tolist(),
                concurrency=options.concurrency,
                label_batch=options.label_batch,
                advance=lambda n: progress.advance(task, n),
            )
        )


def _count(store: EventStore, sql: str, params: dict[str, Any]) -> int:
    with store.connect() as con:
        row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def _wait_for_log(store: EventStore, sql: str, params: dict[str, Any], target: int) -> int:
    """Wait until the gateway's batched writes show ``target`` rows (or stop growing).

    Rows never come for shadows the gateway dropped, so a count that stays put for a few
    seconds ends the wait early; the next round (and its check) picks up any straggler.
    """
    deadline = time.monotonic() + 60.0
    last, stable_since = -1, time.monotonic()
    while True:
        n = _count(store, sql, params)
        if n >= target or time.monotonic() > deadline:
            return n
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since > 3.0:
            return n  # dropped shadow requests never arrive
        time.sleep(0.2)


def _wait_for_shadows_done(url: str, timeout_s: float = 60.0) -> None:
    """Wait until no shadow call is in flight (their rows are then in the writer's buffer)."""

    def idle() -> bool:
        shadow = (describe_model(url, MODEL).get("experiment") or {}).get("shadow") or {}
        return int(shadow.get("in_flight", 0)) == 0

    # A hung shadow is the watchdog's; the cycle judges the rows that did arrive.
    with contextlib.suppress(EvidenceTimeoutError):
        wait_until(idle, timeout_s=timeout_s, what="shadow calls finishing")


def _wait_for_champion(url: str, version: str, timeout_s: float = 60.0) -> bool:
    """Wait until the gateway serves ``version`` as champion (its next registry poll)."""
    try:
        wait_until(
            lambda: (describe_model(url, MODEL).get("aliases") or {}).get("champion") == version,
            timeout_s=timeout_s,
            what=f"the gateway serving v{version} as champion",
        )
    except EvidenceTimeoutError:
        return False
    return True


# --- reports ---------------------------------------------------------------------------------


def _drift_check(home: Home, record: CycleRecord) -> tuple[Any, str] | None:
    """Re-run the drift step's check on the same window: (the full result, the window)."""
    from arbiter.drift import check_drift
    from arbiter.durations import parse_window
    from arbiter.events.location import open_event_store
    from arbiter.events.window import read_window
    from arbiter.loop.record import parse_iso
    from arbiter.registry import registry_for_home
    from arbiter.registry.profiles import load_profile

    step = record.steps.get("drift")
    champion = record.aliases_at_start.get("champion")
    if step is None or step.finished_at is None or champion is None:
        return None
    window = step.evidence.get("window")
    registry = registry_for_home(home.root)
    profile = load_profile(registry.tracking_uri, MODEL, champion)
    columns = {c.name: c.kind for c in profile.columns}
    spec = parse_window(window)
    with open_event_store(home).connect() as con:
        served = read_window(
            con,
            MODEL,
            columns,
            window=spec.period,
            last=spec.rows,
            version=champion,
            now=parse_iso(step.finished_at),
        )
    result = check_drift(
        profile,
        served.features,
        current_prediction=served.scores if profile.prediction is not None else None,
    )
    return result, spec.describe()


def _drift_report(home: Home, record: CycleRecord, checked: Any = None) -> Path | None:
    """The drift step's check (:func:`_drift_check`, or ``checked``) as HTML."""
    from arbiter.report.drift import write_drift_html

    checked = checked or _drift_check(home, record)
    if checked is None:
        return None
    result, window = checked
    champion = record.aliases_at_start.get("champion")
    return write_drift_html(
        result,
        home.reports / f"{MODEL}-drift.html",
        title=f"{MODEL}: served traffic vs v{champion}'s training data",
        subtitle=f"the loop's drift check, cycle {record.cycle_id}, {window}",
    )


def _analysis_report(home: Home, record: CycleRecord) -> tuple[Path | None, Any]:
    """The online test the loop judged (the candidate's shadow rows only), as HTML."""
    from arbiter.analysis import analyze_experiment
    from arbiter.errors import NotFoundError
    from arbiter.events.location import open_event_store
    from arbiter.loop.online import scoped_connection
    from arbiter.report.html import write_html

    candidate = record.candidate_version
    if candidate is None or "online" not in record.steps:
        return None, None
    champion = record.aliases_at_start.get("champion")
    config = home.config().models.get(MODEL)
    with scoped_connection(open_event_store(home), MODEL, EXPERIMENT, candidate, champion) as con:
        try:
            analysis = analyze_experiment(con, MODEL, EXPERIMENT, model_config=config)
        except NotFoundError:
            return None, None
    path = write_html([analysis], home.reports / f"{MODEL}-shadow-analysis.html", model=MODEL)
    return path, analysis


# --- the scenario ----------------------------------------------------------------------------


def _register_champion(home: Home, options: DriftDemoOptions) -> tuple[str, Path]:
    """Train and register the champion with its profile; write part of its data for the loop."""
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_champion
    from arbiter.drift import build_profile
    from arbiter.registry import registry_for_home
    from arbiter.registry.profiles import log_profile

    train = make_transactions(options.train_rows, seed=options.seed)
    champion = train_champion(train.features, train.labels)
    registry = registry_for_home(home.root)
    version = registry.log_sklearn_model(
        MODEL,
        champion,
        train.features.head(5),
        aliases=("champion",),
        tags={"arbiter.role": "champion"},
    )
    scores = champion.predict_proba(train.features.to_numpy())[:, 1]
    log_profile(
        registry.tracking_uri, MODEL, version, build_profile(train.features, prediction=scores)
    )
    path = home.root / "data" / "train-before-shift.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = options.retrain_rows
    train.features.head(n).assign(**{LABEL: train.labels[:n]}).to_csv(path, index=False)
    return str(version), path


def _write_holdout(home: Home, options: DriftDemoOptions) -> Path:
    from arbiter.demo.data import make_transactions

    data = make_transactions(options.holdout_rows, seed=options.seed + 100, shift=options.shift)
    path = home.root / "data" / "holdout-shifted.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.features.assign(**{LABEL: data.labels}).to_csv(path, index=False)
    return path


_RETRAIN_KEYS = ("version", "metric", "best_score", "best_params", "n_trials", "n_rows")
_GATE_KEYS = ("passed", "metric", "champion_score", "challenger_score", "improvement", "n_rows",
              "failed_criteria")  # fmt: skip
_ONLINE_KEYS = ("decision", "labelled", "primary", "checks", "summary")


def _digest(record: CycleRecord) -> dict[str, Any]:
    """The headline numbers of each step, for the JSON summary."""
    ev = {name: step.evidence for name, step in record.steps.items()}
    drift, retrain, gate, online = (ev.get(k, {}) for k in ("drift", "retrain", "gate", "online"))
    return {
        "drift": {
            "drifted": drift.get("drifted"),
            "window": drift.get("window"),
            "rows": drift.get("rows"),
            "drifted_features": [f["column"] for f in drift.get("features", []) if f["drifted"]],
            "prediction_drifted": drift.get("prediction_drifted"),
            "summary": drift.get("summary"),
        },
        "retrain": {k: retrain.get(k) for k in _RETRAIN_KEYS},
        "gate": {k: gate.get(k) for k in _GATE_KEYS},
        "online": {k: online.get(k) for k in _ONLINE_KEYS},
        "promote": ev.get("promote"),
        "archive": ev.get("archive"),
    }


def run_drift_demo(
    home_dir: Path, options: DriftDemoOptions | None = None, *, console: Any = None
) -> dict[str, Any]:
    """Run the drift scenario; return a JSON-safe summary.

    Parameters
    ----------
    home_dir : path
        Demo home; created, or wiped if an earlier demo created it.
    options : DriftDemoOptions, optional
        Sizes (tests pass smaller ones).
    console : rich.console.Console, optional
        Where the steps are printed.

    Returns
    -------
    dict
        ``verdict``, ``versions`` (champion before/after, candidate, aliases), ``traffic``,
        ``steps`` (each step as it ran), per-step headline numbers, ``reports`` (HTML paths),
        ``decision_record`` and the full ``cycle`` record.
    """
    from rich.console import Console

    from arbiter.demo.data import make_transactions
    from arbiter.events import Scope
    from arbiter.events.location import open_event_store
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.loop import CycleStore, LoopOptions, run_cycle
    from arbiter.registry import registry_for_home

    options = options or DriftDemoOptions()
    console = console or Console()
    started = time.perf_counter()
    home = prepare_home(home_dir)
    config = write_drift_config(home, options)
    console.print(f"[bold]arbiter demo --scenario drift[/bold] in {home.root}")

    with console.status("Training the champion on pre-shift transactions…"):
        champion, train_file = _register_champion(home, options)
        holdout = _write_holdout(home, options)
    console.print(
        f"champion [bold]v{champion}[/] (logistic regression, {options.train_rows:,} pre-shift "
        f"rows) registered with its drift reference profile; shifted holdout: {holdout}"
    )

    store = open_event_store(home)
    scope = Scope(MODEL)
    served_sql = f"SELECT count(*) FROM labeled WHERE {scope.where()} AND role = 'served' "
    served_sql += "AND label IS NOT NULL"
    shadow_sql = f"SELECT count(*) FROM shadowed WHERE {scope.where()} AND version = $version"
    narrator = _Narrator(console, [])
    steps = narrator.steps()
    traffic: dict[str, Any] = {"online": []}
    sent = 0
    with ServerThread(create_app(home, config=config)) as server:
        console.print(f"gateway on {server.url} (shadow experiment {EXPERIMENT!r})")
        before = make_transactions(options.requests, seed=options.seed + 1)
        traffic["before_shift"] = _send(
            console, server.url, before, "traffic before the shift", options
        )
        after = make_transactions(options.requests, seed=options.seed + 2, shift=options.shift)
        traffic["after_shift"] = _send(
            console, server.url, after, f"traffic after the shift ({options.shift:g})", options
        )
        sent += 2 * options.requests
        _wait_for_log(store, served_sql, scope.params, sent)

        # The drift window is the shifted half, by row count (a period would depend on how
        # fast the traffic went and when the check starts); the retrain learns from part of
        # the original data and every labelled request.
        loop_options = LoopOptions(
            data=train_file,
            label=LABEL,
            holdout=holdout,
            traffic_window="1h",
            drift_window=f"{options.requests} rows",
            trials=options.trials,
            cv=options.cv,
            seed=options.seed,
            search=options.search,
        )
        console.print("[bold]closed loop[/]: drift → retrain → gate → shadow → online → promote")
        run: LoopRun = run_cycle(home.root, MODEL, loop_options, steps=steps)
        candidate = run.record.candidate_version
        if not run.record.finished and candidate is not None:
            loaded = {"challenger": candidate}
            with console.status(f"Waiting for the gateway's shadow workers to load v{candidate}…"):
                wait_for_arms_loaded(
                    server.url, MODEL, versions=loaded, shadow=True,
                    timeout_s=options.load_timeout_s,
                )  # fmt: skip

            def online_round(start: int, n: int) -> dict[str, Any]:
                nonlocal sent
                i = len(traffic["online"])
                # Only traffic the candidate can shadow counts: a restarted shadow worker
                # reloads it first (one GET /models when it is loaded).
                wait_for_arms_loaded(
                    server.url, MODEL, versions=loaded, shadow=True,
                    timeout_s=options.load_timeout_s,
                )  # fmt: skip
                data = make_transactions(n, seed=options.seed + 10 + i, shift=options.shift)
                what = f"shadow test round {i + 1} (v{candidate})"
                result = _send(console, server.url, data, what, options)
                traffic["online"].append(result)
                sent += n
                return result

            def decided() -> bool:
                nonlocal run
                _wait_for_log(store, served_sql, scope.params, sent)
                _wait_for_shadows_done(server.url)
                n = sum(r["labels"] for r in traffic["online"])
                _wait_for_log(store, shadow_sql, {**scope.params, "version": candidate}, n)
                run = run_cycle(home.root, MODEL, steps=steps)
                return run.record.finished

            rounds = send_until(
                online_round,
                decided,
                round_size=options.online_requests,
                max_requests=options.online_requests * options.max_online_rounds,
                timeout_s=options.online_timeout_s,
            )
            traffic["online_rounds"] = {
                "rounds": rounds.rounds,
                "requests": rounds.sent,
                "decided": rounds.reached,
                "seconds": rounds.seconds,
            }
        promoted = run.record.verdict == "promoted" and candidate is not None
        if promoted and _wait_for_champion(server.url, str(candidate)):
            console.print(f"the gateway now serves [bold]v{candidate}[/] as champion")

    record = run.record
    if not record.finished:
        console.print(
            f"[yellow]no verdict after {len(traffic['online'])} rounds of online traffic; "
            f"`arbiter loop run --home {home.root} --model {MODEL}` continues the cycle[/]"
        )
    with console.status("Writing the drift and experiment reports…"):
        drift_html = _drift_report(home, record)
        analysis_html, analysis = _analysis_report(home, record)

    aliases = registry_for_home(home.root).aliases(MODEL)
    decision_record = CycleStore(home.root).path(record.cycle_id)
    return {
        "scenario": "drift",
        "home": str(home.root),
        "seconds": round(time.perf_counter() - started, 1),
        "status": record.status,
        "verdict": record.verdict,
        "reason": record.reason,
        "versions": {
            "champion_before": champion,
            "candidate": record.candidate_version,
            "champion_after": aliases.get("champion"),
            "aliases": aliases,
        },
        "traffic": traffic,
        "steps": narrator.events,
        **_digest(record),
        "reports": {
            "drift_html": None if drift_html is None else str(drift_html),
            "analysis_html": None if analysis_html is None else str(analysis_html),
        },
        "decision_record": str(decision_record),
        "cycle": record.to_dict(),
        "_analysis": analysis,  # for printing; dropped before JSON output
    }


__all__ = ["DriftDemoOptions", "run_drift_demo", "write_drift_config"]
