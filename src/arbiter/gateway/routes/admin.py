"""Admin endpoints: canary releases, and changes to running A/B experiments.

``GET /admin/experiments/{name}`` and ``POST /admin/experiments/{name}/{split|stop|start}``
(``name``: the model or its experiment) change a running A/B or A/B/n experiment through the
registry (:mod:`arbiter.experiments.split_store`), with the same token rules as the canary
endpoints below; a model whose experiment is not A/B answers 409. Body of ``split``:
``{"share": 0.3}`` (A/B) or ``{"shares": {"alias": 0.2}}`` (A/B/n), optional ``reason`` and
``by`` (or the header ``X-Arbiter-Actor``); ``start`` takes an optional ``name`` (a new
experiment name, hence a fresh assignment).

Canary:

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
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.gateway.middleware.auth import token_matches
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
    if not token_matches(request.headers.get("authorization"), token):
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
        alerts=state.alerts,
    )


def _error(exc: BaseException) -> ORJSONResponse:
    from arbiter.canary.store import CanaryConflictError
    from arbiter.experiments.split_store import ExperimentConflictError
    from arbiter.registry.history import AliasConflictError

    if isinstance(exc, CanaryConflictError | AliasConflictError | ExperimentConflictError):
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
      409: {description: "the canary changed meanwhile, the action does not apply, or the
        model runs no canary"}
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


# --- running A/B experiments ----------------------------------------------------------------

_EXPERIMENT_FIELDS = {
    "split": {"share", "shares", "reason", "by"},
    "stop": {"reason", "by"},
    "start": {"name", "reason", "by"},
}


def _experiment_service(state: GatewayState, name: str) -> Any:
    """The control service of the model called ``name``, or of the model running experiment
    ``name`` (404 when neither)."""
    from arbiter.errors import NotFoundError
    from arbiter.experiments.split_store import ExperimentConflictError
    from arbiter.gateway.experiment_control import control_service

    model = name if name in state.pool.endpoints else None
    if model is None:
        for endpoint in state.pool.endpoints.values():
            if name in (endpoint.experiment, endpoint.config.experiment_name(endpoint.name)):
                model = endpoint.name
                break
    if model is None:
        raise NotFoundError(f"no served model or experiment is called {name!r}")
    strategy = state.config.models[model].experiment.strategy
    if strategy != "ab":
        raise ExperimentConflictError(
            f"model {model!r} runs strategy {strategy!r}; split, stop and start apply to A/B "
            "and A/B/n experiments (strategy: ab) only"
        )
    return control_service(state, model)


async def _experiment_body(request: Request, action: str) -> dict[str, Any]:
    body = await _read_body(request)
    if not body.strip():
        return {}
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object", field="body")
    allowed = _EXPERIMENT_FIELDS[action]
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown field {unknown[0]!r}; {action} reads {sorted(allowed)}", field=unknown[0]
        )
    for key in ("reason", "by", "name"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidInputError(f"{key} must be a string", field=key)
    return data


def _split_shares(data: dict[str, Any]) -> dict[str, Any]:
    if ("share" in data) == ("shares" in data):
        raise InvalidInputError(
            'give either "share" (A/B) or "shares" ({"alias": share}, A/B/n)', field="shares"
        )
    if "share" in data:
        return {"challenger": data["share"]}
    if not isinstance(data["shares"], dict):
        raise InvalidInputError('"shares" must be an object {"alias": share}', field="shares")
    return data["shares"]


def _apply_control_here(state: GatewayState, service: Any) -> None:
    from arbiter.gateway.experiment_control import apply_control

    apply_control(state, service.model, service, service.read())


async def experiment_status(request: Request) -> Response:
    """A running A/B experiment's split and status.

    ---
    summary: A/B experiment control
    description: The experiment's status (running or stopped), shares now and as configured,
      and its recorded changes. Needs the admin token.
    responses:
      200: {description: the status}
      401: {description: missing or wrong token}
      403: {description: no admin token configured on the server}
      404: {description: no such model or experiment}
      409: {description: the model's experiment is not A/B}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        _authorize(request, state)
        service = _experiment_service(state, request.path_params["name"])
        status = await asyncio.to_thread(service.status)
    except ArbiterError as exc:
        return _error(exc)
    status["worker"] = state.pool.endpoints[service.model].control
    return ORJSONResponse(status)


async def experiment_action(request: Request) -> Response:
    """Change a running A/B experiment's split, stop it or start it.

    ---
    summary: Change a running A/B experiment
    description: 'action is split (body {"share": 0.3} or {"shares": {"alias": 0.2}}), stop or
      start (optional "name": a new experiment, a fresh assignment); optional "reason" and "by"
      (or header X-Arbiter-Actor), kept in the history. Applied by every worker within one
      registry poll. Needs the admin token.'
    responses:
      200: {description: the new status and the recorded change}
      401: {description: missing or wrong token}
      403: {description: no admin token configured on the server}
      404: {description: no such model or experiment}
      409: {description: "the model's experiment is not A/B, is stopped (split), or changed
        meanwhile"}
      413: {description: body larger than 64 KiB}
      422: {description: "bad action, share or field; the error names the field"}
    """
    state: GatewayState = request.app.state.arbiter
    action = request.path_params["action"]
    try:
        _authorize(request, state)
        if action not in _EXPERIMENT_FIELDS:
            raise InvalidInputError(
                f"no experiment action {action!r}; use split, stop or start", field="action"
            )
        service = _experiment_service(state, request.path_params["name"])
        data = await _experiment_body(request, action)
        actor = data.get("by") or request.headers.get("x-arbiter-actor") or "admin-api"
        reason = data.get("reason")
        if action == "split":
            call = partial(service.set_split, _split_shares(data))
        elif action == "stop":
            call = service.stop
        else:
            call = partial(service.start, name=data.get("name"))
        result = await asyncio.to_thread(partial(call, reason=reason, actor=actor))
        await asyncio.to_thread(_apply_control_here, state, service)
    except ArbiterError as exc:
        return _error(exc)
    return ORJSONResponse(result)


def routes() -> list[Route]:
    return [
        Route("/admin/canary/{name}", canary_status, methods=["GET"]),
        Route("/admin/canary/{name}/{action}", canary_action, methods=["POST"]),
        Route("/admin/experiments/{name}", experiment_status, methods=["GET"]),
        Route("/admin/experiments/{name}/{action}", experiment_action, methods=["POST"]),
    ]


__all__ = [
    "MAX_BODY_BYTES",
    "canary_action",
    "canary_status",
    "experiment_action",
    "experiment_status",
    "routes",
]
