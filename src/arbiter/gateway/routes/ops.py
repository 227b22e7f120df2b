"""Operational endpoints: models, health, readiness, metrics, OpenAPI."""

from __future__ import annotations

import os
import time

from starlette.requests import Request
from starlette.responses import Response

from arbiter.gateway.responses import ORJSONResponse
from arbiter.gateway.state import GatewayState
from arbiter.gateway.storage import storage_health
from arbiter.redact import redact


async def list_models(request: Request) -> Response:
    """The models served here.

    ---
    summary: List served models
    description: Each model's name, the versions behind its aliases, and its experiment
      (strategy, split, state; for shadow experiments whether the shadow workers have loaded
      the challenger, and their counters).
    responses:
      200: {description: "{\\"models\\": [...]}"}
    """
    state: GatewayState = request.app.state.arbiter
    models = state.pool.describe()
    for item in models:
        executor = state.shadows.get(item["name"])
        if executor is not None:
            alias = item["experiment"].get("challenger_alias")
            item["experiment"]["shadow"] = executor.describe(
                item["name"], item["aliases"].get(alias)
            )
    return ORJSONResponse({"models": models, "pid": os.getpid()})  # which worker answered


async def healthz(request: Request) -> Response:
    """Liveness: the process is up.

    ---
    summary: Liveness
    responses:
      200: {description: alive}
    """
    return ORJSONResponse({"status": "ok"})


def readiness(state: GatewayState) -> tuple[bool, dict[str, object]]:
    """Ready when every served model has a champion loaded.

    An unreachable registry does not make the gateway unready (it keeps serving the versions
    it has, and pulling every replica out of a load balancer would turn a registry outage into
    a serving outage); it shows as ``"status": "degraded"`` with the error.

    An event log that cannot be written (disk full, read-only) does make it unready:
    ``"status": "degraded"`` with ``storage.reason``, answered 503, until a write succeeds
    again (arbiter.gateway.storage).
    """
    status = state.pool.status
    not_ready = [name for name, ep in state.pool.endpoints.items() if not ep.ready]
    storage = storage_health(state.writer, state.store)
    ready = not not_ready and bool(storage["writable"])
    healthy = status.reachable and storage["writable"]
    body: dict[str, object] = {
        "status": "not_ready" if not_ready else ("ready" if healthy else "degraded"),
        "models": {name: ep.experiment_state() for name, ep in state.pool.endpoints.items()},
        "registry": {
            "reachable": status.reachable,
            "last_success_age_s": (
                round(time.time() - status.last_success, 3) if status.last_success else None
            ),
            "error": redact(status.last_error) if status.last_error else None,
        },
        "events": state.writer.stats() if hasattr(state.writer, "stats") else {},
        "storage": storage,
    }
    if not_ready:
        body["not_ready"] = not_ready
    return ready, body


async def readyz(request: Request) -> Response:
    """Readiness.

    ---
    summary: Readiness
    description: 200 when every model has a loaded champion (status `ready`, or `degraded`
      when the registry is unreachable and the loaded versions keep serving); 503 otherwise,
      and 503 `degraded` while the event log cannot be written (`storage.reason` says why).
    responses:
      200: {description: ready or degraded}
      503: {description: not ready, or the event log cannot be written}
    """
    state: GatewayState = request.app.state.arbiter
    ready, body = readiness(state)
    return ORJSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics.

    ---
    summary: Prometheus metrics
    responses:
      200: {description: text exposition format}
    """
    state: GatewayState = request.app.state.arbiter
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


async def openapi(request: Request) -> Response:
    """This API's OpenAPI document.

    ---
    summary: OpenAPI schema
    responses:
      200: {description: OpenAPI 3 document}
    """
    return ORJSONResponse(request.app.state.openapi_schema(request))
