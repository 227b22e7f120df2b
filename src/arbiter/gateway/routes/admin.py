"""Admin endpoints of canary releases: status and operator actions.

``GET /admin/canary/{name}`` and ``POST /admin/canary/{name}/{pause|resume|promote|abort}``
(optional JSON body ``{"reason": "..."}``). They change what users are served, so they need
the API token even on loopback: without a configured token they answer 403 (the token
middleware lets every request through when none is set), with a wrong one 401 (middleware).
A conflicting write (another writer changed or overwrote the state), an action the canary's
status does not allow, or a model that runs no canary answers 409; repeating an action that
already took effect answers 200 (``"unchanged"``). Bodies beyond :data:`MAX_BODY_BYTES` answer
413.

Registry reads and writes block, so they run in a worker thread; the action is applied to
this worker's routing at once, and to every other worker within one registry poll.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.responses import (
    BodyTooLargeError,
    ForbiddenError,
    ORJSONResponse,
    UnauthorizedError,
    error_response,
    parse_json,
)
from arbiter.gateway.state import GatewayState
from arbiter.strategies.canary import CanaryExperimentConfig

#: An operator body holds one short reason: anything bigger is refused before it is read whole.
MAX_BODY_BYTES = 64 * 1024


def _authorize(request: Request, state: GatewayState) -> None:
    token = state.admin_token
    if token is None:
        server = state.config.server
        raise ForbiddenError(
            "the admin API needs a token configured on the server "
            f"({server.admin_token_env}, or {server.api_token_env}); none is set"
        )
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip(), token):
        raise UnauthorizedError("the admin API requires 'Authorization: Bearer <admin token>'")


def _service(state: GatewayState, name: str) -> Any:
    from arbiter.canary.service import CanaryService
    from arbiter.canary.store import CanaryConflictError

    endpoint = state.pool.endpoint(name)  # NotFoundError -> 404
    if not isinstance(endpoint.config.experiment, CanaryExperimentConfig):
        # The request is well-formed; the model's state (its strategy) does not allow it.
        raise CanaryConflictError(
            f"model {name!r} runs strategy {endpoint.config.experiment.strategy!r}, not a "
            "canary; set experiment.strategy: canary to run one"
        )
    return CanaryService(
        state.pool.registry,
        state.home.root,
        name,
        endpoint.config,
        poll_interval_s=state.config.registry.poll_interval_s,
    )


def _error(exc: BaseException) -> ORJSONResponse:
    from arbiter.canary.store import CanaryConflictError
    from arbiter.registry.history import AliasConflictError

    if isinstance(exc, CanaryConflictError | AliasConflictError):
        return ORJSONResponse({"error": {"code": "conflict", "message": str(exc)}}, 409)
    return error_response(exc)


def _apply_here(state: GatewayState, name: str, service: Any) -> None:
    """Apply the new share in this worker now rather than at its next poll."""
    from arbiter.gateway.canary import apply_snapshot

    apply_snapshot(state, name, service, service.snapshot())


async def canary_status(request: Request) -> Response:
    """A canary's state.

    ---
    summary: Canary status
    description: Status, stage, share, plan, history and the latest decision record of the
      model's canary, read from the registry. Needs the API token.
    responses:
      200: {description: the status}
      401: {description: missing or wrong token}
      403: {description: no API token configured on the server}
      404: {description: unknown model}
      409: {description: the model runs no canary}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        _authorize(request, state)
        service = _service(state, request.path_params["name"])
        status = await asyncio.to_thread(service.status)
    except ArbiterError as exc:
        return _error(exc)
    endpoint = state.pool.endpoints[service.model]
    status["worker"] = endpoint.canary
    return ORJSONResponse(status)


async def canary_action(request: Request) -> Response:
    """Pause, resume, promote or abort a canary.

    ---
    summary: Canary operator action
    description: 'action is pause, resume, promote (force) or abort; optional JSON body
      {"reason": "..."}. Needs the API token.'
    responses:
      200: {description: the new status and the decision record}
      401: {description: missing or wrong token}
      403: {description: no API token configured on the server}
      404: {description: unknown model}
      409: {description: the canary changed meanwhile, the action does not apply, or the
        model runs no canary}
      413: {description: body larger than 64 KiB}
      422: {description: bad action or reason; the error names the field}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        _authorize(request, state)
        name = request.path_params["name"]
        service = _service(state, name)
        reason = await _reason(request)
        result = await asyncio.to_thread(service.operate, request.path_params["action"], reason)
        await asyncio.to_thread(_apply_here, state, name, service)
    except ArbiterError as exc:
        return _error(exc)
    return ORJSONResponse(result)


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it exceeds ``limit`` (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(
            f"the body has {declared} bytes; an admin request takes at most {limit}",
            field="body",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(
                f"the body exceeds {limit} bytes, the most an admin request takes", field="body"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _reason(request: Request) -> str | None:
    body = await _read_body(request)
    if not body.strip():
        return None
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object like {\"reason\": \"...\"}",
                                field="body")  # fmt: skip
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]!r}; only 'reason' is read",
                                field=unknown[0])  # fmt: skip
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInputError("reason must be a string", field="reason")
    return reason


def routes() -> list[Route]:
    return [
        Route("/admin/canary/{name}", canary_status, methods=["GET"]),
        Route("/admin/canary/{name}/{action}", canary_action, methods=["POST"]),
    ]


__all__ = ["MAX_BODY_BYTES", "canary_action", "canary_status", "routes"]
