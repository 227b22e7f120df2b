"""The shadow report's view model: models compared, distributions, disagreements, advice.

Renderers (terminal, Markdown, HTML, and the dashboard) read :func:`shadow_view`, so every
form shows the same rows in the same words:

* ``models``: per side, the versions that ran with their flavor and estimator class
  (:mod:`arbiter.registry.model_info`, filled in by the shell);
* ``distribution_rows``: per model, each class with its count and share;
  ``value_rows``: the quantiles of its score (regressors: prediction);
* ``direction_rows``: each direction of disagreement with its count, its share of the
  paired rows and, on labelled rows, who was right;
* ``latency_rows``: mean, median, p95 and p99 per model;
* ``recommendation``: what to do, from the verdict, with the reason (:func:`recommend`).

A view model, not a rendering: plain dicts of values (numbers stay numbers), so the
presentation chooses how they read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arbiter.report.format import detail_text, format_number

SIDES = ("champion", "challenger")

#: What each decision tells the reader to do.
ACTIONS = {
    "promote": "promote the challenger",
    "keep_champion": "keep the champion",
    "continue": "continue the shadow test",
    "rollback": "roll back the challenger",
    "confirm_with_ab": "confirm with an A/B test",
}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What to do and why, from a verdict: ``line`` is the sentence a report file carries."""

    decision: str
    action: str
    reason: str

    @property
    def line(self) -> str:
        return f"Recommendation: {self.action}: {self.reason}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "action": self.action,
            "reason": self.reason,
            "line": self.line,
        }


def _get(criterion: Any, key: str) -> Any:
    return criterion.get(key) if isinstance(criterion, Mapping) else getattr(criterion, key)


def _unmet_text(criterion: Any) -> str:
    """Why one criterion failed: its detail, with the observed value when the detail is a
    description without it (the classic shadow criteria's ``"> 0.5"`` thresholds)."""
    name, detail = _get(criterion, "name"), detail_text(_get(criterion, "detail"))
    threshold = _get(criterion, "threshold")
    if isinstance(threshold, str):
        observed = format_number(_get(criterion, "observed"))
        return f"{name} is {observed}, needs {threshold} ({detail})"
    return f"{name}: {detail}"


def recommend(
    decision: str,
    criteria: Sequence[Any],
    *,
    remaining: int | None = None,
    sample_unit: str = "rows",
    versions: Mapping[str, Sequence[str]] | None = None,
    why: str | None = None,
) -> Recommendation:
    """The recommendation of a verdict: its action and the criteria that decided it.

    ``promote``: every criterion held (the reason names them); ``keep_champion``,
    ``rollback`` and ``continue``: the criteria that did not hold, with their details, and for
    ``continue`` the sample still expected to be needed. ``criteria`` are
    :class:`~arbiter.stats.verdict.Criterion` objects or their dicts; ``why`` replaces the
    reason the criteria give (the classic verdict waits for labels before any criterion).
    """
    names = {s: ", ".join(f"v{v}" for v in (versions or {}).get(s, ())) for s in SIDES}
    action = ACTIONS.get(decision, decision.replace("_", " "))
    if decision == "promote" and names["challenger"]:
        action += f" ({names['challenger']})"
    elif decision in ("keep_champion", "rollback") and names["champion"]:
        action += f" ({names['champion']})"
    unmet = [c for c in criteria if not _get(c, "met")]
    if why is not None:
        reason = why
    elif unmet and decision != "promote":
        reason = "; ".join(_unmet_text(c) for c in unmet[:2])
        if len(unmet) > 2:
            reason += f"; and {len(unmet) - 2} more unmet"
    elif decision == "continue":
        reason = "the evidence is not conclusive yet"
    else:
        held = ", ".join(str(_get(c, "name")) for c in criteria) or "no criterion"
        reason = f"every criterion holds ({held})"
    if decision == "continue" and remaining:
        reason += f" (about {format_number(remaining)} more labelled {sample_unit} per arm)"
    return Recommendation(decision, action, reason)


