"""Undoes ``Content-Encoding: gzip`` / ``deflate`` request bodies, bounded and off the event loop.

``tritonclient`` compresses Open Inference Protocol requests on request; a small compressed
body can inflate a thousandfold, so inflating it whole on the event loop let four 255 KB
requests stall ``/healthz`` for 9 s. Here the body is inflated as it streams, each chunk in a
worker thread, never producing more than ``server.max_body_bytes`` in total (zlib's
``max_length``): the limit means the same thing with and without compression.

Endpoints see an identity-encoded body: the ``Content-Encoding`` and ``Content-Length``
headers are removed from the scope. Other encodings are passed through untouched, for the
endpoint to refuse in its protocol's words.
"""

from __future__ import annotations

import asyncio
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arbiter.gateway.middleware.body_limit import drain
from arbiter.gateway.responses import BodyTooLargeError, MalformedBodyError, error_response

ENCODINGS = (b"gzip", b"x-gzip", b"deflate")


def _inflate(inflater: zlib._Decompress, data: bytes, budget: int) -> bytes:
    """Inflate ``data``, producing at most ``budget + 1`` bytes (one more says "too large")."""
    try:
        return inflater.decompress(data, budget + 1)
    except zlib.error as exc:
        raise MalformedBodyError(
            f"the body is not valid gzip/deflate data: {exc}", field="Content-Encoding"
        ) from None


class DecompressMiddleware:
    """Inflates compressed request bodies up to ``max_bytes`` (413 beyond, 400 if corrupt)."""

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
        encoding = next((v for k, v in scope["headers"] if k == b"content-encoding"), None)
        if encoding is None or encoding.strip().lower() not in ENCODINGS:
            await self.app(scope, receive, send)
            return
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        scope = {**scope, "headers": headers}
        # wbits=47: gzip or zlib framing (tritonclient's "deflate" is zlib), detected per body.
        inflater = zlib.decompressobj(wbits=47)
        produced = 0
        started = False

        async def inflated() -> Message:
            nonlocal produced
            message = await receive()
            if message["type"] != "http.request":
                return message
            more = message.get("more_body", False)
            budget = self.max_bytes - produced
            try:
                out = await asyncio.to_thread(_inflate, inflater, message.get("body", b""), budget)
                if len(out) > budget:
                    raise self._too_large()
                if not more and not inflater.eof:
                    raise MalformedBodyError(
                        "the compressed body is truncated", field="Content-Encoding"
                    )
            except (BodyTooLargeError, MalformedBodyError):
                if more:  # let the client finish sending, so it can read the answer
                    await drain(receive, self.drain_max_bytes, self.drain_timeout_s)
                raise
            produced += len(out)
            return {"type": "http.request", "body": out, "more_body": more}

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, inflated, tracked)
        except (BodyTooLargeError, MalformedBodyError) as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)

    def _too_large(self) -> BodyTooLargeError:
        return BodyTooLargeError(
            f"the decompressed request body is larger than the limit of {self.max_bytes} "
            "bytes (server.max_body_bytes)",
            field="body",
        )
