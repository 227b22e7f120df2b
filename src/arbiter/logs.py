"""One logging setup for every arbiter process: the CLI, ``arbiter serve`` and its workers.

Why one place: uvicorn configures logging itself in each worker process it spawns, so a
``logging.basicConfig`` in the parent reaches neither the workers' arbiter loggers (their INFO
lines disappeared with ``--workers 2``) nor their warnings' format. :func:`log_config` is the
``dictConfig`` that the parent applies and hands to uvicorn (``log_config=``), which applies it
again in every worker: the same time, level, worker pid and logger name on every line, whatever
the worker count, in text or as one JSON object per line (``--log-format json``).

Quiet by default: MLflow's INFO lines (database migrations, "Created version ...") and the
warnings MLflow raises about how a model was logged are for people debugging MLflow, not for
someone running the demo; ``-v`` (``verbose=True``) shows them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import logging.config
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")

#: Text lines: ``2026-12-03 16:34:46,123 INFO [pid 4242] arbiter.canary.service: ...``.
TEXT_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"

#: Loggers of libraries that are chatty at INFO; WARNING unless verbose.
_CHATTY = ("mlflow", "alembic", "sqlalchemy", "urllib3", "httpx", "matplotlib", "optuna")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``pid``, ``logger``,
    ``message`` and ``exc`` when there is a traceback, for log shippers that parse lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to ``sys.stderr`` as it is when a record is written.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was given: a command run in
    process by a test runner (``CliRunner``, pytest's capture) would leave the root logger
    writing to a stream that is closed once the command returns.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def make_formatter(fmt: str = "text") -> logging.Formatter:
    """The formatter of :func:`log_config` (a ``dictConfig`` factory).

    Built in every process that applies the config, uvicorn's workers included, so it is also
    where those processes start logging Python warnings (``py.warnings``): a warning then has a
    time, a level and a pid like every other line, and is a JSON line in JSON mode.
    """
    logging.captureWarnings(True)
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def log_config(level: str = "INFO", fmt: str = "text", *, verbose: bool = False) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of an arbiter process (and of uvicorn's workers).

    Everything goes through one stderr handler on the root logger; uvicorn's own loggers
    (``uvicorn.error``, ``uvicorn.access``) propagate to it instead of keeping their own
    formats, so access lines carry the same time, level and pid.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    level = level.upper()
    formatter: dict[str, Any] = {"()": f"{__name__}.make_formatter", "fmt": fmt}
    library_level = "NOTSET" if verbose else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"arbiter": formatter},
        "handlers": {"stderr": {"class": f"{__name__}.StderrHandler", "formatter": "arbiter"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn.run(log_level=...) sets these loggers' levels after applying this dict.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # MLflow installs its own handler on import and stops propagation: route it here.
            **{
                name: {"level": library_level, "handlers": [], "propagate": True}
                for name in _CHATTY
            },
        },
    }


def setup(level: str = "WARNING", fmt: str = "text", *, verbose: bool = False) -> dict[str, Any]:
    """Configure this process's logging (and warnings) once; returns the applied config.

    Warnings are logged (``py.warnings``), so they get a time and a level too; in quiet mode
    the warnings MLflow raises about how a model was logged are dropped (:func:`quiet_mlflow`).
    """
    if not verbose:
        # MLflow reads its level from the environment when it is imported, in this process and
        # in any child (shadow workers, uvicorn workers).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        _filter_library_warnings()
    config = log_config(level, fmt, verbose=verbose)
    logging.config.dictConfig(config)
    return config


def _filter_library_warnings() -> None:
    """Drop library warnings about how the demo's and tests' models are logged.

    They describe choices arbiter makes on purpose (pickled in-process Python models, no
    type-hint-driven validation: the gateway validates against the signature itself).
    """
    for pattern in (
        r".*Add type hints to the `predict` method",
        r".*An input example was not provided",
        r".*Hint: Inferred schema contains integer column",
    ):
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)


@contextlib.contextmanager
def quiet_mlflow(verbose: bool = False) -> Iterator[None]:
    """Silence MLflow's own output stream while the demo registers models (unless ``verbose``).

    MLflow prints "Successfully registered model ..." and "Created version ..." straight to its
    stream (not through a logger), and warns through it that a Python object is serialised
    with CloudPickle whenever a ``PythonModel`` instance is logged, which the demo does on
    purpose. Its switch (``disable_logging``) is turned back on by MLflow's own context
    managers, so the stream's ``write`` is replaced for the duration instead. MLflow's errors
    still surface: they are raised as exceptions. Warnings MLflow raises through ``warnings``
    are fixed at their source instead (type hints on ``predict``, float example columns):
    MLflow re-enables them with ``simplefilter("once")``, so no filter can hold them.
    """
    if verbose:
        yield
        return
    from mlflow.utils import logging_utils

    stream = logging_utils.MLFLOW_LOGGING_STREAM
    stream.write = _discard  # type: ignore[method-assign]
    try:
        yield
    finally:
        del stream.write


def _discard(text: str) -> None:
    """Write nothing (a stream's ``write``)."""


__all__ = [
    "LOG_FORMATS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "log_config",
    "make_formatter",
    "quiet_mlflow",
    "setup",
]
