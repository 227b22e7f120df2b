"""Exceptions raised by arbiter.

Every error arbiter raises on purpose derives from :class:`ArbiterError`, so callers can
catch one type. The tree::

    ArbiterError
    ├── ConfigError            invalid home configuration or settings (also ValueError)
    ├── InvalidInputError      bad request or argument, naming the field (also ValueError)
    ├── NotFoundError          unknown model, alias, request id or file (also LookupError)
    ├── RegistryError          the model registry failed or is unreachable
    ├── ModelError             a model raised while predicting
    ├── UnauthorizedError      missing or wrong API token
    └── EventStoreError        the event store could not durably write or read

Degenerate but valid data (an empty arm, zero variance) is *not* an error: the statistics
core reports it as a status on the result instead.
"""

from __future__ import annotations


class ArbiterError(Exception):
    """Root of every error arbiter raises on purpose."""


class ConfigError(ArbiterError, ValueError):
    """The home's configuration or a setting is invalid."""


class InvalidInputError(ArbiterError, ValueError):
    """Bad input from a caller. ``field`` names what was wrong (a JSON path or argument)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFoundError(ArbiterError, LookupError):
    """A model, alias, request id or file does not exist."""


class RegistryError(ArbiterError):
    """The model registry failed or could not be reached."""


class ModelError(ArbiterError):
    """A model raised while predicting."""


class ModelTimeoutError(ModelError):
    """A model did not answer within its time limit (the call may still be running)."""


class UnauthorizedError(ArbiterError):
    """Missing or wrong API token (HTTP 401 from the gateway, or seen by a client of it)."""


class EventStoreError(ArbiterError):
    """The event store could not durably write or read."""


__all__ = [
    "ArbiterError",
    "ConfigError",
    "EventStoreError",
    "InvalidInputError",
    "ModelError",
    "ModelTimeoutError",
    "NotFoundError",
    "RegistryError",
    "UnauthorizedError",
]
