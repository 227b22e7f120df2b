"""Drift check at scale: arbiter vs Evidently's DataDriftPreset on 1,000,000 × 20 tables.

One run generates a reference and a current table (14 numeric and 6 categorical columns; 3
numeric columns shifted by half a unit, 2 categorical columns re-weighted), writes them as
Parquet, then runs each tool in its own subprocess so that time and peak memory
(``ru_maxrss``) are measured separately:

* ``arbiter-default``: ``check_drift(ref, cur)`` on the raw frames (method rule: PSI for
  numeric and Jensen–Shannon for categorical columns at this size), histograms included;
* ``arbiter-evidently-methods``: the same with Wasserstein for every numeric column, i.e. the
  methods Evidently picks for >1,000 rows (normalised Wasserstein, Jensen–Shannon);
* ``arbiter-profile``: ``build_profile(ref)`` once, then ``check_drift(profile, cur)``;
* ``evidently``: ``Report([DataDriftPreset()]).run(current, reference)`` (Evidently 0.7 API),
  run with ``--evidently-python`` (a separate venv: Evidently 0.7.23 does not import under
  pandas 3), killed after ``--evidently-timeout`` seconds.

Loading the Parquet files is timed apart from the check. Each check reports wall time and
CPU time (``time.process_time``, all threads of the worker) and the 1-minute load average
before and after it: on a busy host the CPU time is what carries over. Each arbiter mode
checks ``--repeat`` times in its subprocess and reports the median (and every run).

Evidently runs in its own virtualenv, ``.venv-bench`` (Evidently 0.7.23 needs pandas < 3).
``--setup-evidently`` creates it when missing (``python3.11 -m venv .venv-bench`` and
``pip install 'evidently==0.7.23' 'pandas<3' pyarrow``) and uses it.

Usage (the lead's quiet run)::

    .venv/bin/python benchmarks/drift.py --rows 1000000 --setup-evidently \\
        --evidently-timeout 900 --out /tmp/drift-bench.json
    # arbiter only (no Evidently):
    .venv/bin/python benchmarks/drift.py --rows 1000000 --skip-evidently
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_NUMERIC = 14
N_CATEGORICAL = 6
DRIFTED = {"num_00", "num_01", "num_02", "cat_00", "cat_01"}


def generate(rows: int, folder: Path, seed: int = 0) -> None:
    """Write ref.parquet and cur.parquet (same schema; the DRIFTED columns shifted)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(rng: Any, current: bool) -> pa.Table:
        cols: dict[str, Any] = {}
        for i in range(N_NUMERIC):
            name = f"num_{i:02d}"
            shift = 0.5 if current and name in DRIFTED else 0.0
            kind = i % 4
            if kind == 0:
                cols[name] = rng.normal(shift, 1.0, rows)
            elif kind == 1:
                cols[name] = rng.lognormal(shift, 0.7, rows)
            elif kind == 2:
                cols[name] = rng.uniform(shift, 1.0 + shift, rows)
            else:
                cols[name] = rng.poisson(5.0 + 4 * shift, rows).astype(np.float64)
        for j in range(N_CATEGORICAL):
            name = f"cat_{j:02d}"
            k = (5, 12, 30, 8, 3, 50)[j]
            labels = np.array([f"{name}_v{v}" for v in range(k)])
            p = np.linspace(1.0, 2.0, k)
            if current and name in DRIFTED:
                p = p[::-1] ** 2
            codes = rng.choice(k, rows, p=p / p.sum())
            cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), labels)
        return pa.table(cols)

    rng = np.random.default_rng(seed)
    pq.write_table(table(rng, False), folder / "ref.parquet")
    pq.write_table(table(rng, True), folder / "cur.parquet")


