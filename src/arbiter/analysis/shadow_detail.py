"""What a hand-built shadow report shows besides the tests, aggregated in DuckDB.

A shadow test compares two models on the same requests. Besides the paired tests of
:mod:`arbiter.analysis.analyze`, the people reading the report ask:

* what each model predicts: its class counts and shares (classifiers), the quantiles and a
  histogram of its score (P(positive class)) or of its prediction (regressors);
* which way the models disagree: the off-diagonal of the champion × challenger matrix, one
  row per direction (the challenger flags what the champion passes, and the reverse) with its
  share of the paired rows, and, on labelled rows, who was right;
* the mean request latency beside the percentiles (:class:`~arbiter.analysis.aggregate.ArmTraffic`
  has both).

Every number is a GROUP BY over the event-log views (``served``, ``shadowed``,
``latest_feedback``) narrowed by a :class:`~arbiter.events.query.Scope`; Python only arranges
the grouped rows. Distributions use each model's own successful rows (the challenger's
sampled ones), directions the paired rows (both models answered the same input row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb

from arbiter.events.exact_quantiles import sorted_quantiles, uses_sorted_quantiles
from arbiter.events.query import Scope

#: The classes listed per model; the rest are summed as ``(other)``.
MAX_CLASSES = 12
#: The disagreement directions listed; the rest are summed as ``(other)``.
MAX_DIRECTIONS = 12
#: Quantiles of the score (classifiers) or prediction (regressors) kept per model.
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Equal-width bins of the score / prediction histogram.
HISTOGRAM_BINS = 10
OTHER = "(other)"

# Champion = the served rows, challenger = the shadow rows: fixed fragments, values are
# bound $parameters (the scope's).
_COLUMNS = "request_id, row_index, prediction, prediction_num, score"
_SIDES_SQL = f"""
    SELECT 'champion' AS side, {_COLUMNS} FROM served WHERE {{where}} AND error IS NULL
    UNION ALL
    SELECT 'challenger' AS side, {_COLUMNS} FROM shadowed WHERE {{where}} AND error IS NULL
"""
_PAIRS_SQL = f"""
    SELECT s.prediction AS pred_a, c.prediction AS pred_b,
           s.prediction_num AS num_a, c.prediction_num AS num_b,
           f.label, f.label_num AS y_num
    FROM (SELECT {_COLUMNS} FROM served WHERE {{where}} AND error IS NULL) AS s
    JOIN (SELECT {_COLUMNS} FROM shadowed WHERE {{where}} AND error IS NULL) AS c
        USING (request_id, row_index)
    LEFT JOIN latest_feedback AS f USING (request_id, row_index)
"""


@dataclass(frozen=True, slots=True)
class ClassCount:
    """How often one model predicted one class."""

    value: str
    count: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "count": self.count, "share": self.share}


@dataclass(frozen=True, slots=True)
class PredictionDistribution:
    """One model's predictions over its successful rows.

    ``classes`` (classifiers): the :data:`MAX_CLASSES` most frequent predictions, most
    frequent first, then ``(other)``. ``values`` says what the quantiles and the histogram
    describe: ``"score"`` (P(positive class) of a binary classifier), ``"prediction"`` (a
    regressor's number) or None (nothing numeric to describe). ``histogram_edges`` has one
    more entry than ``histogram_counts``; both models share the edges.
    """

    side: str
    rows: int
    classes: tuple[ClassCount, ...]
    values: str | None
    mean: float
    quantiles: tuple[float, ...]
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "rows": self.rows,
            "classes": [c.to_dict() for c in self.classes],
            "values": self.values,
            "mean": self.mean,
            "quantiles": dict(zip((f"p{round(q * 100):02d}" for q in QUANTILES),
                                  self.quantiles, strict=True)),
            "histogram": {"edges": list(self.histogram_edges),
                          "counts": list(self.histogram_counts)},
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One direction of disagreement: the champion said ``champion``, the challenger
    ``challenger`` (regressors: ``lower``/``higher`` than the other model).

    ``rate`` is ``count`` over every paired row. Of the ``labelled`` ones, ``champion_right``
    and ``challenger_right`` count where that model matched the label (regressors: was
    strictly closer to it), ``neither_right`` the rest.
    """

    champion: str
    challenger: str
    count: int
    rate: float
    labelled: int
    champion_right: int
    challenger_right: int
    neither_right: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "count": self.count,
            "rate": self.rate,
            "labelled": self.labelled,
            "champion_right": self.champion_right,
            "challenger_right": self.challenger_right,
            "neither_right": self.neither_right,
        }


