"""One-row serving cost per model flavor: in process and through the gateway's /predict.

Every flavor is trained on the demo's transactions (a text flavor on synthetic merchant
descriptions), registered in a fresh MLflow SQLite registry in a temporary home, and loaded
the way the gateway loads it (``MLflowRegistry.load``). For each:

* ``in-process``: ``ServableModel.predict_rows([row])``, median and p99 over ``--calls`` calls
  (after 20 warm-up calls), and the CPU time per call (``time.process_time``);
* ``gateway``: ``POST /models/{name}/predict`` with one row, sequential requests from one
  client (concurrency 1) against a real uvicorn server in this process, p50/p99 over
  ``--requests`` requests (after 20 warm-up requests). Client and server share the process
  and the cores, as a sidecar would.

Flavors: the demo's logistic pipeline (``sklearn-logistic``), its gradient boosting
(``sklearn-hgb``), a LightGBM booster logged with ``mlflow.lightgbm``, a TF-IDF + logistic
text pipeline, a gradient boosting regressor, the multi-output pyfunc
(``arbiter.demo.flavor_models.RiskModel``: label, probability, score) and, when ``import
torch`` works, a small PyTorch MLP logged with ``mlflow.pytorch``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flavors.py --out docs/benchmarks_flavors.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `arbiter serve` does (arbiter.threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

WORDS_OK = ["grocery", "coffee", "fuel", "pharmacy", "books", "bakery", "transit", "cinema"]
WORDS_RISKY = ["giftcard", "crypto", "wire", "voucher", "casino", "prepaid"]


def text_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Merchant descriptions of 3-8 words; risky words make fraud likelier."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        risky = rng.random() < 0.2
        k = int(rng.integers(3, 9))
        pool = WORDS_OK + (WORDS_RISKY if risky else [])
        texts.append(" ".join(rng.choice(pool, size=k)))
        labels.append(int(risky and rng.random() < 0.8))
    return pd.DataFrame({"description": texts}), np.asarray(labels)


def register_all(registry: Any, with_torch: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """Register every flavor; return ``{name: (version, one input row)}``."""
    import mlflow
    from mlflow.models import infer_signature

    from arbiter.demo.data import make_transactions
    from arbiter.demo.flavor_models import (
        RiskModel,
        expected_loss,
        train_loss_challenger,
    )
    from arbiter.demo.train import train_challenger, train_champion

    data = make_transactions(4_000, seed=1)
    x, y = data.features, data.labels
    example = x.head(5)
    row = x.iloc[0].to_dict()
    out: dict[str, tuple[str, dict[str, Any]]] = {}

    out["sklearn-logistic"] = (
        registry.log_sklearn_model("logistic", train_champion(x, y), example),
        row,
    )
    out["sklearn-hgb"] = (registry.log_sklearn_model("hgb", train_challenger(x, y), example), row)
    regressor = train_loss_challenger(x, expected_loss(x, seed=1))
    out["regression-gbr"] = (registry.log_sklearn_model("regression", regressor, example), row)
    risk = RiskModel(train_champion(x, y), list(x.columns))
    out["multi-output-pyfunc"] = (
        registry.log_pyfunc_model(
            "multi_output", risk, example, output_example=risk.predict(None, example)
        ),
        row,
    )

    texts, text_labels = text_data(3_000, seed=1)
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    text_model = make_pipeline(
        ColumnTransformer([("tfidf", TfidfVectorizer(), "description")]),
        LogisticRegression(max_iter=1_000),
    ).fit(texts, text_labels)
    out["text-tfidf"] = (
        registry.log_sklearn_model("text", text_model, texts.head(5)),
        texts.iloc[0].to_dict(),
    )

    def log_native(
        name: str, log: Callable[..., Any], model: Any, signature: Any, **kw: Any
    ) -> str:
        from arbiter.registry.mlflow_registry import DEFAULT_EXPERIMENT

        run = registry.client.create_run(registry._experiment_id(DEFAULT_EXPERIMENT))
        with registry._logging_run(run.info.run_id):
            info = log(model, name="model", signature=signature, registered_model_name=name, **kw)
        return str(info.registered_model_version)

    import lightgbm

    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 15, "verbose": -1},
        lightgbm.Dataset(x, y),
        num_boost_round=100,
    )
    signature = infer_signature(example, booster.predict(example))
    out["lightgbm-booster"] = (
        log_native("lgbm", mlflow.lightgbm.log_model, booster, signature),
        row,
    )

    if with_torch:
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )
        xt = torch.tensor(x.to_numpy(np.float32))
        xt = (xt - xt.mean(0)) / xt.std(0)
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        target = torch.tensor(y, dtype=torch.float32).unsqueeze(1)
        for _ in range(50):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(net(xt), target).backward()
            opt.step()
        net.eval()
        # Double columns in the signature (JSON numbers); MLflow's pytorch pyfunc casts a
        # DataFrame to float32 itself. "pickle": the "pt2" default needs a traced example.
        example64 = example.astype(np.float64)
        with torch.no_grad():
            output = net(torch.tensor(example64.to_numpy(np.float32))).numpy()
        signature = infer_signature(example64, output)
        version = log_native(
            "torch_mlp", mlflow.pytorch.log_model, net, signature, serialization_format="pickle"
        )
        out["pytorch-mlp"] = (version, {k: float(v) for k, v in row.items()})
    return out


MODEL_NAMES = {
    "sklearn-logistic": "logistic",
    "sklearn-hgb": "hgb",
    "regression-gbr": "regression",
    "multi-output-pyfunc": "multi_output",
    "text-tfidf": "text",
    "lightgbm-booster": "lgbm",
    "pytorch-mlp": "torch_mlp",
}


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def bench_in_process(model: Any, row: dict[str, Any], calls: int) -> dict[str, float]:
    rows = [row]
    for _ in range(20):
        model.predict_rows(rows)
    wall: list[float] = []
    cpu0 = time.process_time()
    for _ in range(calls):
        t0 = time.perf_counter()
        model.predict_rows(rows)
        wall.append((time.perf_counter() - t0) * 1e3)
    cpu = (time.process_time() - cpu0) * 1e3 / calls
    p50, p99 = _quantiles(wall)
    return {"p50_ms": p50, "p99_ms": p99, "cpu_ms": cpu}


def bench_gateway(url: str, name: str, row: dict[str, Any], requests: int) -> dict[str, float]:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        path = f"/models/{name}/predict"
        for _ in range(20):
            r = client.post(path, json={"features": row})
            r.raise_for_status()
        wall: list[float] = []
        cpu0 = time.process_time()
        for _ in range(requests):
            t0 = time.perf_counter()
            r = client.post(path, json={"features": row})
            wall.append((time.perf_counter() - t0) * 1e3)
            r.raise_for_status()
        cpu = (time.process_time() - cpu0) * 1e3 / requests
    p50, p99 = _quantiles(wall)
    return {"p50_ms": p50, "p99_ms": p99, "cpu_ms": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="in-process calls per flavor")
    parser.add_argument("--requests", type=int, default=300, help="gateway requests per flavor")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)

    from arbiter.config import HomeConfig, dump_config
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.home import Home
    from arbiter.registry import registry_for_home

    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.at(Path(tmp) / "home", create=True)
        registry = registry_for_home(home.root)
        flavors = register_all(registry, with_torch)
        for flavor, name in MODEL_NAMES.items():
            if flavor in flavors:
                registry.set_alias(name, "champion", flavors[flavor][0])
        config = HomeConfig.model_validate({"models": {MODEL_NAMES[f]: {} for f in flavors}})
        home.config_path.write_text(dump_config(config), encoding="utf-8")

        results: dict[str, dict[str, Any]] = {}
        for flavor, (version, row) in flavors.items():
            model = registry.load(MODEL_NAMES[flavor], version)
            results[flavor] = {"path": "native" if model.raw is not None else "pyfunc"}
            results[flavor].update(bench_in_process(model, row, args.calls))
        server = ServerThread(create_app(home)).start()
        try:
            for flavor, (_, row) in flavors.items():
                gateway = bench_gateway(server.url, MODEL_NAMES[flavor], row, args.requests)
                results[flavor].update({f"gw_{k}": v for k, v in gateway.items()})
        finally:
            server.stop()
    load_after = os.getloadavg()

    lines = [
        "# One-row serving cost per model flavor",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on a {os.cpu_count()}-core machine, "
        f"load average {load_before[0]:.2f} before and {load_after[0]:.2f} after "
        f"(1-minute). Command:",
        "",
        "```",
        "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flavors.py "
        f"--calls {args.calls} --requests {args.requests} --out docs/benchmarks_flavors.md",
        "```",
        "",
        "`in-process`: `ServableModel.predict_rows([row])` (`native`: the scikit-learn estimator "
        "called directly; `pyfunc`: through MLflow's pyfunc, signature enforcement included). "
        "`gateway`: `POST /models/{name}/predict`, one row, one client, sequential requests, "
        "against uvicorn in the same process; its CPU per request counts client and server "
        "(the whole process). Times in milliseconds. On a busy machine wall times include "
        "waiting for a core: the CPU columns are the steadier measure.",
        "",
        "| flavor | path | in-process p50 | in-process p99 | CPU per call | gateway p50 "
        "| gateway p99 | gateway CPU per request |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for flavor, r in results.items():
        lines.append(
            f"| {flavor} | {r['path']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['cpu_ms']:.3f} | {r['gw_p50_ms']:.2f} | {r['gw_p99_ms']:.2f} "
            f"| {r['gw_cpu_ms']:.2f} |"
        )
    if not with_torch:
        lines += ["", "PyTorch was not installed: no `pytorch-mlp` row."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
