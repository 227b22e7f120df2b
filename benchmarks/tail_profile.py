"""What stalls the gateway's event loop under open-loop load (issue 13, "a flat tail").

Starts ``arbiter serve`` as ``benchmarks/gateway.py`` does: server (b), A/B with logging, on
the logistic or gbm model, started unpinned and then pinned to core 0 once ready. The open-loop
generator (``benchmarks/_load.py``, wrk2-style, coordinated omission corrected) runs on core 1
at ``--rate`` requests/s for ``--seconds``. Two recorders run meanwhile:

1. the gateway's own stall recorder (``arbiter.gateway.loop_lag``, turned on through
   ``ARBITER_LOOP_LAG_MS``): every stall of ``--lag-ms`` or more, with every thread's stack
   taken while it lasted, and every garbage collection of a quarter of that or more;
2. with ``--py-spy``, ``py-spy record --idle --threads`` on the server (it needs ptrace: root,
   or ``kernel.yama.ptrace_scope`` 0), as a raw folded-stack file for a flame graph.

Prints the latency percentiles, the stalls by size, the stacks seen most during stalls
(weighted by stall length), how much stall time garbage collections overlap, and py-spy's top
leaf frames. Everything goes to ``--out`` (``lag.jsonl``, ``py-spy.txt``, ``summary.json``).

Usage (quiet machine; half of the bare app's saturation for the logistic model was 1,775 req/s
in the 2026-12-04 quiet run)::

    .venv/bin/python benchmarks/tail_profile.py --model logistic --rate 1775 --seconds 30 \\
        --lag-ms 10 --py-spy --out tail-logistic
"""

from __future__ import annotations

import argparse
import itertools
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import startup

import gateway as bench  # the benchmark's set-up, servers and load helpers
from arbiter.gateway.loop_lag import ENV_FILE, ENV_MS

#: Stall sizes reported (ms, lower bounds); the first is replaced by ``--lag-ms``.
BINS = (0.0, 20.0, 50.0, 100.0, 250.0, 1000.0)
#: A source line that blocks in C without the GIL: the thread at it is waiting, not working.
WAITING = re.compile(r"\.(get|wait|acquire|join|select|poll|sleep|recv\w*|accept|result)\(")
#: The loop thread's innermost Python frame while uvloop runs its C loop: it is polling, or
#: waiting for the GIL or for a CPU, not running Python.
IN_UVLOOP = "asyncio/runners.py"


def loop_thread_sched(pid: int) -> dict[str, float]:
    """The server's CPU seconds (all threads, ``/proc/PID/stat``) and its main (event-loop)
    thread's seconds on a CPU and waiting in the run queue (``/proc/PID/task/PID/schedstat``).

    Run-queue waiting is time the loop was ready to run but had no CPU: on a shared machine
    that, not the gateway, makes many of the stalls.
    """
    out = {"process_cpu_s": startup.cpu_seconds(pid)}
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        on_cpu_ns, waiting_ns, _ = (int(v) for v in f.read().split())
    out.update(loop_on_cpu_s=on_cpu_ns / 1e9, loop_runqueue_wait_s=waiting_ns / 1e9)
    return out


def stall_histogram(stalls: list[dict[str, Any]], lag_ms: float) -> dict[str, int]:
    bins = [lag_ms, *(b for b in BINS if b > lag_ms)]
    labels = [f"{lo:g}-{hi:g} ms" for lo, hi in itertools.pairwise(bins)]
    labels.append(f">= {bins[-1]:g} ms")
    counts = dict.fromkeys(labels, 0)
    for s in stalls:
        i = max(i for i, lo in enumerate(bins) if s["ms"] >= lo)
        counts[labels[i]] += 1
    return counts


def _short(frame: str) -> str:
    """``/long/path/pkg/mod.py:12 fn`` -> ``pkg/mod.py:12 fn``."""
    path, _, rest = frame.partition(":")
    return "/".join(Path(path).parts[-2:]) + ":" + rest


def waiting(frame: str) -> bool:
    """Whether a ``file:line function`` frame is a blocking call (read from its source)."""
    path, _, rest = frame.partition(":")
    line = linecache.getline(path, int(rest.split(" ", 1)[0] or 0))
    return bool(WAITING.search(line))


