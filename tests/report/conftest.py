"""Fixtures of the analysis tests, reused to build one result of every type."""

from tests.analysis.conftest import ab_log, rng, store
from tests.analysis.test_multiarm import multiarm

__all__ = ["ab_log", "multiarm", "rng", "store"]
