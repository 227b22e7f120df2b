"""arbiter: test ML models on live traffic and decide, with sound statistics, which one serves."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
