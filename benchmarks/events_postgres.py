"""Sustained event ingest into the PostgreSQL event store from 2 worker processes.

Two phases, each with ``--workers`` processes (spawned, like uvicorn workers), each process
with its own :class:`~arbiter.events.postgres_store.PostgresEventStore`:

1. predictions: a producer thread per process appends realistic rows through ``EventWriter``
   (the gateway's path: buffered, flushed every 0.5 s as one COPY + INSERT ... ON CONFLICT)
   for ``--duration`` seconds; *committed/s* counts rows committed before the clock stopped,
   then ``close()`` commits the rest and every row is counted back in PostgreSQL;
2. feedback: ``--threads`` threads per process call ``write_feedback`` with one label each, as
   ``/feedback`` does; each call returns only once its row is committed (group commit), so
   *acknowledged/s* is durable events per second, with the per-call latency.

Usage::

    .venv/bin/python benchmarks/events_postgres.py --url postgresql://127.0.0.1/test \
        --duration 10 --out docs/benchmarks_events.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from arbiter.events import EventWriter
from arbiter.events.postgres_store import PostgresEventStore

_FEATURES = [
    json.dumps({"amount": 12.5 + i, "country": "DE", "age": 30 + i % 50, "merchant": f"m{i % 97}"})
    for i in range(1024)
]
_PROBS = '{"0": 0.82, "1": 0.18}'


def _predictions(url: str, seed: int, duration: float, batch: int, rate: float, out: Any) -> None:
    """One worker process: append for ``duration`` s, close, report through ``out``.

    ``rate`` > 0 paces the producer at that many rows/s (a gateway worker's offered load);
    0 appends as fast as one thread can.
    """
    store = PostgresEventStore(url)
    flushes: list[float] = []
    writer = EventWriter(
        store, flush_interval=0.5, on_flush=lambda rows, s: flushes.append(s)
    ).start()
    stop = threading.Event()
    rows = range(batch)

    def produce() -> None:
        i = 0
        start = time.perf_counter()
        while not stop.is_set():
            if rate > 0 and i * batch >= (time.perf_counter() - start) * rate:
                time.sleep(0.001)
                continue
            if batch == 1:
                writer.append_prediction(
                    request_id=f"{seed}-{i}", row_index=0, model="fraud", experiment="fraud-ab",
                    strategy="ab", unit_id=f"user-{i % 5000}", unit_random=False,
                    arm="champion", role="served", alias="champion", version="7",
                    prediction="0", prediction_num=0.0, score=0.18, confidence=0.82,
                    probabilities=_PROBS, latency_ms=1.7, features=_FEATURES[i & 1023],
                    protocol="arbiter", forced=False,
                )  # fmt: skip
            else:
                writer.append_predictions(
                    {
                        "request_id": f"{seed}-{i}", "row_index": rows, "model": "fraud",
                        "experiment": "fraud-ab", "strategy": "ab",
                        "unit_id": f"user-{i % 5000}", "unit_random": False, "arm": "champion",
                        "role": "served", "alias": "champion", "version": "7",
                        "prediction": "0", "prediction_num": 0.0, "score": 0.18,
                        "confidence": 0.82, "probabilities": _PROBS, "latency_ms": 1.7,
                        "features": _FEATURES[:batch], "protocol": "arbiter", "forced": False,
                    }
                )  # fmt: skip
            i += 1

    producer = threading.Thread(target=produce)
    began = time.perf_counter()
    producer.start()
    time.sleep(duration)
    stop.set()
    producer.join()
    elapsed = time.perf_counter() - began
    at_stop = writer.stats()
    committed, backlog = at_stop.events_written, at_stop.buffered
    closing = time.perf_counter()
    writer.close()
    stats = writer.stats()
    store.close()
    out.put(
        {
            "appended": stats.events_appended,
            "committed_in_window": committed,
            "backlog": backlog,
            "written": stats.events_written,
            "dropped": stats.events_dropped,
            "elapsed": elapsed,
            "close_s": time.perf_counter() - closing,
            "flushes": flushes,
            "rows_per_flush": stats.events_written / max(1, stats.flushes),
        }
    )


def _feedback(url: str, seed: int, duration: float, threads: int, out: Any) -> None:
    """One worker process: ``threads`` callers of ``write_feedback`` for ``duration`` s."""
    store = PostgresEventStore(url, feedback_linger_s=0.002)
    store.write_feedback([{"request_id": "warm-up", "row_index": 0, "label": 1}])
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.perf_counter() + duration

    def call(t: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            store.write_feedback(
                [{"request_id": f"{seed}-{t}-{i}", "row_index": 0, "label": i % 2}]
            )
            latencies[t].append(time.perf_counter() - began)
            i += 1

    began = time.perf_counter()
    pool = [threading.Thread(target=call, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - began
    store.close()
    flat = [x for part in latencies for x in part]
    out.put({"acknowledged": len(flat), "elapsed": elapsed, "latencies": flat})


def _run(target: Any, url: str, workers: int, duration: float, *args: Any) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(url, seed, duration, *args, out))
        for seed in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=duration + 600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed (exit code {p.exitcode})")
    return results


def _count(admin: str, schema: str, table: str) -> int:
    with psycopg.connect(admin) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
    return int(row[0]) if row else 0


def _ms(values: list[float], q: float) -> str:
    return f"{np.quantile(values, q) * 1000:.0f} ms" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1, help="rows per append (1: row API)")
    parser.add_argument("--threads", type=int, default=32, help="feedback callers per worker")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered rows/s in total (0: as fast as possible)"
    )
    parser.add_argument("--out", help="append a markdown section to this file")
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
    load = os.getloadavg()[0]
    try:
        preds = _run(
            _predictions, url, args.workers, args.duration, args.batch, args.rate / args.workers
        )
        stored = _count(args.url, schema, "predictions")
        feedback = _run(_feedback, url, args.workers, args.duration, args.threads)
        labels = _count(args.url, schema, "feedback")
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    appended = sum(r["appended"] for r in preds)
    window = max(r["elapsed"] for r in preds)
    committed = sum(r["committed_in_window"] for r in preds)
    flushes = [s for r in preds for s in r["flushes"]]
    acked = sum(r["acknowledged"] for r in feedback)
    fb_window = max(r["elapsed"] for r in feedback)
    lat = [x for r in feedback for x in r["latencies"]]
    dropped = sum(r["dropped"] for r in preds)
    backlog = sum(r["backlog"] for r in preds)
    # Until the last row is committed: the window plus the slowest worker's close().
    drain = max(r["close_s"] for r in preds)
    summary = {
        "appended_per_s": appended / window,
        "committed_per_s": committed / window,
        "drain_s": drain,
        "end_to_end_per_s": stored / (window + drain),
        "stored_equals_appended": stored == appended - dropped,
        "stored": stored,
        "backlog_at_stop": backlog,
        "flush_p50_ms": float(np.quantile(flushes, 0.5) * 1000) if flushes else None,
        "feedback_acknowledged_per_s": acked / fb_window,
        "feedback_stored": labels,
        "feedback_p50_ms": float(np.quantile(lat, 0.5) * 1000),
        "feedback_p99_ms": float(np.quantile(lat, 0.99) * 1000),
    }
    print(json.dumps(summary, indent=2))
    if not args.out:
        return
    with psycopg.connect(args.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    api = "append_prediction" if args.batch == 1 else f"append_predictions ({args.batch} rows)"
    lines = [
        "",
        "## PostgreSQL event store: ingest from 2 worker processes",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d}",
        f"- Machine: {os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}, PostgreSQL {version[0] if version else '?'} on the same "
        "host (127.0.0.1, default settings, `synchronous_commit = on`)",
        f"- Command: `.venv/bin/python benchmarks/events_postgres.py --duration {args.duration:g}"
        f"{'' if args.batch == 1 else f' --batch {args.batch}'}"
        f"{f' --rate {args.rate:g}' if args.rate else ''} --out docs/benchmarks_events.md`",
        f"- Load average before the run: {load:.1f} (other jobs shared the machine)",
        f"- Predictions: {args.workers} processes, one producer thread each appending through "
        f"`EventWriter` ({api}; flush every 0.5 s = one COPY into the daily partition and one "
        "commit; staging + `INSERT ... ON CONFLICT` only for a retry); *committed in window* "
        "counts rows "
        "committed before the clock stopped (a flush in flight is not), *all committed* is every "
        "appended row over the window plus the time `close()` took to commit the rest; all "
        "rows were then counted back in PostgreSQL.",
        f"- Feedback: {args.workers} processes x {args.threads} threads calling `write_feedback` "
        "with one label each; a call returns only after its commit (group commit, linger 2 ms), "
        "so every acknowledged label is durable.",
        "",
        "| phase | workers | appended/s | committed in window /s | all committed /s "
        "| flush p50 | flush p99 | latency p50 | latency p99 | stored = appended |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| predictions | {args.workers} | {appended / window:,.0f} | {committed / window:,.0f} "
        f"| {stored / (window + drain):,.0f} "
        f"| {_ms(flushes, 0.5)} | {_ms(flushes, 0.99)} | - | - "
        f"| {'yes' if stored == appended - dropped else 'NO'} ({stored:,}) |",
        f"| feedback | {args.workers} x {args.threads} threads | - | {acked / fb_window:,.0f} "
        f"| {acked / fb_window:,.0f} "
        f"| - | - | {_ms(lat, 0.5)} | {_ms(lat, 0.99)} "
        f"| {'yes' if labels == acked + args.workers else 'NO'} ({labels:,}) |",
        "",
    ]
    with open(args.out, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    main()
