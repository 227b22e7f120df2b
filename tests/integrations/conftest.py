"""The loop's fixtures (a home with a champion and its reference profile, a gateway)."""

from __future__ import annotations

from tests.loop.conftest import gateway, loop_home, loop_template

__all__ = ["gateway", "loop_home", "loop_template"]
