"""The ranking demo: two rankers over a synthetic catalogue, compared by interleaving.

1. A catalogue of items, each with a topic, a hidden quality (what users like) and a
   popularity that is only loosely tied to quality (:func:`make_catalogue`).
2. A query log: users with a favourite topic search mostly within it (:func:`make_query_log`).
3. Two rankers, registered in the home's MLflow registry as pyfunc models of one name
   (``ranker`` v1 = champion, ranks by popularity; v2 = challenger, ranks by quality). A
   ranker's ``predict`` answers, per input row (the query's features), an ordered list of item
   ids (:class:`CatalogueRanker`).
4. A position-based click model: a user examines rank ``r`` (0-based) with probability
   ``(1 + r) ** -0.8`` and clicks an examined item with probability given by its relevance
   (quality, discounted off topic) (:func:`simulate_clicks`). Users therefore prefer the
   challenger's items.
5. :func:`run_ranking_demo` configures ``strategy: interleave`` for ``ranker``, starts a real
   gateway, waits until it has both rankers loaded, sends the query log to
   ``/models/ranker/rank``, posts the simulated clicks to ``/feedback`` and analyses the
   experiment; while the (always-valid) test says ``continue`` it sends more queries, in
   rounds, up to a bound (:func:`arbiter.demo.traffic.send_until`), so a busy machine or an
   unlucky draw of the gateway's coins takes more queries rather than ending undecided.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from arbiter.home import Home

MODEL = "ranker"
EXPERIMENT = "ranker-interleave"
N_TOPICS = 8
N_SEGMENTS = 3
OFF_TOPIC_RELEVANCE = 0.15  # an off-topic item is this much as attractive as an on-topic one
EXAMINATION_DECAY = 0.8  # P(examine rank r) = (1 + r) ** -EXAMINATION_DECAY


@dataclass(frozen=True)
class Catalogue:
    """Items with a topic, a quality users respond to, and a popularity rankers may use."""

    item_ids: tuple[str, ...]
    topics: np.ndarray  # int, shape (n_items,)
    quality: np.ndarray  # in [0, 1]: how likely a user who looks at the item clicks it
    popularity: np.ndarray  # in [0, 1]: past clicks, only loosely tied to quality

    def relevance(self, topic: int) -> np.ndarray:
        """Click probability of each item for a query on ``topic``, once examined."""
        return self.quality * np.where(self.topics == topic, 1.0, OFF_TOPIC_RELEVANCE)


def make_catalogue(n_items: int = 240, *, seed: int = 0) -> Catalogue:
    """A synthetic catalogue of ``n_items`` items over :data:`N_TOPICS` topics."""
    rng = np.random.default_rng(seed)
    quality = rng.beta(2.0, 2.5, n_items)
    popularity = np.clip(0.3 * quality + 0.7 * rng.random(n_items), 0.0, 1.0)
    return Catalogue(
        item_ids=tuple(f"item-{i}" for i in range(n_items)),
        topics=rng.integers(0, N_TOPICS, n_items),
        quality=quality,
        popularity=popularity,
    )


def make_query_log(n_queries: int, *, n_users: int = 150, seed: int = 1) -> list[dict[str, Any]]:
    """Queries ``{"user_id", "features": {"topic", "segment"}}``, users in random order.

    Each user has a favourite topic and searches it 70 % of the time, so one user's
    impressions are correlated (which the clustered test accounts for).
    """
    rng = np.random.default_rng(seed)
    favourite = rng.integers(0, N_TOPICS, n_users)
    segment = rng.integers(0, N_SEGMENTS, n_users)
    users = rng.integers(0, n_users, n_queries)
    other = rng.integers(0, N_TOPICS, n_queries)
    on_favourite = rng.random(n_queries) < 0.7
    topics = np.where(on_favourite, favourite[users], other)
    return [
        {
            "user_id": f"user-{u}",
            "features": {"topic": int(t), "segment": int(segment[u])},
        }
        for u, t in zip(users.tolist(), topics.tolist(), strict=True)
    ]


class CatalogueRanker(PythonModel):
    """Ranks the catalogue for a query: topic match first, then a per-item score.

    ``predict`` takes a DataFrame with a ``topic`` column (other columns are context it
    ignores) and returns one list of ``depth`` item ids per row, best first.
    """

    def __init__(
        self, item_ids: Sequence[str], topics: np.ndarray, scores: np.ndarray, depth: int = 20
    ) -> None:
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.topics = np.asarray(topics)
        self.scores = np.asarray(scores, dtype=float)
        self.depth = depth

    # `pd.DataFrame` (as arbiter.testing): MLflow infers no schema from this hint (the
    # signature stays the registered one) and no longer warns about a missing hint.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[list[str]]:
        out = []
        for topic in np.asarray(model_input["topic"]).tolist():
            score = self.scores + (self.topics == topic)  # scores are in [0, 1]: topic first
            top = np.argsort(-score, kind="stable")[: self.depth]
            out.append(self.item_ids[top].tolist())
        return out


def popularity_ranker(catalogue: Catalogue, depth: int = 20) -> CatalogueRanker:
    """Ranker A (the champion): popular items first."""
    return CatalogueRanker(catalogue.item_ids, catalogue.topics, catalogue.popularity, depth)


def quality_ranker(catalogue: Catalogue, depth: int = 20) -> CatalogueRanker:
    """Ranker B (the challenger): the items users like first."""
    return CatalogueRanker(catalogue.item_ids, catalogue.topics, catalogue.quality, depth)


def simulate_clicks(
    catalogue: Catalogue, items: Sequence[str], topic: int, rng: np.random.Generator
) -> list[str]:
    """Clicks of one user on a shown list (position-based model, module docstring)."""
    index = {item: i for i, item in enumerate(catalogue.item_ids)}
    relevance = catalogue.relevance(topic)
    ranks = np.arange(len(items))
    p = (1.0 + ranks) ** -EXAMINATION_DECAY * relevance[[index[i] for i in items]]
    return [item for item, hit in zip(items, rng.random(len(items)) < p, strict=True) if hit]


def example_frame() -> Any:
    """A few query rows: the input example (and signature) the rankers are logged with."""
    import pandas as pd

    return pd.DataFrame(
        {"topic": np.arange(4, dtype=np.int64), "segment": np.zeros(4, dtype=np.int64)}
    )


def register_rankers(home: Home, catalogue: Catalogue) -> dict[str, str]:
    """Log both rankers as versions of :data:`MODEL`; returns ``{alias: version}``."""
    from arbiter.registry import registry_for_home

    registry = registry_for_home(home.root)
    example = example_frame()
    return {
        "champion": registry.log_pyfunc_model(
            MODEL, popularity_ranker(catalogue), example, aliases=("champion",)
        ),
        "challenger": registry.log_pyfunc_model(
            MODEL, quality_ranker(catalogue), example, aliases=("challenger",)
        ),
    }


def configure_interleave(
    home: Home, *, method: str = "team_draft", length: int = 10, min_sample: int = 200
) -> Any:
    """Add (or replace) the ``ranker`` block in ``HOME/arbiter.yaml``; other models are kept.

    ``min_sample`` (impressions with clicks before deciding) is far below the A/B default:
    interleaving needs one to two orders of magnitude fewer observations.
    """
    from arbiter.config import HomeConfig, dump_config

    current = home.config()
    raw = current.model_dump(mode="json")
    raw.setdefault("events", {})["flush_interval_s"] = min(current.events.flush_interval_s, 0.2)
    raw["models"][MODEL] = {
        "experiment": {
            "name": EXPERIMENT,
            "strategy": "interleave",
            "unit_field": "user_id",
            "interleave": {"method": method, "length": length},
        },
        "decision": {"min_sample_per_arm": min_sample},
    }
    config = HomeConfig.model_validate(raw)
    home.config_path.write_text(dump_config(config), encoding="utf-8")
    return config


async def send_queries(
    url: str,
    queries: Sequence[Mapping[str, Any]],
    catalogue: Catalogue,
    *,
    seed: int = 3,
    concurrency: int = 8,
    click_batch: int = 200,
    advance: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """POST each query to ``/rank``, simulate the user's clicks, POST them to ``/feedback``."""
    from arbiter.demo.traffic import async_client, post

    rng = np.random.default_rng(seed)
    semaphore = asyncio.Semaphore(concurrency)
    pending: list[dict[str, Any]] = []
    counts = {"impressions": 0, "clicks": 0, "errors": 0, "stored": 0}

    async with async_client(url) as client:

        async def flush() -> None:
            nonlocal pending
            batch, pending = pending, []
            if batch:
                response = await post(client, "/feedback", {"feedback": batch})
                response.raise_for_status()
                counts["stored"] += response.json()["stored"]

        async def one(query: Mapping[str, Any]) -> None:
            async with semaphore:
                response = await post(
                    client,
                    f"/models/{MODEL}/rank",
                    {"user_id": query["user_id"], "features": query["features"]},
                )
            advance(1)
            if response.status_code != 200:
                counts["errors"] += 1
                return
            body = response.json()
            clicks = simulate_clicks(catalogue, body["items"], query["features"]["topic"], rng)
            counts["impressions"] += 1
            counts["clicks"] += len(clicks)
            pending.append({"request_id": body["request_id"], "clicks": clicks})
            if len(pending) >= click_batch:
                await flush()

        await asyncio.gather(*(one(q) for q in queries))
        await flush()
    return counts


