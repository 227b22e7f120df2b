"""Synthetic interleaving logs: impressions and clicks in the event log's own schema.

Rows are built exactly as the gateway logs them (:func:`arbiter.prediction_log.prediction_columns`
and :func:`arbiter.gateway.ranking.encode_impression`; clicks through
:func:`arbiter.events.feedback.feedback_columns`) and loaded into an in-memory DuckDB under the
view names the analysis reads, so hundreds of simulated experiments run in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from arbiter.events.feedback import feedback_columns
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables
from arbiter.gateway.ranking import encode_impression
from arbiter.prediction_log import RequestContext, prediction_columns
from arbiter.routing.interleaving import TEAM_A, Interleaving, credit, interleave

MODEL = "ranker"
EXPERIMENT = "ranker-interleave"
ITEMS = tuple(f"item-{i}" for i in range(40))

# A user's clicks: (interleaving, user's taste vector, rng) -> clicked item ids.
ClickModel = Callable[[Interleaving, np.ndarray, np.random.Generator], list[str]]


@dataclass
class Log:
    """Columns of the predictions and feedback tables, appended impression by impression."""

    predictions: dict[str, list[object]]
    feedback: dict[str, list[object]]

    @classmethod
    def empty(cls) -> Log:
        return cls(
            {n: [] for n in PREDICTIONS_SCHEMA.names}, {n: [] for n in FEEDBACK_SCHEMA.names}
        )

    def add(
        self,
        request_id: str,
        unit_id: str | None,
        ts_us: int,
        il: Interleaving,
        clicks: Sequence[str] | None,
        *,
        challenger_error: str | None = None,
    ) -> None:
        ctx = RequestContext(
            request_id, ts_us, MODEL, EXPERIMENT, "interleave", unit_id, unit_id is None,
            "champion", "rank",
        )  # fmt: skip
        teams = ["champion" if t == TEAM_A else "challenger" for t in il.teams]
        impression = None if challenger_error else encode_impression(il, teams, len(il.items))
        rows = [("champion", "interleaved" if impression else "served", il.ranking_a, None)]
        rows.append(("challenger", "interleaved", il.ranking_b, challenger_error))
        for arm, role, ranking, error in rows:
            cols = prediction_columns(
                dataclasses.replace(ctx, arm=arm),
                role=role,
                alias=arm,
                version="1" if arm == "champion" else "2",
                features_json=['{"topic": 0}'],
                predictions=None if error else [json.dumps(list(ranking))],
                latency_ms=1.0,
                error=error,
                impression=impression,
            )
            for name, values in cols.items():
                self.predictions[name].extend(values)
        if clicks is not None:
            self.click(request_id, clicks, ts_us)

    def click(self, request_id: str, clicks: Sequence[str], ts_us: int) -> None:
        """One clicks row, validated and encoded as ``/feedback`` stores it."""
        fb = feedback_columns(
            [{"request_id": request_id, "row_index": 0, "clicks": list(clicks), "ts": ts_us}]
        )
        for name, values in fb.items():
            self.feedback[name].extend(values)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the views of :mod:`arbiter.events.query`."""
        predictions = pa.Table.from_pydict(self.predictions, schema=PREDICTIONS_SCHEMA)
        feedback = pa.Table.from_pydict(self.feedback, schema=FEEDBACK_SCHEMA)
        return connect_tables(predictions, feedback)


def taste_clicks(il: Interleaving, taste: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Position-based clicks: examine rank r with (1 + r)^-0.8, click with the item's taste."""
    index = {item: i for i, item in enumerate(ITEMS)}
    p = (1.0 + np.arange(len(il.items))) ** -0.8 * taste[[index[i] for i in il.items]]
    hit = rng.random(len(il.items)) < p
    return [item for item, h in zip(il.items, hit, strict=True) if h]


def simulate(
    n_users: int,
    per_user: int,
    rng: np.random.Generator,
    *,
    ranker_a: Callable[[np.ndarray], Sequence[str]],
    ranker_b: Callable[[np.ndarray], Sequence[str]] | None,
    method: str = "team_draft",
    k: int = 10,
    clicks: ClickModel = taste_clicks,
) -> Log:
    """``n_users`` users with their own tastes, ``per_user`` impressions each, in random order.

    Rankers map a user's taste vector to a ranking (so they can see what the user likes, as a
    personalised ranker does, or ignore it). ``ranker_b=None`` makes B answer exactly A's list
    for every request: identical rankers, the A/A setting.
    """
    log = Log.empty()
    tastes = rng.beta(1.0, 3.0, size=(n_users, len(ITEMS)))
    order = rng.permutation(np.repeat(np.arange(n_users), per_user))
    for j, u in enumerate(order.tolist()):
        ranking_a = ranker_a(tastes[u])
        ranking_b = ranking_a if ranker_b is None else ranker_b(tastes[u])
        il = interleave(ranking_a, ranking_b, rng, method=method, k=k)  # type: ignore[arg-type]
        log.add(f"r{j}", f"user-{u}", 1_700_000_000_000_000 + j * 1000, il,
                clicks(il, tastes[u], rng))  # fmt: skip
    return log


def simulate_outcomes(
    n_users: int,
    per_user: int,
    rng: np.random.Generator,
    *,
    ranker_a: Callable[[np.ndarray], Sequence[str]],
    ranker_b: Callable[[np.ndarray], Sequence[str]] | None,
    method: str = "team_draft",
    k: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user ``(wins_a, wins_b, ties)`` of the same experiment as :func:`simulate`.

    The same merge, click model and credit, without the event log in between (that path is
    checked impression by impression by the analysis tests), so a Monte-Carlo of hundreds of
    A/A experiments stays cheap.
    """
    tastes = rng.beta(1.0, 3.0, size=(n_users, len(ITEMS)))
    counts = np.zeros((n_users, 3), dtype=np.int64)
    for u in rng.permutation(np.repeat(np.arange(n_users), per_user)).tolist():
        ranking_a = ranker_a(tastes[u])
        ranking_b = ranking_a if ranker_b is None else ranker_b(tastes[u])
        il = interleave(ranking_a, ranking_b, rng, method=method, k=k)  # type: ignore[arg-type]
        c = credit(il, taste_clicks(il, tastes[u], rng))
        if c.n_clicks:
            counts[u, 0 if c.outcome > 0 else 1 if c.outcome < 0 else 2] += 1
    return counts[:, 0], counts[:, 1], counts[:, 2]


def by_taste(noise: float, rng: np.random.Generator) -> Callable[[np.ndarray], list[str]]:
    """A ranker that orders items by the user's taste plus Gaussian noise of sd ``noise``."""

    def rank(taste: np.ndarray) -> list[str]:
        score = taste + rng.normal(0.0, noise, len(taste))
        return [ITEMS[i] for i in np.argsort(-score, kind="stable")[:20]]

    return rank


def fixed(order: Sequence[str]) -> Callable[[np.ndarray], list[str]]:
    """A ranker that ignores the user and always answers ``order``."""
    return lambda taste: list(order)
