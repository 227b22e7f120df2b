"""Canary releases through a real gateway: the four scenarios of the progressive-delivery issue.

Each run builds an embedded MLflow registry with a champion and a challenger
(:class:`arbiter.testing.SimulatedClassifier`: chosen accuracy and failure rate), starts the
gateway under uvicorn on 127.0.0.1 with ``strategy: canary``, sends HTTP requests with user
ids, posts labels to ``/feedback`` ``label_delay`` requests late, and lets the gateway's canary
controller decide from the event log and move the aliases (see
:mod:`arbiter.demo.canary`). The pure simulation with many more runs is
``benchmarks/canary_sim_pure.py``.

Usage::

    python benchmarks/canary_sim.py                  # 5 runs of scenarios 1-3, 20 of scenario 4
    python benchmarks/canary_sim.py --runs 2 --null-runs 5
    python benchmarks/canary_sim.py --json out.json  # also write every run ("-" = stdout)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arbiter.demo.canary import SCENARIOS, SimSettings, register, run_scenario
from arbiter.home import Home


def run_all(
    runs: int, null_runs: int, *, seed: int = 0, workdir: Path, settings: SimSettings
) -> dict[str, list[dict[str, Any]]]:
    """Every scenario ``runs`` times (``identical``: ``null_runs``); runs as dicts."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, scenario in SCENARIOS.items():
        template = Home.at(workdir / f"template-{name}", create=True)
        register(template, scenario, seed)
        n = null_runs if name == "identical" else runs
        out[name] = []
        for i in range(n):
            run = run_scenario(
                workdir / f"run-{name}-{i}",
                scenario,
                settings,
                seed=seed * 1000 + i,
                template=template,
            )
            d = run.to_dict()
            d.pop("records")
            out[name].append(d)
            print(
                f"{name:>9} run {i + 1}/{n}: {run.outcome:<11} after {run.challenger_requests:>5} "
                f"challenger requests ({run.challenger_labels} labelled), {run.requests} sent, "
                f"{run.seconds:.1f} s",
                file=sys.stderr,
            )
    return out


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for name, runs in results.items():
        correct = [r for r in runs if r["correct"]]
        decided = [r["challenger_requests"] for r in runs if r["outcome"] != "running"]
        quality_rollbacks = sum(
            1
            for r in runs
            if r["outcome"] == "rolled_back"
            and any("primary" in reason or "harm" in reason for reason in r["reasons"])
        )
        rows.append(
            {
                "scenario": name,
                "expected": SCENARIOS[name].expect,
                "runs": len(runs),
                "as_expected": len(correct),
                "rolled_back_for_quality": quality_rollbacks,
                "median_challenger_requests": statistics.median(decided) if decided else None,
                "max_challenger_requests": max(decided) if decided else None,
                "median_seconds": statistics.median(r["seconds"] for r in runs),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of scenarios 1-3")
    parser.add_argument("--null-runs", type=int, default=20, help="runs of scenario 4")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--json", help="write all runs as JSON ('-' = stdout)")
    args = parser.parse_args(argv)
    settings = SimSettings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="canary-sim-") as tmp:
        results = run_all(
            args.runs, args.null_runs, seed=args.seed, workdir=Path(tmp), settings=settings
        )
    rows = summarise(results)
    print(f"\nmachine: {platform.node()} {platform.machine()}, python {platform.python_version()}")
    print(f"settings: {settings}")
    print(f"wall time: {time.perf_counter() - started:.0f} s\n")
    print("| scenario | expected | runs | as expected | rolled back for quality | "
          "median challenger requests to decision | max | median s/run |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['expected']} | {r['runs']} | {r['as_expected']} | "
            f"{r['rolled_back_for_quality']} | {r['median_challenger_requests']} | "
            f"{r['max_challenger_requests']} | {r['median_seconds']} |"
        )
    if args.json:
        text = json.dumps({"summary": rows, "runs": results}, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