def busy_stacks(stall: dict[str, Any], depth: int = 4) -> list[str]:
    """One line per thread that was doing something during the stall: its innermost frames."""
    out = []
    for thread, frames in stall.get("stacks", {}).items():
        if not frames:
            continue
        if thread == stall.get("loop_thread"):
            if IN_UVLOOP in frames[-1]:
                out.append("[LOOP] in uvloop's C loop (polling, or waiting for the GIL or a CPU)")
                continue
            name = "LOOP"
        elif waiting(frames[-1]):
            continue
        else:
            name = thread.rsplit("-", 1)[0]
        out.append(f"[{name}] " + " <- ".join(_short(f) for f in reversed(frames[-depth:])))
    return out


def gc_overlap(stalls: list[dict[str, Any]], gcs: list[dict[str, Any]]) -> dict[str, float]:
    """How many stalls had a garbage collection inside them, and the collections' total ms."""
    hit, gc_ms = 0, 0.0
    for s in stalls:
        start, end = s["t"], s["t"] + (s["ms"] + 0.0) / 1000.0
        inside = [g for g in gcs if g["t"] < end and g["t"] + g["ms"] / 1000.0 > start]
        hit += bool(inside)
        gc_ms += sum(g["ms"] for g in inside)
    return {"stalls_with_gc": hit, "gc_ms_inside_stalls": gc_ms}


def py_spy_leaves(path: Path, top: int = 12) -> list[tuple[str, int]]:
    """py-spy's raw (folded) output: the loop thread's (``MainThread``'s) samples per innermost
    frame, largest first. ``Runner.run`` is time in uvloop's C loop (see :data:`IN_UVLOOP`)."""
    leaves: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack.split(";", 1)[0].endswith(": MainThread") and count.isdigit():
            leaves[stack.rsplit(";", 1)[-1]] += int(count)
    return leaves.most_common(top)


