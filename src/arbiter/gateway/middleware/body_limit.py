"""Refuses request bodies larger than a limit, before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arbiter.gateway.responses import BodyTooLargeError, error_response


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once when Content-Length says so, else as they stream.

    A streamed (chunked) body that crosses the limit makes ``receive`` raise
    :class:`BodyTooLargeError`, which the endpoint's error handling turns into the same 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = error_response(self._error())
                    await response(scope, receive, send)
                    return
                break
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited, send)

    def _error(self) -> BodyTooLargeError:
        return BodyTooLargeError(
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(server.max_body_bytes)",
            field="body",
        )