def _wait_for_log(store: Any, impressions: int, feedback: int, timeout_s: float = 60.0) -> None:
    """Wait until the gateway's batched writes hold every impression and feedback row sent."""
    from arbiter.demo.traffic import wait_until

    sql = """SELECT (SELECT count(*) FROM predictions WHERE model = $model),
                    (SELECT count(*) FROM feedback WHERE request_id IN
                        (SELECT request_id FROM predictions WHERE model = $model))"""

    def flushed() -> bool:
        with store.connect() as con:
            row = con.execute(sql, {"model": MODEL}).fetchone()
        return row is not None and row[0] >= impressions and row[1] >= feedback

    wait_until(flushed, timeout_s=timeout_s, what=f"{impressions} impressions in the event log")


def run_ranking_demo(
    home: Home,
    console: Any = None,
    *,
    n_queries: int = 1_500,
    seed: int = 7,
    render: bool = True,
    max_queries: int | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Register two rankers, interleave them behind a real gateway, and analyse the clicks.

    Parameters
    ----------
    home : Home
        The demo home (its registry receives model ``ranker``; its config gains a ``ranker``
        block with ``strategy: interleave``; other models' blocks are kept).
    console : rich.console.Console, optional
        Where progress and the analysis are printed (default: a new console).
    n_queries : int, default 1500
        Queries sent to ``/models/ranker/rank`` before the first analysis; rounds of a third as
        many follow while it says ``continue``.
    max_queries : int, optional
        At most this many queries in all (default: four times ``n_queries``).
    timeout_s : float, default 600
        At most this long sending further rounds.
    seed : int, default 7
        Seeds the catalogue, the query log and the click model.
    render : bool, default True
        Print the analysis (the main demo prints it later, with the others).

    Returns
    -------
    dict
        ``{"traffic": {...}, "analysis": {...}, "seconds": ...}``, plus ``"_analysis"`` (the
        analysis object, for printing or the HTML report; drop it before JSON output).
    """
    from rich.console import Console

    from arbiter.analysis.interleave import analyze_interleave
    from arbiter.demo.traffic import send_until, wait_for_arms_loaded
    from arbiter.events.location import open_event_store
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread

    console = console or Console()
    started = time.perf_counter()
    catalogue = make_catalogue(seed=seed)
    queries = make_query_log(n_queries, seed=seed + 1)
    with console.status("Registering the rankers in MLflow…"):
        versions = register_rankers(home, catalogue)
    config = configure_interleave(home)
    console.print(
        f"ranker v{versions['champion']} (champion, by popularity) vs "
        f"v{versions['challenger']} (challenger, by quality): team-draft interleaving"
    )
    store = open_event_store(home)
    more = make_query_log(max(0, (max_queries or 4 * n_queries) - n_queries), seed=seed + 11)
    traffic = {"impressions": 0, "clicks": 0, "errors": 0, "stored": 0}
    analysis: Any = None

    def one_round(start: int, n: int) -> dict[str, Any]:
        batch = queries if start == 0 else more[start - n_queries : start - n_queries + n]
        counts = asyncio.run(send_queries(server.url, batch, catalogue, seed=seed + 2 + start))
        for key, value in counts.items():
            traffic[key] += value
        return counts

    def decided() -> bool:
        nonlocal analysis
        _wait_for_log(store, traffic["impressions"], traffic["stored"])
        with store.connect() as con:
            analysis = analyze_interleave(con, MODEL, EXPERIMENT, model_config=config.models[MODEL])
        return analysis.decision != "continue"

    with (
        console.status(f"Sending {n_queries} queries to /rank and their clicks to /feedback…"),
        ServerThread(create_app(home, config=config)) as server,
    ):
        wait_for_arms_loaded(server.url, MODEL)
        rounds = send_until(
            one_round,
            decided,
            first_round=n_queries,
            round_size=max(1, n_queries // 3),
            max_requests=n_queries + len(more),
            timeout_s=timeout_s,
        )
    traffic["rounds"] = rounds.rounds
    if render:
        from arbiter.report.terminal import print_analysis

        print_analysis(console, analysis)
    return {
        "traffic": traffic,
        "analysis": analysis.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
        "_analysis": analysis,
    }


__all__ = [
    "EXPERIMENT",
    "MODEL",
    "Catalogue",
    "CatalogueRanker",
    "configure_interleave",
    "example_frame",
    "make_catalogue",
    "make_query_log",
    "popularity_ranker",
    "quality_ranker",
    "register_rankers",
    "run_ranking_demo",
    "send_queries",
    "simulate_clicks",
]
