"""The dashboard's view models: what each page shows, as plain JSON-able dicts.

Every number comes from a function the CLI already uses: :func:`arbiter.analysis.analyze_model`
(``arbiter analyze``), :meth:`arbiter.canary.CanaryService.status` (``arbiter canary status``),
:func:`arbiter.registry.history.history` (``arbiter history``), :func:`arbiter.drift.check_drift`
over :func:`arbiter.events.window.read_window` (``arbiter drift --model``), the loop's
:class:`arbiter.loop.CycleStore` (``arbiter loop history``) and the live aggregates of
:mod:`arbiter.analysis.live`. This module only selects and arranges; the templates render,
:mod:`arbiter.ui.figures` turns series into charts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from arbiter.config import HomeConfig
from arbiter.errors import ArbiterError, NotFoundError
from arbiter.home import Home
from arbiter.ui import figures

log = logging.getLogger(__name__)

#: The window of the overview's live numbers (request rate, error rate, p50/p99).
LIVE_WINDOW_S = 60.0
#: Points of the drift-over-time chart (one drift check per window ending at each point).
DRIFT_POINTS = 8


@dataclass
class Dashboard:
    """One home as the dashboard reads it: config, registry and event store, opened once."""

    home: Home
    gateway_url: str | None = None
    _registry: Any = field(default=None, repr=False)

    @property
    def config(self) -> HomeConfig:
        # Re-read on every view: an operator may edit arbiter.yaml while the dashboard runs.
        return self.home.config()

    @cached_property
    def registry(self) -> Any:
        from arbiter.registry import registry_for_home

        return registry_for_home(self.home.root)

    def connect(self) -> Any:
        from arbiter.events.location import open_event_store

        return open_event_store(self.home, self.config).connect()

    def has_events(self) -> bool:
        """Whether the configured event log (events.url, else HOME/events) exists."""
        from arbiter.events.location import event_log_exists

        return event_log_exists(self.home, self.config)

    def models(self) -> list[str]:
        return sorted(self.config.models)

    def check_model(self, model: str) -> None:
        if model not in self.config.models:
            raise NotFoundError(
                f"model {model!r} is not configured in {self.home.config_path.name}; "
                f"configured: {', '.join(self.models()) or 'none'}"
            )


# --- overview --------------------------------------------------------------------------------


def overview(d: Dashboard) -> dict[str, Any]:
    """Every configured model: aliases, running experiment, live traffic and verdict."""
    has_events = d.has_events()
    cards = []
    for model in d.models():
        cards.append(_model_card(d, model, has_events))
    return {"models": cards, "live_window_s": LIVE_WINDOW_S, "has_events": has_events}


def _model_card(d: Dashboard, model: str, has_events: bool) -> dict[str, Any]:
    config = d.config.models[model]
    exp = config.experiment
    card: dict[str, Any] = {
        "model": model,
        "strategy": exp.strategy,
        "experiment": getattr(exp, "name", None) or f"{model}-{exp.strategy}",
        "aliases": _aliases(d, model),
        "arms": [],
        "status": "running" if exp.strategy != "none" else "champion only",
        "traffic": [],
        "verdict": None,
    }
    if exp.strategy == "canary":
        status = canary_status(d, model)
        card["status"] = status["status"]
        card["arms"] = [
            {"arm": "champion", "share": 1.0 - status["share"]},
            {"arm": "challenger", "share": status["share"]},
        ]
        latest = status.get("latest_decision") or {}
        if latest:
            card["verdict"] = {
                "decision": latest.get("action", ""),
                "reason": "; ".join(latest.get("reasons") or []) or status.get("detail", ""),
            }
    elif exp.strategy == "ab":
        card["arms"], card["status"] = _ab_split(d, model)
    elif exp.strategy == "shadow":
        # The champion answers everything; the challenger scores a sample of copies.
        card["arms"] = [
            {"arm": "champion (answers)", "share": 1.0},
            {"arm": "challenger (shadow copies)", "share": exp.shadow_sample_rate},
        ]
    elif exp.strategy == "interleave":
        card["arms"] = [{"arm": "champion + challenger, interleaved per request", "share": 1.0}]
    if has_events:
        with d.connect() as con:
            from arbiter.analysis.live import recent_traffic

            card["traffic"] = recent_traffic(con, model, window_s=LIVE_WINDOW_S)
            if card["verdict"] is None and exp.strategy not in ("none", "canary"):
                card["verdict"] = _latest_verdict(d, con, model)
    return card


def _aliases(d: Dashboard, model: str) -> dict[str, str]:
    try:
        return dict(d.registry.aliases(model))
    except ArbiterError as exc:
        log.warning("aliases of %s unreadable: %s", model, exc)
        return {}


def _ab_split(d: Dashboard, model: str) -> tuple[list[dict[str, Any]], str]:
    from arbiter.experiments.split_store import SplitStore

    config = d.config
    store = SplitStore(
        d.registry, model, config.models[model], poll_interval_s=config.registry.poll_interval_s
    )
    status = store.status()
    shares = status.get("shares") or {}
    arms = [{"arm": arm, "share": share} for arm, share in shares.items()]
    return arms, str(status.get("status", "running"))


def _latest_verdict(d: Dashboard, con: Any, model: str) -> dict[str, Any] | None:
    """The verdict of the model's newest analysable experiment, with one line of why."""
    from arbiter.analysis import analyze_model
    from arbiter.report.summary import experiments

    logged = [e for e in experiments(con, model) if e["strategy"] not in ("none", "canary")]
    if not logged:
        return None
    newest = logged[-1]["experiment"]  # oldest first: analyse only the newest
    try:
        (analysis,) = analyze_model(con, model, newest, model_config=d.config.models[model])
    except ArbiterError as exc:
        return {"decision": None, "reason": str(exc), "experiment": newest}
    a = analysis.to_dict()
    return {"decision": a["decision"], "reason": one_line_reason(a), "experiment": newest}


