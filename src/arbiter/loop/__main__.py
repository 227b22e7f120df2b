"""``python -m arbiter.loop run|history|schedule``: the loop commands on their own.

The same commands as ``arbiter loop ...``, with the same one-line errors and exit codes, for
orchestrators that call a given interpreter (``/opt/arbiter/.venv/bin/python -m arbiter.loop``).
"""

from __future__ import annotations

import sys

import typer


def main(argv: list[str] | None = None) -> None:
    from arbiter.cli import _exit_code_for
    from arbiter.cli.commands.loop import app
    from arbiter.cli.output import fail
    from arbiter.errors import ArbiterError

    root = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    root.add_typer(app, name="loop")
    try:
        root(args=["loop", *(sys.argv[1:] if argv is None else argv)], standalone_mode=False)
    except ArbiterError as exc:
        fail(str(exc))
        sys.exit(_exit_code_for(exc))
    except Exception as exc:  # click usage errors: print them as click would
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
