"""Fixtures for the event store tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbiter.events import EventStore


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    """An empty store in a fresh home folder."""
    return EventStore(tmp_path / "home")
