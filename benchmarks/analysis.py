"""End-to-end time of ``analyze_experiment`` on a 10-million-event experiment.

Writes synthetic Parquet segments straight into a temporary home with
:func:`synthetic_log.generate` (pyarrow, no gateway): the same columns the gateway logs, with
short feature-JSON strings, sticky 50/50 unit assignment, realistic latencies and labels for a
share of the rows. Then, in this process:

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

from synthetic_log import generate  # benchmarks/synthetic_log.py, beside this file

from arbiter.analysis import analyze_experiment
from arbiter.config import DecisionConfig
from arbiter.report.html import write_html


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
