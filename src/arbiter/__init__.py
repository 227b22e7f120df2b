"""arbiter: test ML models on live traffic and decide, with sound statistics, which one serves.

In-process (notebooks, batch jobs): :class:`ShadowExperiment` and :class:`ABExperiment`.
Server: ``arbiter serve``. Statistics: :mod:`arbiter.stats`. See the README.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["ABExperiment", "Answer", "ShadowExperiment", "__version__"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `arbiter --help` does not pay for numpy and pyarrow.
    if name in ("ABExperiment", "Answer", "ShadowExperiment"):
        from arbiter import inprocess

        return getattr(inprocess, name)
    raise AttributeError(f"module 'arbiter' has no attribute {name!r}")
