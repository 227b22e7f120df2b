"""Outcome ingestion: ``arbiter outcomes import`` of big files and concurrent ``POST /outcomes``.

Usage::

    .venv/bin/python benchmarks/outcome_import.py --rows 2000000

Each import runs in a fresh interpreter (peak RSS is per process): a Parquet and a CSV file of
``--rows`` outcome events (200 000 units, two event names, ISO ``ts`` in the CSV) are validated
and written; every row is counted back with DuckDB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_files(directory: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "unit_id": pd.Series(rng.integers(0, 200_000, rows)).map("u{}".format),
            "event": rng.choice(["purchase", "session"], rows),
            "value": rng.gamma(2.0, 10.0, rows).round(2),
            "ts": pd.Timestamp("2026-11-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 86_400 * 20, rows), unit="s"),
        }
    )
    frame.to_parquet(directory / "outcomes.parquet")
    frame.assign(ts=frame.ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        directory / "outcomes.csv", index=False
    )


def import_one(path: Path, home: Path) -> dict[str, float]:
    from arbiter.events import EventStore, count_events
    from arbiter.events.outcome_files import import_outcome_file

    store = EventStore(home)
    start = time.perf_counter()
    result = import_outcome_file(store, path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before DuckDB counts
    return {
        "rows": result.stored,
        "seconds": seconds,
        "segments": result.segments,
        "counted": count_events(store, "outcomes"),
        "peak_rss_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child: FILE HOME
    parser.add_argument("--make", help=argparse.SUPPRESS)  # child: DIRECTORY
    args = parser.parse_args()
    if args.one:
        print(json.dumps(import_one(Path(args.one[0]), Path(args.one[1]))))
        return
    if args.make:
        make_files(Path(args.make), args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        # Children for everything: Linux keeps the peak RSS across exec, so the parent stays small.
        make = [sys.executable, __file__, "--make", tmp, "--rows", str(args.rows)]
        subprocess.run(make, check=True)
        for name in ("outcomes.parquet", "outcomes.csv"):
            child = ["--one", str(directory / name), str(directory / f"home-{name}")]
            out = subprocess.run(
                [sys.executable, __file__, *child],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out)
            rate = r["rows"] / r["seconds"]
            print(
                f"| {name} | {r['rows']:,} | {r['seconds']:.1f} s | {rate:,.0f} "
                f"| {r['segments']} | {'yes' if r['counted'] == r['rows'] else 'NO'} "
                f"| {r['peak_rss_mib']:.0f} MiB |"
            )


if __name__ == "__main__":
    main()
