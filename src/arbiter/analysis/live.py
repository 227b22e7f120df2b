"""What the dashboard shows live: recent traffic per arm, and a shadow test's paired answers.

The analyses of :mod:`arbiter.analysis.analyze` judge a whole experiment; an operator watching
a release also wants "what is happening now" (requests per second, error rate and latency
percentiles over the last minute) and, for a shadow test, how the two models' answers line up
(the champion × challenger matrix and each model's distribution of predictions). Both are SQL
over the named views with a :class:`~arbiter.events.query.Scope`, like every other aggregate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from arbiter.events.query import Scope

#: Most distinct predictions a shadow matrix shows; the rest fold into "other" (a regression
#: model's answers are numbers, binned instead).
MAX_CLASSES = 12


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def recent_traffic(
    con: duckdb.DuckDBPyConnection,
    model: str,
    *,
    window_s: float = 60.0,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Requests per second, error rate and latency p50/p99 per served arm over the last
    ``window_s`` seconds (served rows only: a shadow copy is not a request).

    Returns one dict per arm (``arm``, ``version``, ``requests``, ``rate_per_s``,
    ``error_rate``, ``latency_p50_ms``, ``latency_p99_ms``); empty when nothing was served in
    the window.
    """
    end = now or datetime.now(UTC)
    scope = Scope(model, start=end - timedelta(seconds=window_s), end=end)
    rows = _rows(
        con,
        f"""
        WITH per_request AS (
            SELECT arm, request_id, any_value(version) AS version,
                   any_value(latency_ms) AS latency_ms,
                   bool_or(error IS NOT NULL) AS failed
            FROM served WHERE {scope.where()}
            GROUP BY arm, request_id
        )
        SELECT arm, string_agg(DISTINCT version, ', ' ORDER BY version) AS version,
               count(*) AS requests,
               avg(failed::INT) AS error_rate,
               quantile_cont(latency_ms, 0.50) FILTER (WHERE NOT failed) AS latency_p50_ms,
               quantile_cont(latency_ms, 0.99) FILTER (WHERE NOT failed) AS latency_p99_ms
        FROM per_request GROUP BY arm ORDER BY arm
        """,
        scope.params,
    )
    for row in rows:
        row["rate_per_s"] = row["requests"] / window_s
    return rows


def shadow_pairs(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> dict[str, Any]:
    """The champion × challenger matrix of a shadow test on the rows both answered, and each
    model's distribution of predictions.

    Returns ``labels`` (the most frequent predictions, at most :data:`MAX_CLASSES`, then
    ``"other"``), ``matrix`` (rows: champion's answer, columns: challenger's), and
    ``distribution``: per side, the count of each label. Regression models (more distinct
    numeric answers than :data:`MAX_CLASSES`) are binned into deciles of both models' answers.
    """
    scope = Scope(model, experiment)
    pairs = f"""
        SELECT s.prediction AS champion, c.prediction AS challenger,
               s.prediction_num AS champion_num, c.prediction_num AS challenger_num
        FROM served s JOIN shadowed c USING (request_id, row_index)
        WHERE {scope.where("s")} AND c.experiment = $experiment
          AND s.error IS NULL AND c.error IS NULL
    """
    distinct = con.execute(
        f"SELECT count(DISTINCT champion), count(DISTINCT challenger), "
        f"count(champion_num), count(*) FROM ({pairs})",
        scope.params,
    ).fetchone()
    assert distinct is not None
    n_champion, n_challenger, numeric, total = distinct
    if total and numeric == total and max(n_champion, n_challenger) > MAX_CLASSES:
        bucket = "CAST(least(floor((x - lo) / nullif(hi - lo, 0) * 10), 9) AS INT)"
        rows = _rows(
            con,
            f"""
            WITH p AS ({pairs}),
                 r AS (SELECT least(min(champion_num), min(challenger_num)) AS lo,
                              greatest(max(champion_num), max(challenger_num)) AS hi FROM p)
            SELECT coalesce({bucket.replace("x", "champion_num")}, 0) AS a,
                   coalesce({bucket.replace("x", "challenger_num")}, 0) AS b,
                   any_value(lo) AS lo, any_value(hi) AS hi, count(*) AS n
            FROM p, r GROUP BY ALL
            """,
            scope.params,
        )
        lo = rows[0]["lo"] if rows else 0.0
        hi = rows[0]["hi"] if rows else 0.0
        width = (hi - lo) / 10 or 1.0
        labels = [f"{lo + i * width:.3g}–{lo + (i + 1) * width:.3g}" for i in range(10)]
        pairs_count = {(labels[r["a"]], labels[r["b"]]): r["n"] for r in rows}
    else:
        rows = _rows(
            con,
            f"SELECT champion AS a, challenger AS b, count(*) AS n FROM ({pairs}) GROUP BY ALL",
            scope.params,
        )
        totals: dict[str, int] = {}
        for r in rows:
            for key in ("a", "b"):
                totals[r[key]] = totals.get(r[key], 0) + r["n"]
        ranked = sorted(totals, key=lambda k: (-totals[k], k))
        kept = set(ranked[:MAX_CLASSES])
        labels = sorted(kept, key=_label_order) + (["other"] if len(ranked) > MAX_CLASSES else [])
        pairs_count = {}
        for r in rows:
            key = tuple(v if v in kept else "other" for v in (r["a"], r["b"]))
            pairs_count[key] = pairs_count.get(key, 0) + r["n"]
    matrix = [[pairs_count.get((a, b), 0) for b in labels] for a in labels]
    return {
        "labels": labels,
        "matrix": matrix,
        "distribution": {
            "champion": [sum(row) for row in matrix],
            "challenger": [sum(col) for col in zip(*matrix, strict=True)] if matrix else [],
        },
        "pairs": int(total),
    }


def _label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order first, then text, so classes 0, 1, 2 read as such."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


__all__ = ["MAX_CLASSES", "recent_traffic", "shadow_pairs"]
