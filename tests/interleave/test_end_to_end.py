"""End to end: users who prefer ranker B's items, through /rank, /feedback and the analysis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from arbiter.analysis import analyze_model
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.demo.ranking import (
    configure_interleave,
    example_frame,
    make_query_log,
    quality_ranker,
    run_ranking_demo,
)
from arbiter.events import EventStore
from arbiter.home import Home

from .conftest import MODEL, RankingTemplate, ranker_config

Start = Callable[..., tuple[Any, Home]]

pytestmark = pytest.mark.integration


async def _traffic(
    url: str, queries: list[dict[str, Any]], prefers: Callable[[int], set[str]], seed: int
) -> int:
    """Each user clicks an item of B's top 10 with probability 0.5, any other with 0.1."""
    rng = np.random.default_rng(seed)
    clicks: list[dict[str, Any]] = []
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def one(q: dict[str, Any]) -> None:
            async with sem:
                r = await client.post(f"/models/{MODEL}/rank", json=q)
            r.raise_for_status()
            body = r.json()
            liked = prefers(q["features"]["topic"])
            p = np.array([0.5 if i in liked else 0.1 for i in body["items"]])
            hit = rng.random(len(p)) < p
            clicked = [i for i, h in zip(body["items"], hit, strict=True) if h]
            clicks.append({"request_id": body["request_id"], "clicks": clicked})

        await asyncio.gather(*(one(q) for q in queries))
        r = await client.post("/feedback", json={"feedback": clicks})
        r.raise_for_status()
        return int(r.json()["stored"])


@pytest.mark.parametrize("method", ["team_draft", "balanced"])
def test_users_preferring_b_make_b_win_significantly(
    rank_gateway: Start, ranking_template: RankingTemplate, method: str
) -> None:
    models = ranker_config(method, min_sample=100)
    # 300 clean calls meet a 5 % failure-rate limit, not the default 1 % (which needs ~450).
    models[MODEL]["decision"]["guardrails"] = {"max_error_rate": 0.05}
    server, home = rank_gateway(models)
    ranker_b = quality_ranker(ranking_template.catalogue)
    top_b: dict[int, set[str]] = {}

    def prefers(topic: int) -> set[str]:
        if topic not in top_b:
            frame = example_frame().iloc[[0]].assign(topic=topic)
            top_b[topic] = set(ranker_b.predict(None, frame)[0][:10])
        return top_b[topic]

    queries = make_query_log(300, n_users=60, seed=5)
    assert asyncio.run(_traffic(server.url, queries, prefers, seed=6)) == 300
    server.stop()
    config = home.config().models[MODEL]
    with EventStore(home.root).connect() as con:
        (analysis,) = analyze_model(con, MODEL, model_config=config)  # dispatch by strategy
    assert isinstance(analysis, InterleaveAnalysis)
    assert analysis.counts["impressions"] == 300 and analysis.methods == {method: 300}
    assert analysis.winner == "challenger" and analysis.decision == "promote"
    assert analysis.test.p_value < 0.05 and analysis.preference["ci_low"] > 0
    assert analysis.test.n_clusters <= 60


def test_ranking_demo_runs_end_to_end(tmp_path: Any) -> None:
    """The demo on a home that already serves another model: its block is kept."""
    from rich.console import Console

    home = Home.at(tmp_path / "demo", create=True)
    home.config_path.write_text(
        "models:\n  fraud:\n    experiment: {strategy: shadow}\n", encoding="utf-8"
    )
    console = Console(record=True, width=120)
    # 600 queries: the gateway draws each impression's coin from OS entropy, so the data differ
    # between runs; at 300 the always-valid test missed significance in 2 of 30 runs, at 600
    # in none of 20 (measured on 2026-11-24).
    # More rounds follow only while the test says "continue" (bounded).
    result = run_ranking_demo(home, console, n_queries=600)
    assert result["traffic"]["impressions"] >= 600 and result["traffic"]["errors"] == 0
    analysis = result["analysis"]
    assert analysis["winner"] == "challenger" and analysis["decision"] == "promote"
    assert "verdict: promote" in console.export_text()
    config = home.config()
    assert set(config.models) == {"fraud", MODEL}
    assert config.models["fraud"].experiment.strategy == "shadow"
    assert config.models[MODEL].experiment.strategy == "interleave"
    # Configuring again replaces the ranker block instead of duplicating anything.
    again = configure_interleave(home, method="balanced")
    assert again.models[MODEL].experiment.interleave.method == "balanced"
    assert set(again.models) == {"fraud", MODEL}
