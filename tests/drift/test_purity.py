"""``arbiter.drift`` is pure core: no I/O library, no arbiter shell, no file access.

Reference profiles are stored by :mod:`arbiter.registry.profiles` and served traffic is read by
:mod:`arbiter.events.window`; the drift package only computes. Two checks, because each misses
what the other sees: the source check reads every module, function-level imports included
(an import inside a function is still a dependency), and the runtime check imports the package
in a fresh interpreter and looks at what actually got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import arbiter.drift as drift

SRC = Path(drift.__file__).parent
# Moving to arbiter.report (issue 9, "presentation in one place"); the check covers it once it
# is gone from here and would flag it if it stayed.
LEAVING = {"html.py"}
IO_LIBRARIES = (
    "mlflow",
    "duckdb",
    "pyarrow",
    "pandas",
    "polars",
    "jinja2",
    "matplotlib",
    "rich",
    "typer",
    "starlette",
    "uvicorn",
    "httpx",
    "requests",
    "prometheus_client",
    "sqlalchemy",
    "fsspec",
    "boto3",
)
# Standard-library modules for files, processes and the network. Checked in the source only:
# numpy and scipy load several of them themselves.
IO_STDLIB = ("sqlite3", "shutil", "tempfile", "urllib", "socket", "subprocess", "http")
ARBITER_SHELL = (
    "arbiter.gateway",
    "arbiter.registry",
    "arbiter.events",
    "arbiter.canary",
    "arbiter.loop",
    "arbiter.cli",
    "arbiter.demo",
    "arbiter.report",
    "arbiter.analysis",
    "arbiter.retrain",
    "arbiter.gate",
    "arbiter.home",
    "arbiter.inprocess",
)
# Calls that read or write files: builtins and the usual methods of pathlib, pandas, numpy.
FILE_CALLS = {
    "open",
    "read_text",
    "write_text",
    "read_bytes",
    "write_bytes",
    "read_csv",
    "read_parquet",
    "read_json",
    "to_csv",
    "to_parquet",
    "loadtxt",
    "savetxt",
    "savez",
    "load",
    "save",
}
# Loaded through statsmodels (it needs pandas, and pandas loads pyarrow when it is installed),
# a core dependency that arbiter.stats imports (drift uses its multiple-testing correction and
# its finite_or_none); never by drift itself, which the source check above shows.
THROUGH_STATSMODELS = {"pandas", "pyarrow"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.glob("*.py") if p.name not in LEAVING)


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_module_imports_io_or_the_shell(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):  # every level: module, function, TYPE_CHECKING blocks
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = sorted(n for n in imported if _matches(n, IO_LIBRARIES + IO_STDLIB + ARBITER_SHELL))
    assert not bad, f"arbiter/drift/{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_module_touches_files(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in FILE_CALLS:
                calls.add(name)
    assert not calls, f"arbiter/drift/{path.name} calls {sorted(calls)}"


_PROBE = """
import importlib, json, sys
import numpy as np
names = {names}
for name in names:
    importlib.import_module("arbiter.drift." + name)
import arbiter.drift as drift
after_import = sorted(sys.modules)
rng = np.random.default_rng(0)
ref = {{"a": rng.normal(size=200), "b": rng.choice(["x", "y"], 200)}}
cur = {{"a": rng.normal(size=200) + 1.0, "b": rng.choice(["x", "y"], 200)}}
result = drift.check_drift(drift.build_profile(ref), cur)  # Holm: the lazy statsmodels import
assert result.correction == "holm" and result.n_tested == 2
after_check = sorted(sys.modules)
print(json.dumps({{"import": after_import, "check": after_check}}))
"""


def test_importing_and_running_drift_loads_no_io_library() -> None:
    names = [p.stem for p in _modules() if p.stem != "__init__"]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(names=names)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    for stage, modules in loaded.items():
        io = {m.split(".")[0] for m in modules} & set(IO_LIBRARIES)
        io -= THROUGH_STATSMODELS
        shell = sorted(m for m in modules if _matches(m, ARBITER_SHELL))
        assert not io, f"{stage} of arbiter.drift loads {sorted(io)}"
        assert not shell, f"{stage} of arbiter.drift loads {shell}"
