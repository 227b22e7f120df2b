"""Benchmark of the interleaving analysis on a synthetic log of many impressions.

Not collected by pytest (no ``test_`` prefix). Run::

    .venv/bin/python benchmarks/interleave_analysis.py --impressions 1000000

It writes Parquet files (a predictions log in the gateway's layout, ``/rank`` rows only, and
feedback) under a temporary directory, opens them in DuckDB under the view names the
analysis reads, and times :func:`arbiter.analysis.interleave.analyze_interleave`. Lists have
10 items from a 200-item catalogue; one user per 10 impressions; half the impressions get
a clicks row, 30 % of those an empty one. ``--format old`` writes the layout used before the
impression was cut to what credit reads (both complete rankings, on both rankers' rows), for
timing an older analysis against.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import orjson

from arbiter.events.views import connect as connect_views
from arbiter.gateway.ranking import encode_impression
from arbiter.routing.interleaving import TEAM_A, Interleaving, interleave

MODEL = "ranker"
EXPERIMENT = "ranker-interleave"
POOL = 5_000


def _old_impression(il: Interleaving, teams: list[str]) -> str:
    return orjson.dumps(
        {
            "method": il.method,
            "a_first": il.a_first,
            "k": len(il.items),
            "items": list(il.items),
            "teams": teams,
            "ranking_a": list(il.ranking_a),
            "ranking_b": list(il.ranking_b),
        }
    ).decode()


def write_log(
    root: Path, n: int, *, method: str = "team_draft", fmt: str = "new", seed: int = 0
) -> None:
    """Write ``predictions.parquet`` and ``feedback.parquet`` for ``n`` impressions."""
    rng = np.random.default_rng(seed)
    catalogue = [f"item-{i}" for i in range(200)]
    pool = []
    for p in range(POOL):
        a = [catalogue[i] for i in rng.choice(200, 10, replace=False)]
        b = [catalogue[i] for i in rng.choice(200, 10, replace=False)]
        il = interleave(a, b, rng, method=method, k=10)  # type: ignore[arg-type]
        teams = ["champion" if t == TEAM_A else "challenger" for t in il.teams]
        imp = encode_impression(il, teams, 10) if fmt == "new" else _old_impression(il, teams)
        n_clicks = int(rng.integers(1, 4))
        clicked = [il.items[i] for i in rng.choice(len(il.items), n_clicks, replace=False)]
        pool.append(
            (p, imp, orjson.dumps(a).decode(), orjson.dumps(b).decode(),
             orjson.dumps({"clicks": clicked}).decode())
        )  # fmt: skip
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE pool (p INTEGER, impression VARCHAR, pred_a VARCHAR, pred_b VARCHAR, "
        "clicks VARCHAR)"
    )
    con.executemany("INSERT INTO pool VALUES (?, ?, ?, ?, ?)", pool)
    both_rows = "TRUE" if fmt == "old" else "arm = 'champion'"
    con.execute(
        f"""
        COPY (
            SELECT printf('r%08d', j) AS request_id, 0::INTEGER AS row_index,
                   $model AS model, $exp AS experiment,
                   'interleave' AS strategy, arm, 'interleaved' AS role, 'rank' AS protocol,
                   false AS forced, printf('user-%d', hash(j) % {max(n // 10, 1)}) AS unit_id,
                   make_timestamp(1700000000000000 + j * 1000) AS ts, NULL::VARCHAR AS error,
                   CASE WHEN arm = 'champion' THEN pred_a ELSE pred_b END AS prediction,
                   CASE WHEN {both_rows} THEN impression END AS impression
            FROM range($n) r(j) JOIN pool ON pool.p = j % {POOL},
                 (VALUES ('champion'), ('challenger')) arms(arm)
        ) TO '{root / "predictions.parquet"}' (FORMAT parquet)
        """,
        {"model": MODEL, "exp": EXPERIMENT, "n": n},
    )
    con.execute(
        f"""
        COPY (
            SELECT printf('r%08d', j) AS request_id, 0 AS row_index,
                   make_timestamp(1700000000000000 + j * 1000 + 500) AS ts,
                   CASE WHEN hash(j * 7) % 10 < 3 THEN '{{"clicks":[]}}' ELSE clicks END AS label,
                   NULL::DOUBLE AS label_num
            FROM range($n) r(j) JOIN pool ON pool.p = j % {POOL}
            WHERE hash(j * 3) % 2 = 0
        ) TO '{root / "feedback.parquet"}' (FORMAT parquet)
        """,
        {"n": n},
    )
    con.close()


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the event-store views over the written files."""
    return connect_views([root / "predictions.parquet"], [root / "feedback.parquet"])


def main() -> None:
    """Write a log, then time the analysis on it (best of ``--repeat``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=1_000_000)
    parser.add_argument("--method", default="team_draft", choices=["team_draft", "balanced"])
    parser.add_argument("--format", default="new", choices=["new", "old"])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    from arbiter.analysis.interleave import analyze_interleave
    from arbiter.config import DecisionConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_log(root, args.impressions, method=args.method, fmt=args.format)
        size = sum(f.stat().st_size for f in root.iterdir())
        print(f"wrote {args.impressions:,} impressions in {time.perf_counter() - start:.1f} s; "
              f"{size / 1e6:.1f} MB of Parquet")  # fmt: skip
        best = float("inf")
        for _ in range(args.repeat):
            with connect(root) as con:
                start = time.perf_counter()
                a = analyze_interleave(con, MODEL, EXPERIMENT, policy=DecisionConfig())
                best = min(best, time.perf_counter() - start)
        print(f"analysis: {best:.2f} s (best of {args.repeat}); counts {a.counts}")


if __name__ == "__main__":
    main()
