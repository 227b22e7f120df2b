"""The ranking request path: score the rankers, interleave their lists, log the impression.

A ranking model is a registered pyfunc whose ``predict`` returns, per input row (the query's
or context's features), an ordered list of item ids (strings or integers, best first, no
repeats). ``POST /models/{name}/rank`` sends one row. Item ids become text on the way in
(:func:`as_ranking`): the merge, the response, the log and the analysis then share one
identity, so a ranker answering ``[1, 2]`` and one answering ``["1", "2"]`` rank the same
items (with Python equality the merge would show both ``1`` and ``"1"`` and credit the
click on ``"1"`` to one ranker only).

With ``strategy: interleave`` both the champion (ranker A) and the challenger (ranker B) rank
the same row, concurrently in the dispatcher's scoring threads, each with its deadline
(``experiment.champion_timeout_s``; the request waits for the slower one, not for both in
turn, and the event loop stays free), and the user sees one list merged by team-draft or
balanced interleaving (:mod:`arbiter.routing.interleaving`) with a coin flip from a fresh,
OS-seeded generator per request. With any other strategy the routed arm ranks alone.

The challenger never costs the user an answer: if it is not loaded, rejects the input, raises,
or returns something that is not a ranking, the champion's list is served alone, the failure
is logged and counted (``arbiter_errors_total{kind="ranker_fallback"}``), and the request
carries no preference. A champion failure is the request's failure (HTTP 500), as for
``/predict``.

Logging goes through the dispatcher's sink (the gateway's EventWriter), one row per ranker:

* ``role = "interleaved"`` for each ranker of a merged list; ``prediction`` is that ranker's
  own list (JSON). The champion's row alone carries ``impression``: the merged list with its
  teams, the method, the coin flip and each ranking cut to the depth credit reads
  (:func:`arbiter.routing.interleaving.for_credit`; empty for team-draft), so credit can be
  recomputed from the log alone (:mod:`arbiter.analysis.interleave`) and the log grows with
  what was shown, not with the rankers' list length;
* ``role = "served"`` for a ranker whose list was shown alone (other strategies, fallback);
* a failed challenger's row keeps ``role = "interleaved"`` with ``error`` set and no
  ``impression``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from arbiter.errors import ArbiterError, ModelError, ModelTimeoutError
from arbiter.gateway.dispatch import Dispatcher, RowsInput, request_context, resolve_model
from arbiter.gateway.pool import Endpoint
from arbiter.prediction_log import RequestContext, prediction_columns
from arbiter.routing import CHALLENGER, CHAMPION, Interleave
from arbiter.routing.interleaving import TEAM_A, Interleaving, for_credit, interleave
from arbiter.servable import Scored, ServableModel

log = logging.getLogger(__name__)

INTERLEAVED = "interleaved"
SERVED = "served"
FALLBACK_KIND = "ranker_fallback"
MAX_K = 1_000  # longest list /rank answers (``k``, and ``interleave.length: null``)


@dataclass(frozen=True, slots=True)
class Ranked:
    """What ``/rank`` answers: the shown list, who contributed each item, and from which run."""

    request_id: str
    model: str
    experiment: str
    strategy: str
    method: str  # "team_draft" | "balanced" | "single" (one ranker's list alone)
    items: list[Any]
    teams: list[str]  # per item, the arm that contributed it
    versions: dict[str, str]  # arm -> registry version of the rankers that ran successfully
    fallback: str | None = None  # why an interleave request was answered by the champion alone


@dataclass(frozen=True, slots=True)
class _Run:
    """One ranker's attempt on the request."""

    arm: str
    alias: str
    model: ServableModel
    ranking: list[Any] | None
    latency_ms: float
    error: str | None


def as_ranking(output: Any, model: ServableModel) -> list[Any]:
    """The one ranking a model returned for the request's single row.

    Returns
    -------
    list of str
        The item ids as text (integers in decimal), so that every later comparison (the
        merge's de-duplication, clicks, the analysis) uses one identity.

    Raises
    ------
    ModelError
        The model did not answer a list of distinct string or integer item ids (``1`` and
        ``"1"`` are the same id).
    """
    if isinstance(output, np.ndarray):
        output = output.tolist()
    if isinstance(output, tuple):
        output = list(output)
    where = f"ranking model {model.name} v{model.version}"
    if not isinstance(output, list):
        raise ModelError(
            f"{where} returned {type(output).__name__} for a row; a ranking model must return "
            "a list of item ids per row"
        )
    ids: list[str] = []
    seen: set[str] = set()
    for item in output:
        if isinstance(item, np.generic):
            item = item.item()
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ModelError(
                f"{where} returned item id {item!r}; item ids must be strings or integers"
            )
        text = str(item)
        if text in seen:
            raise ModelError(f"{where} lists item {item!r} more than once")
        seen.add(text)
        ids.append(text)
    return ids