def one_line_reason(analysis: dict[str, Any]) -> str:
    """Why a verdict is what it is, in one line: the first criterion that holds it back, or
    for a verdict reached, the criterion that decided it."""
    criteria = analysis.get("criteria") or []
    decision = analysis.get("decision")
    unmet = [c for c in criteria if not c.get("met")]
    if decision == "continue":
        waiting = _waiting_for_labels(analysis)
        if waiting:
            return waiting
        # Most often the sample is what a running test waits for: say that first.
        unmet.sort(key=lambda c: c["name"] not in ("min_sample", "sample"))
        if unmet:
            return f"{unmet[0]['name']}: {unmet[0]['detail']}"
    if decision in ("rollback", "keep_champion") and unmet:
        return f"{unmet[0]['name']}: {unmet[0]['detail']}"
    for c in criteria:
        if c["name"] in ("significance", "primary", "test") or c["name"].startswith("primary"):
            return f"{c['name']}: {c['detail']}"
    return f"{criteria[-1]['name']}: {criteria[-1]['detail']}" if criteria else ""


def _waiting_for_labels(analysis: dict[str, Any]) -> str | None:
    """The empty state of a verdict: no labels at all yet, and how many it waits for."""
    for c in analysis.get("criteria") or []:
        if c["name"] in ("min_sample", "sample") and not c["met"] and not c.get("observed"):
            need = c.get("threshold")
            if need:
                unit = analysis.get("sample_unit") or "units"
                return f"no labels yet: the verdict waits for {need:,.0f} labelled {unit} per arm"
            return "no labels yet"
    return None


# --- experiment ------------------------------------------------------------------------------


def experiment_names(d: Dashboard, model: str) -> list[dict[str, Any]]:
    """The experiments the model has logged, oldest first (``arbiter report``'s list)."""
    if not d.has_events():
        return []
    from arbiter.report.summary import experiments

    with d.connect() as con:
        return [
            {"experiment": e["experiment"], "strategy": e["strategy"], "requests": e["requests"]}
            for e in experiments(con, model)
        ]


def experiment(d: Dashboard, model: str, name: str) -> dict[str, Any]:
    """One experiment as ``arbiter analyze`` judges it, with the series its charts draw."""
    d.check_model(model)
    known = {e["experiment"]: e for e in experiment_names(d, model)}
    if name not in known:
        raise NotFoundError(
            f"model {model!r} has no logged experiment {name!r}; logged: "
            f"{', '.join(known) or 'none'}"
        )
    strategy = known[name]["strategy"]
    if strategy == "canary":
        return {"model": model, "experiment": name, "strategy": strategy, "canary": True}
    from arbiter.analysis import analyze_model
    from arbiter.experiments.split_store import attach_for_home

    with d.connect() as con:
        attach_for_home(con, d.home, model)
        try:
            (analysis,) = analyze_model(con, model, name, model_config=d.config.models[model])
        except ArbiterError as exc:  # nothing to analyse yet: the page says why
            return {"model": model, "experiment": name, "strategy": strategy, "empty": str(exc)}
        shadow = None
        if strategy == "shadow":
            from arbiter.analysis.live import shadow_pairs

            shadow = shadow_pairs(con, model, name)
    if getattr(analysis, "shadow", None) is not None:
        from arbiter.registry.model_info import describe_analysis_models

        analysis = describe_analysis_models(d.home, model, analysis)
    data = analysis.to_dict()
    view: dict[str, Any] = {
        "model": model,
        "experiment": name,
        "strategy": strategy,
        "analysis": data,
        "decision": data.get("decision"),
        "reason": one_line_reason(data),
        "criteria": data.get("criteria") or [],
        "waiting": _waiting_for_labels(data),
        "progress": _progress(data),
        "srm": data.get("srm"),
        "arms": _arm_rows(data),
        "figures": figures.for_analysis(analysis, shadow),
    }
    if shadow is not None:
        view["shadow"] = shadow
    if getattr(analysis, "shadow", None) is not None:
        view.update(_shadow_report(analysis))
    return view


