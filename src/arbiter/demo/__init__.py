"""The demo behind ``make demo`` / ``arbiter demo``: trains, serves and tests models end to end.

Run through :mod:`arbiter.cli.commands.demo`; nothing here is public API.
"""

__all__: list[str] = []
