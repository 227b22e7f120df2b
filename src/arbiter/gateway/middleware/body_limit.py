"""Refuses request bodies larger than a limit, before they are read into memory.

A client that is still sending when the server answers and closes gets "connection reset" or
"broken pipe" instead of the answer (Python's urllib and requests do, from about 4 MB over the
limit: the kernel's socket buffers no longer hide it). So before answering 413 the rest of the
body is read and thrown away, bounded in bytes and in time (``server.drain_max_bytes``,
``server.drain_timeout_s``); memory stays flat because nothing drained is kept. A client that
sent ``Expect: 100-continue`` has sent no body yet and is answered at once.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arbiter.gateway.responses import BodyTooLargeError, error_response


async def drain(receive: Receive, max_bytes: int, timeout_s: float) -> bool:
    """Read and discard the rest of a request body; True when it ended within the bounds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    drained = 0
    while drained <= max_bytes:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return False
        if message["type"] != "http.request":
            return False  # the client went away
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def respond_unread(
    response: Response,
    scope: Scope,
    receive: Receive,
    send: Send,
    drain_max_bytes: int,
    drain_timeout_s: float,
) -> None:
    """Send an answer given before the body was read (413, 401), so the client can read it.

    The body is drained first within the bounds (not at all after ``Expect: 100-continue``:
    that client sends nothing until told to); if some of it stays unread, the answer says
    ``Connection: close``.
    """
    declared = 0
    expects_continue = False
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
        elif key == b"expect" and value.lower() == b"100-continue":
            expects_continue = True
    has_body = declared > 0 or any(k == b"transfer-encoding" for k, _ in scope["headers"])
    complete = not has_body or (
        not expects_continue
        and declared <= drain_max_bytes
        and await drain(receive, drain_max_bytes, drain_timeout_s)
    )
    if not complete:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once when Content-Length says so, else as they stream.

    A streamed (chunked) body that crosses the limit makes ``receive`` drain the rest and raise
    :class:`BodyTooLargeError`; the endpoint's error handling turns it into the same 413, and
    this middleware does when the endpoint lets it through.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        drain_max_bytes: int = 64 * 1_048_576,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_max_bytes = drain_max_bytes
        self.drain_timeout_s = drain_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await respond_unread(
                error_response(self._error()),
                scope,
                receive,
                send,
                self.drain_max_bytes,
                self.drain_timeout_s,
            )
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await drain(receive, self.drain_max_bytes, self.drain_timeout_s)
                    raise self._error()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLargeError:
            if started:
                raise
            await error_response(self._error())(scope, receive, send)
        except ClientDisconnect:
            # The client left (or the read timeout closed it) while its body was being read:
            # nobody to answer, and not a server error worth a traceback in the log.
            if started:
                raise

    def _error(self) -> BodyTooLargeError:
        return BodyTooLargeError(
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(server.max_body_bytes)",
            field="body",
        )