def _shadow_report(analysis: Any) -> dict[str, Any]:
    """The shadow report's rows and recommendation, exactly as ``arbiter analyze`` renders
    them (:mod:`arbiter.report.shadow`): models compared, latency with its mean, and each
    direction of disagreement with who was right."""
    from arbiter.report.shadow import analysis_recommendation, analysis_shadow_view

    return {
        "shadow_view": analysis_shadow_view(analysis),
        "recommendation": analysis_recommendation(analysis),
    }


def _progress(a: dict[str, Any]) -> dict[str, Any] | None:
    """Labelled units of the smallest arm against the required sample."""
    for c in a.get("criteria") or []:
        if c["name"] in ("min_sample", "sample") and c.get("threshold"):
            observed = float(c.get("observed") or 0.0)
            need = float(c["threshold"])
            return {
                "observed": observed,
                "required": need,
                "fraction": min(observed / need, 1.0) if need else 1.0,
                "detail": c["detail"],
            }
    return None


def _arm_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    arms = a.get("arms")
    if isinstance(arms, dict):
        return [{"arm": name, **values} for name, values in arms.items()]
    if isinstance(arms, list):
        return [{"arm": name, **a.get("arm_rows", {}).get(name, {})} for name in arms]
    return []


# --- canary ----------------------------------------------------------------------------------


def canary_service(d: Dashboard, model: str) -> Any:
    from arbiter.canary import CanaryService

    d.check_model(model)
    config = d.config
    return CanaryService(
        d.registry,
        d.home.root,
        model,
        config.models[model],
        poll_interval_s=config.registry.poll_interval_s,
    )


def canary_status(d: Dashboard, model: str) -> dict[str, Any]:
    """``arbiter canary status --json`` of the model."""
    return canary_service(d, model).status()


def canary(d: Dashboard, model: str) -> dict[str, Any]:
    """The canary page: status, plan, every decision record with its evidence, and charts."""
    d.check_model(model)
    if d.config.models[model].experiment.strategy != "canary":
        return {"model": model, "not_canary": d.config.models[model].experiment.strategy}
    status = canary_status(d, model)
    records = list(status.get("records") or [])
    return {
        "model": model,
        "status": status,
        "records": [_record_view(r) for r in reversed(records)],
        "figures": figures.for_canary(status, records),
        "gateway_url": d.gateway_url,
    }


def _record_view(r: dict[str, Any]) -> dict[str, Any]:
    evidence = r.get("evidence") or {}
    return {
        "at": r.get("at"),
        "action": r.get("action"),
        "actor": r.get("actor"),
        "share": r.get("share"),
        "stage": f"{r.get('from_stage')} → {r.get('to_stage')}"
        if r.get("from_stage") is not None
        else "",
        "versions": f"v{r.get('challenger_version')} vs v{r.get('champion_version')}",
        "reasons": r.get("reasons") or [],
        "criteria": evidence.get("criteria") or [],
        "arms": evidence.get("arms") or {},
    }


# --- drift -----------------------------------------------------------------------------------


def drift(d: Dashboard, model: str) -> dict[str, Any]:
    """Drift of the champion's served traffic against its reference profile, per feature over
    time (one check per window), the latest window's histograms, and the loop's cycles."""
    d.check_model(model)
    from arbiter.loop import CycleStore

    cycles = [r.to_dict() for r in CycleStore(d.home.root).records(model)[::-1][:20]]
    view: dict[str, Any] = {"model": model, "cycles": cycles, "figures": {}, "features": []}
    try:
        series, latest, version = _drift_over_time(d, model)
    except NotFoundError as exc:
        view["empty"] = str(exc)
        return view
    view["version"] = version
    view["features"] = [r.to_dict() for r in latest.features] if latest else []
    view["dataset"] = latest.to_dict().get("dataset") if latest else None
    view["figures"] = figures.for_drift(series, latest)
    return view


