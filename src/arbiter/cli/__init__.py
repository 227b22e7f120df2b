"""The ``arbiter`` command line.

Each command lives in its own module under :mod:`arbiter.cli.commands` and imports its heavy
dependencies (MLflow, pandas, scikit-learn) inside the function body, so ``arbiter --help``
starts fast. Errors are mapped to exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import os
import sys

import typer

from arbiter.cli import commands, output, status_codes

app = typer.Typer(
    name="arbiter",
    help=(
        "Test ML models on live traffic and decide, with sound statistics, which one serves.\n\n"
        "Start with `arbiter demo` to see the whole job end to end, then `arbiter serve`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
commands.register_commands(app)


def _exit_code_for(exc: BaseException) -> int:
    from arbiter import errors

    table: list[tuple[type[BaseException], int]] = [
        (errors.InvalidInputError, status_codes.BAD_INPUT),
        (errors.NotFoundError, status_codes.NOT_FOUND),
        (errors.ConfigError, status_codes.CONFIG_ERROR),
        (errors.RegistryError, status_codes.REGISTRY_ERROR),
        (errors.EventStoreError, status_codes.EVENT_STORE_ERROR),
        (errors.ArbiterError, status_codes.ERROR),
    ]
    for exc_type, code in table:
        if isinstance(exc, exc_type):
            return code
    return status_codes.ERROR


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``arbiter`` script: runs the app, turning arbiter errors into one line."""
    from arbiter.errors import ArbiterError

    try:
        # standalone_mode=False returns typer.Exit's code instead of exiting with it.
        code = app(args=argv, standalone_mode=False)
    except ArbiterError as exc:
        output.fail(str(exc))
        sys.exit(_exit_code_for(exc))
    except KeyboardInterrupt:
        output.fail("interrupted")
        sys.exit(status_codes.INTERRUPTED)
    except typer.Abort:
        output.fail("aborted")
        sys.exit(status_codes.INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors come through here in standalone_mode=False
        # Typer vendors its own copy of click, so match the interface rather than the class.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("ARBITER_DEBUG"):
            raise
        output.fail(
            f"unexpected {type(exc).__name__}: {exc} (set ARBITER_DEBUG=1 for the traceback)"
        )
        sys.exit(status_codes.ERROR)
    sys.exit(code if isinstance(code, int) else status_codes.SUCCESS)


__all__ = ["app", "main"]
