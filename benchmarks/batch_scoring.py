"""Throughput of `arbiter score` (DuckDB vs Spark local[2]) and of a shared Optuna search.

Builds a throwaway home with the demo's champion registered, writes ``--rows`` transactions
to Parquet, scores them with :func:`arbiter.scoring.score_file` and with
:func:`arbiter.scoring.spark.score_spark`, then runs the same retrain search with 1 and with
2 workers on one shared study (``--storage``: a PostgreSQL URL, default a journal file) and
reports trials per second. Prints one JSON object.

Usage::

    python benchmarks/batch_scoring.py --rows 1000000 --trials 8
    python benchmarks/batch_scoring.py --rows 100000 --skip-spark --storage postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def _home(root: Path) -> Any:
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_champion
    from arbiter.registry import registry_for_home

    registry = registry_for_home(root)
    train = make_transactions(4_000, seed=1)
    model = train_champion(train.features, train.labels)
    registry.log_sklearn_model("fraud", model, train.features.head(5), aliases=("champion",))
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--train-rows", type=int, default=5_000)
    parser.add_argument("--storage", default=None, help="study storage (default: journal file)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()

    from arbiter.demo.data import make_transactions
    from arbiter.retrain import retrain
    from arbiter.scoring import score_file

    out: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as tmp:
        root = Path(tmp)
        registry = _home(root / "home")
        source = root / "batch.parquet"
        make_transactions(args.rows, seed=9).features.to_parquet(source, index=False)

        duck = score_file(registry, "fraud", source, root / "scored.parquet")
        out["duckdb"] = {"seconds": round(duck.duration_s, 2), "rows_per_s": round(duck.rows_per_s)}
        if not args.skip_spark:
            from arbiter.scoring.spark import score_spark, spark_session

            started = time.perf_counter()
            spark = spark_session("local[2]")
            spark.sparkContext.setLogLevel("ERROR")
            start_s = time.perf_counter() - started
            result = score_spark(registry, "fraud", str(source), root / "scored-spark", spark=spark)
            out["spark"] = {
                "session_start_s": round(start_s, 2),
                "seconds": round(result.duration_s, 2),
                "rows_per_s": round(result.rows_per_s),
            }
            spark.stop()

        if not args.skip_search:
            train = make_transactions(args.train_rows, seed=3)
            for workers in (1, 2):
                storage = args.storage or str(root / f"study-{workers}.log")
                started = time.perf_counter()
                result = retrain(
                    registry, "fraud", train.features, train.labels, search="sklearn",
                    n_trials=args.trials, cv=3, seed=0, storage=storage,
                    study_name=f"bench-{workers}-{time.time_ns()}", workers=workers,
                    reference_profile=False,
                )  # fmt: skip
                seconds = time.perf_counter() - started
                out[f"search_{workers}_workers"] = {
                    "trials": result.n_trials,
                    "seconds": round(seconds, 2),
                    "trials_per_min": round(60 * result.n_trials / seconds, 1),
                }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
