"""The step functions: the loop's I/O, one small function per step.

Each takes the :class:`LoopContext`, the cycle's record and the reason the plan gave, does its
side effects, and returns a :class:`StepOutcome` whose evidence goes into the record. Each is
safe to run again after a crash part-way through it:

``drift``
    Read-only.
``retrain``
    Registers the new version under the loop's private alias ``loop-candidate`` (not yet
    ``challenger``: nothing mirrors traffic to a model before it passed the gate). A rerun
    adopts a version that alias points at, registered after the cycle started, instead of
    training again.
``gate``
    The offline gate; re-running it on the same holdout gives the same result.
``shadow`` (the staging step; the name is kept in decision records)
    Points the challenger alias at the candidate (setting an alias twice is harmless); the
    model's experiment (``loop.online``: shadow, ab or canary) gives it traffic.
``online``
    Read-only; appends one check to the step's history.
``promote``
    Compare-and-set on the aliases, in an order where every prefix can be completed.
``archive``
    Removes the aliases that still point at the candidate and tags it; all idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from arbiter.config import (
    ABExperimentConfig,
    CanaryExperimentConfig,
    ShadowExperimentConfig,
)
from arbiter.errors import ConfigError, InvalidInputError
from arbiter.loop.context import LoopContext, StepFunction, StepOutcome
from arbiter.loop.record import CycleRecord, iso, parse_iso, utc_now
from arbiter.report.format import format_number
from arbiter.stats import finite_or_none
from arbiter.tables import read_table, split_label

log = logging.getLogger(__name__)

#: Alias of a retrained version before it passed the offline gate (owned by the loop).
CANDIDATE_ALIAS = "loop-candidate"
#: Alias the old champion keeps after a promotion.
PREVIOUS_ALIAS = "previous"
#: Model version tags written by the loop.
TAG_CYCLE = "arbiter.loop.cycle"
TAG_ARCHIVED = "arbiter.archived"
TAG_ARCHIVED_REASON = "arbiter.archived_reason"
TAG_PROMOTED_AT = "arbiter.loop.promoted_at"


# --- data ------------------------------------------------------------------------------------


def resolve_search(search: str) -> Any:
    """A built-in space name, or ``"package.module:factory"`` imported (a custom space)."""
    if ":" not in search:
        return search
    import importlib

    module, _, attr = search.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            f"search {search!r}: cannot import the model factory ({exc})", field="search"
        ) from exc


# --- steps -----------------------------------------------------------------------------------


def drift_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Compare the served features with the champion's reference profile."""
    from arbiter.loop import _drift

    champion = record.aliases_at_start.get(ctx.champion_alias)
    evidence = _drift.check(ctx, champion, record.inputs)
    return StepOutcome(evidence)


def _adoptable_candidate(ctx: LoopContext, record: CycleRecord) -> str | None:
    """A version a crashed retrain of this cycle registered, if there is one."""
    version = ctx.registry.aliases(ctx.model).get(CANDIDATE_ALIAS)
    if version is None:
        return None
    found = ctx.registry.client.get_model_version(ctx.model, version)
    created_ms = int(found.creation_timestamp or 0)
    if created_ms < parse_iso(record.created_at).timestamp() * 1000:
        return None
    return str(version)


