"""What a shadow job costs, without HTTP: the gateway's side and the worker's, per job.

``benchmarks/gateway.py`` measures shadow completion through the whole server, where the
champion's serving, the shadow plumbing and the worker all share one core and the numbers move
with everything at once. This isolates the plumbing: one process stands in for the gateway's
event loop and submits shadow jobs to a real ``ShadowExecutor`` (the ``process`` executor, one
worker at nice 19, batching as configured by default: 32 rows per call, 64 slots) at a fixed
rate, with the request bodies and the 10× slower ``BusyModel`` challenger of
``benchmarks/gateway.py``'s shadow server. Everything runs on one core (``--core``), as the
gateway and its worker do in that benchmark.

Reported per round: jobs submitted, completed and dropped; CPU time per submitted job in this
process (submit, sending, receiving, answering: the gateway's share, plus this script's own
pacing loop, which is the same before and after a change) and per completed job in
the worker (unpickling, building the frame, the model call, sending back); jobs per worker call.

Before/after comparisons: run with ``PYTHONPATH=<other checkout>/src`` (the worker inherits it).

Usage::

    .venv/bin/python benchmarks/shadow_plumbing.py                      # 2,000 and 4,000 jobs/s
    .venv/bin/python benchmarks/shadow_plumbing.py --rates 4000 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(home: Path, rate: float, seconds: float) -> dict[str, Any]:
    import gateway as bench  # benchmarks/gateway.py: the shadow model's name and bodies
    from arbiter.gateway.shadow import ShadowExecutor, ShadowJob
    from arbiter.registry import MLflowRegistry

    uri = f"sqlite:///{home / 'mlflow.db'}"
    registry = MLflowRegistry(uri)
    version = registry.aliases(bench.SHADOW_MODEL)["challenger"]
    model = registry.load(bench.SHADOW_MODEL, version)
    bodies = json.loads((home / "bodies_arbiter.json").read_text())
    rows = [[b["features"]] for b in bodies]
    executor = ShadowExecutor(
        bench.SHADOW_MODEL,
        max_in_flight=64,  # the gateway's default for these settings (app.shadow_slots)
        timeout_s=5.0,
        kind="process",
        workers=1,
        tracking_uri=uri,
        max_batch_size=32,
    )
    calls: list[int] = []
    executor._runner.on_batch = calls.append  # jobs per worker call
    await asyncio.to_thread(executor.start, [(bench.SHADOW_MODEL, version)])
    worker = executor._runner._workers[0].pid
    answered = {"ok": 0, "other": 0}

    def done(result: Any, error: str | None, latency_ms: float) -> None:
        answered["ok" if error is None else "other"] += 1

    async def submit(n: int) -> None:
        period, start = 1.0 / rate, time.perf_counter()
        for i in range(n):
            executor.submit(ShadowJob(model, "rows", rows[i % len(rows)]), done)
            delay = start + (i + 1) * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    await submit(int(rate))  # a second of warm-up: imports, first calls
    while executor.in_flight:
        await asyncio.sleep(0.01)
    calls.clear()
    ok0, dropped0 = answered["ok"], executor.dropped
    cpu0, worker0 = time.process_time(), cpu_seconds(worker)
    n = int(rate * seconds)
    await submit(n)
    while executor.in_flight:
        await asyncio.sleep(0.01)
    cpu1, worker1 = time.process_time(), cpu_seconds(worker)
    ok = answered["ok"] - ok0
    await executor.drain(5.0)
    return {
        "rate": rate,
        "submitted": n,
        "completed": ok,
        "dropped": executor.dropped - dropped0,
        "completed_pct": 100.0 * ok / n,
        "gateway_cpu_us_per_job": 1e6 * (cpu1 - cpu0) / n,
        "worker_cpu_us_per_job": 1e6 * (worker1 - worker0) / max(1, ok),
        "jobs_per_call": sum(calls) / len(calls) if calls else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="2000,4000", help="jobs/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--core", type=int, default=0, help="pin to this core (-1: no pinning)")
    parser.add_argument("--home", type=Path, help="a benchmarks/gateway.py home to reuse")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import gateway as bench

    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})  # the worker inherits it
    home = args.home or Path(tempfile.mkdtemp(prefix="arbiter-shadow-plumbing-"))
    if not (home / "model.json").exists():
        print(f"training and registering the logistic models in {home}", flush=True)
        bench.prepare_quietly(home, "logistic")
    results: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for rate in (float(r) for r in args.rates.split(",")):
            result = asyncio.run(one_round(home, rate, args.seconds))
            result["round"] = round_
            results.append(result)
            print(
                f"round {round_} {rate:6.0f} jobs/s: {result['completed_pct']:5.1f} % completed, "
                f"gateway {result['gateway_cpu_us_per_job']:5.1f} us/job, worker "
                f"{result['worker_cpu_us_per_job']:5.1f} us/job, "
                f"{result['jobs_per_call'] or 0:.1f} jobs/call",
                flush=True,
            )
    print("\n| jobs/s | completed % | gateway CPU µs/job | worker CPU µs/job | jobs/call |")
    print("|---:|---:|---:|---:|---:|")
    for rate in sorted({r["rate"] for r in results}):
        these = [r for r in results if r["rate"] == rate]

        def med(key: str, these: list[dict[str, Any]] = these) -> str:
            values = [r[key] for r in these if r[key] is not None]
            return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

        print(
            f"| {rate:,.0f} | {med('completed_pct')} | {med('gateway_cpu_us_per_job')} | "
            f"{med('worker_cpu_us_per_job')} | {med('jobs_per_call')} |"
        )
    print(f"load average {os.getloadavg()[0]:.2f}; {len(results)} rounds of {args.seconds:g} s")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "home": str(home)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