def summarize(
    records: list[dict[str, Any]], load: dict[str, Any], lag_ms: float, seconds: float
) -> dict[str, Any]:
    stalls = [r for r in records if r["kind"] == "stall"]
    gcs = [r for r in records if r["kind"] == "gc"]
    weighted: Counter[str] = Counter()
    for s in stalls:
        for line in busy_stacks(s) or ["(no stack caught while stalled)"]:
            weighted[line] += s["ms"]
    return {
        "latency_ms": {k: load[k] for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")},
        "offered_rps": load["offered_rps"],
        "achieved_rps": load["achieved_rps"],
        "errors": load["errors"],
        "late_share": load["late_share"],
        "stalls": len(stalls),
        "stall_ms_total": sum(s["ms"] for s in stalls),
        "stall_share_of_run": sum(s["ms"] for s in stalls) / 1000.0 / seconds,
        "stalls_by_size": stall_histogram(stalls, lag_ms),
        # Stall time in which the loop thread ran itself, and in which it waited (GIL or CPU).
        "stall_ms_loop_on_cpu": sum(min(s["loop_cpu_ms"], s["ms"]) for s in stalls),
        "stall_stacks_by_ms": weighted.most_common(15),
        "gc": {
            "collections_recorded": len(gcs),
            "by_generation": dict(Counter(str(g["generation"]) for g in gcs)),
            "ms_total": sum(g["ms"] for g in gcs),
            **gc_overlap(stalls, gcs),
        },
    }


def report(summary: dict[str, Any], spy: list[tuple[str, int]] | None) -> str:
    lat = summary["latency_ms"]
    lines = [
        f"offered {summary['offered_rps']:.0f} req/s, achieved {summary['achieved_rps']:.0f}, "
        f"errors {summary['errors']}, late {summary['late_share']:.1%}",
        "latency ms: " + ", ".join(f"{k[:-3]} {v:.2f}" for k, v in lat.items()),
        f"stalls: {summary['stalls']} ({summary['stall_ms_total']:.0f} ms, "
        f"{summary['stall_share_of_run']:.1%} of the run)",
        *(f"  {label:>14}: {n}" for label, n in summary["stalls_by_size"].items()),
        f"  of the stall time, the loop thread was on a CPU for "
        f"{summary['stall_ms_loop_on_cpu']:.0f} ms; the rest it waited for the GIL or a CPU",
        "garbage collections recorded: {collections_recorded} (by generation {by_generation}), "
        "{ms_total:.0f} ms; {stalls_with_gc} stalls had one inside, "
        "{gc_ms_inside_stalls:.0f} ms of them".format(**summary["gc"]),
        "server during the run: {process_cpu_s:.1f} s CPU (all threads); event-loop thread "
        "{loop_on_cpu_s:.1f} s on a CPU, {loop_runqueue_wait_s:.2f} s runnable but waiting for "
        "one".format(**summary["server"]),
        "stacks during stalls (busy threads' innermost frames, weighted by stall ms):",
        *(f"  {ms:8.0f} ms  {line}" for line, ms in summary["stall_stacks_by_ms"]),
    ]
    if spy:
        lines.append("py-spy, the loop thread's samples per innermost frame (idle included):")
        lines += [f"  {n:8d}  {leaf}" for leaf, n in spy]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=bench.MODEL_KINDS, default="logistic")
    parser.add_argument("--rate", type=float, required=True, help="offered requests/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not recorded")
    parser.add_argument("--lag-ms", type=float, default=10.0, help="smallest stall recorded")
    parser.add_argument("--py-spy", action="store_true", help="also run py-spy record")
    parser.add_argument("--connections", type=int, default=bench.FULL.rate_connections)
    parser.add_argument("--home", type=Path, help="a prepared benchmark home to reuse")
    parser.add_argument("--out", type=Path, default=Path("tail-profile"))
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix=f"arbiter-tail-{args.model}-"))
    if not (home / "model.json").exists():
        print(f"training and registering the {args.model} models in {home}", flush=True)
        bench.prepare_quietly(home, args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    lag_file = (args.out / "lag.jsonl").resolve()
    lag_file.unlink(missing_ok=True)
    os.environ[ENV_MS] = f"{args.lag_ms:g}"  # the server's environment is a copy of ours
    os.environ[ENV_FILE] = str(lag_file)
    server_core, load_core = (None, None) if args.no_pin else (0, 1)
    variant = next(v for v in bench.variants(1) if v.key == "arbiter-ab")
    plan = replace(bench.FULL, rate_connections=args.connections)

    server = bench.launch(variant, home, [], None, pin_now=False)
    assert server.proc is not None
    spy_out = args.out / "py-spy.txt"
    try:
        bench.wait_ready(server, timeout_s=300.0)
        bench.pin_group(server.proc, server_core)
        bench.run_rate(server, plan, args.rate, args.warmup, load_core)
        spy = None
        if args.py_spy:
            exe = shutil.which("py-spy") or str(bench.BIN / "py-spy")
            argv_spy = [exe, "record", "--idle", "--threads", "-r", "100", "-f", "raw",
                        "-d", f"{int(args.seconds) + 1}", "-p", str(server.proc.pid),
                        "-o", str(spy_out)]  # fmt: skip
            spy = subprocess.Popen(
                bench.pinned(load_core, argv_spy),
                stdout=subprocess.DEVNULL,
                stderr=open(args.out / "py-spy.log", "wb"),  # noqa: SIM115
            )
        began, sched0 = time.time(), loop_thread_sched(server.proc.pid)
        load = bench.run_rate(server, plan, args.rate, args.seconds, load_core)
        ended, sched1 = time.time(), loop_thread_sched(server.proc.pid)
        if spy is not None:
            spy.wait(args.seconds + 60)
    finally:
        bench.stop(server.proc)  # the stall recorder writes its last records on shutdown
    records = (
        [json.loads(x) for x in lag_file.read_text().splitlines()] if lag_file.exists() else []
    )
    records = [r for r in records if began <= r["t"] <= ended]
    summary = summarize(records, load, args.lag_ms, args.seconds)
    summary["server"] = {k: sched1[k] - sched0[k] for k in sched0}
    summary.update(model=args.model, lag_ms=args.lag_ms, loadavg=os.getloadavg(), home=str(home))
    spy_top = py_spy_leaves(spy_out) if spy_out.exists() else None
    summary["py_spy_leaves"] = spy_top
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(report(summary, spy_top))
    print(f"\nfiles: {args.out}/ (lag.jsonl, summary.json{', py-spy.txt' if spy_top else ''}); "
          f"server log: {server.log}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
