"""The layout is the architecture (docs/design/architecture.md).

The pure core never imports the I/O shell, the aggregation layer never renders, only the
shell imports the presentation layer, no two modules import each other (function-level
imports included), and every package's ``__all__`` lists exactly its public names (httpx's
test_exported_members). The rules live in tests/import_graph.py; the tests at the bottom show
they fail on a deliberately bad package.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import arbiter
from tests.import_graph import ImportGraph

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.scan(SRC)


def test_layers_hold(graph: ImportGraph) -> None:
    assert graph.violations() == []


def test_no_import_cycles(graph: ImportGraph) -> None:
    assert graph.cycles() == []


def test_the_core_packages_exist(graph: ImportGraph) -> None:
    # A renamed package must not silently drop out of the rules.
    for package in ("arbiter.stats", "arbiter.routing", "arbiter.drift", "arbiter.analysis"):
        assert package in graph.modules


def _packages() -> list[str]:
    names = ["arbiter"]
    for info in pkgutil.walk_packages(arbiter.__path__, "arbiter."):
        if info.ispkg:
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module", _packages())
def test_all_lists_the_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} has no __all__"
    assert mod.__all__ == sorted(mod.__all__, key=lambda n: (not n.isupper(), n))
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, missing
    # every class and function the package imports into its namespace is exported
    imported = sorted(
        name
        for name, value in vars(mod).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "").startswith(module + ".")
    )
    assert set(imported) <= set(mod.__all__), set(imported) - set(mod.__all__)


# -- the rules fail when they should ------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "arbiter" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


CLEAN = {
    "__init__.py": "",
    "errors.py": "",
    "stats/__init__.py": "from arbiter.stats.tests import t\n",
    "stats/tests.py": "import numpy\nfrom arbiter.errors import X\n",
    "analysis/__init__.py": "",
    "analysis/aggregate.py": "import duckdb\nfrom arbiter.stats import t\n",
    "report/__init__.py": "",
    "report/html.py": "import jinja2\nfrom arbiter.analysis import aggregate\n",
    "cli/__init__.py": "from arbiter.report import html\n",
}


def test_a_clean_package_passes(tmp_path: Path) -> None:
    graph = ImportGraph.scan(_package(tmp_path, CLEAN))
    assert graph.violations() == []
    assert graph.cycles() == []


@pytest.mark.parametrize(
    ("rel", "text", "rule"),
    [
        ("stats/tests.py", "import mlflow\n", "core imports an I/O library"),
        ("stats/tests.py", "def f():\n    import duckdb\n", "core imports an I/O library"),
        ("stats/tests.py", "from arbiter.cli import main\n", "core imports outside the core"),
        ("analysis/aggregate.py", "from arbiter.cli import x\n", "analysis imports the CLI"),
        ("analysis/aggregate.py", "import rich\n", "analysis imports a rendering library"),
        ("stats/tests.py", "from arbiter.report import html\n", "core imports outside"),
    ],
)
def test_a_bad_import_is_reported(tmp_path: Path, rel: str, text: str, rule: str) -> None:
    files = dict(CLEAN)
    files[rel] += text
    graph = ImportGraph.scan(_package(tmp_path, files))
    assert any(rule in v for v in graph.violations()), graph.violations()


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    files = dict(CLEAN)
    files["stats/tests.py"] += (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mlflow\n"
    )
    assert ImportGraph.scan(_package(tmp_path, files)).violations() == []


def test_a_function_level_cycle_is_a_cycle(tmp_path: Path) -> None:
    files = dict(CLEAN)
    files["analysis/other.py"] = "def f():\n    from arbiter.analysis import aggregate\n"
    files["analysis/aggregate.py"] += "from arbiter.analysis.other import f\n"
    cycles = ImportGraph.scan(_package(tmp_path, files)).cycles()
    assert cycles == [["arbiter.analysis.aggregate", "arbiter.analysis.other"]]


def test_a_package_reexporting_its_modules_is_not_a_cycle(tmp_path: Path) -> None:
    files = dict(CLEAN)
    files["stats/tests.py"] += "from arbiter.stats import t\n"  # module -> its own __init__
    assert ImportGraph.scan(_package(tmp_path, files)).cycles() == []