def shadow_view(
    detail: Mapping[str, Any] | None,
    arms: Mapping[str, Mapping[str, Any]],
    *,
    models: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The rows every renderer shows for one shadow experiment.

    Parameters
    ----------
    detail : mapping
        :meth:`arbiter.analysis.shadow_detail.ShadowDetail.to_dict`.
    arms : mapping
        Per side (``champion``, ``challenger``): ``latency_mean_ms``, ``latency_p50_ms``,
        ``latency_p95_ms``, ``latency_p99_ms`` and ``versions``.
    models : mapping, optional
        Per side, :meth:`arbiter.registry.model_info.ModelVersionInfo.to_dict` of each
        version (the registry's word; absent: the versions alone).
    """
    model_rows = []
    for side in SIDES:
        infos = list((models or {}).get(side) or [])
        if not infos:
            infos = [{"version": v, "label": "—"} for v in arms.get(side, {}).get("versions", [])]
        for info in infos:
            model_rows.append({"model": side, "version": info["version"], "kind": info["label"]})
    latency_rows = [
        {
            "model": side,
            "mean": arms.get(side, {}).get("latency_mean_ms"),
            "p50": arms.get(side, {}).get("latency_p50_ms"),
            "p95": arms.get(side, {}).get("latency_p95_ms"),
            "p99": arms.get(side, {}).get("latency_p99_ms"),
        }
        for side in SIDES
    ]
    view: dict[str, Any] = {
        "models": model_rows,
        "latency_rows": latency_rows,
        "distribution_rows": [],
        "value_rows": [],
        "values": None,
        "direction_rows": [],
        "paired_rows": 0,
        "disagreeing_rows": 0,
        "histogram": None,
        "direction_note": "",
    }
    if detail is None:
        return view
    dists = detail["distributions"]
    view["distribution_rows"] = [
        {"model": side, "prediction": c["value"], "count": c["count"], "share": c["share"]}
        for side in SIDES
        for c in dists[side]["classes"]
    ]
    values = next((dists[s]["values"] for s in SIDES if dists[s]["values"]), None)
    view["values"] = values
    if values:
        view["value_rows"] = [
            {"model": side, "rows": dists[side]["rows"], "mean": dists[side]["mean"],
             **dists[side]["quantiles"]}
            for side in SIDES
        ]  # fmt: skip
        view["histogram"] = {
            "edges": dists["champion"]["histogram"]["edges"],
            "counts": {s: dists[s]["histogram"]["counts"] for s in SIDES},
            "values": values,
        }
    view["direction_rows"] = [
        {
            "direction": f"{d['champion']} → {d['challenger']}",
            "champion": d["champion"],
            "challenger": d["challenger"],
            "count": d["count"],
            "rate": d["rate"],
            "labelled": d["labelled"],
            "champion_right": d["champion_right"],
            "challenger_right": d["challenger_right"],
            "neither_right": d["neither_right"],
        }
        for d in detail["disagreements"]
    ]
    answers = {d["champion"] for d in detail["disagreements"]}
    answers |= {d["challenger"] for d in detail["disagreements"]}
    view["direction_note"] = (
        "direction: the champion's answer → the challenger's"
        + ("; 0 → 1: the challenger flags what the champion passes, 1 → 0 the reverse"
           if answers <= {"0", "1"} and answers else "")
    )  # fmt: skip
    view["paired_rows"] = detail["paired_rows"]
    view["disagreeing_rows"] = detail["disagreeing_rows"]
    return view


def _summary_sides(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A shadow section's traffic rows by side: served = champion, shadow = challenger."""
    out: dict[str, dict[str, Any]] = {}
    for row in section["arms"]:
        side = "challenger" if row.get("role") == "shadow" else "champion"
        entry = out.setdefault(side, {**row, "versions": []})
        entry["versions"].append(row.get("version"))
    return out


def summary_shadow_view(section: dict[str, Any]) -> dict[str, Any]:
    """:func:`~arbiter.report.shadow.shadow_view` of an ``arbiter report`` shadow section."""
    return shadow_view(
        section.get("shadow_detail"), _summary_sides(section), models=section.get("models")
    )


def analysis_recommendation(a: Any) -> dict[str, Any]:
    """:func:`recommend` of an :class:`~arbiter.analysis.ExperimentAnalysis` (as a dict)."""
    return recommend(
        a.decision,
        a.criteria,
        remaining=a.verdict.estimated_remaining_sample,
        sample_unit=a.sample_unit,
        versions={side: a.arms[side].get("versions", []) for side in SIDES if side in a.arms},
    ).to_dict()


def analysis_shadow_view(a: Any) -> dict[str, Any]:
    """:func:`shadow_view` of an :class:`~arbiter.analysis.ExperimentAnalysis` of a shadow
    experiment (its ``shadow`` detail, arms and registry ``models``)."""
    detail = None if a.shadow is None else a.shadow.to_dict()
    return shadow_view(detail, a.arms, models=a.models)


__all__ = ["ACTIONS", "Recommendation", "analysis_recommendation", "analysis_shadow_view",
           "recommend", "shadow_view", "summary_shadow_view"]  # fmt: skip