def retrain_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Train on the training file plus recent labelled traffic; register ``loop-candidate``."""
    inputs = record.inputs
    adopted = _adoptable_candidate(ctx, record)
    if adopted is not None:
        log.info("retrain: adopting v%s registered by an interrupted attempt", adopted)
        ctx.registry.set_model_version_tags(ctx.model, adopted, {TAG_CYCLE: record.cycle_id})
        return StepOutcome(
            {"version": adopted, "trigger": reason, "adopted": True, "summary": f"v{adopted}"}
        )

    from arbiter.retrain import labelled_traffic, retrain

    label = inputs.get("label")
    time_column = inputs.get("time_column")  # absent from cycles recorded before it existed
    x = y = None
    if inputs.get("data"):
        if not label:
            raise InvalidInputError("--label names the label column of --data", field="label")
        x, y = split_label(read_table(inputs["data"], field="data"), label, source=inputs["data"])
    traffic = None
    window = inputs.get("traffic_window")
    if window:
        features = None if x is None else [c for c in x.columns if c != time_column]
        t_x, t_y = labelled_traffic(ctx.events, ctx.model, window=window, features=features)
        if len(t_y):
            traffic = (t_x, t_y)
    if x is None:
        if traffic is None:
            raise InvalidInputError(
                f"nothing to retrain {ctx.model!r} on: give --data TRAIN --label COL, or let "
                f"labels reach the event log (none in the last {window or 'window'})",
                field="data",
            )
        (x, y), traffic = traffic, None
    result = retrain(
        ctx.registry,
        ctx.model,
        x,
        y,
        traffic=traffic,
        search=resolve_search(inputs.get("search") or "sklearn"),
        n_trials=int(inputs.get("trials") or 20),
        cv=int(inputs.get("cv") or 5),
        seed=int(inputs.get("seed") or 0),
        alias=CANDIDATE_ALIAS,
        categorical=tuple(inputs.get("categorical") or ()),
        text=tuple(inputs.get("text") or ()),
        # Traffic alone has no time column: the file's column orders the folds.
        time_column=time_column if inputs.get("data") else None,
    )
    ctx.registry.set_model_version_tags(ctx.model, result.version, {TAG_CYCLE: record.cycle_id})
    return StepOutcome(
        {
            "version": str(result.version),
            "trigger": reason,
            "adopted": False,
            "metric": result.metric,
            "best_score": result.best_score,
            "best_params": result.best_params,
            "n_trials": result.n_trials,
            "n_rows": result.n_rows,
            "n_traffic_rows": result.n_traffic_rows,
            "search_id": result.search_id,
            "parent_run_id": result.parent_run_id,
            "duration_s": round(result.duration, 3),
            "summary": f"v{result.version}: cv {result.metric}={result.best_score:.4g} "
            f"({result.n_trials} trials, {result.n_rows} rows)",
        }
    )


def gate_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """The offline gate: candidate against the cycle's champion on the holdout snapshot."""
    from arbiter.gate import offline_gate

    inputs = record.inputs
    if not inputs.get("holdout"):
        raise InvalidInputError(
            "the offline gate needs a holdout: run again with --holdout FILE --label COL",
            field="holdout",
        )
    if not inputs.get("label"):
        raise InvalidInputError("--label names the label column of --holdout", field="label")
    candidate = record.candidate_version
    assert candidate is not None
    result = offline_gate(
        ctx.registry,
        ctx.model,
        read_table(inputs["holdout"], field="holdout"),
        inputs["label"],
        home=ctx.home.root,
        champion_version=record.aliases_at_start.get(ctx.champion_alias),
        challenger_version=candidate,
    )
    failed = ", ".join(result.failed_criteria)
    return StepOutcome(
        {
            "passed": bool(result.passed),
            "snapshot_sha256": result.snapshot_sha256,
            "snapshot_path": result.snapshot_path,
            "champion_version": result.champion_version,
            "challenger_version": result.challenger_version,
            "metric": result.metric,
            "champion_score": finite_or_none(result.champion_score),
            "challenger_score": finite_or_none(result.challenger_score),
            "improvement": finite_or_none(result.improvement),
            "primary_test": result.primary_test,
            "n_rows": result.n_rows,
            "failed_criteria": list(result.failed_criteria),
            "criteria": [
                {"name": c.name, "met": bool(c.met), "detail": c.detail} for c in result.criteria
            ],
            "summary": f"{result.metric} {format_number(result.champion_score, missing='n/a')} "
            f"-> {format_number(result.challenger_score, missing='n/a')} on {result.n_rows} rows"
            + (f"; failed: {failed}" if failed else ""),
        }
    )


_MODE_STRATEGY = {
    "shadow": ShadowExperimentConfig,
    "ab": ABExperimentConfig,
    "canary": CanaryExperimentConfig,
}


def shadow_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Stage the candidate: point the challenger alias at it.

    The gateway picks the alias up on its next poll and, by the model's experiment, mirrors
    traffic to the candidate (``loop.online: shadow``), serves it to its share of units
    (``ab``), or starts a canary of it (``canary``). The mode is recorded here, so the online
    step of this cycle keeps it even if the file changes.
    """
    mode = ctx.model_config.loop.online
    exp = ctx.model_config.experiment
    if not isinstance(exp, _MODE_STRATEGY[mode]):
        raise ConfigError(
            f"models.{ctx.model}.experiment.strategy is {exp.strategy!r} in "
            f"{ctx.home.config_path}; the loop's online test (loop.online: {mode}) needs "
            f"`strategy: {mode}`"
        )
    if isinstance(exp, ABExperimentConfig) and exp.challengers:
        raise ConfigError(
            f"models.{ctx.model}.experiment has several challengers (A/B/n); the loop's A/B "
            "test stages one candidate under challenger_alias"
        )
    candidate = record.candidate_version
    assert candidate is not None
    aliases = ctx.registry.aliases(ctx.model)
    previous = aliases.get(ctx.challenger_alias)
    ctx.registry.set_alias(ctx.model, ctx.challenger_alias, candidate)
    if aliases.get(CANDIDATE_ALIAS) == candidate:
        ctx.registry.delete_alias(ctx.model, CANDIDATE_ALIAS)
    return StepOutcome(
        {
            "mode": mode,
            "challenger_version": candidate,
            "previous_challenger": previous,
            "experiment": ctx.model_config.experiment_name(ctx.model),
            "summary": f"{mode}: {ctx.challenger_alias} -> v{candidate}"
            + (f" (was v{previous})" if previous and previous != candidate else ""),
        }
    )


def online_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Evaluate the candidate's online test: its shadow or A/B rows, or its canary's state."""
    from arbiter.loop.online import canary_outcome, evaluate_candidate

    candidate = record.candidate_version
    assert candidate is not None
    staged = record.evidence("shadow")
    mode = staged.get("mode") or "shadow"
    experiment = staged.get("experiment") or ctx.model_config.experiment_name(ctx.model)
    if mode == "canary":
        result = canary_outcome(ctx.registry, ctx.model, candidate, now=utc_now())
        result["experiment"] = experiment
    else:
        staged_step = record.step("shadow")
        since = staged_step.finished_at if staged_step is not None else None
        result = evaluate_candidate(
            ctx.events,
            ctx.model,
            experiment,
            candidate,
            champion=record.aliases_at_start.get(ctx.champion_alias),
            model_config=ctx.model_config,
            now=utc_now(),
            mode=mode,
            since=parse_iso(since) if since else None,
            registry=ctx.registry,
        )
    checks = list(record.evidence("online").get("checks") or [])
    checks.append(
        {
            "checked_at": result["checked_at"],
            "decision": result["decision"],
            "labelled": result.get("labelled", {}).get("challenger", 0),
        }
    )
    evidence = {**result, "checks": checks}
    return StepOutcome(evidence, waiting=result["decision"] == "continue")


