"""Routing policies: pure functions that decide which model serves a request.

No I/O and no hidden random state: callers pass the random draw in, so every decision is
reproducible in tests.
"""

from __future__ import annotations

from arbiter.routing.hashing import DEFAULT_BUCKETS, unit_bucket
from arbiter.routing.split import Arm, Assignment, Layout, Split, sample_shadow, slot_layout
from arbiter.routing.strategies import (
    CHALLENGER,
    CHAMPION,
    ABTest,
    ChampionOnly,
    Interleave,
    MultiArmTest,
    Route,
    Shadow,
    Strategy,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_BUCKETS",
    "ABTest",
    "Arm",
    "Assignment",
    "ChampionOnly",
    "Interleave",
    "Layout",
    "MultiArmTest",
    "Route",
    "Shadow",
    "Split",
    "Strategy",
    "sample_shadow",
    "slot_layout",
    "unit_bucket",
]
