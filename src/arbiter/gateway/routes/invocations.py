"""``POST /models/{name}/invocations`` and ``POST /invocations``: the MLflow scoring protocol."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


async def invocations(request: Request) -> Response:
    raise NotImplementedError


async def invocations_single(request: Request) -> Response:
    raise NotImplementedError
