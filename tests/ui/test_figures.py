"""Chart specifications for the strategies the demo's home does not run (bandit) and the
ones it does (interleaving): every chart has data and is strict JSON (no NaN) for Plotly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbiter.events import EventStore
from arbiter.ui import figures
from tests.report.test_render import _bandit, _interleave


def _strict_json(figs: dict[str, dict]) -> None:
    for fig in figs.values():
        json.dumps(fig, allow_nan=False)  # Plotly reads JSON: NaN must be null


def test_bandit_charts_allocation_over_time_and_p_best(tmp_path: Path) -> None:
    analysis = _bandit(EventStore(tmp_path))
    figs = figures.for_analysis(analysis)
    assert set(figs) == {"allocation", "p_best"}
    allocation = figs["allocation"]["data"]
    assert {t["name"] for t in allocation} == {"champion", "challenger"}
    assert all(t["stackgroup"] == "one" and t["x"] for t in allocation)
    bars = figs["p_best"]["data"][0]
    assert sum(bars["y"]) == pytest.approx(1.0)
    assert dict(zip(bars["x"], bars["y"], strict=True)) == analysis.p_best
    _strict_json(figs)


def test_interleaving_charts_wins_and_preference_over_time() -> None:
    analysis = _interleave()
    figs = figures.for_analysis(analysis)
    wins = figs["wins"]["data"][0]
    assert wins["y"] == [analysis.wins[k] for k in ("champion", "challenger", "ties")]
    preference = figs["preference"]["data"][0]
    assert len(preference["x"]) == len(analysis.cumulative["delta"]) > 0
    _strict_json(figs)
