"""Gateway overhead: arbiter against a bare Starlette app, ``mlflow models serve`` and MLServer.

The same small scikit-learn model behind every server, one worker process per server, the same
load generators, everything on 127.0.0.1. Two models (``--model``): ``logistic``, the demo's
champion (StandardScaler + LogisticRegression on 8 numeric features, fitted on a numpy array),
and ``gbm``, the demo's gradient-boosting model (HistGradientBoostingClassifier, 150 trees),
whose one-row call costs more, most of it per-call overhead that batching pays once per batch
(both costs are measured in-process and reported as ``champion_predict_ms``).

(a) ``bare``: a Starlette app that parses the JSON body, builds a numpy row, calls
    ``model.predict`` and returns JSON, under uvicorn;
(b) ``arbiter-ab``: ``arbiter serve`` with ``strategy: ab`` (the challenger is a second small
    model of the same kind), logging every prediction, ``POST /models/NAME/predict`` with a
    unit id;
(c) ``arbiter-shadow``: ``arbiter serve`` with ``strategy: shadow``; the challenger is
    :class:`arbiter.testing.BusyModel`, burning 10x the champion's measured predict time of CPU
    while holding the GIL;
(d) ``mlflow``: ``mlflow models serve --env-manager local`` of the same model version, with its
    own ``{"dataframe_records": [...]}`` body;
(e) ``mlserver``: Seldon's MLServer with its scikit-learn runtime
    (``mlserver_sklearn.SKLearnModel``, the model saved with joblib in the model folder), its
    REST Open Inference Protocol v2 endpoint ``POST /v2/models/NAME/infer`` with a V2 body (one
    ``[1, 8]`` FP64 tensor), adaptive batching off;
(f) ``mlserver-batch``: the same with adaptive batching on (``max_batch_size`` 32,
    ``max_batch_time`` 2 ms).

MLServer runs from its own virtualenv, ``.venv-mlserver`` at the repository root, created on
first use with ``pip install mlserver==1.7.1 mlserver-sklearn==1.7.1 httptools`` and the
scikit-learn version of this interpreter (so the joblib file loads unchanged): its pins
(FastAPI, Starlette, pydantic) conflict with arbiter's. ``--mlserver-python`` points at another
one. It runs with ``parallel_workers: 0`` (inference in the HTTP process, like the others):
MLServer 1.7.1 as pip installs it does not start with its default ``parallel_workers: 1`` (the
inference workers die with "There is no current event loop"; upstream issue SeldonIO/MLServer
#2286). ``httptools`` is installed so that its uvicorn parses HTTP as arbiter's does.

With ``--workers N`` (default 2; 1 skips them) two more servers run on all cores: arbiter-ab
with ``arbiter serve --workers N`` and MLServer with ``parallel_workers: N`` and adaptive
batching (MLServer has no multi-process HTTP front end: its one HTTP process hands requests to
N inference processes; they start only with uvloop < 0.22, which ``.venv-mlserver`` pins). The
load generator is not pinned for these.

All servers of a model start together, unpinned; once ready each one's process group is pinned
to core 0 (load generators on core 1). Every server's answers are checked against the model's
own predictions. Saturation throughput comes from wrk (closed loop, ``-t2 -c16``) in rotated
rounds (every server once per round, the order shifted by one each round; medians and ranges);
latency at a fixed offered rate from ``benchmarks/_load.py`` (open loop, wrk2-style
coordinated-omission correction), in alternating rounds: (a) and (b) at half of (a)'s median
saturation, (b) and (c) at half of (b)'s, with the share of shadow requests completed per
round. The start-up to a first answer with two models comes from ``benchmarks/startup.py``.
docs/benchmarks_gateway.md describes the method.

``--smoke`` runs every phase at its shortest (1 s loads, one round) and prints the full run's
expected duration.

Usage::

    .venv/bin/python benchmarks/gateway.py --smoke                 # ~4-7 min, checks it all
    .venv/bin/python benchmarks/gateway.py --json g.json --markdown g.md   # ~20 min, quiet
    .venv/bin/python benchmarks/gateway.py --quick --model logistic
    .venv/bin/python benchmarks/gateway.py --only bare,arbiter-ab --startup-runs 0
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_report import (
    servers_markdown,
    startup_rows,
    summarize,
    targets,
    targets_markdown,
)
from _mlserver import (
    MLSERVER_MODEL,
    MLSERVER_VENV,
    mlserver_python,
    mlserver_versions,
    write_mlserver_repo,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
AB_MODEL = "bench-ab"
SHADOW_MODEL = "bench-shadow"
N_BODIES = 512
SHADOW_SLOWDOWN = 10.0
MODEL_KINDS = ("logistic", "gbm")

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
    """How long each phase runs and how many rotated rounds it has."""

    warmup_s: float
    wrk_s: float
    rate_s: float
    rounds: int  # saturation rounds: every server once per round, the order rotated
    rate_rounds: int  # open-loop rounds (half of (a), half of (b) with and without shadow)
    wrk_threads: int = 2
    wrk_connections: int = 16
    rate_connections: int = 32


FULL = Plan(warmup_s=2.0, wrk_s=7.0, rate_s=8.0, rounds=5, rate_rounds=3)
QUICK = Plan(warmup_s=1.0, wrk_s=3.0, rate_s=3.0, rounds=2, rate_rounds=1)
# --smoke: every phase of the full run, each as short as it can be (a crash test, no numbers).
SMOKE = Plan(warmup_s=1.0, wrk_s=1.0, rate_s=1.0, rounds=1, rate_rounds=1)


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


def pinned(core: int | str | None, argv: list[str]) -> list[str]:
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


def train_pair(kind: str, x: Any, y: Any) -> tuple[Any, Any]:
    """The served model of ``kind`` and a second one of the same kind (the A/B challenger)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from arbiter.demo.train import train_challenger, train_champion

    if kind == "logistic":
        champion = train_champion(x, y)
        challenger = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1_000))
        return champion, challenger.fit(x.to_numpy(), y)
    if kind == "gbm":
        return train_challenger(x, y, seed=7), train_challenger(x, y, seed=11)
    raise ValueError(f"unknown model {kind!r}")