def _drift_over_time(d: Dashboard, model: str) -> tuple[dict[str, Any], Any, str]:
    from arbiter.drift import DriftConfig, check_drift
    from arbiter.events.window import read_window

    if not d.has_events():
        raise NotFoundError("no event log yet: serve some traffic first")
    alias = d.home.aliases(model)[0]
    version = d.registry.aliases(model).get(alias)
    if version is None:
        raise NotFoundError(f"model {model!r} has no {alias!r} alias")
    try:
        profile = _profile(d.registry.tracking_uri, d.registry.registry_uri, model, version)
    except ArbiterError as exc:
        raise NotFoundError(f"no reference profile for {model} v{version}: {exc}") from exc
    columns = {c.name: c.kind for c in profile.columns}
    config = DriftConfig(columns=profile.names)
    with d.connect() as con:
        full = read_window(con, model, columns, version=version)
        if full.n == 0 or full.start is None or full.end is None:
            raise NotFoundError(f"no served rows of {model} v{version} yet")
        span = max((full.end - full.start).total_seconds(), 1.0)
        step = span / DRIFT_POINTS
        series: dict[str, Any] = {"end": [], "statistic": {}, "threshold": {}}
        latest = None
        for i in range(1, DRIFT_POINTS + 1):
            end = full.start + timedelta(seconds=step * i)
            w = read_window(
                con, model, columns, window=timedelta(seconds=step), version=version, now=end
            )
            if w.n < 2:
                continue
            result = check_drift(profile, w.features, config)
            series["end"].append(end.astimezone(UTC).isoformat())
            for r in result.features:
                series["statistic"].setdefault(r.column, []).append(r.statistic)
                series["threshold"][r.column] = r.threshold
            latest = result
    return series, latest, version


@lru_cache(maxsize=32)
def _profile(tracking_uri: str, registry_uri: str | None, model: str, version: str) -> Any:
    """A version's reference profile: immutable once logged, so read once per version."""
    from arbiter.registry.profiles import load_profile

    return load_profile(tracking_uri, model, version, registry_uri=registry_uri)


# --- history ---------------------------------------------------------------------------------


def history(d: Dashboard, model: str) -> dict[str, Any]:
    """Every alias move of the model, each beside the verdict that caused it (the canary's or
    the loop's decision at that version, when one did)."""
    d.check_model(model)
    from arbiter.loop import CycleStore
    from arbiter.registry.history import experiment_changes
    from arbiter.registry.history import history as read_history

    moves = [m.to_dict() for m in read_history(d.registry, model)]
    verdicts: dict[str, list[tuple[float, str]]] = {}
    if d.config.models[model].experiment.strategy == "canary":
        for r in canary_status(d, model).get("records") or []:
            if r.get("action") in ("promote", "rollback", "abort"):
                verdicts.setdefault(str(r.get("challenger_version")), []).append(
                    (float(r["at"]), f"canary {r['action']}")
                )
    for c in CycleStore(d.home.root).records(model):
        if c.candidate_version and c.verdict:
            when = datetime.fromisoformat(c.created_at).timestamp()
            verdicts.setdefault(str(c.candidate_version), []).append((when, f"loop {c.verdict}"))
    every = sorted(v for found in verdicts.values() for v in found)
    for m in moves:
        at = m["ts_us"] / 1e6
        candidates = verdicts.get(str(m.get("to_version")), []) + verdicts.get(
            str(m.get("from_version")), []
        )
        before = [v for t, v in sorted(candidates) if t <= at + 5]
        # A side move of the same decision (the old champion kept as `previous`) names
        # neither tested version: the decision recorded within seconds of it.
        near = [v for t, v in every if abs(t - at) <= 5]
        m["verdict"] = before[-1] if before else (near[-1] if near else None)
        m["at"] = datetime.fromtimestamp(at, tz=UTC).isoformat()
    changes = [c.to_dict() for c in experiment_changes(d.registry, model)]
    return {
        "model": model,
        "aliases": _aliases(d, model),
        "moves": moves[::-1],
        "changes": changes[::-1],
    }


__all__ = [
    "DRIFT_POINTS",
    "LIVE_WINDOW_S",
    "Dashboard",
    "canary",
    "canary_service",
    "canary_status",
    "drift",
    "experiment",
    "experiment_names",
    "history",
    "one_line_reason",
    "overview",
]
