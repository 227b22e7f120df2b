"""``POST /feedback``: ground truth for earlier predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.events.feedback import feedback_columns
from arbiter.gateway.recent_requests import LoggedRequest, check_row
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


def _classes(state: GatewayState, logged: LoggedRequest) -> Sequence[Any] | None:
    """The classes of the model version that answered the request (None: no classifier).

    The version is looked up among the loaded ones; if it was swapped out since, the
    champion's classes stand in (a retrained classifier keeps its label type).
    """
    endpoint = state.pool.endpoints.get(logged.model)
    if endpoint is None:
        return None
    models = list(endpoint.models.values())
    served = [m for m in models if m.version == logged.version] or models[:1]
    return served[0].classes if served else None


def check_rows(state: GatewayState, rows: list[Any]) -> int:
    """Validate every row; return how many name a request this worker does not know.

    Shape, label type and ``ts`` (within ``events.max_clock_skew_s`` of now) first, for
    every row; then each row whose request this worker served recently is checked against
    it (:func:`~arbiter.gateway.recent_requests.check_row`). The others are stored
    unverified: another worker, or an earlier process, may have served them.

    Raises
    ------
    InvalidInputError
        The first bad row, ``field`` as ``rows[i].name``; nothing may be stored then.
    """
    skew_us = round(state.config.events.max_clock_skew_s * 1_000_000)
    feedback_columns(rows, max_future_us=skew_us)
    recent = state.recent
    unverified = 0
    for i, row in enumerate(rows):
        logged = recent.get(row["request_id"]) if recent is not None else None
        if logged is None:
            unverified += 1
            continue
        check_row(row, f"rows[{i}]", logged, _classes(state, logged))
    return unverified


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
      nothing is stored. A label is a non-empty string, a number or a boolean; `ts`
      (microseconds since the epoch or ISO 8601 with a zone; default now) lies between
      2000-01-01 and `events.max_clock_skew_s` from now. A row naming a request this
      worker served is checked against it: `row_index` within its rows, a label of the
      classifier's class type or a finite number for a regressor, clicks only on /rank
      answers. Rows naming a request this worker does not know are stored and counted in
      `unverified` (another worker may have served it); `arbiter analyze` reports
      feedback that matches no logged prediction. Requires the API token when one is
      configured.
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
      200: {description: "Stored: {\\"stored\\": N} (and \\"unverified\\": K, see above)"}
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
        rows = _normalise(rows)
        try:
            unverified = check_rows(state, rows)
            stored = await state.store.awrite_feedback(rows)
        except InvalidInputError as exc:
            raise client_field(exc, prefix) from exc
    except ArbiterError as exc:
        state.count_error("feedback", exc, protocol="feedback")
        return error_response(exc)
    state.metrics.feedback.inc(stored)
    answer: dict[str, int] = {"stored": stored}
    if unverified:
        answer["unverified"] = unverified
    return ORJSONResponse(answer)
