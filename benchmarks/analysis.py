"""End-to-end time of ``analyze_experiment`` on a 10-million-event experiment.

Writes synthetic Parquet segments straight into a temporary home (pyarrow, no gateway): the
same columns the gateway logs, with short feature-JSON strings, sticky 50/50 unit assignment,
realistic latencies and labels for a share of the rows. Then, in this process:

1. connect (DuckDB views over the segments) and run ``analyze_experiment`` — timed;
2. render the self-contained HTML report — timed separately.

Scenarios: ``ab`` (10 M served rows) and ``shadow`` (5 M served + 5 M shadow rows, i.e.
10 M events, with the paired tests on every labelled pair).

Usage::

    .venv/bin/python benchmarks/analysis.py                    # both scenarios, 10 M events
    .venv/bin/python benchmarks/analysis.py --events 1000000   # quick run
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

from arbiter.analysis import analyze_experiment
from arbiter.config import DecisionConfig
from arbiter.events import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA, EventStore
from arbiter.events.segments import write_segment
from arbiter.report.html import write_html

T0_US = 1_795_996_800_000_000  # 2026-11-24 00:00 UTC
SPAN_US = 7 * 86_400 * 1_000_000  # a week of traffic


def _strings(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")


def _segment(
    rng: np.random.Generator,
    start: int,
    n: int,
    *,
    strategy: str,
    role: str,
    label_share: float,
    users: int,
) -> tuple[pa.Table, pa.Table | None]:
    """One segment of ``n`` requests numbered from ``start`` (and their labels if served)."""
    ids = np.arange(start, start + n, dtype=np.int64)
    # The same rng stream for both roles of a shadow experiment (seeded by start) so the
    # served and shadow rows share request ids, times, units and truth.
    base = np.random.default_rng(start)
    ts = T0_US + np.sort(base.integers(0, SPAN_US, n))
    unit = base.integers(0, users, n)
    y = (base.random(n) < 0.1).astype(np.int64)
    labelled = base.random(n) < label_share
    if strategy == "ab":
        # Sticky 50/50 assignment by unit (a stand-in for the gateway's hash).
        arm = np.where((unit * 2654435761) % 2 == 0, "champion", "challenger")
        challenger = arm == "challenger"
    else:
        arm = np.full(n, "champion")
        challenger = np.full(n, role == "shadow")
    accuracy = np.where(challenger, 0.93, 0.92)
    correct = rng.random(n) < accuracy
    pred = np.where(correct, y, 1 - y)
    score = np.clip(0.15 + 0.6 * pred + rng.normal(0, 0.12, n), 0.001, 0.999)
    latency = rng.gamma(2.0, np.where(challenger, 1.1, 1.0))
    error = rng.random(n) < 0.001
    amount = np.round(rng.gamma(2.0, 40.0, n), 2)
    features = pc.binary_join_element_wise(
        '{"amount": ',
        pc.cast(pa.array(amount), pa.string()),
        ', "hour": ',
        pc.cast(pa.array(rng.integers(0, 24, n)), pa.string()),
        ', "country": "DE"}',
        "",
    )
    alias = np.where(challenger, "challenger", "champion")
    pred_text = pc.cast(pa.array(pred), pa.string())
    table = pa.table(
        {
            "request_id": _strings("req-", ids),
            "row_index": pa.array(np.zeros(n, dtype=np.int32)),
            "ts": pa.array(ts, PREDICTIONS_SCHEMA.field("ts").type),
            "model": pa.array(np.full(n, "fraud")),
            "experiment": pa.array(np.full(n, f"fraud-{strategy}")),
            "strategy": pa.array(np.full(n, strategy)),
            "unit_id": _strings("user-", unit),
            "unit_random": pa.array(np.zeros(n, dtype=bool)),
            "arm": pa.array(arm),
            "role": pa.array(np.full(n, role)),
            "alias": pa.array(alias),
            "version": pa.array(np.where(challenger, "8", "7")),
            "prediction": pc.if_else(pa.array(error), pa.nulls(n, pa.string()), pred_text),
            "prediction_num": pa.array(
                np.where(error, np.nan, pred.astype(float)), from_pandas=True
            ),
            "score": pa.array(np.where(error, np.nan, score), from_pandas=True),
            "confidence": pa.array(
                np.where(error, np.nan, np.maximum(score, 1 - score)), from_pandas=True
            ),
            "probabilities": pa.nulls(n, pa.string()),
            "latency_ms": pa.array(latency),
            "error": pc.if_else(pa.array(error), "model raised", pa.nulls(n, pa.string())),
            "features": features,
            "protocol": pa.array(np.full(n, "arbiter")),
            "forced": pa.array(np.zeros(n, dtype=bool)),
            "impression": pa.nulls(n, pa.string()),  # interleaving only
        },
        schema=PREDICTIONS_SCHEMA,
    )
    if role != "served":
        return table, None
    keep = np.flatnonzero(labelled)
    feedback = pa.table(
        {
            "request_id": _strings("req-", ids[keep]),
            "row_index": pa.array(np.zeros(keep.size, dtype=np.int32)),
            "ts": pa.array(ts[keep] + 3_600_000_000, FEEDBACK_SCHEMA.field("ts").type),
            "label": pc.cast(pa.array(y[keep]), pa.string()),
            "label_num": pa.array(y[keep].astype(float)),
        },
        schema=FEEDBACK_SCHEMA,
    )
    return table, feedback


def generate(
    home: Path, strategy: str, events: int, segments: int, label_share: float
) -> EventStore:
    """Write ``events`` prediction rows in ``segments`` files (plus feedback) under ``home``."""
    store = EventStore(home)
    rng = np.random.default_rng(7)
    roles = ("served",) if strategy == "ab" else ("served", "shadow")
    requests = events // len(roles)
    per_segment = -(-requests // segments)
    users = max(requests // 5, 1)  # ~5 requests per user
    for start in range(0, requests, per_segment):
        n = min(per_segment, requests - start)
        for role in roles:
            table, feedback = _segment(
                rng, start, n, strategy=strategy, role=role, label_share=label_share, users=users
            )
            write_segment(store.predictions_dir, table)
            if feedback is not None:
                write_segment(store.feedback_dir, feedback)
    return store


def run(strategy: str, events: int, segments: int, label_share: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-analysis-") as tmp:
        t = time.perf_counter()
        store = generate(Path(tmp), strategy, events, segments, label_share)
        generate_s = time.perf_counter() - t
        on_disk = sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet"))
        policy = DecisionConfig(min_sample_per_arm=1000)
        # CPU time too: on a shared machine wall time includes waiting for other processes.
        t, cpu = time.perf_counter(), time.process_time()
        with store.connect() as con:
            analysis = analyze_experiment(con, "fraud", f"fraud-{strategy}", policy)
        analyze_s, analyze_cpu = time.perf_counter() - t, time.process_time() - cpu
        t = time.perf_counter()
        write_html([analysis], Path(tmp) / "report.html", model="fraud")
        html_s = time.perf_counter() - t
    return {
        "scenario": strategy,
        "events": events,
        "labelled": sum(a["labelled"] for a in analysis.arms.values()),  # type: ignore[misc]
        "parquet_mb": on_disk / 2**20,
        "generate_s": generate_s,
        "analyze_s": analyze_s,
        "analyze_cpu_s": analyze_cpu,
        "load": os.getloadavg()[0],
        "html_s": html_s,
        "decision": analysis.decision,
        "primary": analysis.primary["name"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument("--scenario", choices=("ab", "shadow", "both"), default="both")
    args = parser.parse_args(argv)
    scenarios = ("ab", "shadow") if args.scenario == "both" else (args.scenario,)
    rows = [run(s, args.events, args.segments, args.label_share) for s in scenarios]
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, peak RSS {rss_gib:.1f} GiB, command: "
        f"{' '.join([sys.executable.split('/')[-1], *sys.argv])}\n"
    )
    print("| scenario | events | labelled rows | Parquet MB | analyze_experiment s (wall) "
          "| analyze CPU s | HTML report s | load avg | decision | primary test |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['events']:,} | {r['labelled']:,} | {r['parquet_mb']:.0f} "
            f"| {r['analyze_s']:.2f} | {r['analyze_cpu_s']:.2f} | {r['html_s']:.2f} "
            f"| {r['load']:.1f} | {r['decision']} | {r['primary']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
