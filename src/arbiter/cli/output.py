"""How commands print: Rich for people, JSON for scripts.

Commands build plain dicts/lists and hand them here, so ``--json`` output and the
human-readable output always come from the same data.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import orjson
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf become null (JSON has no NaN), numpy scalars Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (and nothing else, so scripts can parse it)."""
    sys.stdout.write(
        orjson.dumps(_clean(data), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        + "\n"
    )
    sys.stdout.flush()


def fail(message: str) -> None:
    """Print one error line on stderr (no traceback)."""
    err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
