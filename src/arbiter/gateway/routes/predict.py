"""``POST /models/{name}/predict``: arbiter's own JSON protocol."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.dispatch import RowsInput
from arbiter.gateway.forcing import forced_arm
from arbiter.gateway.responses import (
    ORJSONResponse,
    UnsupportedMediaTypeError,
    error_response,
    parse_json,
)
from arbiter.gateway.state import GatewayState
from arbiter.servable import output_columns


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"Content-Type {media!r} is not supported here; send application/json",
            field="content-type",
        )


def unit_from(
    request: Request, body: dict[str, Any] | None, unit_field: str, header: str
) -> str | None:
    """The unit id: the body's unit field first, then the configured header."""
    if body is not None and unit_field in body:
        value = body[unit_field]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidInputError(
                f"{unit_field} must be a string or an integer, got {type(value).__name__}",
                field=unit_field,
            )
        return str(value)
    return request.headers.get(header) or None


async def json_object(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The request's JSON body: an object with no field outside ``allowed`` (else a 4xx)."""
    require_json(request)
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object", field="body")
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInputError(
            f"unexpected field {extra[0]!r}; allowed: {sorted(allowed)}", field=extra[0]
        )
    return body


async def predict(request: Request) -> Response:
    """Score one row or a batch with the model's experiment.

    ---
    summary: Predict (arbiter JSON)
    description: >
      Body `{"unit_id": "user-42", "features": {...}}` for one row, or `"features": [{...}, ...]`
      for a batch. The unit id (field name configurable per model, or the X-Unit-Id header)
      makes A/B assignment sticky. Responds with the request id (use it for /feedback), the
      predictions, class probabilities when the model has them, every output of a
      multi-output model per row (`outputs`), and which arm and version answered.
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
              features:
                oneOf:
                  - {type: object, additionalProperties: true}
                  - {type: array, items: {type: object, additionalProperties: true}}
    responses:
      200:
        description: Predictions
        content:
          application/json:
            schema:
              type: object
              properties:
                request_id: {type: string}
                model: {type: string}
                version: {type: string}
                arm: {type: string}
                experiment: {type: string}
                strategy: {type: string}
                predictions: {type: array, items: {}}
                prediction: {description: "the single prediction when `features` was an object"}
                probabilities: {type: array, items: {type: object}}
                outputs: {type: array, items: {type: object}}
      400: {description: Malformed JSON}
      404: {description: Unknown model}
      413: {description: Body too large}
      415: {description: Unsupported content type}
      422: {description: Invalid features; `error.field` names the offending field}
      503: {description: The model has no loaded champion}
    """
    start = time.perf_counter()
    state: GatewayState = request.app.state.arbiter
    name = request.path_params["name"]
    try:
        endpoint = state.pool.endpoint(name)
        exp = endpoint.config.experiment
        body = await json_object(request, {"features", exp.unit_field})
        if "features" not in body:
            raise InvalidInputError("missing field 'features'", field="features")
        features = body["features"]
        single = isinstance(features, dict)
        rows = [features] if single else features
        if not isinstance(rows, list):
            raise InvalidInputError(
                "features must be an object (one row) or an array of objects", field="features"
            )
        if len(rows) > state.config.server.max_batch_rows:
            raise InvalidInputError(
                f"batch of {len(rows)} rows exceeds server.max_batch_rows="
                f"{state.config.server.max_batch_rows}",
                field="features",
            )
        unit = unit_from(request, body, exp.unit_field, exp.unit_header)
        outcome = await state.dispatcher.aserve(
            endpoint,
            RowsInput(
                rows,
                "features",
                single=single,
                allow_non_finite=endpoint.config.inputs.allow_non_finite,
            ),
            unit_id=unit,
            protocol="arbiter",
            forced_arm=forced_arm(request, endpoint, state.token),
        )
    except ArbiterError as exc:
        state.count_error(name, exc)
        return error_response(exc)
    scored = outcome.scored
    payload: dict[str, Any] = {
        "request_id": outcome.request_id,
        "model": outcome.model,
        "version": outcome.version,
        "arm": outcome.arm,
        "experiment": outcome.experiment,
        "strategy": outcome.strategy,
        "predictions": scored.predictions,
    }
    if single:
        payload["prediction"] = scored.predictions[0] if scored.predictions else None
    if scored.proba is not None and scored.classes is not None:
        keys = [str(c) for c in scored.classes]
        payload["probabilities"] = [
            dict(zip(keys, row, strict=True)) for row in scored.proba.tolist()
        ]
    columns = output_columns(scored)
    if columns is not None:  # a multi-output model: every column, per row
        values = zip(*(column.tolist() for column in columns.values()), strict=True)
        payload["outputs"] = [dict(zip(columns, row, strict=True)) for row in values]
    state.count_ok(name, outcome.arm, "arbiter", start)
    return ORJSONResponse(payload)
