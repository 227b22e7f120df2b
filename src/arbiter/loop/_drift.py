"""The drift step's use of :mod:`arbiter.drift`: reference profile vs the served window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arbiter.stats import finite_or_none

if TYPE_CHECKING:
    from arbiter.loop.context import LoopContext


def check(
    ctx: LoopContext, champion: str | None, inputs: dict[str, Any], *, reference: Any = None
) -> dict[str, Any]:
    """Drift evidence for the decision record; no profile or no traffic means no drift.

    ``reference`` is the champion's profile when the caller already holds it (the gateway's
    monitor caches it per version rather than download it at every check).
    """
    from arbiter.drift import check_drift
    from arbiter.durations import parse_window
    from arbiter.errors import NotFoundError
    from arbiter.events.window import read_window
    from arbiter.registry.profiles import load_profile

    if champion is None:
        return {"drifted": False, "status": "no_champion", "summary": "no champion to compare"}
    try:
        if reference is None:
            reference = load_profile(
                ctx.registry.tracking_uri,
                ctx.model,
                champion,
                registry_uri=ctx.registry.registry_uri,
            )
    except NotFoundError as exc:
        return {
            "drifted": False,
            "status": "no_reference",
            "reference_version": champion,
            "summary": f"v{champion} has no reference profile; drift not checked ({exc})",
        }
    window = inputs.get("drift_window")
    spec = parse_window(window, field="drift_window")
    columns = {c.name: c.kind for c in reference.columns}
    with ctx.events.connect() as con:
        served = read_window(
            con,
            ctx.model,
            columns,
            window=spec.period,
            last=spec.rows,
            version=champion,
        )
    current = served.features
    base = {"reference_version": champion, "window": window, "rows": len(current)}
    if len(current) == 0:
        return {
            **base,
            "drifted": False,
            "status": "no_traffic",
            "summary": f"no served traffic in the {spec.describe()}; drift not checked",
        }
    result = check_drift(
        reference,
        current,
        current_prediction=served.scores if reference.prediction is not None else None,
    )
    drifted = [f.column for f in result.features if f.drifted]
    return {
        **base,
        "drifted": bool(result.drifted),
        "status": "ok",
        "n_drifted": int(result.n_drifted),
        "n_tested": int(result.n_tested),
        "share": finite_or_none(result.share),
        "share_threshold": finite_or_none(result.share_threshold),
        "prediction_drifted": None
        if result.prediction is None
        else bool(result.prediction.drifted),
        "features": [
            {
                "column": f.column,
                "method": f.method,
                "statistic": finite_or_none(f.statistic),
                "p_value": finite_or_none(
                    f.p_value if f.p_value_adjusted is None else f.p_value_adjusted
                ),
                "drifted": bool(f.drifted),
                "status": f.status,
                "signals": {s.name: s.to_dict() for s in f.signals},
                "unseen_categories": [c for c, _ in f.unseen],
            }
            for f in result.features
        ],
        "summary": (
            f"{result.n_drifted}/{result.n_tested} features drifted"
            + (f" ({', '.join(drifted)})" if drifted else "")
            + f" on {len(current)} served rows"
        ),
    }