@dataclass(frozen=True, slots=True)
class ShadowDetail:
    """The distribution of each model's predictions and the directions of disagreement."""

    task: str
    paired_rows: int
    distributions: dict[str, PredictionDistribution]
    disagreements: tuple[Disagreement, ...]

    @property
    def disagreeing_rows(self) -> int:
        return sum(d.count for d in self.disagreements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "paired_rows": self.paired_rows,
            "disagreeing_rows": self.disagreeing_rows,
            "distributions": {s: d.to_dict() for s, d in self.distributions.items()},
            "disagreements": [d.to_dict() for d in self.disagreements],
        }


def shadow_detail(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    task: str,
    *,
    pairs: str | None = None,
) -> ShadowDetail:
    """The distributions and disagreement directions of one shadow experiment.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        What to describe.
    task : {"classification", "regression"}
        As :func:`arbiter.analysis.aggregate.detect_task` decided.
    pairs : str, optional
        A temporary table that already holds this experiment's pairs, with the columns of
        ``_PAIRS_SQL``, as its ``paired`` rows
        (:func:`arbiter.analysis.aggregate.aggregate_experiment` keeps one when asked): read
        instead of joining the pairs and labels again, the most expensive step of the
        description. Its name is interpolated into SQL: the caller's own name.
    """
    scope = Scope(model, experiment)
    where = scope.where()
    paired, disagreements = _disagreements(con, scope, where, task, pairs)
    return ShadowDetail(
        task=task,
        paired_rows=paired,
        distributions=_distributions(con, scope, where, task),
        disagreements=disagreements,
    )


def _distributions(
    con: duckdb.DuckDBPyConnection, scope: Scope, where: str, task: str
) -> dict[str, PredictionDistribution]:
    sides = _SIDES_SQL.format(where=where)
    # The numbers a distribution describes: a classifier's score, a regressor's prediction.
    column = "score" if task == "classification" else "prediction_num"
    # Spark: NULL here, the quantiles by sorting below (its exact percentile cannot spill).
    sorted_on_engine = uses_sorted_quantiles(con)
    quantiles = "NULL" if sorted_on_engine else f"quantile_cont({column}, $quantiles)"
    params = dict(scope.params)
    if not sorted_on_engine:
        params["quantiles"] = list(QUANTILES)
    summary = con.execute(
        f"""
        SELECT side, count(*), count({column}), avg({column}),
               {quantiles}, min({column}), max({column})
        FROM ({sides}) GROUP BY side
        """,
        params,
    ).fetchall()
    if sorted_on_engine:
        by_key = sorted_quantiles(con, sides, ("side",), column, QUANTILES, scope.params)
        summary = [(*r[:4], by_key.get((r[0],)), *r[5:]) for r in summary]
    by_side = {r[0]: r for r in summary}
    described = any(r[2] for r in summary)
    low = min((r[5] for r in summary if r[2]), default=0.0)
    high = max((r[6] for r in summary if r[2]), default=0.0)
    if task == "classification":
        low, high = 0.0, 1.0  # a probability: fixed edges read the same in every report
    edges = tuple(low + (high - low) * i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1))
    counts: dict[str, list[int]] = {s: [0] * HISTOGRAM_BINS for s in ("champion", "challenger")}
    if described and high > low:
        for side, bin_, n in con.execute(
            f"""
            SELECT side, least(floor(({column} - $low) / ($high - $low) * $bins),
                               $bins - 1)::INT AS bin, count(*)
            FROM ({sides}) WHERE {column} IS NOT NULL GROUP BY ALL
            """,
            {**scope.params, "low": low, "high": high, "bins": HISTOGRAM_BINS},
        ).fetchall():
            counts[side][int(bin_)] = int(n)
    classes: dict[str, list[ClassCount]] = {"champion": [], "challenger": []}
    if task == "classification":
        ranked = con.execute(
            f"""
            SELECT side, prediction, count(*) AS n,
                   row_number() OVER (PARTITION BY side ORDER BY count(*) DESC, prediction)
                       AS rank
            FROM ({sides}) GROUP BY side, prediction
            """,
            scope.params,
        ).fetchall()
        for side, value, n, rank in sorted(ranked, key=lambda r: (r[0], r[3])):
            total = by_side[side][1]
            if rank <= MAX_CLASSES:
                classes[side].append(ClassCount(str(value), int(n), int(n) / total))
            elif classes[side][-1].value == OTHER:
                rest = classes[side][-1].count + int(n)
                classes[side][-1] = ClassCount(OTHER, rest, rest / total)
            else:
                classes[side].append(ClassCount(OTHER, int(n), int(n) / total))
    out = {}
    for side in ("champion", "challenger"):
        row = by_side.get(side)
        rows, with_values = (int(row[1]), int(row[2])) if row else (0, 0)
        out[side] = PredictionDistribution(
            side=side,
            rows=rows,
            classes=tuple(classes[side]),
            values=("score" if task == "classification" else "prediction") if described else None,
            mean=float(row[3]) if row and with_values else math.nan,
            quantiles=tuple(float(q) for q in row[4])
            if row and with_values
            else tuple(math.nan for _ in QUANTILES),
            histogram_edges=edges if described else (),
            histogram_counts=tuple(counts[side]) if described else (),
        )
    return out