def prepare(home: Path, kind: str) -> dict[str, Any]:
    """Train and register the models; write the bodies each server takes."""
    import pickle

    import joblib
    import numpy as np

    from arbiter.demo.data import FEATURES, make_transactions
    from arbiter.registry import registry_for_home
    from arbiter.testing import BusyModel

    train = make_transactions(20_000, seed=7)
    traffic = make_transactions(N_BODIES, seed=8)
    champion, challenger = train_pair(kind, train.features, train.labels)
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
    # MLServer's scikit-learn runtime loads a joblib file (same scikit-learn version, see above).
    joblib.dump(champion, home / "champion.joblib")
    expected = champion.predict(traffic.features.to_numpy()).tolist()
    (home / "expected.json").write_text(json.dumps(expected))

    rows = traffic.features.to_dict("records")
    rows = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows]
    users = [str(u) for u in traffic.users.tolist()]
    arbiter_bodies = [{"unit_id": u, "features": r} for u, r in zip(users, rows, strict=True)]
    mlflow_bodies = [{"dataframe_records": [r]} for r in rows]
    # Open Inference Protocol v2: one [1, n_features] FP64 tensor in the model's feature order.
    mlserver_bodies = [
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(FEATURES)],
                    "datatype": "FP64",
                    "data": [float(r[n]) for n in FEATURES],
                }
            ]
        }
        for r in rows
    ]
    for name, bodies in (
        ("arbiter", arbiter_bodies),
        ("mlflow", mlflow_bodies),
        ("mlserver", mlserver_bodies),
    ):
        (home / f"bodies_{name}.json").write_text(json.dumps(bodies))
        # One body per line for wrk's Lua script (compact JSON has no newlines).
        (home / f"bodies_{name}.txt").write_text(
            "\n".join(json.dumps(b, separators=(",", ":")) for b in bodies) + "\n"
        )
    (home / "post.lua").write_text(WRK_SCRIPT)
    (home / "bare_app.py").write_text(BARE_APP)
    return {
        "kind": kind,
        "estimator": type(champion).__name__,
        "features": list(FEATURES),
        "champion_predict_ms": cost["predict"] * 1000.0,
        "champion_predict_proba_ms": cost["predict_proba"] * 1000.0,
        "busy_ms": busy_s * 1000.0,
    }


