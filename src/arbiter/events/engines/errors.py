"""The error an engine raises when it cannot start or cannot run a query."""

from __future__ import annotations

from arbiter.errors import ArbiterError


class EngineError(ArbiterError):
    """A query engine could not be started, reached, or run one of arbiter's queries.

    The message names the engine and the error's class or SQLSTATE, never the SQL text or a
    connection string: the CLI prints it as is.
    """


__all__ = ["EngineError"]
