"""API-token check for the endpoints that change state (feedback, admin)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from arbiter.gateway.middleware.body_limit import respond_unread
from arbiter.gateway.responses import UnauthorizedError, error_response


def bearer_credential(authorization: str | bytes | None) -> bytes:
    """The credential of an ``Authorization: Bearer ...`` header value, as bytes (empty if none).

    Starlette decodes header values as latin-1, so a ``str`` is re-encoded as latin-1 to get
    the bytes the client sent; comparing bytes (never ``str``) keeps ``hmac.compare_digest``
    from raising TypeError on a non-ASCII token.
    """
    if authorization is None:
        return b""
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    scheme, _, credential = raw.strip().partition(b" ")
    return credential.strip() if scheme.lower() == b"bearer" else b""


def token_matches(authorization: str | bytes | None, token: str) -> bool:
    """Whether an Authorization header carries ``token``, compared in constant time."""
    supplied = bearer_credential(authorization)
    return bool(supplied) and hmac.compare_digest(supplied, token.encode("utf-8"))


class TokenAuthMiddleware:
    """Requires ``Authorization: Bearer TOKEN`` on paths under ``protected_prefixes``.

    Does nothing when no token is configured (loopback-only servers). Comparison is
    constant-time so the token cannot be guessed byte by byte from response timings.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        protected_prefixes: tuple[str, ...],
        drain_max_bytes: int = 64 * 1_048_576,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.drain_max_bytes = drain_max_bytes
        self.drain_timeout_s = drain_timeout_s
        self.token = token.encode("utf-8") if token else None
        self.protected_prefixes = protected_prefixes

    def _protected(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.protected_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                supplied = bearer_credential(value)
                break
        if not hmac.compare_digest(supplied, self.token):
            message = "missing API token" if not supplied else "invalid API token"
            response = error_response(
                UnauthorizedError(f"{message}: send 'Authorization: Bearer <token>'")
            )
            # Drained first (bounded), so a client still sending reads the 401, not a reset.
            await respond_unread(
                response, scope, receive, send, self.drain_max_bytes, self.drain_timeout_s
            )
            return
        await self.app(scope, receive, send)