def write_config(home: Path, model: str, strategy: str, isolate: bool | None = None) -> None:
    from arbiter.config import (
        ExperimentConfig,
        HomeConfig,
        ModelConfig,
        RegistryConfig,
        dump_config,
    )

    raw: dict[str, Any] = {"strategy": strategy}
    if isolate is not None:
        raw["isolate_arms"] = isolate
    registry = home.parent / "mlflow.db"
    config = HomeConfig(
        models={model: ModelConfig(experiment=ExperimentConfig.model_validate(raw))},
        # A server's own home (sub-folder of the model's) reads the model's shared registry.
        registry=RegistryConfig(tracking_uri=f"sqlite:///{registry}")
        if registry.exists() and not (home / "mlflow.db").exists()
        else RegistryConfig(),
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")


def arbiter_home(home: Path, key: str) -> Path:
    """The arbiter home of server ``key``: its own config and event store, the shared registry.

    Every server of a model runs at the same time (see :func:`run_model`), so each arbiter
    server gets its own home; the A/B one does not carry an idle shadow model and vice versa.
    """
    sub = home / f"home-{key}"
    if key == "arbiter-shadow":
        write_config(sub, SHADOW_MODEL, "shadow")
    else:
        write_config(sub, AB_MODEL, "ab")
    return sub


# -- running servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How one server is started: which program, how many workers, MLServer's batching."""

    key: str
    label: str
    path: str
    bodies: str  # which prepared bodies: arbiter, mlflow or mlserver
    workers: int = 1
    batching: bool = False


MLSERVER_PATH = f"/v2/models/{MLSERVER_MODEL}/infer"


def server_env(home: Path, bin_dir: Path = BIN) -> dict[str, str]:
    # Registering models points MLFLOW_REGISTRY_URI (and friends) of this process elsewhere.
    env = {k: v for k, v in os.environ.items() if "MLFLOW" not in k and "MLSERVER" not in k}
    uri = f"sqlite:///{home / 'mlflow.db'}"
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_REGISTRY_URI": uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def server_argv(
    variant: Variant, home: Path, port: int, features: list[str], mlserver_bin: Path | None
) -> list[str]:
    key = variant.key
    if key.startswith("mlserver"):
        if mlserver_bin is None:
            raise ValueError("MLServer's virtualenv is not set up")
        repo = write_mlserver_repo(
            home, key, port, batching=variant.batching, workers=variant.workers
        )
        return [str(mlserver_bin / "mlserver"), "start", str(repo)]
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
            str(home if key.startswith("arbiter-ab-isolate") else arbiter_home(home, key)),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(variant.workers),
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
    if server.key.startswith("mlserver"):
        health = f"/v2/models/{MLSERVER_MODEL}/ready"
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


def pin_group(proc: subprocess.Popen[bytes], core: int | str | None) -> None:
    """Pin every process of ``proc``'s session (its workers too), every thread, to ``core``."""
    if core is None or shutil.which("taskset") is None:
        return
    pids = subprocess.run(
        ["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in pids or [str(proc.pid)]:
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), pid], capture_output=True)


