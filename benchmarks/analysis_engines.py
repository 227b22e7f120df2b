"""``analyze`` on N logged events: DuckDB (embedded) against Spark local, time and peak memory.

Writes a synthetic A/B experiment with :func:`synthetic_log.generate` (the gateway's
columns, sticky units, labels for half the rows) into a temporary home once, then runs
``analyze_model`` on it with each engine, each in a fresh interpreter so its memory is its
own. Peak memory is the largest sum of RSS over the process *tree* (for Spark: the Python
driver plus the JVM it starts), sampled every 0.2 s with psutil.

For Spark the wall time is split into start-up (JVM and SparkSession) and the analysis
itself; both engines read the same Parquet files.

Usage::

    .venv/bin/python benchmarks/analysis_engines.py                      # 10 M events
    .venv/bin/python benchmarks/analysis_engines.py --events 1000000     # quick
    .venv/bin/python benchmarks/analysis_engines.py --events 100000000 --segments 100 \\
        --spark-memory 12g
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_log import generate

from arbiter.analysis import analyze_model
from arbiter.events import EventStore
from arbiter.events.engines import open_engine


def run_engine(home: Path, engine: str, master: str, memory: str, partitions: int) -> None:
    """In the child: time one ``analyze_model`` and print the result as one JSON line."""
    store = EventStore(home)
    t = time.perf_counter()
    startup = 0.0
    if engine == "spark":
        from arbiter.events.engines.spark import spark_session

        spark_session(
            master,
            shuffle_partitions=partitions,
            conf={"spark.driver.memory": memory, "spark.sql.files.maxPartitionBytes": "128m"},
        )
        startup = time.perf_counter() - t
    t = time.perf_counter()
    cpu = time.process_time()
    with open_engine(engine, store, spark_master=master) as con:
        (analysis,) = analyze_model(con, "fraud")
    result = {
        "engine": engine,
        "startup_s": startup,
        "analyze_s": time.perf_counter() - t,
        "python_cpu_s": time.process_time() - cpu,
        "decision": analysis.to_dict()["decision"],
        "labelled": sum(a["labelled"] for a in analysis.to_dict()["arms"].values()),
    }
    print(json.dumps(result), flush=True)


def measure(args: list[str]) -> tuple[dict[str, Any], float]:
    """Run a child; return its JSON result and the peak RSS (GiB) of its process tree."""
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(child.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"engine run failed ({child.returncode}): {args}")
    result = json.loads(out.strip().splitlines()[-1])
    return result, peak / 2**30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-memory", default="6g", help="spark.driver.memory")
    parser.add_argument("--spark-partitions", type=int, default=8)
    parser.add_argument("--home", type=Path, help="Reuse (or keep) the generated log here.")
    parser.add_argument("--child", choices=("duckdb", "spark"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_engine(
            args.home, args.child, args.spark_master, args.spark_memory, args.spark_partitions
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-engines-") as tmp:
        home = args.home or Path(tmp)
        t = time.perf_counter()
        if not (home / "events" / "predictions").is_dir() or not any(
            (home / "events" / "predictions").iterdir()
        ):
            generate(home, "ab", args.events, args.segments, args.label_share)
        generate_s = time.perf_counter() - t
        on_disk = sum(f.stat().st_size for f in home.rglob("*.parquet"))
        rows = []
        for engine in args.engines.split(","):
            result, peak = measure(
                [
                    "--child", engine, "--home", str(home),
                    "--spark-master", args.spark_master,
                    "--spark-memory", args.spark_memory,
                    "--spark-partitions", str(args.spark_partitions),
                ]
            )  # fmt: skip
            result.update(peak_gib=peak, load=os.getloadavg()[0])
            rows.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {args.events:,} events ({on_disk / 2**20:.0f} MB Parquet, "
        f"generated in {generate_s:.0f} s), command: "
        f"{' '.join([sys.executable.split('/')[-1], *sys.argv])}\n"
    )
    # CPU: the Python process's (all of DuckDB's threads; for Spark only the driver, the
    # JVM's work is not in it). On a shared machine CPU seconds are the comparable figure.
    print("| engine | events | start-up s | analyze s (wall) | Python process CPU s "
          "| peak RSS GiB (tree) | load avg | decision |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['engine']} | {args.events:,} | {r['startup_s']:.1f} | {r['analyze_s']:.1f} "
            f"| {r['python_cpu_s']:.1f} | {r['peak_gib']:.2f} | {r['load']:.1f} "
            f"| {r['decision']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
