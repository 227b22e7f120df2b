"""The body shapes of the durable-write routes (``/feedback``, ``/outcomes``).

Both take one object, ``{"<key>": [...]}``, or a bare array of objects, validate every row with
the store's validator (which names fields ``rows[i].name``), and report a bad field the way the
client wrote it.
"""

from __future__ import annotations

from typing import Any

from arbiter.errors import InvalidInputError


def body_rows(body: Any, key: str) -> tuple[list[Any], str]:
    """The rows of ``body`` and the prefix naming them in errors (``rows``, ``key``, ``body``).

    Raises
    ------
    InvalidInputError
        ``{key: ...}`` with other fields beside it or a non-array value; a body that is
        neither an object nor an array.
    """
    if isinstance(body, list):
        return body, "rows"
    if isinstance(body, dict) and key in body:
        if set(body) != {key}:
            extra = sorted(set(body) - {key})[0]
            raise InvalidInputError(f"unexpected field {extra!r} beside {key!r}", field=extra)
        if not isinstance(body[key], list):
            raise InvalidInputError(f"{key!r} must be an array of objects", field=key)
        return body[key], key
    if isinstance(body, dict):
        return [body], "body"
    raise InvalidInputError("the body must be a JSON object or array", field="body")


def client_field(exc: InvalidInputError, prefix: str) -> InvalidInputError:
    """``exc`` with its field as the client sent it: ``outcomes[3].value``, or ``value`` for
    one object (``prefix`` from :func:`body_rows`)."""
    field = exc.field or ""
    if field.startswith("rows"):
        if prefix == "body":
            field = field.replace("rows[0].", "", 1).replace("rows[0]", "body", 1)
        else:
            field = prefix + field[len("rows") :]
    return InvalidInputError(exc.message, field=field or None)


__all__ = ["body_rows", "client_field"]
