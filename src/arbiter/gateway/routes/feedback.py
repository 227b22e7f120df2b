"""``POST /feedback``: ground truth for earlier predictions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.responses import ORJSONResponse, error_response, parse_json
from arbiter.gateway.routes.batch_body import body_rows, client_field
from arbiter.gateway.routes.predict import require_json
from arbiter.gateway.state import GatewayState

MAX_FEEDBACK_ROWS = 100_000


def _normalise(rows: list[Any]) -> list[Any]:
    """Accept ``outcome`` as a synonym of ``label`` and default ``row_index`` to 0."""
    out = []
    for row in rows:
        if isinstance(row, dict):
            row = dict(row)
            if "outcome" in row and "label" not in row:
                row["label"] = row.pop("outcome")
            row.setdefault("row_index", 0)
        out.append(row)
    return out


async def feedback(request: Request) -> Response:
    """Store labels for earlier predictions; answers only once they are on disk.

    ---
    summary: Post ground truth
    description: >
      One object `{"request_id": "...", "row_index": 0, "label": 1}` (`outcome` is accepted
      for numeric outcomes; `row_index` defaults to 0), `{"feedback": [ ... ]}`, or an array of
      such objects. For a ranked list from /rank send `"clicks": ["item-3", ...]` (the clicked
      item ids; `[]` for an impression without clicks) instead of `label`.
      All rows are validated first: one bad row rejects the whole request and
      nothing is stored. Requires the API token when one is configured.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            oneOf:
              - {type: object, required: [request_id, label]}
              - {type: object, required: [request_id, clicks]}
              - {type: object, required: [feedback]}
              - {type: array, items: {type: object}}
    responses:
      200: {description: "Stored: {\\"stored\\": N}"}
      400: {description: Malformed JSON}
      401: {description: Missing or wrong API token}
      422: {description: Invalid row; `error.field` names it}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        require_json(request)
        body = parse_json(await request.body())
        rows, prefix = body_rows(body, "feedback")
        if not rows:
            raise InvalidInputError("no feedback rows", field=prefix)
        if len(rows) > MAX_FEEDBACK_ROWS:
            raise InvalidInputError(
                f"{len(rows)} rows in one request; the limit is {MAX_FEEDBACK_ROWS}", field=prefix
            )
        try:
            stored = await state.store.awrite_feedback(_normalise(rows))
        except InvalidInputError as exc:
            raise client_field(exc, prefix) from exc
    except ArbiterError as exc:
        state.count_error("feedback", exc, protocol="feedback")
        return error_response(exc)
    state.metrics.feedback.inc(stored)
    return ORJSONResponse({"stored": stored})
