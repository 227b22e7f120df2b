"""MLServer for benchmarks/gateway.py: its virtualenv and a model repository to start.

MLServer (Seldon's Python inference server) is a peer in the gateway benchmark. It lives in its
own virtualenv, ``.venv-mlserver`` at the repository root, because MLServer 1.7.1 pins
FastAPI/Starlette/pydantic versions that conflict with arbiter's (as Evidently has its own venv
for benchmarks/drift.py). The venv is created on first use; scikit-learn there is pinned to the
calling interpreter's version so that a joblib file written by the benchmark loads unchanged.

The repository is what ``mlserver start FOLDER`` reads: ``settings.json`` (server-wide: ports,
``parallel_workers``) and one model folder with ``model-settings.json`` (the scikit-learn
runtime, the joblib file, adaptive batching) next to ``model.joblib``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MLSERVER_VENV = ROOT / ".venv-mlserver"
# uvloop < 0.22: from 0.22 on, asyncio.get_event_loop() raises in MLServer's inference worker
# processes ("There is no current event loop in thread 'MainThread'", upstream issue
# SeldonIO/MLServer#2286, fix in the unmerged PR #2285), so ``parallel_workers`` >= 1 does not
# start; with 0.21 it does (checked by ``benchmarks/gateway.py --smoke``, server mlserver-w2).
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "httptools", "uvloop<0.22")
MLSERVER_MODEL = "bench"
MAX_BATCH_SIZE = 32
MAX_BATCH_TIME_S = 0.002


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def mlserver_python(explicit: Path | None) -> Path:
    """The interpreter of MLServer's virtualenv; ``.venv-mlserver`` is created on first use.

    A separate venv because MLServer 1.7.1 pins FastAPI/Starlette/pydantic versions that
    conflict with arbiter's (as Evidently has its own for benchmarks/drift.py). scikit-learn is
    pinned to this interpreter's version so the joblib file written here loads unchanged.
    """
    from importlib.metadata import version

    if explicit is not None:
        return explicit
    python = MLSERVER_VENV / "bin" / "python"
    stamp = MLSERVER_VENV / ".installed"
    pins = [*MLSERVER_PINS, f"scikit-learn=={version('scikit-learn')}"]
    # The stamp holds the pins it was installed with: a venv made with other pins is updated.
    if not stamp.exists() or stamp.read_text().split("\n") != pins:
        print(f"setting up {MLSERVER_VENV} (pip install {' '.join(pins)}) ...", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip", *pins],
            check=True,
        )
        stamp.write_text("\n".join(pins))
    return python


def write_mlserver_repo(home: Path, key: str, port: int, *, batching: bool, workers: int) -> Path:
    """A model repository for ``mlserver start``: settings.json plus one model folder.

    ``parallel_workers: 0`` keeps inference in the HTTP process, as in the other one-process
    servers (with uvloop >= 0.22, 1.7.1's default of 1 does not start: upstream issue 2286);
    ``workers > 1`` asks for that many inference processes.
    """
    repo = home / key
    model_dir = repo / MLSERVER_MODEL
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(home / "champion.joblib", model_dir / "model.joblib")
    settings = {
        "host": HOST,
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers if workers > 1 else 0,
        "debug": False,
    }
    model: dict[str, Any] = {
        "name": MLSERVER_MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    if batching:
        model["max_batch_size"] = MAX_BATCH_SIZE
        model["max_batch_time"] = MAX_BATCH_TIME_S
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    (model_dir / "model-settings.json").write_text(json.dumps(model, indent=2))
    return repo


def mlserver_versions(python: Path) -> dict[str, str]:
    code = (
        "import json; from importlib.metadata import version as v; print(json.dumps({n: v(n) "
        "for n in ('mlserver', 'mlserver-sklearn', 'scikit-learn', 'uvicorn', 'httptools', "
        "'uvloop', 'fastapi', 'starlette')}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return {f"mlserver venv {k}": val for k, val in json.loads(out.stdout).items()}
