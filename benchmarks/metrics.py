"""Time of the metric engine on 10 M outcome events + 10 M predictions, 5 metrics.

Writes synthetic Parquet segments into a temporary home (pyarrow, no gateway): the A/B
prediction log of ``benchmarks/synthetic_log.py`` (10 M served rows, ~2 M users, sticky 50/50) and
10 M outcome events of those users (purchases with a value, sessions, chargebacks; a share
before each user's exposure, which only CUPED reads). Then, in this process, over DuckDB views
of the segments (``EventStore.connect``):

1. ``analyze_metrics`` for 5 metrics (conversion ``any``, revenue ``sum`` in a 7-day window,
   sessions ``count``, revenue per session ``ratio``, chargebacks ``count``), every test of
   every metric — timed, without and with CUPED;
2. the same with the 12-look difference-over-time series the HTML report plots.

Usage::

    .venv/bin/python benchmarks/metrics.py                      # 10 M + 10 M
    .venv/bin/python benchmarks/metrics.py --events 1000000     # quick run
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from synthetic_log import SPAN_US, T0_US, generate  # benchmarks/synthetic_log.py, beside this

from arbiter.analysis.metrics import analyze_metrics
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.events.query import Scope
from arbiter.events.schema import OUTCOMES_SCHEMA
from arbiter.events.segments import write_segment

METRICS = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "revenue": {"event": "purchase", "aggregate": "sum", "window": "7d"},
    "sessions": {"event": "session", "aggregate": "count"},
    "revenue_per_session": {"ratio": ["revenue", "sessions"]},
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
}


def write_outcomes(store: EventStore, events: int, users: int, segments: int) -> None:
    """``events`` outcome rows of ``users`` users in ``segments`` files."""
    rng = np.random.default_rng(11)
    per_segment = -(-events // segments)
    for start in range(0, events, per_segment):
        n = min(per_segment, events - start)
        unit = rng.integers(0, users, n)
        kind = rng.choice(np.array(["session", "purchase", "chargeback"]), n, p=[0.7, 0.28, 0.02])
        value = np.where(kind == "purchase", np.round(rng.gamma(2.0, 30.0, n), 2), 1.0)
        # From a week before the experiment (CUPED's pre-period) to a week after it started.
        ts = T0_US - SPAN_US + rng.integers(0, 2 * SPAN_US, n)
        table = pa.table(
            {
                "unit_id": pc.binary_join_element_wise(
                    "user-", pc.cast(pa.array(unit), pa.string()), ""
                ),
                "event": pa.array(kind),
                "value": pa.array(value),
                "ts": pa.array(ts, OUTCOMES_SCHEMA.field("ts").type),
                "request_id": pa.nulls(n, pa.string()),
            },
            schema=OUTCOMES_SCHEMA,
        )
        write_segment(store.outcomes_dir, table)


def timed(store: EventStore, config: ModelConfig, over_time: int) -> tuple[float, float, object]:
    t, cpu = time.perf_counter(), time.process_time()
    with store.connect() as con:
        result = analyze_metrics(con, Scope("fraud", "fraud-ab"), config, over_time=over_time)
    return time.perf_counter() - t, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="predictions and outcomes")
    parser.add_argument("--segments", type=int, default=10)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-metrics-") as tmp:
        t = time.perf_counter()
        store = generate(Path(tmp), "ab", args.events, args.segments, 0.0)
        write_outcomes(store, args.events, max(args.events // 5, 1), args.segments)
        generate_s = time.perf_counter() - t
        on_disk = sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet"))
        for cuped, over_time in ((False, 0), (True, 0), (False, 12)):
            config = ModelConfig.model_validate(
                {"metrics": METRICS, "decision": {"cuped": cuped, "primary_metric": "conversion"}}
            )
            wall, cpu, result = timed(store, config, over_time)
            units = sum(result.data["conversion"].units.values())  # type: ignore[attr-defined]
            rows.append((cuped, over_time, wall, cpu, units, result))
            print(f"cuped={cuped} looks={over_time or 1}: {wall:.2f} s wall, {cpu:.2f} s CPU",
                  file=sys.stderr, flush=True)  # fmt: skip
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}, peak RSS {rss_gib:.1f} GiB, "
        f"generated {args.events:,} predictions + {args.events:,} outcomes "
        f"({on_disk / 2**20:.0f} MB Parquet) in {generate_s:.0f} s; command: "
        f"{' '.join([sys.executable.split('/')[-1], *sys.argv])}\n"
    )
    print("| metrics | CUPED | looks | units | analyze_metrics s (wall) | CPU s |")
    print("|---:|---|---:|---:|---:|---:|")
    for cuped, over_time, wall, cpu, units, _ in rows:
        print(
            f"| {len(METRICS)} | {'on' if cuped else 'off'} | {over_time or 1} | {units:,} "
            f"| {wall:.2f} | {cpu:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