async def rank(
    dispatcher: Dispatcher,
    endpoint: Endpoint,
    features: Mapping[str, Any],
    *,
    unit_id: str | None,
    k: int | None,
    forced_arm: str | None = None,
) -> Ranked:
    """Rank one row with the endpoint's experiment; see the module docstring.

    Parameters
    ----------
    dispatcher : Dispatcher
        Gives the event sink (rows go through the gateway's EventWriter like every
        prediction), the metrics and the routing draw for non-interleave strategies.
    endpoint : Endpoint
        The served model.
    features : mapping
        The query's feature row, validated against the champion's signature.
    unit_id : str, optional
        The user; interleaving credit is clustered by it at analysis time.
    k : int, optional
        Items wanted. The merged list (and the champion's list in a fallback) has
        ``min(k, interleave.length)`` items, ignoring whichever is unset and at most
        :data:`MAX_K`, and no more than the rankers offer; a single ranker's list under
        another strategy is cut to ``k``.
    forced_arm : str, optional
        A tester's ``X-Arbiter-Arm``: that arm ranks alone, logged as forced.

    Raises
    ------
    InvalidInputError
        The row does not fit the champion's (or, for a forced arm, that arm's) signature;
        nothing is logged.
    NotReadyError
        No champion loaded (or the forced arm is not loaded).
    ModelError
        The ranker whose list would be served failed (logged with the error).
    """
    ts_us = time.time_ns() // 1000
    models = endpoint.models  # one read: a concurrent swap cannot mix versions
    inp = RowsInput(
        [features],
        "features",
        single=True,
        allow_non_finite=endpoint.config.inputs.allow_non_finite,
    )
    # The interleave strategy's routing object carries the merge settings (one read, too).
    plan = endpoint.strategy if isinstance(endpoint.strategy, Interleave) else None
    interleaving = plan is not None and forced_arm is None
    if plan is not None and interleaving:
        route = plan.route(unit_id, 0.0)  # the champion's row carries the impression
    else:
        route = dispatcher.route(endpoint, unit_id, forced_arm)
    arm, alias, model = resolve_model(endpoint, models, route, forced_arm)
    inp.check(model)
    ctx = request_context(endpoint, route, arm, unit_id, "rank", forced_arm, ts_us)
    if not interleaving:
        first = await _attempt(dispatcher, endpoint, arm, alias, model, inp, SERVED)
        _log(dispatcher, ctx, SERVED, first, inp)
        if first.error is not None:
            dispatcher.metrics.errors.labels(endpoint.name, "model_error").inc()
            raise ModelError(first.error)
        return _single(ctx, first, k, None)

    assert plan is not None
    length = min((n for n in (k, plan.length) if n is not None), default=MAX_K)
    b_alias = endpoint.arms[CHALLENGER]
    b_model = models.get(b_alias)
    second: _Run | None = None
    reason: str | None = None
    if b_model is None:
        reason = f"challenger {b_alias!r} is not loaded"
        first = await _attempt(dispatcher, endpoint, arm, alias, model, inp, INTERLEAVED)
    else:
        try:
            inp.check(b_model)
        except ArbiterError as exc:
            second = _Run(CHALLENGER, b_alias, b_model, None, 0.0, f"input rejected: {exc}")
            first = await _attempt(dispatcher, endpoint, arm, alias, model, inp, INTERLEAVED)
        else:
            # Both rankers at once, off the event loop: latency is the slower one's, not the sum.
            first, second = await asyncio.gather(
                _attempt(dispatcher, endpoint, arm, alias, model, inp, INTERLEAVED),
                _attempt(dispatcher, endpoint, CHALLENGER, b_alias, b_model, inp, INTERLEAVED),
            )
        reason = second.error
    if first.error is not None:  # the champion's failure is the request's failure
        _log(dispatcher, ctx, SERVED, first, inp)
        if second is not None:  # it was tried: a challenger attempt like any other
            _log(dispatcher, ctx, INTERLEAVED, second, inp)
        dispatcher.metrics.errors.labels(endpoint.name, "model_error").inc()
        raise ModelError(first.error)
    assert first.ranking is not None
    if reason is not None:
        log.warning("%s: serving the champion's ranking alone: %s", endpoint.name, reason)
        dispatcher.metrics.errors.labels(endpoint.name, FALLBACK_KIND).inc()
        _log(dispatcher, ctx, SERVED, first, inp)
        if second is not None:
            _log(dispatcher, ctx, INTERLEAVED, second, inp)
        return _single(ctx, first, length, reason)

    assert second is not None and second.ranking is not None
    merged = interleave(
        first.ranking,
        second.ranking,
        np.random.default_rng(),  # OS entropy: a fresh, unpredictable coin per request
        method=plan.method,
        k=length,
    )
    teams = [CHAMPION if t == TEAM_A else CHALLENGER for t in merged.teams]
    # One impression per request, on the champion's row: the analysis selects it directly.
    _log(dispatcher, ctx, INTERLEAVED, first, inp, encode_impression(merged, teams, length))
    _log(dispatcher, ctx, INTERLEAVED, second, inp)
    return Ranked(
        ctx.request_id,
        endpoint.name,
        endpoint.experiment,
        endpoint.strategy.name,
        merged.method,
        list(merged.items),
        teams,
        {CHAMPION: first.model.version, CHALLENGER: second.model.version},
    )


