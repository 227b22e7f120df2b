"""The gateway's CPU per request at fixed offered rates, split between its threads.

Adaptive batching makes a request cheap only when requests queue: below that rate every
request is its own model call and its own event-loop wake-up. This measures how the server's
CPU per request changes with the rate, which says how busy "half load" really is (issue 13:
the shadow worker at nice 19 only gets the CPU the gateway leaves).

Starts one server of ``benchmarks/gateway.py`` (``--server``: ``arbiter-ab`` or
``arbiter-shadow``) as that benchmark does: started unpinned, pinned to core 0 once ready, the
open-loop generator (``benchmarks/_load.py``) on core 1. For each ``--rates`` value it runs
``--seconds`` of load after a short warm-up and reads ``/proc`` for the server's CPU (all
threads), its event-loop thread's, the rest (scoring threads, the event writer, shadow
plumbing), and, for the shadow server, its worker processes'.

Usage::

    .venv/bin/python benchmarks/cpu_per_request.py --rates 300,600,1200,1800
    .venv/bin/python benchmarks/cpu_per_request.py --server arbiter-shadow --rates 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as bench  # the benchmark's set-up, servers and load helpers


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by thread id."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def children(pid: int) -> list[int]:
    """The other processes of ``pid``'s session (a shadow server's workers)."""
    ps = subprocess.run(["ps", "-o", "pid=", "-s", str(pid)], capture_output=True, text=True)
    return [int(p) for p in ps.stdout.split() if int(p) != pid]


def process_cpu_s(pid: int) -> float:
    return sum(thread_cpu_s(pid).values())


def measure(server: bench.Server, rate: float, seconds: float) -> dict[str, Any]:
    assert server.proc is not None
    pid = server.proc.pid
    bench.run_rate(server, bench.FULL, rate, 2.0, 1)  # warm-up at the same rate
    workers = children(pid)
    threads0, workers0 = thread_cpu_s(pid), {w: process_cpu_s(w) for w in workers}
    load = bench.run_rate(server, bench.FULL, rate, seconds, 1)
    threads1, workers1 = thread_cpu_s(pid), {w: process_cpu_s(w) for w in workers}
    requests = load["achieved_rps"] * seconds
    total = sum(threads1.values()) - sum(threads0.get(t, 0.0) for t in threads1)
    loop = threads1.get(pid, 0.0) - threads0.get(pid, 0.0)  # the main thread runs the loop
    worker = sum(workers1[w] - workers0[w] for w in workers)
    return {
        "offered_rps": rate,
        "achieved_rps": load["achieved_rps"],
        "cpu_ms_per_request": 1000 * total / requests,
        "loop_ms_per_request": 1000 * loop / requests,
        "other_threads_ms_per_request": 1000 * (total - loop) / requests,
        "core_busy": total / seconds,
        "shadow_workers_core_share": worker / seconds if workers else None,
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=bench.MODEL_KINDS, default="logistic")
    parser.add_argument("--server", choices=("arbiter-ab", "arbiter-shadow"), default="arbiter-ab")
    parser.add_argument("--rates", default="300,600,1200,1800", help="req/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--home", type=Path, help="a prepared benchmark home to reuse")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix=f"arbiter-cpu-{args.model}-"))
    if not (home / "model.json").exists():
        print(f"training and registering the {args.model} models in {home}", flush=True)
        bench.prepare_quietly(home, args.model)
    variant = next(v for v in bench.variants(1) if v.key == args.server)
    server = bench.launch(variant, home, [], None, pin_now=False)
    assert server.proc is not None
    results = []
    try:
        bench.wait_ready(server, timeout_s=300.0)
        bench.pin_group(server.proc, 0)
        for rate in (float(r) for r in args.rates.split(",")):
            results.append(measure(server, rate, args.seconds))
    finally:
        bench.stop(server.proc)
    print(f"\n{args.server}, {args.model}, {args.seconds:g} s per rate, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| offered req/s | CPU ms/request | event loop | other threads | core busy | "
          "shadow workers | p50 ms | p99 ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        share = r["shadow_workers_core_share"]
        print(
            f"| {r['offered_rps']:,.0f} | {r['cpu_ms_per_request']:.2f} | "
            f"{r['loop_ms_per_request']:.2f} | {r['other_threads_ms_per_request']:.2f} | "
            f"{r['core_busy']:.0%} | {'—' if share is None else f'{share:.0%}'} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "home": str(home)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
