"""One-row serving cost of a small PyTorch model (docs/flavors.md (PyTorch)).

The demo's 2-layer MLP (:func:`arbiter.demo.torch_model.train_mlp`, 8 -> 16 -> 1, sigmoid)
logged with :meth:`MLflowRegistry.log_pytorch_model` into a fresh home, then timed:

* in process, one row at a time: ``ServableModel.predict_rows`` (what the gateway calls for
  ``/predict``), ``PyFuncModel.predict`` on a ``[1, 8]`` float32 array (MLflow's schema
  enforcement and the pyfunc wrapper), and the network called directly with torch;
* through the gateway: ``arbiter serve`` (one worker, a subprocess, champion only, every
  prediction logged) answering sequential ``POST /models/NAME/predict`` one-row requests from
  one httpx client; wall time per request at the client and the server process's CPU time
  per request (from /proc).

Usage: ``python benchmarks/flavors_pytorch.py [--calls 2000] [--requests 1000]``; prints one
JSON object. The machine is shared: read the load average it reports with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `arbiter serve` does (arbiter.threads)

import numpy as np

MODEL = "fraud-torch"


def _timings(fn: Any, calls: int) -> dict[str, float]:
    for _ in range(min(200, calls)):
        fn()
    wall = np.empty(calls)
    cpu0 = time.process_time()
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        wall[i] = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / calls
    return {
        "median_us": round(float(np.median(wall)) * 1e6, 1),
        "p99_us": round(float(np.percentile(wall, 99)) * 1e6, 1),
        "cpu_us": round(cpu * 1e6, 1),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    import httpx
    import torch

    from arbiter.config import HomeConfig, dump_config
    from arbiter.demo.data import FEATURES, make_transactions
    from arbiter.demo.torch_model import train_mlp
    from arbiter.home import Home
    from arbiter.registry import registry_for_home

    result: dict[str, Any] = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.at(Path(tmp) / "home", create=True)
        config = HomeConfig.model_validate({"models": {MODEL: {}}})
        home.config_path.write_text(dump_config(config), encoding="utf-8")
        registry = registry_for_home(home.root)
        data = make_transactions(4_000, seed=1)
        net = train_mlp(data.features, data.labels, hidden=16, steps=300, seed=1)
        example = data.features.head(4).to_numpy(np.float32)
        version = registry.log_pytorch_model(
            MODEL, net, list(FEATURES), example, classes=[0, 1], aliases=("champion",)
        )
        model = registry.load(MODEL, version)
        row = data.features.iloc[0].astype(float).to_dict()
        x = np.array([[row[c] for c in FEATURES]], dtype=np.float32)
        tensor = torch.from_numpy(x)
        result["torch_threads"] = torch.get_num_threads()

        def direct() -> None:
            with torch.no_grad():
                net(tensor)

        paths = {
            "predict_rows": lambda: model.predict_rows([row]),
            "pyfunc_predict": lambda: model.pyfunc.predict(x),
            "torch_direct": direct,
        }
        # A first pass is thrown away: whichever path ran first paid ~3x its steady CPU time
        # per call (lazy initialisation in torch/MLflow), measured on 2026-12-04.
        for fn in paths.values():
            _timings(fn, args.calls)
        result["in_process"] = {name: _timings(fn, args.calls) for name, fn in paths.items()}

        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        server = subprocess.Popen(
            [sys.executable, "-m", "arbiter", "serve", "--home", str(home.root), "--port",
             str(port), "--log-level", "warning"],
            env=env,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30.0) as client:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        if client.get("/readyz").json().get("status") == "ready":
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("arbiter serve did not become ready in 180 s")
                    time.sleep(0.2)
                body = {"features": row}
                for _ in range(200):
                    client.post(f"/models/{MODEL}/predict", json=body).raise_for_status()
                wall = np.empty(args.requests)
                cpu0 = _cpu_seconds(server.pid)
                for i in range(args.requests):
                    t0 = time.perf_counter()
                    client.post(f"/models/{MODEL}/predict", json=body).raise_for_status()
                    wall[i] = time.perf_counter() - t0
                cpu = (_cpu_seconds(server.pid) - cpu0) / args.requests
            result["gateway_predict"] = {
                "median_us": round(float(np.median(wall)) * 1e6, 1),
                "p99_us": round(float(np.percentile(wall, 99)) * 1e6, 1),
                "server_cpu_us": round(cpu * 1e6, 1),
                "requests": args.requests,
            }
        finally:
            server.terminate()
            server.wait(timeout=60)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
