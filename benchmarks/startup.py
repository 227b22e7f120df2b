"""Gateway start-up: from ``arbiter serve`` to its first ready answer, with two small models.

A home with one model served in an A/B test: the demo's logistic-regression champion and its
gradient-boosting challenger (two versions, both loaded at start-up). Each run starts
``arbiter serve`` as a subprocess and POSTs a prediction every 10 ms until one is answered
200; the time from ``Popen`` to that answer is the start-up. The gateway's own log line
(``arbiter.gateway.startup``) says where the time went inside the process: before the
lifespan (Python's start, the imports, building the app, uvicorn), the registry client, the
model loads, the event store, the rest. One more run under ``python -X importtime`` splits
the imports by top-level package.

Usage::

    .venv/bin/python benchmarks/startup.py                # 5 runs
    .venv/bin/python benchmarks/startup.py --runs 1 --json startup.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MODEL = "startup"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def prepare(home: Path) -> dict[str, Any]:
    """Register the two versions and write the A/B config; returns one request body."""
    import numpy as np

    from arbiter.config import ExperimentConfig, HomeConfig, ModelConfig, dump_config
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion
    from arbiter.registry import registry_for_home

    train = make_transactions(5_000, seed=7)
    registry = registry_for_home(home)
    example = train.features.head(5)
    champion = train_champion(train.features, train.labels)
    challenger = train_challenger(train.features, train.labels, seed=7)
    registry.log_sklearn_model(MODEL, champion, example, aliases=("champion",))
    registry.log_sklearn_model(MODEL, challenger, example, aliases=("challenger",))
    config = HomeConfig(
        models={MODEL: ModelConfig(experiment=ExperimentConfig.model_validate({"strategy": "ab"}))}
    )
    (home / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")
    row = {
        k: (v.item() if isinstance(v, np.generic) else v)
        for k, v in train.features.iloc[0].to_dict().items()
    }
    return {"unit_id": "u1", "features": row}


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "MLFLOW" not in k}
    env.update({"OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"})
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/PID/stat``): on a busy machine this,
    not the wall time, is what a change to the start-up path moves."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_and_wait(
    home: Path, body: dict[str, Any], *, python_flags: tuple[str, ...] = (), timeout_s: float = 120
) -> tuple[float, float, str]:
    """Start ``arbiter serve``; seconds to the first 200 answer, the server's CPU seconds by
    then, and its log."""
    import httpx

    port = free_port()
    log_path = home / f"serve-{port}.log"
    argv = [str(BIN / "arbiter"), "serve", "--home", str(home), "--port", str(port)]
    if python_flags:
        argv = [sys.executable, *python_flags, *argv]
    url = f"http://{HOST}:{port}/models/{MODEL}/predict"
    payload = json.dumps(body).encode()
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*argv, "--log-level", "info"],
            env=server_env(home),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        with httpx.Client(timeout=5.0) as client:
            while True:
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"no answer after {timeout_s} s; see {log_path}")
                if proc.poll() is not None:
                    raise RuntimeError(f"arbiter serve exited; see {log_path}")
                try:
                    r = client.post(url, content=payload,
                                    headers={"content-type": "application/json"})  # fmt: skip
                    if r.status_code == 200:
                        ready = time.perf_counter() - started
                        cpu = cpu_seconds(proc.pid)
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return ready, cpu, log_path.read_text(errors="replace")


_PHASE = re.compile(r"(imports and app|registry client|models|event store|shadow workers|"
                    r"controllers|gc) (\d+\.\d+) s")  # fmt: skip
_LOAD = re.compile(r"(\S+@\S+ v\d+) (\d+\.\d+) s")


def phases(log: str) -> dict[str, float]:
    """The gateway's start-up line, parsed: phase -> seconds (per-version loads included)."""
    line = next((x for x in log.splitlines() if "after the process started" in x), "")
    out = {name: float(v) for name, v in _PHASE.findall(line)}
    loads = line.split("(loads: ", 1)[1] if "(loads: " in line else ""
    out.update({f"load {name}": float(v) for name, v in _LOAD.findall(loads)})
    return out


def import_times(log: str, top: int = 12) -> list[tuple[str, float]]:
    """``-X importtime`` output: cumulative seconds by top-level package, largest first."""
    totals: dict[str, float] = {}
    for line in log.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and not m.group(2):  # a module imported directly, not from inside another
            package = m.group(3).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(m.group(1)) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def measure(runs: int, keep: bool = False) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="arbiter-bench-startup-"))
    try:
        home = root / "home"
        home.mkdir()
        body = prepare(home)
        start_and_wait(home, body)  # a first start fills the OS page cache, as on a server
        ready: list[float] = []
        cpu: list[float] = []
        parts: list[dict[str, float]] = []
        for _ in range(runs):
            seconds, cpu_s, log = start_and_wait(home, body)
            ready.append(seconds)
            cpu.append(cpu_s)
            parts.append(phases(log))
        _, _, log = start_and_wait(home, body, python_flags=("-X", "importtime"))
        imports = import_times(log)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    names = sorted({k for p in parts for k in p}, key=lambda k: [*parts[0]].index(k)
                   if k in parts[0] else 99)  # fmt: skip
    return {
        "models": "A/B: logistic-regression champion + gradient-boosting challenger",
        "runs": runs,
        "ready_s": {
            "median": statistics.median(ready),
            "min": min(ready),
            "max": max(ready),
            "all": [round(x, 3) for x in ready],
        },
        "server_cpu_s": {
            "median": statistics.median(cpu),
            "min": min(cpu),
            "max": max(cpu),
            "all": [round(x, 3) for x in cpu],
        },
        "phases_median_s": {n: statistics.median(p[n] for p in parts if n in p) for n in names},
        "imports_s (one run under -X importtime, inflated by it)": imports,
        "loadavg": os.getloadavg(),
    }


def markdown(result: dict[str, Any]) -> str:
    r, c = result["ready_s"], result["server_cpu_s"]
    lines = [
        f"start-up to the first ready answer: median {r['median']:.2f} s "
        f"(range {r['min']:.2f}–{r['max']:.2f}, {result['runs']} runs); the server's CPU time "
        f"by then: median {c['median']:.2f} s (range {c['min']:.2f}–{c['max']:.2f})",
        "",
        "| phase (gateway's own log line, medians) | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {n} | {v:.2f} |" for n, v in result["phases_median_s"].items()]
    lines += ["", "| imports by package (`-X importtime`, cumulative) | seconds |", "|---|---:|"]
    key = "imports_s (one run under -X importtime, inflated by it)"
    lines += [f"| {n} | {v:.2f} |" for n, v in result[key]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.runs, keep=args.keep)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
