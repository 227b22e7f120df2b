"""The layout is the architecture: the pure core never imports the I/O shell, and every
package's ``__all__`` lists exactly its public names (httpx's test_exported_members)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "arbiter"
CORE = ("stats", "routing")
SHELL = (
    "arbiter.gateway",
    "arbiter.registry",
    "arbiter.events",
    "arbiter.cli",
    "arbiter.demo",
    "arbiter.report",
    "arbiter.analysis",
    "arbiter.canary",
    "arbiter.loop",
    "mlflow",
    "starlette",
    "uvicorn",
    "duckdb",
    "httpx",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", CORE)
def test_core_does_not_import_the_shell(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        bad = {n for n in _imports(path) if any(n == s or n.startswith(s + ".") for s in SHELL)}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "module",
    ["arbiter.stats", "arbiter.routing", "arbiter.events", "arbiter.drift", "arbiter.canary"],
)
def test_all_lists_the_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__ == sorted(mod.__all__, key=lambda n: (not n.isupper(), n))
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, missing
    # every class and function the package imports into its namespace is exported
    imported = sorted(
        name
        for name, value in vars(mod).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "").startswith(module)
    )
    assert set(imported) <= set(mod.__all__), set(imported) - set(mod.__all__)
