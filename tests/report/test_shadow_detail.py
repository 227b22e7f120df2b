"""The shadow detail of a regressor and of a many-class classifier, against pandas.

In-memory logs (:func:`arbiter.events.views.connect_tables`): a regressor's directions are
"which model predicted higher" with who was closer to the label; a classifier with more
classes than :data:`MAX_CLASSES` sums the rest as ``(other)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from arbiter.analysis.shadow_detail import MAX_CLASSES, MAX_DIRECTIONS, OTHER, shadow_detail
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables
from arbiter.report.shadow import recommend, shadow_view

N = 600


def _log(champion: np.ndarray, challenger: np.ndarray, labels: np.ndarray, numeric: bool) -> tuple:
    rows = []
    for role, values in (("served", champion), ("shadow", challenger)):
        for i, v in enumerate(values):
            rows.append({
                "request_id": f"r{i}", "row_index": 0, "ts": 1_700_000_000_000_000 + i,
                "model": "m", "experiment": "m-shadow", "strategy": "shadow",
                "arm": "champion", "role": role, "forced": False,
                "prediction": repr(float(v)) if numeric else str(v),
                "prediction_num": float(v) if numeric else None, "latency_ms": 1.0,
            })  # fmt: skip
    predictions = pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)
    labelled = [i for i in range(N) if i % 3]
    feedback = pa.Table.from_pylist(
        [{"request_id": f"r{i}", "row_index": 0, "ts": 1_800_000_000_000_000,
          "label": repr(float(labels[i])) if numeric else str(labels[i]),
          "label_num": float(labels[i]) if numeric else None} for i in labelled],
        schema=FEEDBACK_SCHEMA,
    )  # fmt: skip
    return connect_tables(predictions, feedback), labelled


def test_a_regressors_directions_are_higher_and_lower_with_who_was_closer() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 2, N)
    a, b = y + rng.normal(0, 1, N), y + rng.normal(0.3, 0.5, N)
    con, labelled = _log(a, b, y, numeric=True)
    detail = shadow_detail(con, "m", "m-shadow", "regression").to_dict()
    frame = pd.DataFrame({"a": a, "b": b, "y": y, "labelled": np.isin(np.arange(N), labelled)})
    for name, mask in (("lower", frame.b > frame.a), ("higher", frame.b < frame.a)):
        g = frame[mask]
        lab = g[g.labelled]
        row = next(d for d in detail["disagreements"] if d["champion"] == name)
        assert row["challenger"] == ("higher" if name == "lower" else "lower")
        assert row["count"] == len(g) and row["rate"] == pytest.approx(len(g) / N)
        assert row["labelled"] == len(lab)
        assert row["champion_right"] == int(((lab.a - lab.y).abs() < (lab.b - lab.y).abs()).sum())
        assert row["challenger_right"] == int(((lab.b - lab.y).abs() < (lab.a - lab.y).abs()).sum())
    dist = detail["distributions"]
    assert dist["champion"]["values"] == "prediction" and dist["champion"]["classes"] == []
    assert list(dist["challenger"]["quantiles"].values()) == pytest.approx(
        np.quantile(b, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist()
    )
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    hist, _ = np.histogram(a, bins=10, range=(low, high))
    assert dist["champion"]["histogram"]["counts"] == hist.tolist()
    view = shadow_view(detail, {})
    assert view["values"] == "prediction" and len(view["value_rows"]) == 2


def test_many_classes_sum_the_tail_as_other() -> None:
    rng = np.random.default_rng(5)
    classes = np.array([f"c{k:02d}" for k in range(20)])
    y = rng.choice(classes, N)
    a = np.where(rng.random(N) < 0.6, y, rng.choice(classes, N))
    b = np.where(rng.random(N) < 0.7, y, rng.choice(classes, N))
    con, _ = _log(a, b, y, numeric=False)
    detail = shadow_detail(con, "m", "m-shadow", "classification")
    counts = pd.Series(a).value_counts()
    champion = detail.distributions["champion"].classes
    assert len(champion) == MAX_CLASSES + 1 and champion[-1].value == OTHER
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(c.value, c.count) for c in champion[:-1]] == ranked[:MAX_CLASSES]
    assert champion[-1].count == sum(n for _, n in ranked[MAX_CLASSES:])
    assert sum(c.share for c in champion) == pytest.approx(1.0)
    off = pd.DataFrame({"a": a, "b": b})
    off = off[off.a != off.b]
    assert len(detail.disagreements) == MAX_DIRECTIONS + 1
    assert detail.disagreements[-1].champion == OTHER
    assert detail.disagreeing_rows == len(off)


def test_the_recommendation_says_what_to_do_and_why() -> None:
    rec = recommend("continue", [], remaining=1200, sample_unit="rows")
    assert rec.line == (
        "Recommendation: continue the shadow test: the evidence is not conclusive yet "
        "(about 1,200 more labelled rows per arm)."
    )
    held = [{"name": "primary", "met": True, "detail": "p = 0.001", "threshold": 0.05}]
    rec = recommend("promote", held, versions={"challenger": ["7"]})
    assert rec.line == (
        "Recommendation: promote the challenger (v7): every criterion holds (primary)."
    )
    unmet = [
        {"name": "discrepancy_rate", "met": False, "observed": 0.41, "threshold": "< 0.3",
         "detail": "share of paired rows where the two models disagree"},
    ]  # fmt: skip
    rec = recommend("keep_champion", unmet, versions={"champion": ["3"]})
    assert rec.to_dict()["line"] == (
        "Recommendation: keep the champion (v3): discrepancy_rate is 0.41, needs < 0.3 "
        "(share of paired rows where the two models disagree)."
    )