def _load(folder: Path) -> tuple[Any, Any, float]:
    import pandas as pd

    start = time.perf_counter()
    ref = pd.read_parquet(folder / "ref.parquet")
    cur = pd.read_parquet(folder / "cur.parquet")
    # Dictionary columns arrive as pandas categoricals; plain strings are what a CSV gives.
    for frame in (ref, cur):
        for c in frame.columns:
            if c.startswith("cat_"):
                frame[c] = frame[c].astype(str)
    return ref, cur, time.perf_counter() - start


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _timed(fn: Any) -> tuple[Any, float, float, float]:
    """``fn()``, its wall and CPU seconds, and the 1-minute load average when it started."""
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu, load


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def worker_arbiter(folder: Path, mode: str, repeat: int = 1) -> dict[str, Any]:
    from arbiter.drift import DriftConfig, build_profile, check_drift

    ref, cur, load_s = _load(folder)
    out: dict[str, Any] = {"load_s": load_s}
    if mode == "default":
        run = lambda: check_drift(ref, cur)  # noqa: E731
    elif mode == "evidently-methods":
        methods = {c: "wasserstein" for c in ref.columns if c.startswith("num_")}
        run = lambda: check_drift(ref, cur, DriftConfig(methods=methods))  # noqa: E731
    else:
        profile, wall, cpu, load = _timed(lambda: build_profile(ref))
        out.update(profile_s=wall, profile_cpu_s=cpu, profile_loadavg=load)
        out["profile_json_bytes"] = len(profile.to_json())
        run = lambda: check_drift(profile, cur)  # noqa: E731
    walls, cpus, loads = [], [], []
    for _ in range(max(1, repeat)):
        result, wall, cpu, load = _timed(run)
        walls.append(wall)
        cpus.append(cpu)
        loads.append(load)
    out.update(check_s=_median(walls), check_cpu_s=_median(cpus), check_runs_s=walls)
    out.update(check_runs_cpu_s=cpus, check_loadavg=loads)
    out["drifted_columns"] = sorted(r.column for r in result.features if r.drifted)
    out["dataset_drifted"] = result.drifted
    out["methods"] = sorted({r.method for r in result.features})
    out["peak_rss_mib"] = _peak_mib()
    return out