def promote_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Make the candidate champion, the old champion ``previous``; refuse if aliases moved."""
    candidate = record.candidate_version
    assert candidate is not None
    champ_alias, chall_alias = ctx.champion_alias, ctx.challenger_alias
    start = record.aliases_at_start.get(champ_alias)
    now = ctx.registry.aliases(ctx.model)

    def refused(why: str) -> StepOutcome:
        return StepOutcome(
            {
                "refused": True,
                "reason": why,
                "aliases_at_start": record.aliases_at_start,
                "aliases_now": now,
                "summary": f"refused: {why}",
            }
        )

    done_before = now.get(champ_alias) == candidate and now.get(PREVIOUS_ALIAS) == start
    if not done_before:
        # Compare: the champion is the one this cycle started from, and the challenger is
        # still the candidate this cycle put under test.
        if now.get(champ_alias) != start:
            return refused(
                f"{champ_alias} moved from v{start} to v{now.get(champ_alias)} "
                "since the cycle started"
            )
        if now.get(chall_alias) != candidate:
            return refused(
                f"{chall_alias} points at v{now.get(chall_alias)}, not at the candidate "
                f"v{candidate} this cycle tested"
            )
        from arbiter.gate import is_blessed

        if not is_blessed(ctx.registry, ctx.model, candidate, champion_version=start):
            return refused(f"v{candidate} has no offline-gate pass against v{start}")
        # Set: previous first, so a crash after any line leaves a state the check above
        # recognises (champion still the old one, or already promoted with previous set).
        if start is not None:
            ctx.registry.set_alias(ctx.model, PREVIOUS_ALIAS, start)
        ctx.registry.set_alias(ctx.model, champ_alias, candidate)
    if ctx.registry.aliases(ctx.model).get(chall_alias) == candidate:
        ctx.registry.delete_alias(ctx.model, chall_alias)
    ctx.registry.set_model_version_tags(
        ctx.model, candidate, {TAG_PROMOTED_AT: iso(utc_now()), TAG_CYCLE: record.cycle_id}
    )
    return StepOutcome(
        {
            "refused": False,
            "champion": candidate,
            "previous": start,
            "aliases_before": now,
            "summary": f"{champ_alias} -> v{candidate}, {PREVIOUS_ALIAS} -> v{start}",
        }
    )


def archive_step(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
    """Take the candidate out of the test: drop its aliases, tag it archived with the reason."""
    candidate = record.candidate_version
    assert candidate is not None
    aliases = ctx.registry.aliases(ctx.model)
    removed = []
    for alias in (ctx.challenger_alias, CANDIDATE_ALIAS):
        if aliases.get(alias) == candidate:
            ctx.registry.delete_alias(ctx.model, alias)
            removed.append(alias)
    ctx.registry.set_model_version_tags(
        ctx.model,
        candidate,
        {TAG_ARCHIVED: "true", TAG_ARCHIVED_REASON: reason[:5000], TAG_CYCLE: record.cycle_id},
    )
    return StepOutcome(
        {
            "version": candidate,
            "reason": reason,
            "aliases_removed": removed,
            "summary": f"v{candidate} archived: {reason}",
        }
    )


DEFAULT_STEPS: Mapping[str, StepFunction] = {
    "drift": drift_step,
    "retrain": retrain_step,
    "gate": gate_step,
    "shadow": shadow_step,
    "online": online_step,
    "promote": promote_step,
    "archive": archive_step,
}

__all__ = [
    "CANDIDATE_ALIAS",
    "DEFAULT_STEPS",
    "PREVIOUS_ALIAS",
    "TAG_ARCHIVED",
    "TAG_ARCHIVED_REASON",
    "TAG_CYCLE",
    "TAG_PROMOTED_AT",
    "archive_step",
    "drift_step",
    "gate_step",
    "online_step",
    "promote_step",
    "resolve_search",
    "retrain_step",
    "shadow_step",
]
