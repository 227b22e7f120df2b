"""Gateway overhead: arbiter against a bare Starlette app and ``mlflow models serve``.

One small scikit-learn model (the demo's champion: StandardScaler + LogisticRegression on 8
numeric features, fitted on a numpy array), one worker process per server, the same load
generators, everything on 127.0.0.1:

(a) ``bare``: a Starlette app that parses the JSON body, builds a numpy row, calls
    ``model.predict`` and returns JSON, under uvicorn;
(b) ``arbiter-ab``: ``arbiter serve`` with ``strategy: ab`` (the challenger is a second small
    model), logging every prediction, ``POST /models/NAME/predict`` with a unit id;
(c) ``arbiter-shadow``: ``arbiter serve`` with ``strategy: shadow``; the challenger is
    :class:`arbiter.testing.BusyModel`, burning 10x the champion's measured predict time of CPU
    while holding the GIL;
(d) ``mlflow``: ``mlflow models serve --env-manager local`` of the same model version, with its
    own ``{"dataframe_records": [...]}`` body.

Saturation throughput comes from wrk (closed loop, ``-t2 -c16``); latency at a fixed offered
rate from ``benchmarks/_load.py`` (open loop, wrk2-style coordinated-omission correction). Each
server is a subprocess on a free loopback port, pinned to core 0 with ``taskset`` (load
generators on core 1), warmed up, measured, then stopped with SIGTERM.

Usage::

    .venv/bin/python benchmarks/gateway.py            # full run, ~4.5 min
    .venv/bin/python benchmarks/gateway.py --quick    # ~1.5 min
    .venv/bin/python benchmarks/gateway.py --json gateway.json --profile prof/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
AB_MODEL = "bench-ab"
SHADOW_MODEL = "bench-shadow"
N_BODIES = 512
SHADOW_SLOWDOWN = 10.0

# wrk prints this one JSON line from the script's done() hook (latencies in microseconds).
WRK_SCRIPT = r"""
local bodies = {}
local counter = 0
init = function(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
  counter = math.random(#bodies)
end
request = function()
  counter = counter % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[counter])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"mean_us":%.1f,' ..
    '"max_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""

# The baseline (a): what serving this model over HTTP costs with nothing else on the path.
BARE_APP = """
import pickle, sys
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(sys.argv[1], "rb") as f:
    MODEL = pickle.load(f)
NAMES = sys.argv[3].split(",")

async def predict(request):
    body = await request.json()
    row = body["features"]
    x = np.array([[row[n] for n in NAMES]], dtype=np.float64)
    return JSONResponse({"prediction": MODEL.predict(x).tolist()[0]})

async def healthz(request):
    return JSONResponse({"ok": True})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                        Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@dataclass(frozen=True)
class Plan:
    """How long each phase runs."""

    warmup_s: float
    wrk_s: float
    rate_s: float
    repeats: int
    wrk_threads: int = 2
    wrk_connections: int = 16
    rate_connections: int = 32


FULL = Plan(warmup_s=3.0, wrk_s=15.0, rate_s=15.0, repeats=2)
QUICK = Plan(warmup_s=1.0, wrk_s=4.0, rate_s=4.0, repeats=1)


@dataclass
class Server:
    """One server under test, running as a subprocess."""

    key: str
    label: str
    port: int
    path: str
    bodies: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


# -- set-up ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(core: int | None, argv: list[str]) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(core), *argv]


def single_row_cost_s(model: Any, x: Any, chunks: int = 5, n: int = 400) -> dict[str, float]:
    """In-process cost of the champion on one row (what one request asks of it).

    The minimum over ``chunks`` medians: other processes on a shared VM only ever add time.
    """
    import numpy as np

    out = {}
    for name in ("predict", "predict_proba"):
        fn = getattr(model, name)
        for _ in range(200):
            fn(x)
        medians = []
        for _ in range(chunks):
            times = np.empty(n)
            for i in range(n):
                t = time.perf_counter()
                fn(x)
                times[i] = time.perf_counter() - t
            medians.append(float(np.median(times)))
        out[name] = min(medians)
    return out


def prepare(home: Path) -> dict[str, Any]:
    """Train and register the models; write the bodies each server takes."""
    import pickle

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from arbiter.demo.data import FEATURES, make_transactions
    from arbiter.demo.train import train_champion
    from arbiter.registry import registry_for_home
    from arbiter.testing import BusyModel

    train = make_transactions(20_000, seed=7)
    traffic = make_transactions(N_BODIES, seed=8)
    champion = train_champion(train.features, train.labels)
    challenger = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1_000)).fit(
        train.features.to_numpy(), train.labels
    )
    x1 = train.features.to_numpy()[:1]
    cost = single_row_cost_s(champion, x1)
    busy_s = SHADOW_SLOWDOWN * cost["predict"]

    registry = registry_for_home(home)
    example = train.features.head(5)
    registry.log_sklearn_model(AB_MODEL, champion, example, aliases=("champion",))
    registry.log_sklearn_model(AB_MODEL, challenger, example, aliases=("challenger",))
    registry.log_sklearn_model(SHADOW_MODEL, champion, example, aliases=("champion",))
    registry.log_pyfunc_model(SHADOW_MODEL, BusyModel(busy_s), example, aliases=("challenger",))
    with open(home / "champion.pkl", "wb") as f:
        pickle.dump(champion, f)

    rows = traffic.features.to_dict("records")
    rows = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows]
    users = [str(u) for u in traffic.users.tolist()]
    arbiter_bodies = [{"unit_id": u, "features": r} for u, r in zip(users, rows, strict=True)]
    mlflow_bodies = [{"dataframe_records": [r]} for r in rows]
    for name, bodies in (("arbiter", arbiter_bodies), ("mlflow", mlflow_bodies)):
        (home / f"bodies_{name}.json").write_text(json.dumps(bodies))
        # One body per line for wrk's Lua script (compact JSON has no newlines).
        (home / f"bodies_{name}.txt").write_text(
            "\n".join(json.dumps(b, separators=(",", ":")) for b in bodies) + "\n"
        )
    (home / "post.lua").write_text(WRK_SCRIPT)
    (home / "bare_app.py").write_text(BARE_APP)
    return {
        "features": list(FEATURES),
        "champion_predict_ms": cost["predict"] * 1000.0,
        "champion_predict_proba_ms": cost["predict_proba"] * 1000.0,
        "busy_ms": busy_s * 1000.0,
    }


def write_config(home: Path, model: str, strategy: str, isolate: bool | None = None) -> None:
    from arbiter.config import ExperimentConfig, HomeConfig, ModelConfig, dump_config

    raw: dict[str, Any] = {"strategy": strategy}
    if isolate is not None:
        raw["isolate_arms"] = isolate
    config = HomeConfig(
        models={model: ModelConfig(experiment=ExperimentConfig.model_validate(raw))}
    )
    (home / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")


# -- running servers ---------------------------------------------------------------------------


def server_env(home: Path) -> dict[str, str]:
    # Registering models points MLFLOW_REGISTRY_URI (and friends) of this process elsewhere.
    env = {k: v for k, v in os.environ.items() if "MLFLOW" not in k}
    uri = f"sqlite:///{home / 'mlflow.db'}"
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_REGISTRY_URI": uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def server_argv(key: str, home: Path, port: int, features: list[str]) -> list[str]:
    if key == "bare":
        return [
            sys.executable,
            str(home / "bare_app.py"),
            str(home / "champion.pkl"),
            str(port),
            ",".join(features),
        ]
    if key.startswith("arbiter-"):
        return [
            str(BIN / "arbiter"),
            "serve",
            "--home",
            str(home),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    if key == "mlflow":
        return [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{AB_MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            str(port),
            "-w",
            "1",
        ]
    raise ValueError(f"unknown server {key!r}")


def wait_ready(server: Server, timeout_s: float = 120.0) -> None:
    import httpx

    health = {"bare": "/healthz", "mlflow": "/ping"}.get(server.key, "/readyz")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited early; see {server.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + health, timeout=2.0).status_code == 200:
                body = json.loads(server.bodies.read_text())[0]
                r = httpx.post(server.url + server.path, json=body, timeout=10.0)
                if r.status_code != 200:
                    raise RuntimeError(f"{server.label}: POST {server.path} -> {r.status_code}")
                return
        time.sleep(0.25)
    raise TimeoutError(f"{server.label} not ready after {timeout_s} s; see {server.log}")


@contextlib.contextmanager
def running(
    key: str, label: str, home: Path, path: str, bodies: Path, features: list[str], core: int | None
) -> Iterator[Server]:
    port = free_port()
    server = Server(key, label, port, path, bodies, log=home / f"{key}.log")
    argv = pinned(core, server_argv(key, home, port, features))
    with open(server.log, "wb") as log:
        # A new session: SIGTERM reaches the whole group (mlflow starts uvicorn as a child).
        server.proc = subprocess.Popen(
            argv, env=server_env(home), stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server.proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- load --------------------------------------------------------------------------------------


def background_cpu(seconds: float = 1.0) -> float:
    """Share of all cores busy over ``seconds`` while our server idles (other tenants' load)."""

    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = snapshot()
        time.sleep(seconds)
        busy1, total1 = snapshot()
    except OSError:  # no /proc (not Linux): unknown
        return float("nan")
    return (busy1 - busy0) / max(1, total1 - total0)


def run_wrk(server: Server, plan: Plan, seconds: float, core: int | None) -> dict[str, Any]:
    """Closed-loop saturation run: wrk -tT -cC -dD with the Lua body rotation."""
    bodies_txt = server.bodies.with_suffix(".txt")
    argv = pinned(
        core,
        [
            "wrk",
            f"-t{plan.wrk_threads}",
            f"-c{plan.wrk_connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(server.bodies.parent / "post.lua"),
            server.url + server.path,
            "--",
            str(bodies_txt),
        ],
    )
    background = background_cpu(0.5)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith('{"requests"'))
    raw = json.loads(line)
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
        "errors": errors,
        "p50_ms": raw["p50_us"] / 1000.0,
        "p90_ms": raw["p90_us"] / 1000.0,
        "p99_ms": raw["p99_us"] / 1000.0,
        "max_ms": raw["max_us"] / 1000.0,
        "background_cpu": background,
    }


