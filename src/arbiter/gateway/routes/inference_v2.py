"""Open Inference Protocol v2 routes."""

from __future__ import annotations

from starlette.routing import Route


def routes() -> list[Route]:
    return []
