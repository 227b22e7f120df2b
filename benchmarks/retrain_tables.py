"""Retraining on a real table: ``retrain()`` on N rows × 30 mixed columns, an Optuna search.

Generates a seeded account-like table (default 1,000,000 rows): 20 numeric columns (5 with
5-20 % missing values), 9 categorical string columns (5 to 500 categories, 3 with gaps), one
free-text column (~10 % missing) and a timestamp, with a rare label (~5 % positives) that
depends on every kind of column. Then runs :func:`arbiter.retrain.retrain` on it into a
temporary MLflow registry: the built-in ``all`` space (linear, HistGradientBoosting, LightGBM,
XGBoost when installed), class weights on, time-ordered folds (``--time-column``), trials
scored on the most recent ``--search-rows`` rows (default 200,000) and pruned by Optuna's
``MedianPruner`` after a weak fold, and registers the best pipeline, refitted on every row,
with its signature and drift profile, as ``arbiter retrain`` does. ``--search-rows 0
--no-prune`` measures the search on every row, every fold.

Reports wall time and CPU time (all threads of this process) of table generation and of the
retrain, per-trial durations and families, peak RSS and the load average before and after
(the machine is shared: read wall times with the load next to them).

Usage (the full run, on a quiet machine)::

    .venv/bin/python benchmarks/retrain_tables.py --rows 1000000 --trials 20 \\
        --out /tmp/retrain-tables-1m.json

Reduced (what the CI machine can afford)::

    .venv/bin/python benchmarks/retrain_tables.py --rows 100000 --trials 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS_OK = [
    "thanks",
    "order",
    "delivery",
    "parcel",
    "arrived",
    "late",
    "address",
    "changed",
    "please",
    "update",
    "invoice",
]
WORDS_BAD = [
    "urgent",
    "wire",
    "transfer",
    "gift",
    "card",
    "code",
    "crypto",
    "refund",
    "now",
    "verify",
    "account",
]


def make_table(
    rows: int, *, numeric: int = 20, categorical: int = 9, text: int = 1, seed: int = 0
) -> tuple[Any, Any]:
    """``(features, labels)``: ``numeric + categorical + text`` feature columns + ``event_time``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    logit = np.zeros(rows)
    for i in range(numeric):
        values = rng.lognormal(0.0, 0.8, rows) if i % 2 else rng.normal(0.0, 1.0, rows)
        if i < 6:
            logit += (0.4 if i % 2 == 0 else -0.3) * (values - values.mean()) / values.std()
        if i % 4 == 0:  # five columns with gaps, 5 % to 20 %
            values = np.where(rng.random(rows) < 0.05 * (1 + i // 4 % 4), np.nan, values)
        cols[f"num_{i:02d}"] = values
    cardinalities = [5, 8, 12, 20, 30, 50, 100, 200, 500]
    for i in range(categorical):
        k = cardinalities[i % len(cardinalities)]
        p = rng.dirichlet(np.full(k, 0.7))
        codes = rng.choice(k, rows, p=p)
        risk = rng.normal(0.0, 0.6, k)
        logit += risk[codes] if i < 5 else 0.0
        labels = np.array([f"c{i}_{j}" for j in range(k)], dtype=object)[codes]
        if i % 3 == 0:
            labels = np.where(rng.random(rows) < 0.04, None, labels)
        cols[f"cat_{i:02d}"] = pd.array(labels, dtype="str")
    for i in range(text):
        bad = rng.random(rows) < 0.15
        n_words = rng.integers(3, 9, rows)
        vocab_ok = np.array(WORDS_OK, dtype=object)
        vocab_bad = np.array(WORDS_BAD, dtype=object)
        first = np.where(bad, rng.choice(vocab_bad, rows), rng.choice(vocab_ok, rows))
        rest = rng.choice(vocab_ok, (rows, 8))
        notes = [" ".join([first[r], *rest[r, : n_words[r] - 1]]) for r in range(rows)]
        values = np.where(rng.random(rows) < 0.10, None, np.array(notes, dtype=object))
        cols[f"text_{i:02d}"] = pd.array(values, dtype="str")
        logit += 1.2 * bad
    logit += rng.normal(0.0, 0.8, rows)
    labels = (logit > np.quantile(logit, 0.95)).astype(np.int64)
    start = np.datetime64("2026-01-01T00:00:00")
    cols["event_time"] = start + np.sort(rng.integers(0, 90 * 86_400, rows)).astype(
        "timedelta64[s]"
    )
    return pd.DataFrame(cols), labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--numeric", type=int, default=20)
    parser.add_argument("--categorical", type=int, default=9)
    parser.add_argument("--text", type=int, default=1)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--search", default="all")
    parser.add_argument("--no-time-column", action="store_true", help="shuffled folds instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--search-rows",
        type=int,
        default=200_000,
        help="score trials on at most this many rows, refit the best on all (0: every row)",
    )
    parser.add_argument("--no-prune", action="store_true", help="run every trial's folds")
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)

    from arbiter.registry import MLflowRegistry
    from arbiter.retrain import TrialSummary, retrain

    load_before = os.getloadavg()
    t, cpu = time.perf_counter(), time.process_time()
    x, y = make_table(
        args.rows, numeric=args.numeric, categorical=args.categorical, text=args.text,
        seed=args.seed,
    )  # fmt: skip
    generate_s, generate_cpu = time.perf_counter() - t, time.process_time() - cpu
    trials: list[dict[str, Any]] = []

    def on_trial(summary: TrialSummary) -> None:
        trials.append(
            {
                "number": summary.number,
                "model": summary.params.get("model"),
                "state": summary.state,
                "value": summary.value,
                "duration_s": round(summary.duration_s, 2),
            }
        )
        print(f"trial {summary.number}: {trials[-1]}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="arbiter-retrain-bench-") as tmp:
        registry = MLflowRegistry(
            f"sqlite:///{tmp}/mlflow.db", artifact_location=str(Path(tmp) / "artifacts")
        )
        t, cpu = time.perf_counter(), time.process_time()
        result = retrain(
            registry, "accounts", x, y, search=args.search, n_trials=args.trials, cv=args.cv,
            seed=args.seed, time_column=None if args.no_time_column else "event_time",
            on_trial=on_trial, search_rows=args.search_rows, prune=not args.no_prune,
        )  # fmt: skip
        retrain_s, retrain_cpu = time.perf_counter() - t, time.process_time() - cpu
    summary = {
        "rows": args.rows,
        "feature_columns": args.numeric + args.categorical + args.text,
        "numeric": args.numeric,
        "categorical": args.categorical,
        "text": args.text,
        "trials": args.trials,
        "cv": args.cv,
        "search": args.search,
        "time_ordered": not args.no_time_column,
        "positive_rate": float(y.mean()),
        "generate_s": round(generate_s, 2),
        "generate_cpu_s": round(generate_cpu, 2),
        "retrain_s": round(retrain_s, 2),
        "retrain_cpu_s": round(retrain_cpu, 2),
        "search_rows": args.search_rows,
        "n_search_rows": result.n_search_rows,
        "search_note": result.search_note,
        "prune": not args.no_prune,
        "n_pruned": result.n_pruned,
        "best_model": result.best_params.get("model"),
        "best_score": round(result.best_score, 4),
        "metric": result.metric,
        "n_rows_with_gaps": result.n_rows_with_gaps,
        "profile_logged": result.profile_logged,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
        "trial_log": trials,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    print(result.search_note, file=sys.stderr)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
