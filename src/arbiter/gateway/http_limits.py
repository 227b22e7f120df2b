"""Limits of the HTTP layer that uvicorn does not set: header size and count, read time.

uvicorn's default parser (httptools) accepts headers of any size (a 16 MB header was taken in
whole) and any number of them, and has no read timeout: a client that opens a connection and
sends nothing, or sends its body a byte at a time, holds it forever. uvicorn has settings for
neither with httptools (``h11_max_incomplete_event_size`` only applies to the slower h11
parser), so :class:`LimitedHttpToolsProtocol` adds them to uvicorn's own protocol:

- the request line plus headers over ``max_header_bytes``, or more than ``max_header_count``
  headers: ``431`` with arbiter's JSON error, and the connection closes;
- a request not received in full (line, headers, body) within ``read_timeout_s`` of its first
  byte, or a new connection that sends nothing in that time: ``408`` (when no answer has
  started) and the connection closes. The clock stops once the request has arrived, so a
  slow model is never cut off by it.

Limits come from :class:`HttpLimits`, attached to the uvicorn ``Config`` (one process) or
passed in the environment (``--workers N``: each worker builds its own protocol objects).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from arbiter.config import ServerConfig

log = logging.getLogger(__name__)

ENV = "ARBITER_HTTP_LIMITS"
#: How to name this protocol to uvicorn (``http=``), for worker processes that import it.
IMPORT_PATH = "arbiter.gateway.http_limits:LimitedHttpToolsProtocol"


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 32_768
    max_header_count: int = 100
    read_timeout_s: float = 30.0

    @classmethod
    def of(cls, server: ServerConfig) -> HttpLimits:
        return cls(server.max_header_bytes, server.max_header_count, server.read_timeout_s)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> HttpLimits:
        raw = os.environ.get(ENV)
        return cls(**json.loads(raw)) if raw else cls()


def attach(uvicorn_config: Any, limits: HttpLimits) -> None:
    """Make a uvicorn ``Config`` serve with these limits (one-process servers)."""
    uvicorn_config.arbiter_http_limits = limits


class _RefusedError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits and a request read timeout."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: HttpLimits = (
            getattr(config, "arbiter_http_limits", None) or HttpLimits.from_env()
        )
        self._head_done = False
        self._head_raw = 0  # bytes received while the head is incomplete
        self._head_bytes = 0  # request line and header bytes, as parsed
        self._head_count = 0
        self._read_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- the read clock ---------------------------------------------------------------
    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        log.info(
            "closing a connection from %s: request not received within %s s "
            "(server.read_timeout_s)",
            self.client[0] if self.client else "?",
            self.limits.read_timeout_s,
        )
        if self.cycle is None or not self.cycle.response_started:
            self._refuse(
                _RefusedError(
                    408,
                    "request_timeout",
                    f"the request was not received within {self.limits.read_timeout_s} s "
                    "(server.read_timeout_s)",
                )
            )
        else:
            self.transport.close()

    # --- uvicorn's protocol hooks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer()  # a connection that never sends a request does not stay

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if not self._head_done:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
            if not self._head_done and self._head_raw > self.limits.max_header_bytes:
                raise self._too_large()
        except _RefusedError as exc:
            self._refuse(exc)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _RefusedError):
                self._refuse(exc.__context__)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_done = False
        self._head_bytes = 0
        self._head_count = 0
        self._arm_read_timer()  # from the request's first byte

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_header_bytes:
            raise self._too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._head_count += 1
        if self._head_bytes > self.limits.max_header_bytes:
            raise self._too_large()
        if self._head_count > self.limits.max_header_count:
            raise _RefusedError(
                431,
                "too_many_headers",
                f"the request has more than {self.limits.max_header_count} headers "
                "(server.max_header_count)",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._head_raw = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_read_timer()  # arrived: the model's time is not the client's
        self._head_done = False  # what comes next on this connection is the next head
        self._head_raw = 0
        super().on_message_complete()

    # --- answers ----------------------------------------------------------------------
    def _too_large(self) -> _RefusedError:
        return _RefusedError(
            431,
            "headers_too_large",
            f"the request line and headers exceed {self.limits.max_header_bytes} bytes "
            "(server.max_header_bytes)",
        )

    def _refuse(self, exc: _RefusedError) -> None:
        """Answer with arbiter's JSON error and close: the rest of this connection is unread."""
        self._refused = True
        self._cancel_read_timer()
        body = json.dumps(
            {"error": {"code": exc.code, "message": str(exc)}}, separators=(",", ":")
        ).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (exc.status, _REASONS.get(exc.status, b""))]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        if not self.transport.is_closing():
            self.transport.write(b"".join(head) + body)
            self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if running, sees the client gone
            self.cycle.message_event.set()


__all__ = ["ENV", "IMPORT_PATH", "HttpLimits", "LimitedHttpToolsProtocol", "attach"]
