"""``POST /outcomes``: business events of units (purchases, sessions, chargebacks...)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.events.outcomes import outcome_columns
from arbiter.gateway.responses import ORJSONResponse, error_response, parse_json
from arbiter.gateway.routes.batch_body import body_rows, client_field
from arbiter.gateway.routes.predict import require_json
from arbiter.gateway.state import GatewayState

MAX_OUTCOME_ROWS = 100_000


async def outcomes(request: Request) -> Response:
    """Store outcome events of units; answers only once they are on disk.

    ---
    summary: Post outcome events
    description: >
      One object `{"unit_id": "u-1", "event": "purchase", "value": 12.5,
      "ts": "2026-12-01T10:00:00Z"}` (`value` defaults to 1, `ts` to now and must carry a
      time zone and lie between 2000-01-01 and `events.max_clock_skew_s` from now;
      `request_id` is optional), `{"outcomes": [ ... ]}`, or an array of such
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
        rows, prefix = body_rows(body, "outcomes")
        if not rows:
            raise InvalidInputError("no outcome rows", field=prefix)
        if len(rows) > MAX_OUTCOME_ROWS:
            raise InvalidInputError(
                f"{len(rows)} rows in one request; the limit is {MAX_OUTCOME_ROWS}", field=prefix
            )
        try:
            # The store bounds ts to a day ahead; the gateway to the configured clock skew.
            skew_us = round(state.config.events.max_clock_skew_s * 1_000_000)
            outcome_columns(rows, max_future_us=skew_us)
            stored = await state.store.awrite_outcomes(rows)
        except InvalidInputError as exc:
            raise client_field(exc, prefix) from exc
    except ArbiterError as exc:
        state.count_error("outcomes", exc, protocol="outcomes")
        return error_response(exc)
    state.metrics.outcomes.inc(stored)
    return ORJSONResponse({"stored": stored})
