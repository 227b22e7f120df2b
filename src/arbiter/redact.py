"""Redaction of secrets and internals from text that leaves the process (responses, logs).

A tracking URI may carry a password (``http://user:password@host``, ``postgresql://u:p@db``),
and errors raised by MLflow, requests and SQLAlchemy quote it; SQLAlchemy errors also quote the
SQL statement and its parameters. Such text reaches unauthenticated endpoints (``/readyz``) and
log files, so every place that turns an exception or a URI into text for a response or a log
line passes it through :func:`redact` first. One function, so there is one rule to test.

What is removed:

- the password of any ``scheme://user:password@host`` URI (the user name stays: it helps to
  tell which account failed and is not a secret on its own);
- ``password=``, ``token=``, ``secret=`` and ``key=``-like query or DSN parameters;
- ``Authorization: Bearer ...`` credentials quoted in error text;
- SQLAlchemy's ``[SQL: ...]`` and ``[parameters: ...]`` blocks and its "Background on this
  error" link.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://user:password@  (the password runs to the last '@' before the host part)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):[^/?#\s]*@")
# ?password=...  &token=...  password=... in a DSN
_PARAMS = re.compile(
    r"(?P<key>\b(?:[A-Za-z_]*(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key))=)"
    r"[^&\s'\"]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
_SQL = re.compile(r"\s*\[(?:SQL|parameters):.*?\](?=\s*(?:\[|\(Background|$))", re.DOTALL)
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")


def redact(text: object) -> str:
    """``text`` (or ``str(text)``) without credentials or SQL; safe for responses and logs."""
    out = str(text)
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", out)
    out = _PARAMS.sub(lambda m: f"{m['key']}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m['scheme']}{MASK}", out)
    out = _SQL.sub("", out)
    out = _BACKGROUND.sub("", out)
    return out


def redact_uri(uri: str | None) -> str | None:
    """A URI fit to print: its password (userinfo or query parameter) masked."""
    return None if uri is None else redact(uri)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through :func:`redact`, traceback included.

    For loggers arbiter does not write itself but whose lines quote URIs or SQL (MLflow's
    database store logs each SQLAlchemy error with its statement), and for any handler an
    application wants to make safe.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Formatters print exc_text when it is set, instead of formatting exc_info again.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def redact_loggers(*names: str) -> None:
    """Redact every record logged directly on the named loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


__all__ = ["MASK", "RedactingFilter", "redact", "redact_loggers", "redact_uri"]