def launch(
    variant: Variant,
    home: Path,
    features: list[str],
    core: int | str | None,
    mlserver_bin: Path | None = None,
    *,
    pin_now: bool = True,
) -> Server:
    """Start one server as a subprocess (not waiting for it); ``pin_now=False`` leaves the
    pinning to :func:`pin_group` once it is ready (servers then start on every core)."""
    port = free_port()
    bodies = home / f"bodies_{variant.bodies}.json"
    key = variant.key
    server = Server(key, variant.label, port, variant.path, bodies, log=home / f"{key}.log")
    argv = server_argv(variant, home, port, features, mlserver_bin)
    argv = pinned(core, argv) if pin_now else argv
    bin_dir = mlserver_bin if key.startswith("mlserver") and mlserver_bin else BIN
    with open(server.log, "wb") as log:
        # A new session: SIGTERM reaches the whole group (mlflow starts uvicorn as a child).
        server.proc = subprocess.Popen(
            argv,
            env=server_env(home, bin_dir),
            cwd=home,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return server


@contextlib.contextmanager
def running(
    variant: Variant,
    home: Path,
    features: list[str],
    core: int | str | None,
    mlserver_bin: Path | None = None,
) -> Iterator[Server]:
    server = launch(variant, home, features, core, mlserver_bin)
    try:
        wait_ready(server)
        yield server
    finally:
        assert server.proc is not None
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


def median_wrk(server: Server, plan: Plan, core: int | None) -> dict[str, Any]:
    """Warm up, then the round with the median throughput of ``plan.rounds`` wrk runs."""
    run_wrk(server, plan, plan.warmup_s, core)
    runs = sorted((run_wrk(server, plan, plan.wrk_s, core) for _ in range(plan.rounds)),
                  key=lambda r: r["rps"])  # fmt: skip
    mid = dict(runs[len(runs) // 2])
    mid["all_rps"] = [round(r["rps"], 1) for r in runs]
    return mid


def shadow_counts(server: Server) -> dict[str, float]:
    """Shadow outcomes so far, plus the shadow model's total latency (``latency_sum``, s)."""
    import httpx

    text = httpx.get(server.url + "/metrics", timeout=10.0).text
    counts: dict[str, float] = {}
    for m in re.finditer(r'^arbiter_shadow_total\{[^}]*outcome="(\w+)"\} (\S+)$', text, re.M):
        counts[m.group(1)] = float(m.group(2))
    m = re.search(r'^arbiter_model_latency_seconds_sum\{[^}]*role="shadow"\} (\S+)$', text, re.M)
    counts["latency_sum"] = float(m.group(1)) if m else 0.0
    # Jobs per shadow worker call (batching in the worker): sum = jobs, count = calls.
    for part in ("sum", "count"):
        m = re.search(rf"^arbiter_shadow_batch_requests_{part}\{{[^}}]*\}} (\S+)$", text, re.M)
        counts[f"batch_{part}"] = float(m.group(1)) if m else 0.0
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


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("pandas", "numpy", "scikit-learn", "mlflow", "starlette", "uvicorn", "uvloop")
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(Exception):
            out[name] = version(name)
    with contextlib.suppress(OSError):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        out["wrk"] = (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip()
    return out


# -- smoke check -------------------------------------------------------------------------------


def answers(server: Server, response: dict[str, Any]) -> Any:
    """The predicted class in one server's response body."""
    if server.key == "bare":
        return response["prediction"]
    if server.key == "mlflow":
        return response["predictions"][0]
    if server.key.startswith("mlserver"):
        return response["outputs"][0]["data"][0]
    return response["prediction"]


def smoke(server: Server, expected: list[Any], n: int = 48) -> dict[str, Any]:
    """A few requests one by one, then the same concurrently; every answer against the model's.

    arbiter A/B answers some units with the challenger, so only its champion-served answers
    (``arm`` in the response) are compared there.
    """
    import asyncio

    import httpx

    bodies = json.loads(server.bodies.read_text())[:n]

    async def send_all() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:

            async def one(body: dict[str, Any]) -> dict[str, Any]:
                r = await client.post(server.path, json=body)
                r.raise_for_status()
                return r.json()

            serial = [await one(b) for b in bodies]
            concurrent = await asyncio.gather(*(one(b) for b in bodies))
            return serial, list(concurrent)

    serial, concurrent = asyncio.run(send_all())
    compared = wrong = 0
    for responses in (serial, concurrent):
        for i, response in enumerate(responses):
            if server.key.startswith("arbiter") and response.get("arm", "champion") != "champion":
                continue
            compared += 1
            wrong += int(answers(server, response) != expected[i])
    out = {"requests": 2 * len(bodies), "compared": compared, "wrong": wrong}
    if server.key.startswith("mlserver") and server.log is not None:
        # MLServer logs this at load time when max_batch_size/max_batch_time took effect.
        out["batching"] = "Adaptive Batching is enabled" in server.log.read_text(errors="replace")
    return out


# -- main --------------------------------------------------------------------------------------


def variants(workers: int) -> list[Variant]:
    """Every server of one model's run."""
    out = [
        Variant("bare", "(a) bare", "/predict", "arbiter"),
        Variant("arbiter-ab", "(b) arbiter A/B", f"/models/{AB_MODEL}/predict", "arbiter"),
        Variant(
            "arbiter-shadow", "(c) arbiter shadow", f"/models/{SHADOW_MODEL}/predict", "arbiter"
        ),
        Variant("mlflow", "(d) mlflow", "/invocations", "mlflow"),
        Variant("mlserver", "(e) MLServer", MLSERVER_PATH, "mlserver"),
        Variant(
            "mlserver-batch", "(f) MLServer batching", MLSERVER_PATH, "mlserver", batching=True
        ),
    ]
    if workers > 1:
        out += [
            Variant(
                "arbiter-ab-w2",
                f"(b) arbiter A/B, {workers} workers",
                f"/models/{AB_MODEL}/predict",
                "arbiter",
                workers=workers,
            ),
            # Compared with (f): MLServer's best one-process setting, batching on.
            Variant(
                "mlserver-w2",
                f"(f) MLServer batching, {workers} parallel workers",
                MLSERVER_PATH,
                "mlserver",
                workers=workers,
                batching=True,
            ),
        ]
    return out


OUTCOMES = ("ok", "error", "timeout", "dropped")  # arbiter_shadow_total's outcome label

#: Every load run of this process: (kind, nominal seconds, wall seconds) for the estimate.
LOAD_RUNS: list[tuple[str, float, float]] = []


def timed(kind: str, nominal: float, fn: Any, *args: Any) -> dict[str, Any]:
    t = time.perf_counter()
    out: dict[str, Any] = fn(*args)
    LOAD_RUNS.append((kind, nominal, time.perf_counter() - t))
    return out


def settled_shadow_counts(server: Server, expected: float, timeout_s: float = 10.0) -> dict:
    """Shadow outcomes once every mirrored request of the round has one (or ``timeout_s``):
    an accepted shadow ends as ok, error or timeout within ``shadow_timeout_s``."""
    deadline = time.monotonic() + timeout_s
    counts = shadow_counts(server)
    while time.monotonic() < deadline:
        if sum(v for k, v in counts.items() if k in OUTCOMES) >= expected:
            break
        time.sleep(0.2)
        counts = shadow_counts(server)
    return counts


def run_model(
    home: Path, args: argparse.Namespace, plan: Plan, mlserver_bin: Path | None
) -> dict[str, Any]:
    """Every server of one model, started together, then measured in rotated rounds.

    1. start every server (each idle while another is measured; arbiter servers each in their
       own home), check a few dozen answers of each against the model's own predictions;
    2. saturation: a warm-up per server, then ``plan.rounds`` rounds of wrk, each round
       running every server once in an order rotated by one per round;
    3. open loop at half of (a)'s median saturation: (a) and (b), ``plan.rate_rounds``
       alternating rounds;
    4. open loop at half of (b)'s median saturation: (b) and (c) (shadow), alternating rounds,
       with the shadow outcomes of each round;
    5. the peers at half of their own saturation (one round).
    """
    server_core, load_core = (None, None) if args.no_pin else (0, 1)
    all_cores = None if args.no_pin else f"0-{(os.cpu_count() or 2) - 1}"
    info = json.loads((home / "model.json").read_text())
    features = info["features"]
    expected = json.loads((home / "expected.json").read_text())
    run: dict[str, Any] = {"model": info, "servers": {}, "open_loop": {}}
    s, ol = run["servers"], run["open_loop"]
    chosen = [
        v
        for v in variants(args.workers)
        if (not args.only or v.key in args.only)
        and not (v.key.startswith("mlserver") and mlserver_bin is None)
    ]
    live: dict[str, Server] = {}
    load: dict[str, int | None] = {}
    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        launched = []
        for v in chosen:
            # N workers get every core; the load generator then shares them.
            # Started on every core (start-up is CPU-bound: pinned, all servers would start
            # one after another on core 0), pinned once ready, before any measurement.
            srv = launch(v, home, features, None, mlserver_bin, pin_now=False)
            assert srv.proc is not None
            stack.callback(stop, srv.proc)
            launched.append((v, srv))
        for v, srv in launched:
            try:
                wait_ready(srv, timeout_s=300.0)
            except (RuntimeError, TimeoutError) as exc:
                # A peer that does not start (MLServer's parallel workers) is a result.
                if not (v.key.startswith("mlserver") or v.workers > 1):
                    raise
                s[v.key] = {"error": failure_reason(srv.log) or str(exc).split(";")[0]}
                print(f"  {v.key:<15} did not start: {s[v.key]['error']}", flush=True)
                continue
            pin_group(srv.proc, all_cores if v.workers > 1 else server_core)  # type: ignore[arg-type]
            live[v.key] = srv
            load[v.key] = None if v.workers > 1 else load_core
            s[v.key] = {"workers": v.workers}
        print(f"  {len(live)} servers ready after {time.perf_counter() - t0:.0f} s", flush=True)

        for key, srv in live.items():
            s[key]["answers"] = smoke(srv, expected)
            print(f"  {key:<15} answers {s[key]['answers']}", flush=True)

        sat_keys = [k for k in live if k != "arbiter-shadow"]
        for key in sat_keys:
            timed("warmup", plan.warmup_s, run_wrk, live[key], plan, plan.warmup_s, load[key])
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in sat_keys}
        for r in range(plan.rounds):
            shift = r % max(1, len(sat_keys))
            for key in sat_keys[shift:] + sat_keys[:shift]:
                res = timed("wrk", plan.wrk_s, run_wrk, live[key], plan, plan.wrk_s, load[key])
                rounds[key].append(res)
                log_line(key, f"sat {r + 1}/{plan.rounds}", res)
        for key in sat_keys:
            s[key]["wrk_rounds"] = rounds[key]
            s[key]["wrk"] = summarize(rounds[key])

        def open_loop(name: str, keys: list[str], rate: float) -> dict[str, Any]:
            phase: dict[str, Any] = {"rate": rate, **{k: {"rounds": []} for k in keys}}
            for r in range(plan.rate_rounds):
                for key in keys if r % 2 == 0 else keys[::-1]:
                    srv = live[key]
                    before = shadow_counts(srv) if key == "arbiter-shadow" else None
                    res = timed("rate", plan.rate_s, run_rate, srv, plan, rate, plan.rate_s,
                                load[key])  # fmt: skip
                    if before is not None:
                        after = settled_shadow_counts(
                            srv, sum(v for k, v in before.items() if k in OUTCOMES)
                            + res["requests"],
                        )  # fmt: skip
                        delta = {k: after[k] - before.get(k, 0.0) for k in after}
                        in_shadow_s = delta.pop("latency_sum")
                        jobs, calls = delta.pop("batch_sum"), delta.pop("batch_count")
                        res["shadow_jobs_per_call"] = jobs / calls if calls else None
                        res["shadow_outcomes"] = delta
                        res["shadow_mean_ms"] = 1000 * in_shadow_s / max(1.0, delta.get("ok", 0))
                        mirrored = max(float(res["requests"]), sum(delta.values()))
                        res["shadow_completed_pct"] = 100.0 * delta.get("ok", 0.0) / mirrored
                    phase[key]["rounds"].append(res)
                    log_line(key, name, res)
                    if before is not None:
                        per_call = res["shadow_jobs_per_call"] or 0.0
                        print(f"  {'':<15} shadow outcomes {res['shadow_outcomes']}: "
                              f"{res['shadow_completed_pct']:.1f} % completed, mean shadow "
                              f"latency {res['shadow_mean_ms']:.1f} ms, {per_call:.1f} jobs "
                              "per worker call", flush=True)  # fmt: skip
            for key in keys:
                phase[key]["summary"] = summarize(phase[key]["rounds"])
            return phase

        if "bare" in live and "arbiter-ab" in live:
            half_a = 0.5 * s["bare"]["wrk"]["rps"]["median"]
            ol["half_a"] = open_loop("50% of (a)", ["bare", "arbiter-ab"], half_a)
        if "arbiter-ab" in live and "arbiter-shadow" in live:
            half_b = 0.5 * s["arbiter-ab"]["wrk"]["rps"]["median"]
            # The shadow worker's first calls (imports, a cold model) are not the steady state.
            timed("warmup", plan.warmup_s, run_rate, live["arbiter-shadow"], plan, half_b,
                  plan.warmup_s, load_core)  # fmt: skip
            ol["half_b"] = open_loop("50% of (b)", ["arbiter-ab", "arbiter-shadow"], half_b)
        own: dict[str, Any] = {}
        for key in ("mlflow", "mlserver", "mlserver-batch"):
            if key in live:
                # The peers at half of their own saturation (half of (a)'s would overload).
                rate = 0.5 * s[key]["wrk"]["rps"]["median"]
                res = timed("once", plan.rate_s, run_rate, live[key], plan, rate, plan.rate_s,
                            load[key])  # fmt: skip
                log_line(key, "50% of own", res)
                own[key] = {"rate": rate, "rounds": [res], "summary": summarize([res])}
        if own:
            ol["half_own"] = own
        if args.profile:
            for key in ("bare", "arbiter-ab", "mlflow", "mlserver-batch"):
                if key in live:
                    profile(live[key], plan, args.profile / info["kind"], load[key])
    run["targets"] = targets(run)
    return run


def estimate_full_s(smoke_wall_s: float, smoke_plan: Plan, full: Plan, startup_runs: int) -> float:
    """The full run's duration, from a ``--smoke`` run's: its fixed costs (preparing, starting
    servers, checking answers) plus the full plan's load runs, each with the overhead a smoke
    load run had over its nominal length."""
    if not LOAD_RUNS:
        return smoke_wall_s
    loaded = sum(wall for _, _, wall in LOAD_RUNS)
    overhead = sum(wall - nominal for _, nominal, wall in LOAD_RUNS) / len(LOAD_RUNS)
    fixed = smoke_wall_s - loaded
    per = {"warmup": full.warmup_s, "wrk": full.wrk_s, "rate": full.rate_s, "once": full.rate_s}
    scale = {
        "warmup": 1.0,
        "once": 1.0,
        "wrk": full.rounds / smoke_plan.rounds,
        "rate": full.rate_rounds / smoke_plan.rate_rounds,
    }
    load_s = sum(scale[kind] * (per[kind] + overhead) for kind, _, _ in LOAD_RUNS)
    startup_extra = STARTUP_SMOKE_S.get("per_run", 0.0) * max(0, startup_runs - 1)
    return fixed + load_s + startup_extra


#: Seconds one start-up measurement took in this process (for the estimate).
STARTUP_SMOKE_S: dict[str, float] = {}


def log_line(key: str, what: str, r: dict[str, Any]) -> None:
    extra = f" (offered {r['offered_rps']:.0f})" if "offered_rps" in r else ""
    rps = r.get("achieved_rps", r.get("rps"))
    print(
        f"  {key:<15} {what:<12} {rps:8.0f} req/s{extra}  p50 {r['p50_ms']:.2f} ms  "
        f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  "
        f"(other load before: {100 * r['background_cpu']:.0f}% CPU)",
        flush=True,
    )


def failure_reason(path: Path | None) -> str:
    """The first exception line of a server's log (else its last line): why it did not start."""
    if path is None or not path.exists():
        return ""
    lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    errors = [x for x in lines if re.match(r"^[\w.]+(Error|Exception|Stop): ", x)]
    return (errors or lines[-1:] or [""])[0][:300]


def prepare_quietly(home: Path, kind: str) -> dict[str, Any]:
    """Train and register; MLflow's chatter (warnings, "Created version") goes to a file."""
    home.mkdir(parents=True, exist_ok=True)
    with (
        open(home / "prepare.log", "w") as err,
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        info = prepare(home, kind)
    (home / "model.json").write_text(json.dumps(info))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 2 rounds (~1/3 time)")
    parser.add_argument("--rounds", type=int, help="saturation rounds (default 5)")
    parser.add_argument(
        "--model",
        choices=(*MODEL_KINDS, "both"),
        default="both",
        help="logistic (the demo's champion), gbm (its gradient boosting) or both (default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run arbiter A/B and MLServer with this many workers on all cores (1: skip)",
    )
    parser.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        help="comma-separated server keys to run (bare, arbiter-ab, arbiter-shadow, mlflow, "
        "mlserver, mlserver-batch, arbiter-ab-w2, mlserver-w2); open-loop phases need their "
        "reference servers (bare and arbiter-ab; arbiter-ab and arbiter-shadow)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every phase of the full run at its shortest (1 s loads, one round): a crash "
        "test that also checks every server's answers and prints the full run's duration",
    )
    parser.add_argument(
        "--startup-runs",
        type=int,
        help="start-ups measured by benchmarks/startup.py (default 5; 1 with --smoke; 0 skips)",
    )
    parser.add_argument(
        "--mlserver-python",
        type=Path,
        help=f"interpreter of a venv with MLServer (default: {MLSERVER_VENV.name}, created "
        "on first use)",
    )
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--profile", type=Path, help="py-spy profiles of (a), (b), (d), (f) here")
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
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    startup_runs = args.startup_runs
    if startup_runs is None:
        startup_runs = 1 if args.smoke else 0 if args.isolation or args.only else 5
    kinds = MODEL_KINDS if args.model == "both" else (args.model,)

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="arbiter-bench-gw-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "kernel": platform.release(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": versions(),
        "plan": plan.__dict__,
        "pinned": not args.no_pin,
        "smoke": args.smoke,
        "runs": {},
    }
    try:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        mlserver_bin = None
        wants_mlserver = not args.isolation and (
            not args.only or any(k.startswith("mlserver") for k in args.only)
        )
        if wants_mlserver and not args.no_mlserver:
            python = mlserver_python(args.mlserver_python)
            mlserver_bin = python.parent
            results["versions"].update(mlserver_versions(python))
        if startup_runs > 0:
            import startup

            print(f"start-up: {startup_runs} runs of arbiter serve with two models ...",
                  flush=True)  # fmt: skip
            t = time.perf_counter()
            results["startup"] = startup.measure(startup_runs)
            STARTUP_SMOKE_S["per_run"] = (time.perf_counter() - t) / (startup_runs + 2)
            print(startup.markdown(results["startup"]), flush=True)
        for kind in kinds:
            home = root / kind
            print(f"preparing the {kind} models in {home} ...", flush=True)
            info = prepare_quietly(home, kind)
            print(f"  champion predict {info['champion_predict_ms']:.3f} ms, "
                  f"BusyModel {info['busy_ms']:.3f} ms", flush=True)  # fmt: skip
            if args.isolation:
                compare_isolation(home, results["runs"], plan, info["features"], args.no_pin)
                continue
            results["runs"][kind] = run_model(home, args, plan, mlserver_bin)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"home kept at {root}")

    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = round(time.perf_counter() - started, 1)
    failed = False
    out: list[str] = []
    for kind, run in results["runs"].items():
        if args.isolation:
            continue
        for key, r in run["servers"].items():
            # A server that did not start is reported in the table, not a crash; a wrong
            # answer is a failure of the run (the numbers would not compare like with like).
            ans = r.get("answers", {})
            bad = "error" not in r and (ans.get("wrong", 0) > 0 or ans.get("compared", 0) == 0)
            bad |= ans.get("batching", key.startswith("mlserver-")) != key.startswith("mlserver-")
            if bad:
                print(f"FAILED: {kind} {key} answers {ans}")
            failed |= bad
        out += [f"### {kind} ({run['model']['estimator']}, one-row predict "
                f"{run['model']['champion_predict_ms']:.3f} ms in-process)", ""]  # fmt: skip
        out += [servers_markdown(run), ""]
    rows = [row for run in results["runs"].values() for row in run.get("targets", [])]
    if "startup" in results:
        rows += startup_rows(results["startup"])
    if rows:
        by_model = []
        for kind, run in results["runs"].items():
            by_model += [{**r, "measure": f"{kind}: {r['measure']}"} for r in run["targets"]]
        if "startup" in results:
            by_model += startup_rows(results["startup"])
        out += ["### Targets", "", targets_markdown(by_model), ""]
    la0, la1 = results["machine"]["loadavg_start"], results["machine"]["loadavg_end"]
    out.append(
        f"{results['date']}, {'SMOKE RUN (numbers mean nothing) ' if args.smoke else ''}"
        f"wall time {results['seconds']:.0f} s, load average {la0[0]:.2f} at the start and "
        f"{la1[0]:.2f} at the end; plan {plan.__dict__}; command `{results['command']}`"
    )
    text = "\n".join(out)
    print("\n" + text)
    if args.smoke:
        est = estimate_full_s(results["seconds"], plan, FULL, 5)
        n_models = len(results["runs"]) or 1
        results["estimated_full_s"] = est
        print(f"\nestimated full run (same servers, --model {args.model}): {est / 60:.1f} min"
              f" ({n_models} model(s); fixed costs measured here, loads at the full plan's"
              f" lengths)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 1 if failed else 0


def compare_isolation(
    home: Path, runs: dict[str, Any], plan: Plan, features: list[str], no_pin: bool
) -> None:
    """(a), then (b) with the arms scored inline (no deadline) and in thread pools (the default)."""
    server_core, load_core = (None, None) if no_pin else (0, 1)
    s: dict[str, Any] = {}
    runs[home.name] = {"servers": s}
    with running(
        Variant("bare", "(a) bare", "/predict", "arbiter"), home, features, server_core
    ) as srv:
        s["bare"] = {"wrk": median_wrk(srv, plan, load_core)}
        log_line("bare", "saturation", s["bare"]["wrk"])
        half_a = 0.5 * s["bare"]["wrk"]["rps"]
    path = f"/models/{AB_MODEL}/predict"
    for isolate in (False, True):
        key = f"arbiter-ab-isolate-{str(isolate).lower()}"
        write_config(home, AB_MODEL, "ab", isolate=isolate)
        variant = Variant(key, f"(b) A/B isolate_arms={isolate}", path, "arbiter")
        with running(variant, home, features, server_core) as srv:
            s[key] = {"wrk": median_wrk(srv, plan, load_core)}
            log_line(key, "saturation", s[key]["wrk"])
            s[key]["rate_half_a"] = run_rate(srv, plan, half_a, plan.rate_s, load_core)
            log_line(key, "50% of (a)", s[key]["rate_half_a"])
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
