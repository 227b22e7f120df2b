"""``POST /outcomes``: business events of units (purchases, sessions, chargebacks...)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.responses import ORJSONResponse, error_response, parse_json
from arbiter.gateway.routes.predict import require_json
from arbiter.gateway.state import GatewayState

MAX_OUTCOME_ROWS = 100_000


def _rows(body: Any) -> tuple[list[Any], str]:
    """The outcome rows of a body: one object, ``{"outcomes": [...]}``, or a bare array."""
    if isinstance(body, list):
        return body, "rows"
    if isinstance(body, dict) and "outcomes" in body:
        if set(body) != {"outcomes"}:
            extra = sorted(set(body) - {"outcomes"})[0]
            raise InvalidInputError(f"unexpected field {extra!r} beside 'outcomes'", field=extra)
        if not isinstance(body["outcomes"], list):
            raise InvalidInputError("'outcomes' must be an array of objects", field="outcomes")
        return body["outcomes"], "outcomes"
    if isinstance(body, dict):
        return [body], "body"
    raise InvalidInputError("the body must be a JSON object or array", field="body")


def _rename_field(exc: InvalidInputError, prefix: str) -> InvalidInputError:
    """Name the field as the client sent it: ``outcomes[3].value``, or ``value`` for one object."""
    field = exc.field or ""
    if field.startswith("rows"):
        if prefix == "body":
            field = field.replace("rows[0].", "", 1).replace("rows[0]", "body", 1)
        else:
            field = prefix + field[len("rows") :]
    return InvalidInputError(exc.message, field=field or None)


async def outcomes(request: Request) -> Response:
    """Store outcome events of units; answers only once they are on disk.

    ---
    summary: Post outcome events
    description: >
      One object `{"unit_id": "u-1", "event": "purchase", "value": 12.5,
      "ts": "2026-12-01T10:00:00Z"}` (`value` defaults to 1, `ts` to now and must carry a
      time zone; `request_id` is optional), `{"outcomes": [ ... ]}`, or an array of such
      objects. `unit_id` is the unit the experiment assigns (the value of the model's unit
      field), whatever that field is called in prediction requests. Outcomes are attributed
      to the arm the unit was first exposed to by the metrics of `arbiter.yaml`.
      All rows are validated first: one bad row rejects the whole request and nothing is
      stored. Requires the API token when one is configured.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            oneOf:
              - {type: object, required: [unit_id, event]}
              - {type: object, required: [outcomes]}
              - {type: array, items: {type: object}}
    responses:
      200: {description: "Stored: {\\"stored\\": N}"}
      400: {description: Malformed JSON}
      401: {description: Missing or wrong API token}
      422: {description: "Invalid row; `error.field` names it, e.g. `outcomes[3].value`"}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        require_json(request)
        body = parse_json(await request.body())
        rows, prefix = _rows(body)
        if not rows:
            raise InvalidInputError("no outcome rows", field=prefix)
        if len(rows) > MAX_OUTCOME_ROWS:
            raise InvalidInputError(
                f"{len(rows)} rows in one request; the limit is {MAX_OUTCOME_ROWS}", field=prefix
            )
        try:
            stored = await state.store.awrite_outcomes(rows)
        except InvalidInputError as exc:
            raise _rename_field(exc, prefix) from exc
    except ArbiterError as exc:
        state.count_error("outcomes", exc, protocol="outcomes")
        return error_response(exc)
    state.metrics.outcomes.inc(stored)
    return ORJSONResponse({"stored": stored})