def run_rate(
    server: Server, plan: Plan, rate: float, seconds: float, core: int | None
) -> dict[str, Any]:
    """Open-loop run at ``rate`` requests/s with benchmarks/_load.py."""
    argv = pinned(
        core,
        [
            sys.executable,
            str(HERE / "_load.py"),
            "--port",
            str(server.port),
            "--path",
            server.path,
            "--bodies",
            str(server.bodies),
            "--rate",
            f"{rate:.1f}",
            "--duration",
            f"{seconds:g}",
            "--connections",
            str(plan.rate_connections),
        ],
    )
    background = background_cpu(0.5)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True)
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    lat = raw["latency_ms"]
    return {
        "offered_rps": rate,
        "achieved_rps": raw["achieved_rps"],
        "requests": raw["requests"],
        "errors": raw["errors"],
        "late_share": raw["late_share"],
        "p50_ms": lat["p50"],
        "p90_ms": lat["p90"],
        "p99_ms": lat["p99"],
        "p999_ms": lat["p99.9"],
        "max_ms": raw["max_ms"],
        "background_cpu": background,
    }


def best_wrk(server: Server, plan: Plan, core: int | None) -> dict[str, Any]:
    """Warm up, then the best of ``plan.repeats`` wrk runs (other load on a VM only slows it)."""
    run_wrk(server, plan, plan.warmup_s, core)
    runs = [run_wrk(server, plan, plan.wrk_s, core) for _ in range(plan.repeats)]
    best = max(runs, key=lambda r: r["rps"])
    best["all_rps"] = [round(r["rps"], 1) for r in runs]
    return best