def worker_evidently(folder: Path) -> dict[str, Any]:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur, load_s = _load(folder)
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    cur_ds = Dataset.from_pandas(cur, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
    summary = snapshot.dict()
    check_s = time.perf_counter() - start
    check_cpu_s = time.process_time() - cpu_start
    drifted, methods, share = [], set(), None
    for metric in summary.get("metrics", []):
        config, value = metric.get("config", {}), metric.get("value")
        if config.get("type", "").endswith("ValueDrift") and isinstance(value, int | float):
            methods.add(config["method"])
            # Evidently's rule for distance methods: drift when value >= threshold.
            if value >= config["threshold"]:
                drifted.append(config["column"])
        elif config.get("type", "").endswith("DriftedColumnsCount"):
            share = value.get("share")
    return {
        "load_s": load_s,
        "check_s": check_s,
        "check_cpu_s": check_cpu_s,
        "check_loadavg": load_before,
        "drifted_columns": sorted(drifted),
        "drifted_share": share,
        "methods": sorted(methods),
        "peak_rss_mib": _peak_mib(),
        "version": evidently.__version__,
    }


def worker_window(rows: int) -> dict[str, Any]:
    """Event-log mode: ``rows`` served predictions (20 JSON features each) → drift result."""
    import numpy as np

    from arbiter.drift import build_profile, check_drift
    from arbiter.events import EventStore, EventWriter
    from arbiter.events.window import read_window

    rng = np.random.default_rng(0)
    names = [f"num_{i:02d}" for i in range(N_NUMERIC)] + [f"cat_{j:02d}" for j in range(6)]
    ref = {n: rng.normal(size=100_000) for n in names[:N_NUMERIC]}
    ref |= {n: rng.choice(["a", "b", "c"], 100_000) for n in names[N_NUMERIC:]}
    profile = build_profile(ref)
    # Build the JSON texts column-wise with numpy string ops (no per-row Python).
    text = np.full(rows, "{", dtype=object)
    for k, name in enumerate(names):
        if name.startswith("num_"):
            value = rng.normal(0.5 if k < 3 else 0.0, 1.0, rows).round(5).astype(str)
        else:
            value = np.char.add(np.char.add('"', rng.choice(["a", "b", "c"], rows)), '"')
        sep = "" if k == 0 else ", "
        text = text + f'{sep}"{name}": ' + value.astype(object)
    features = (text + "}").tolist()
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(tmp)
        writer = EventWriter(store, max_batch=250_000, max_buffer=max(rows, 250_000))
        writer.append_predictions(
            {
                "request_id": "r",
                "row_index": np.arange(rows, dtype=np.int32),
                "model": "m",
                "role": "served",
                "version": "1",
                "score": rng.random(rows),
                "features": features,
            }
        )
        writer.close()
        columns = {c.name: c.kind for c in profile.columns}
        start = time.perf_counter()
        with store.connect() as con:
            window = read_window(con, "m", columns, last=rows)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        result = check_drift(profile, window.features)
        check_s = time.perf_counter() - start
    return {
        "rows": window.n,
        "read_window_s": read_s,
        "check_s": check_s,
        "drifted_columns": sorted(r.column for r in result.features if r.drifted),
        "peak_rss_mib": _peak_mib(),
    }


def _run(cmd: list[str], timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"timeout_s": timeout, "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def setup_evidently(venv: Path) -> Path:
    """Create ``venv`` with Evidently 0.7.23 (pandas < 3) unless it exists; its python."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    base = "python3.11"
    print(f"creating {venv} (Evidently 0.7.23, pandas<3, pyarrow)...", file=sys.stderr)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "evidently==0.7.23", "pandas<3", "pyarrow"],
        check=True,
    )
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-python", default=None, help="Python with evidently.")
    parser.add_argument("--evidently-timeout", type=float, default=900.0)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument(
        "--setup-evidently",
        action="store_true",
        help="Create .venv-bench (Evidently 0.7.23, pandas<3) if missing and run Evidently there.",
    )
    parser.add_argument("--repeat", type=int, default=3, help="arbiter checks per mode (median).")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--event-log", action="store_true", help="Also time the event-log window (1M rows)."
    )
    parser.add_argument(
        "--worker", choices=["arbiter", "evidently", "window"], help=argparse.SUPPRESS
    )
    parser.add_argument("--mode", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "arbiter":
        print(json.dumps(worker_arbiter(args.data, args.mode, args.repeat)))
        return
    if args.worker == "evidently":
        print(json.dumps(worker_evidently(args.data)))
        return
    if args.worker == "window":
        print(json.dumps(worker_window(args.rows)))
        return

    script = str(Path(__file__).resolve())
    evidently_python = args.evidently_python
    if args.setup_evidently and not args.skip_evidently and evidently_python is None:
        root = Path(__file__).resolve().parent.parent
        evidently_python = str(setup_evidently(root / ".venv-bench"))
    if not args.skip_evidently and evidently_python is None:
        try:
            import evidently  # noqa: F401
        except ImportError:
            sys.exit(
                "Evidently is not importable here: pass --setup-evidently (creates .venv-bench "
                "with evidently==0.7.23 and pandas<3), --evidently-python PATH, or "
                "--skip-evidently"
            )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        generate(args.rows, folder)
        results: dict[str, Any] = {
            "rows": args.rows,
            "columns": N_NUMERIC + N_CATEGORICAL,
            "truly_drifted": sorted(DRIFTED),
            "generate_s": time.perf_counter() - start,
            "loadavg_before": os.getloadavg(),
        }
        for mode in ("default", "evidently-methods", "profile"):
            cmd = [sys.executable, script, "--worker", "arbiter", "--mode", mode, "--data", tmp]
            cmd += ["--repeat", str(args.repeat)]
            results[f"arbiter-{mode}"] = _run(cmd, 600.0)
        if not args.skip_evidently:
            python = evidently_python or sys.executable
            cmd = [python, script, "--worker", "evidently", "--data", tmp]
            results["evidently"] = _run(cmd, args.evidently_timeout)
        if args.event_log:
            cmd = [sys.executable, script, "--worker", "window", "--rows", str(args.rows)]
            results["arbiter-event-log"] = _run(cmd, 600.0)
        results["loadavg_after"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    ev = results.get("evidently", {})
    base = results["arbiter-default"]
    if "check_s" in ev and "check_s" in base:
        print(
            f"\nspeed-up (check only): wall {ev['check_s'] / base['check_s']:.1f}x, "
            f"CPU {ev['check_cpu_s'] / base['check_cpu_s']:.1f}x",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
