"""Send outcome events (purchases, sessions, chargebacks...) to a running gateway.

The client side of ``POST /outcomes``: for services that record what a unit did after it was
served, e.g. a checkout service posting each purchase::

    import arbiter.outcomes

    arbiter.outcomes.post(
        "http://127.0.0.1:8000",
        {"unit_id": "user-42", "event": "purchase", "value": 12.5},
        token=os.environ.get("ARBITER_API_TOKEN"),
    )

Without a server (notebooks, batch jobs) use ``record_outcomes`` of the in-process experiments
(:mod:`arbiter.inprocess`); for files from a warehouse, ``arbiter outcomes import FILE``. The
rows are validated by the gateway with :func:`arbiter.events.outcomes.outcome_columns`.

Errors (all :class:`~arbiter.errors.ArbiterError`)::

    InvalidInputError   the server rejected a row (422) or the body (400, 413): .field names it
    UnauthorizedError   missing or wrong API token (401)
    NotFoundError       no /outcomes at that URL (404: not an arbiter gateway, or too old)
    EventStoreError     the server could not store the rows (503): retry later
    ArbiterError        the server could not be reached, or another status
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from arbiter.errors import ArbiterError, EventStoreError, InvalidInputError, NotFoundError
from arbiter.gateway.responses import UnauthorizedError

#: Environment variable read for the token when ``token`` is not given (the gateway's default).
TOKEN_ENV = "ARBITER_API_TOKEN"


def _url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/outcomes") else base + "/outcomes"


def _payload(rows_or_row: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> bytes:
    """The JSON body: ``datetime`` values as ISO 8601 (a naive one stays zone-less: the
    server rejects it rather than guess), numpy scalars as numbers."""
    if isinstance(rows_or_row, Mapping):
        body: Any = rows_or_row
    elif hasattr(rows_or_row, "to_dict"):  # a pandas DataFrame: its rows (NaN -> null)
        body = {"outcomes": rows_or_row.to_dict("records")}
    else:
        body = {"outcomes": list(rows_or_row)}
    try:
        return orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise InvalidInputError(
            f"outcome rows are not JSON-serialisable: {exc}", field="rows"
        ) from exc


def _default(value: Any) -> Any:
    if isinstance(value, datetime):  # subclasses such as pandas.Timestamp
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars orjson does not know
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _error(response: httpx.Response) -> ArbiterError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = error.get("message") or response.text[:200] or response.reason_phrase
    field = error.get("field")
    status = response.status_code
    text = f"POST /outcomes answered {status}: {message}"
    if status in (400, 413, 415, 422):
        return InvalidInputError(text, field=field)
    if status == 401:
        return UnauthorizedError(text)
    if status == 404:
        return NotFoundError(f"{text} (is {response.request.url} an arbiter gateway?)")
    if status == 503:
        return EventStoreError(text)
    return ArbiterError(text)


def post(
    url: str,
    rows_or_row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    token: str | None = None,
    timeout: float = 30.0,
) -> int:
    """Post outcome events to a gateway; return how many it stored (durably).

    Parameters
    ----------
    url : str
        The gateway's base URL (``http://127.0.0.1:8000``) or its ``/outcomes`` URL.
    rows_or_row : mapping, sequence of mappings or pandas.DataFrame
        ``{"unit_id": "u-1", "event": "purchase", "value": 12.5, "ts": ...}``; ``value``
        defaults to 1, ``ts`` (ISO 8601 string with a zone, or an aware ``datetime``) to the
        server's now, ``request_id`` is optional. A sequence is sent in one request: all rows
        are stored or none (at most 100 000; use ``arbiter outcomes import`` for files).
    token : str, optional
        The API token; defaults to the ``ARBITER_API_TOKEN`` environment variable.
    timeout : float, default 30.0
        Seconds to wait for the answer. The server answers only once the rows are on disk.

    Returns
    -------
    int
        The number of rows stored.

    Raises
    ------
    InvalidInputError
        A row is invalid; ``field`` names it as the server did (``outcomes[3].value``, or
        ``value`` for a single row). Nothing was stored.
    UnauthorizedError
        The token is missing or wrong.
    ArbiterError
        The server could not be reached or failed (see the module docstring).
    """
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = _url(url)
    try:
        response = httpx.post(
            target, content=_payload(rows_or_row), headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise ArbiterError(f"cannot post outcomes to {target}: {exc}") from exc
    if response.status_code != 200:
        raise _error(response)
    return int(response.json()["stored"])


__all__ = ["TOKEN_ENV", "post"]
