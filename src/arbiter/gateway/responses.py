"""JSON responses and arbiter's error shape.

arbiter's own endpoints answer errors as ``{"error": {"code", "message", "field"}}``; the MLflow
and Open Inference Protocol endpoints use their protocol's own shapes (see
:mod:`arbiter.gateway.protocols`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from arbiter.errors import (
    ArbiterError,
    EventStoreError,
    InvalidInputError,
    ModelError,
    ModelTimeoutError,
    NotFoundError,
    RegistryError,
    UnauthorizedError,
)
from arbiter.redact import redact

log = logging.getLogger(__name__)

#: What a client is told when the server's own storage fails. The detail (a path, SQL, a
#: URI) is for the operator: it goes to the log, redacted, never into a response.
PUBLIC_MESSAGES: dict[type[BaseException], str] = {
    EventStoreError: "the event store is unavailable; the request was not recorded "
    "(details in the server log)",
    RegistryError: "the model registry is unavailable (details in the server log)",
}


class ORJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class MalformedBodyError(InvalidInputError):
    """The body is not parseable (bad JSON, wrong content type): HTTP 400."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The Content-Type is not one the endpoint reads: HTTP 415."""


class BodyTooLargeError(InvalidInputError):
    """The body exceeds ``server.max_body_bytes``: HTTP 413."""


class NotReadyError(ArbiterError):
    """The model has no loaded champion yet: HTTP 503."""


class ForbiddenError(ArbiterError):
    """The request asks for something this server does not allow: HTTP 403."""


def status_for(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code for an exception."""
    table: list[tuple[type[BaseException], int, str]] = [
        (BodyTooLargeError, 413, "body_too_large"),
        (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
        (MalformedBodyError, 400, "malformed_body"),
        (InvalidInputError, 422, "invalid_input"),
        (NotFoundError, 404, "not_found"),
        (UnauthorizedError, 401, "unauthorized"),
        (ForbiddenError, 403, "forbidden"),
        (NotReadyError, 503, "not_ready"),
        (ModelTimeoutError, 504, "model_timeout"),
        (ModelError, 500, "model_error"),
        (EventStoreError, 503, "event_store_error"),
        (RegistryError, 503, "registry_error"),
    ]
    for exc_type, status, code in table:
        if isinstance(exc, exc_type):
            return status, code
    return 500, "internal_error"


def public_message(exc: BaseException) -> str:
    """The text of ``exc`` a client may read: no credentials, SQL or server paths.

    Storage failures (event store, registry) answer a fixed sentence and log the detail,
    redacted; every other message is passed through :func:`arbiter.redact.redact`.
    """
    for exc_type, message in PUBLIC_MESSAGES.items():
        if isinstance(exc, exc_type):
            log.warning("%s: %s", type(exc).__name__, redact(exc))
            return message
    return redact(exc)


def error_response(exc: BaseException) -> ORJSONResponse:
    status, code = status_for(exc)
    body: dict[str, Any] = {"code": code, "message": public_message(exc)}
    field = getattr(exc, "field", None)
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ORJSONResponse({"error": body}, status_code=status, headers=headers)


def parse_json(body: bytes) -> Any:
    """Parse a JSON body or raise :class:`MalformedBodyError` saying where it broke."""
    if not body:
        raise MalformedBodyError("the request body is empty; expected JSON", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(f"the body is not valid JSON: {exc}", field="body") from exc


__all__ = [
    "BodyTooLargeError",
    "ForbiddenError",
    "MalformedBodyError",
    "NotReadyError",
    "ORJSONResponse",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "error_response",
    "parse_json",
    "public_message",
    "status_for",
]