def _disagreements(
    con: duckdb.DuckDBPyConnection, scope: Scope, where: str, task: str, table: str | None
) -> tuple[int, tuple[Disagreement, ...]]:
    """The number of paired rows and the directions of disagreement, from one pass over the
    pairs (``table`` when given, else joined here): every cell of the champion × challenger
    matrix is counted (the diagonal gives the total), the off-diagonal ones are kept."""
    pairs = f"SELECT * FROM {table} WHERE paired" if table else _PAIRS_SQL.format(where=where)
    if task == "classification":
        sql = f"""
            SELECT pred_a, pred_b, pred_a IS DISTINCT FROM pred_b, count(*), count(label),
                   count(*) FILTER (WHERE label IS NOT NULL AND pred_a = label),
                   count(*) FILTER (WHERE label IS NOT NULL AND pred_b = label)
            FROM ({pairs})
            GROUP BY ALL ORDER BY count(*) DESC, pred_a, pred_b
        """
    else:
        # Regressors never agree exactly: which model predicted higher, and who was closer.
        sql = f"""
            SELECT CASE WHEN num_b > num_a THEN 'lower' ELSE 'higher' END,
                   CASE WHEN num_b > num_a THEN 'higher' ELSE 'lower' END,
                   num_a IS NOT NULL AND num_b IS NOT NULL AND num_a <> num_b,
                   count(*), count(y_num),
                   count(*) FILTER (WHERE abs(num_a - y_num) < abs(num_b - y_num)),
                   count(*) FILTER (WHERE abs(num_b - y_num) < abs(num_a - y_num))
            FROM ({pairs})
            GROUP BY ALL ORDER BY count(*) DESC
        """
    cells = con.execute(sql, None if table else scope.params).fetchall()
    total = sum(int(c[3]) for c in cells)
    rows = [(a, b, *rest) for a, b, differ, *rest in cells if differ]
    out: list[Disagreement] = []
    for i, (a, b, n, labelled, right_a, right_b) in enumerate(rows):
        if i >= MAX_DIRECTIONS:  # the long tail of a many-class model, summed
            last = out.pop() if out[-1].champion == OTHER else None
            base = last or Disagreement(OTHER, OTHER, 0, 0.0, 0, 0, 0, 0)
            n, labelled = base.count + n, base.labelled + labelled
            right_a, right_b = base.champion_right + right_a, base.challenger_right + right_b
            a = b = OTHER
        neither = int(labelled) - int(right_a) - int(right_b)
        out.append(
            Disagreement(str(a), str(b), int(n), int(n) / total if total else math.nan,
                         int(labelled), int(right_a), int(right_b), neither)
        )  # fmt: skip
    return total, tuple(out)


__all__ = [
    "HISTOGRAM_BINS",
    "MAX_CLASSES",
    "MAX_DIRECTIONS",
    "OTHER",
    "QUANTILES",
    "ClassCount",
    "Disagreement",
    "PredictionDistribution",
    "ShadowDetail",
    "shadow_detail",
]
