"""Bytes on disk per million predictions in the Parquet event log, before and after compaction.

Rows look like the gateway's: a uuid4 request id, the demo's fraud features as JSON (8
numeric features), a user id from 50,000 users, an A/B arm, the probability map, latency and
version. They go through ``EventWriter`` in flushes of ``--flush-rows`` (a busy gateway's
segment size), then ``compact(min_age_s=0, grace_s=0)`` merges them into 128 MiB files.

Usage::

    .venv/bin/python benchmarks/event_storage.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from arbiter.demo.data import make_transactions
from arbiter.events import EventStore, EventWriter, count_events


def _bytes(store: EventStore) -> int:
    return sum(p.stat().st_size for p in store.segments("predictions"))


def measure(rows: int, flush_rows: int, seed: int = 0) -> dict[str, float]:
    """Write ``rows`` predictions; return the sizes and rates measured."""
    data = make_transactions(20_000, seed=seed)
    features = [json.dumps(r) for r in data.features.to_dict("records")]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp))
        writer = EventWriter(store, flush_interval=3600, max_batch=flush_rows, max_buffer=rows)
        started = time.perf_counter()
        for start in range(0, rows, flush_rows):
            n = min(flush_rows, rows - start)
            score = rng.random(n)
            arm = np.where(rng.random(n) < 0.5, "champion", "challenger")
            writer.append_predictions(
                {
                    "request_id": [uuid.uuid4().hex for _ in range(n)],
                    "row_index": 0,
                    "model": "fraud",
                    "experiment": "fraud-ab",
                    "strategy": "ab",
                    "unit_id": [f"user-{u:05d}" for u in rng.integers(0, 50_000, n)],
                    "unit_random": False,
                    "arm": arm.tolist(),
                    "role": "served",
                    "alias": arm.tolist(),
                    "version": np.where(arm == "champion", "7", "8").tolist(),
                    "prediction": (score > 0.9).astype(int).astype(str).tolist(),
                    "prediction_num": (score > 0.9).astype(float),
                    "score": score,
                    "confidence": np.maximum(score, 1 - score),
                    "probabilities": [
                        f'{{"0": {1 - s:.4f}, "1": {s:.4f}}}' for s in score.tolist()
                    ],
                    "latency_ms": rng.gamma(2.0, 1.5, n),
                    "features": [features[i % len(features)] for i in range(start, start + n)],
                    "protocol": "arbiter",
                    "forced": False,
                }
            )
            writer.flush()
        writer.close()
        write_s = time.perf_counter() - started
        segments_bytes = _bytes(store)
        files = len(store.segments("predictions"))
        started = time.perf_counter()
        store.compact(min_age_s=0, grace_s=0)
        compact_s = time.perf_counter() - started
        assert count_events(store) == rows
        return {
            "rows": rows,
            "segments": files,
            "segment_bytes": segments_bytes,
            "compacted_bytes": _bytes(store),
            "write_s": write_s,
            "compact_s": compact_s,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--flush-rows", type=int, default=20_000)
    args = parser.parse_args()
    m = measure(args.rows, args.flush_rows)
    per_million = 1e6 / m["rows"]
    print(
        f"{m['rows']:,} predictions in {m['segments']} segments: "
        f"{m['segment_bytes'] * per_million / 2**20:.1f} MiB per million as flushed, "
        f"{m['compacted_bytes'] * per_million / 2**20:.1f} MiB per million compacted "
        f"({m['write_s']:.1f} s to write, {m['compact_s']:.1f} s to compact)"
    )


if __name__ == "__main__":
    main()
