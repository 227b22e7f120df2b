"""``POST /models/{name}/rank``: ranking models, interleaved when the experiment says so."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.forcing import forced_arm
from arbiter.gateway.pool import Endpoint
from arbiter.gateway.ranking import MAX_K
from arbiter.gateway.ranking import rank as rank_request
from arbiter.gateway.responses import ORJSONResponse, error_response
from arbiter.gateway.routes.predict import json_object, unit_from
from arbiter.gateway.state import GatewayState


def _k(body: dict[str, Any]) -> int | None:
    value = body.get("k")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}, got {value!r}", field="k")
    return value


def _require_ranker(endpoint: Endpoint) -> None:
    """Refuse /rank, before any model runs, for a model that cannot answer a ranking.

    A scikit-learn estimator answers one value per row, never a list of item ids: calling it
    would only produce a model error on every arm, which a canary guardrail would count
    against a healthy challenger. (A pyfunc ranker is only known by what it returns.)
    """
    champion = endpoint.model(endpoint.config.champion_alias)
    if champion is not None and champion.raw is not None:
        raise InvalidInputError(
            f"model {endpoint.name!r} is not a ranking model (it answers one value per row); "
            f"score it with POST /models/{endpoint.name}/predict",
            field="name",
        )


async def rank(request: Request) -> Response:
    """Rank items for one query; interleave champion and challenger under ``interleave``.

    ---
    summary: Rank (ranking models)
    description: >
      Body `{"features": {...}, "unit_id": "user-42", "k": 10}`: one query row for a ranking
      model (a pyfunc returning an ordered list of item ids per row). With `strategy:
      interleave` the champion and the challenger rank the same row and their lists are merged
      (team-draft or balanced, as configured; `k` caps the configured length, and both at
      most 1000); item ids are answered as strings; `teams` says
      which ranker contributed each item. Other strategies answer the routed arm's list with
      `teams` all that arm. If the challenger fails or is not loaded, the champion's list is
      served alone. Post clicks to /feedback as `{"request_id": ..., "clicks": [item ids]}`.
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [features]
            properties:
              unit_id: {type: string}
              k: {type: integer, minimum: 1, maximum: 1000}
              features: {type: object, additionalProperties: true}
    responses:
      200:
        description: The ranked list
        content:
          application/json:
            schema:
              type: object
              properties:
                request_id: {type: string}
                model: {type: string}
                experiment: {type: string}
                strategy: {type: string}
                method: {type: string, enum: [team_draft, balanced, single]}
                items: {type: array, items: {}}
                teams: {type: array, items: {type: string}}
                versions: {type: object, additionalProperties: {type: string}}
      400: {description: Malformed JSON}
      404: {description: Unknown model}
      415: {description: Unsupported content type}
      422: {description: Invalid body; `error.field` names the offending field}
      500: {description: The champion ranker failed}
      503: {description: The model has no loaded champion}
    """
    start = time.perf_counter()
    state: GatewayState = request.app.state.arbiter
    name = request.path_params["name"]
    try:
        endpoint = state.pool.endpoint(name)
        exp = endpoint.config.experiment
        body = await json_object(request, {"features", "k", exp.unit_field})
        features = body.get("features")
        if not isinstance(features, dict):
            raise InvalidInputError(
                "features must be an object: the one query row to rank for"
                if "features" in body
                else "missing field 'features'",
                field="features",
            )
        k = _k(body)
        _require_ranker(endpoint)
        unit = unit_from(request, body, exp.unit_field, exp.unit_header)
        ranked = await rank_request(
            state.dispatcher,
            endpoint,
            features,
            unit_id=unit,
            k=k,
            forced_arm=forced_arm(request, endpoint, state.token),
        )
    except ArbiterError as exc:
        state.count_error(name, exc, protocol="rank")
        return error_response(exc)
    payload: dict[str, Any] = {
        "request_id": ranked.request_id,
        "model": ranked.model,
        "experiment": ranked.experiment,
        "strategy": ranked.strategy,
        "method": ranked.method,
        "items": ranked.items,
        "teams": ranked.teams,
        "versions": ranked.versions,
    }
    arm = "interleaved" if len(ranked.versions) > 1 else next(iter(ranked.versions))
    state.count_ok(name, arm, "rank", start)
    return ORJSONResponse(payload)