async def _attempt(
    dispatcher: Dispatcher,
    endpoint: Endpoint,
    arm: str,
    alias: str,
    model: ServableModel,
    inp: RowsInput,
    role: str,
) -> _Run:
    """:func:`_run` in the dispatcher's scoring pool of ``arm``, with its deadline
    (``experiment.champion_timeout_s``): a hung ranker is a failed run, not a hung request."""
    start = time.perf_counter()
    try:
        return await dispatcher.call(endpoint, arm, _run, dispatcher, arm, alias, model, inp, role)
    except ModelTimeoutError as exc:
        return _Run(arm, alias, model, None, (time.perf_counter() - start) * 1000.0, str(exc))


def _run(
    dispatcher: Dispatcher,
    arm: str,
    alias: str,
    model: ServableModel,
    inp: RowsInput,
    role: str,
) -> _Run:
    """Score one ranker; runs in a worker thread. ``role`` labels its latency metric."""
    start = time.perf_counter()
    try:
        scored: Scored = inp.score(model)
        if len(scored.predictions) != 1:
            raise ModelError(
                f"ranking model {model.name} v{model.version} returned "
                f"{len(scored.predictions)} rankings for one row"
            )
        ranking = as_ranking(scored.predictions[0], model)
    except ModelError as exc:
        latency = (time.perf_counter() - start) * 1000.0
        return _Run(arm, alias, model, None, latency, str(exc))
    latency = (time.perf_counter() - start) * 1000.0
    dispatcher.metrics.model_latency.labels(model.name, alias, role).observe(latency / 1000.0)
    return _Run(arm, alias, model, ranking, latency, None)


def _single(ctx: RequestContext, run: _Run, k: int | None, reason: str | None) -> Ranked:
    assert run.ranking is not None
    items = run.ranking if k is None else run.ranking[:k]
    return Ranked(
        ctx.request_id,
        ctx.model,
        ctx.experiment,
        ctx.strategy,
        "single",
        items,
        [run.arm] * len(items),
        {run.arm: run.model.version},
        reason,
    )


def _log(
    dispatcher: Dispatcher,
    ctx: RequestContext,
    role: str,
    run: _Run,
    inp: RowsInput,
    impression: str | None = None,
) -> None:
    dispatcher.sink.append_predictions(
        prediction_columns(
            dataclasses.replace(ctx, arm=run.arm),
            role=role,
            alias=run.alias,
            version=run.model.version,
            features_json=inp.features_json(),
            # The ranking as JSON text: canonical_label keeps strings as they are.
            predictions=None if run.ranking is None else [orjson.dumps(run.ranking).decode()],
            latency_ms=run.latency_ms,
            error=run.error,
            impression=impression,
        )
    )


def encode_impression(merged: Interleaving, teams: list[str], length: int | None) -> str:
    """The ``impression`` column: everything credit needs, read back by
    :func:`arbiter.analysis.interleave.decode_impression` (keep the two in step).

    The rankings are cut to what credit reads (:func:`for_credit`): nothing for team-draft,
    the prefix down to the deepest cutoff a click could set for balanced. ``"method"`` comes
    first, so the analysis can count methods with a prefix test instead of parsing JSON.
    """
    merged = for_credit(merged)
    data: dict[str, Any] = {
        "method": merged.method,
        "a_first": merged.a_first,
        "k": length,
        "items": list(merged.items),
        "teams": teams,
    }
    if merged.ranking_a or merged.ranking_b:  # balanced; team-draft credit reads no ranking
        data["ranking_a"] = list(merged.ranking_a)
        data["ranking_b"] = list(merged.ranking_b)
    return orjson.dumps(data).decode()


__all__ = [
    "FALLBACK_KIND",
    "INTERLEAVED",
    "MAX_K",
    "SERVED",
    "Ranked",
    "as_ranking",
    "encode_impression",
    "rank",
]
