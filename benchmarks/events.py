"""Sustained logging throughput of the embedded event store through ``EventWriter``.

Each configuration runs in a fresh interpreter (so peak RSS is its own): producers append
realistic prediction rows as fast as they can for ``--duration`` seconds while the background
thread flushes every 0.5 s, then the writer is closed and the rows are counted with DuckDB.

Usage::

    .venv/bin/python benchmarks/events.py --duration 10 --out docs/benchmarks_events.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.events import EventStore, EventWriter, count_events

CONFIGS: list[dict[str, Any]] = [
    {"api": "row", "mode": "threads", "producers": 1, "batch": 1},
    {"api": "row", "mode": "threads", "producers": 2, "batch": 1},
    {"api": "row", "mode": "processes", "producers": 2, "batch": 1},
    {"api": "batch", "mode": "threads", "producers": 1, "batch": 32},
]

# A realistic row: ~200 bytes of feature JSON, a probability map, the routing context.
_FEATURES = [
    json.dumps({"amount": 12.5 + i, "country": "DE", "age": 30 + i % 50, "merchant": f"m{i % 97}"})
    for i in range(1024)
]
_PROBS = '{"0": 0.82, "1": 0.18}'


def _produce(writer: EventWriter, batch: int, stop: threading.Event, seed: int) -> None:
    """Append until ``stop`` is set, the way the gateway would on each request."""
    i = 0
    if batch == 1:
        while not stop.is_set():
            writer.append_prediction(
                request_id=f"{seed}-{i}", row_index=0, model="fraud", experiment="fraud-ab",
                strategy="ab", unit_id=f"user-{i % 5000}", unit_random=False, arm="champion",
                role="served", alias="champion", version="7", prediction="0",
                prediction_num=0.0, score=0.18, confidence=0.82, probabilities=_PROBS,
                latency_ms=1.7, features=_FEATURES[i & 1023], protocol="arbiter", forced=False,
            )  # fmt: skip
            i += 1
        return
    rows = range(batch)
    while not stop.is_set():
        writer.append_predictions(
            {
                "request_id": f"{seed}-{i}", "row_index": rows, "model": "fraud",
                "experiment": "fraud-ab", "strategy": "ab", "unit_id": f"user-{i % 5000}",
                "unit_random": False, "arm": "champion", "role": "served", "alias": "champion",
                "version": "7", "prediction": "0", "prediction_num": 0.0, "score": 0.18,
                "confidence": 0.82, "probabilities": _PROBS, "latency_ms": 1.7,
                "features": _FEATURES[:batch], "protocol": "arbiter", "forced": False,
            }
        )  # fmt: skip
        i += 1


def _run_writer(home: str, producers: int, batch: int, duration: float, seed: int) -> dict:
    """One process: ``producers`` threads sharing one writer. Returns its measurements."""
    flush_seconds: list[float] = []
    writer = EventWriter(
        EventStore(home), on_flush=lambda rows, seconds: flush_seconds.append(seconds)
    ).start()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_produce, args=(writer, batch, stop, seed * 100 + t))
        for t in range(producers)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    during = writer.stats()
    close_began = time.perf_counter()
    writer.close()
    close_s = time.perf_counter() - close_began
    final = writer.stats()
    return {
        "elapsed": elapsed,
        "appended": final.events_appended,
        "written_during": during.events_written,
        "written": final.events_written,
        "dropped": final.events_dropped,
        "flush_seconds": flush_seconds,
        "close_s": close_s,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_one(config: dict[str, Any], duration: float) -> dict[str, Any]:
    """Run one configuration in this process (and its children) and summarise it."""
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as home:
        if config["mode"] == "threads":
            parts = [_run_writer(home, config["producers"], config["batch"], duration, 0)]
        else:
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            procs = [
                ctx.Process(target=_run_process, args=(home, config["batch"], duration, p, queue))
                for p in range(config["producers"])
            ]
            for p in procs:
                p.start()
            parts = [queue.get() for _ in procs]
            for p in procs:
                p.join()
        stored = count_events(EventStore(home))
    appended = sum(p["appended"] for p in parts)
    elapsed = max(p["elapsed"] for p in parts)
    flushes = np.array([s for p in parts for s in p["flush_seconds"]])
    return {
        **config,
        "appended_per_s": appended / elapsed,
        "written_per_s": sum(p["written_during"] for p in parts) / elapsed,
        "appended": appended,
        "stored": stored,
        "dropped": sum(p["dropped"] for p in parts),
        "flushes": int(flushes.size),
        "rows_per_flush": appended / max(flushes.size, 1),
        "flush_p50_ms": float(np.percentile(flushes, 50) * 1e3) if flushes.size else 0.0,
        "flush_p99_ms": float(np.percentile(flushes, 99) * 1e3) if flushes.size else 0.0,
        "close_ms": max(p["close_s"] for p in parts) * 1e3,
        "peak_rss_mib": max(p["peak_rss_kib"] for p in parts) / 1024,
    }


def _run_process(home: str, batch: int, duration: float, seed: int, queue: Any) -> None:
    queue.put(_run_writer(home, 1, batch, duration, seed))


def _markdown(results: list[dict[str, Any]], duration: float, command: str, load: float) -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "## Event store: sustained logging throughput",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d}",
        f"- Machine: {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"- Command: `{command}`",
        f"- Load average before the run: {load:.1f} (other jobs shared the machine)",
        f"- Each row: {duration:g} s of appends of realistic prediction rows (~300 bytes, "
        "20 columns) through `EventWriter` (flush_interval 0.5 s, max_batch 50,000, zstd "
        "Parquet segments, fsync + rename per flush), then `close()`; every row was counted "
        "back with DuckDB. Each configuration ran in a fresh interpreter.",
        "- *written/s* counts rows durably on disk before `close()`; *flush* is one segment "
        "write (table build + Parquet + fsync + rename); peak RSS is per process.",
        "",
        "| API | producers | appended/s | written/s | rows/flush | flush p50 | flush p99 "
        "| close | dropped | stored = appended | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        api = (
            "append_prediction" if r["api"] == "row" else f"append_predictions ({r['batch']} rows)"
        )
        lines.append(
            f"| `{api}` | {r['producers']} {r['mode']} | {r['appended_per_s']:,.0f} "
            f"| {r['written_per_s']:,.0f} | {r['rows_per_flush']:,.0f} "
            f"| {r['flush_p50_ms']:.0f} ms | {r['flush_p99_ms']:.0f} ms | {r['close_ms']:.0f} ms "
            f"| {r['dropped']:,} "
            f"| {'yes' if r['stored'] == r['appended'] else 'NO'} ({r['stored']:,}) "
            f"| {r['peak_rss_mib']:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per configuration")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)  # internal: one config as JSON
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(json.loads(args.run_one), args.duration)))
        return
    load = os.getloadavg()[0]
    results = []
    for config in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--duration", str(args.duration), "--run-one",
             json.dumps(config)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        results.append(json.loads(out.strip().splitlines()[-1]))
    command = " ".join([".venv/bin/python", "benchmarks/events.py", *sys.argv[1:]])
    report = _markdown(results, args.duration, command, load)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