def shadow_counts(server: Server) -> dict[str, float]:
    """Shadow outcomes so far, plus the shadow model's total latency (``latency_sum``, s)."""
    import httpx

    text = httpx.get(server.url + "/metrics", timeout=10.0).text
    counts: dict[str, float] = {}
    for m in re.finditer(r'^arbiter_shadow_total\{[^}]*outcome="(\w+)"\} (\S+)$', text, re.M):
        counts[m.group(1)] = float(m.group(2))
    m = re.search(r'^arbiter_model_latency_seconds_sum\{[^}]*role="shadow"\} (\S+)$', text, re.M)
    counts["latency_sum"] = float(m.group(1)) if m else 0.0
    return counts


def profile(server: Server, plan: Plan, out: Path, core: int | None) -> Path | None:
    """py-spy's flat profile of the server under wrk load (None when py-spy is missing)."""
    spy = shutil.which("py-spy") or (str(BIN / "py-spy") if (BIN / "py-spy").exists() else None)
    if spy is None or server.proc is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{server.key}.txt"
    pid = server.proc.pid
    if server.key == "mlflow":  # the CLI's child uvicorn does the work
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
        pid = int(children[0]) if children else pid
    seconds = max(5, int(plan.wrk_s))
    spy_proc = subprocess.Popen(
        pinned(
            core,
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(seconds),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(target),
            ],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_wrk(server, plan, seconds, core)
    spy_proc.wait(seconds + 30)
    return target


# -- report ------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    s = results["servers"]
    a, b, c, d = s["bare"], s["arbiter-ab"], s["arbiter-shadow"], s["mlflow"]
    lines = [
        "| server | saturation req/s | p50 ms | p99 ms | offered req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, sat: dict[str, Any] | None, rate: dict[str, Any] | None) -> None:
        cells = [label]
        cells += [fmt(sat["rps"], 0), fmt(sat["p50_ms"]), fmt(sat["p99_ms"])] if sat else ["—"] * 3
        if rate:
            # The server could not keep up: latency grows with the run's length (queueing).
            over = " (over capacity)" if rate["achieved_rps"] < 0.95 * rate["offered_rps"] else ""
            cells += [fmt(rate["offered_rps"], 0) + over, fmt(rate["p50_ms"]), fmt(rate["p99_ms"])]
        else:
            cells += ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")

    row("(a) bare Starlette + predict", a["wrk"], a["rate_half_a"])
    row("(b) arbiter A/B + logging", b["wrk"], b["rate_half_a"])
    row("(b) arbiter A/B + logging", None, b["rate_half_b"])
    row("(c) arbiter shadow, BusyModel 10x", c.get("wrk"), c["rate_half_b"])
    row("(d) mlflow models serve", d["wrk"], d.get("rate_half_d"))
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    s = results["servers"]
    a, b, c, d = s["bare"], s["arbiter-ab"], s["arbiter-shadow"], s["mlflow"]
    out = []

    def add(name: str, value: float, limit: float, unit: str, ok: bool) -> None:
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": ok})

    ratio_a = b["wrk"]["rps"] / a["wrk"]["rps"]
    add("(b) throughput >= 70% of (a)", ratio_a * 100, 70.0, "%", ratio_a >= 0.70)
    ratio_d = b["wrk"]["rps"] / d["wrk"]["rps"]
    add("(b) throughput >= 10x (d)", ratio_d, 10.0, "x", ratio_d >= 10.0)
    for where, ra, rb in (
        ("at 50% of (a)'s saturation", a["rate_half_a"], b["rate_half_a"]),
        ("at saturation (wrk -c16)", a["wrk"], b["wrk"]),
    ):
        dp50 = rb["p50_ms"] - ra["p50_ms"]
        dp99 = rb["p99_ms"] - ra["p99_ms"]
        add(f"(b) p50 - (a) p50 <= 0.5 ms, {where}", dp50, 0.5, "ms", dp50 <= 0.5)
        add(f"(b) p99 - (a) p99 <= 2 ms, {where}", dp99, 2.0, "ms", dp99 <= 2.0)
    ratio_c = c["rate_half_b"]["p99_ms"] / b["rate_half_b"]["p99_ms"]
    add("(c) p99 <= 1.25x (b) p99 at 50% of (b)'s saturation", ratio_c, 1.25, "x", ratio_c <= 1.25)
    return out


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | limit | |", "|---|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['value']:.2f} {r['unit']} | {r['limit']:g} {r['unit']} | "
            f"{'met' if r['met'] else '**missed**'} |"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("pandas", "numpy", "scikit-learn", "mlflow", "starlette", "uvicorn", "uvloop")
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(Exception):
            out[name] = version(name)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    out["wrk"] = (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip()
    return out


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about 1.5 minutes)")
    parser.add_argument("--repeats", type=int, help="wrk runs per server; the best is kept")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--profile", type=Path, help="py-spy profiles of (a), (b) and (d) here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin servers/generators with taskset"
    )
    parser.add_argument(
        "--isolation",
        action="store_true",
        help="only (a) and (b), (b) with isolate_arms false then true: the cost of deadlines",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = Plan(plan.warmup_s, plan.wrk_s, plan.rate_s, args.repeats)
    server_core, load_core = (None, None) if args.no_pin else (0, 1)

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="arbiter-bench-gw-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "kernel": platform.release(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": versions(),
        "plan": plan.__dict__,
        "pinned": not args.no_pin,
        "servers": {},
    }
    try:
        print(f"preparing models in {home} ...", flush=True)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        # MLflow's registration chatter (warnings, "Created version") goes to a file.
        with (
            open(home / "prepare.log", "w") as err,
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            logging.getLogger("mlflow").setLevel(logging.ERROR)
            results["models"] = prepare(home)
        print(f"  champion predict {results['models']['champion_predict_ms']:.3f} ms, "
              f"BusyModel {results['models']['busy_ms']:.3f} ms", flush=True)  # fmt: skip
        features = results["models"]["features"]
        arbiter_bodies = home / "bodies_arbiter.json"
        mlflow_bodies = home / "bodies_mlflow.json"
        s = results["servers"]

        def start(key: str, label: str, path: str, bodies: Path) -> Any:
            return running(key, label, home, path, bodies, features, server_core)

        def log(key: str, what: str, r: dict[str, Any]) -> None:
            extra = f" (offered {r['offered_rps']:.0f})" if "offered_rps" in r else ""
            rps = r.get("achieved_rps", r.get("rps"))
            print(
                f"  {key:<15} {what:<12} {rps:8.0f} req/s{extra}  p50 {r['p50_ms']:.2f} ms  "
                f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  "
                f"(other load before: {100 * r['background_cpu']:.0f}% CPU)",
                flush=True,
            )

        # (a) bare Starlette
        with start("bare", "(a) bare", "/predict", arbiter_bodies) as srv:
            s["bare"] = {"wrk": best_wrk(srv, plan, load_core)}
            log("bare", "saturation", s["bare"]["wrk"])
            half_a = 0.5 * s["bare"]["wrk"]["rps"]
            s["bare"]["rate_half_a"] = run_rate(srv, plan, half_a, plan.rate_s, load_core)
            log("bare", "50% of (a)", s["bare"]["rate_half_a"])
            if args.profile:
                profile(srv, plan, args.profile, load_core)

        if args.isolation:
            compare_isolation(home, s, plan, half_a, load_core, start, log)
            return 0

        # (b) arbiter, A/B + logging
        write_config(home, AB_MODEL, "ab")
        path = f"/models/{AB_MODEL}/predict"
        with start("arbiter-ab", "(b) arbiter A/B", path, arbiter_bodies) as srv:
            s["arbiter-ab"] = {"wrk": best_wrk(srv, plan, load_core)}
            b = s["arbiter-ab"]
            log("arbiter-ab", "saturation", b["wrk"])
            half_b = 0.5 * b["wrk"]["rps"]
            b["rate_half_a"] = run_rate(srv, plan, half_a, plan.rate_s, load_core)
            log("arbiter-ab", "50% of (a)", b["rate_half_a"])
            b["rate_half_b"] = run_rate(srv, plan, half_b, plan.rate_s, load_core)
            log("arbiter-ab", "50% of (b)", b["rate_half_b"])
            if args.profile:
                profile(srv, plan, args.profile, load_core)

        # (c) arbiter, shadow with a CPU-bound challenger, at half of (b)'s saturation
        write_config(home, SHADOW_MODEL, "shadow")
        path = f"/models/{SHADOW_MODEL}/predict"
        with start("arbiter-shadow", "(c) arbiter shadow", path, arbiter_bodies) as srv:
            c: dict[str, Any] = {}
            s["arbiter-shadow"] = c
            run_rate(srv, plan, half_b, plan.warmup_s, load_core)
            before = shadow_counts(srv)
            c["rate_half_b"] = run_rate(srv, plan, half_b, plan.rate_s, load_core)
            after = shadow_counts(srv)
            delta = {k: after[k] - before.get(k, 0.0) for k in after}
            seconds_in_shadow = delta.pop("latency_sum")
            c["shadow_outcomes"] = delta
            c["shadow_mean_ms"] = 1000.0 * seconds_in_shadow / max(1.0, delta.get("ok", 0.0))
            log("arbiter-shadow", "50% of (b)", c["rate_half_b"])
            print(f"  shadow outcomes during the run: {delta}, "
                  f"mean shadow latency {c['shadow_mean_ms']:.1f} ms", flush=True)  # fmt: skip
            if not args.quick:
                c["wrk"] = run_wrk(srv, plan, plan.wrk_s, load_core)
                log("arbiter-shadow", "saturation", c["wrk"])

        # (d) mlflow models serve
        with start("mlflow", "(d) mlflow", "/invocations", mlflow_bodies) as srv:
            s["mlflow"] = {"wrk": best_wrk(srv, plan, load_core)}
            log("mlflow", "saturation", s["mlflow"]["wrk"])
            half_d = 0.5 * s["mlflow"]["wrk"]["rps"]
            s["mlflow"]["rate_half_d"] = run_rate(srv, plan, half_d, plan.rate_s, load_core)
            log("mlflow", "50% of (d)", s["mlflow"]["rate_half_d"])
            if args.profile:
                profile(srv, plan, args.profile, load_core)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"home kept at {home}")

    results["machine"]["loadavg_end"] = os.getloadavg()
    results["targets"] = targets(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(markdown(results))
    print()
    print(targets_markdown(results["targets"]))
    print(f"\nwall time {results['seconds']} s; load average {results['machine']['loadavg_start']}"
          f" -> {results['machine']['loadavg_end']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def compare_isolation(
    home: Path,
    s: dict[str, Any],
    plan: Plan,
    half_a: float,
    load_core: int | None,
    start: Any,
    log: Any,
) -> None:
    """(b) with the arms scored inline (no deadline) and in thread pools (the default)."""
    path = f"/models/{AB_MODEL}/predict"
    bodies = home / "bodies_arbiter.json"
    for isolate in (False, True):
        key = f"arbiter-ab-isolate-{str(isolate).lower()}"
        write_config(home, AB_MODEL, "ab", isolate=isolate)
        with start(key, f"(b) A/B isolate_arms={isolate}", path, bodies) as srv:
            s[key] = {"wrk": best_wrk(srv, plan, load_core)}
            log(key, "saturation", s[key]["wrk"])
            s[key]["rate_half_a"] = run_rate(srv, plan, half_a, plan.rate_s, load_core)
            log(key, "50% of (a)", s[key]["rate_half_a"])
    print("\n| (b) A/B | req/s (saturation) | p50 at 50 % of (a) | p99 at 50 % of (a) |")
    print("|---|---:|---:|---:|")
    for isolate in (False, True):
        r = s[f"arbiter-ab-isolate-{str(isolate).lower()}"]
        print(
            f"| isolate_arms={str(isolate).lower()} | {r['wrk']['rps']:,.0f} | "
            f"{r['rate_half_a']['p50_ms']:.2f} ms | {r['rate_half_a']['p99_ms']:.2f} ms |"
        )


if __name__ == "__main__":
    sys.exit(main())
