"""The import graph of a source tree, and the layering rules arbiter holds it to.

Used by tests/test_architecture.py on ``src/arbiter`` and, to show the rules can fail, on small
packages written into a temporary folder. Every ``import`` counts, at any depth (a
function-level import that hides a cycle is still a cycle), except those under
``if TYPE_CHECKING:``, which never run.

Layers (docs/design/architecture.md):

* core -- :data:`CORE`: pure functions and state machines; may import only the core, the
  standard library and numeric/validation libraries, never an I/O library (:data:`IO_LIBRARIES`);
* aggregation -- ``arbiter.analysis``: SQL into sufficient statistics, then the core; never
  the CLI, the presentation layer or a rendering library;
* presentation -- ``arbiter.report``: renders view models; imported only by the shell;
* shell -- everything else (gateway, registry, events, canary, loop, cli, demo, ...).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CORE = ("arbiter.stats", "arbiter.routing", "arbiter.drift", "arbiter.durations")
# Leaf modules with no I/O that every layer may import.
LEAVES = ("arbiter.errors",)
AGGREGATION = ("arbiter.analysis",)
PRESENTATION = ("arbiter.report",)
IO_LIBRARIES = (
    "mlflow",
    "duckdb",
    "pyarrow",
    "starlette",
    "uvicorn",
    "httpx",
    "requests",
    "jinja2",
    "matplotlib",
    "rich",
    "typer",
    "prometheus_client",
    "psycopg",
    "sqlalchemy",
)
RENDERING_LIBRARIES = ("rich", "jinja2", "matplotlib", "typer")


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass
class ImportGraph:
    """Modules of one package tree, with the arbiter modules and libraries each imports."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)  # module -> arbiter modules
    libraries: dict[str, set[str]] = field(default_factory=dict)  # module -> top-level libs

    @classmethod
    def scan(cls, src: Path, package: str = "arbiter") -> ImportGraph:
        graph = cls()
        for path in sorted((src / package).rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            graph.modules[".".join(parts)] = path
        for name, path in graph.modules.items():
            graph.edges[name], graph.libraries[name] = graph._imports_of(name, path, package)
        return graph

    def _resolve(self, name: str) -> str | None:
        while name and name not in self.modules:
            name = name.rpartition(".")[0]
        return name or None

    def _imports_of(self, module: str, path: Path, package: str) -> tuple[set[str], set[str]]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for n in ast.walk(stmt)
        }
        is_package = path.name == "__init__.py"
        targets: list[str] = []
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in self.modules else base)
        edges: set[str] = set()
        libraries: set[str] = set()
        for target in targets:
            top = target.split(".")[0]
            if top == package:
                resolved = self._resolve(target)
                if resolved and resolved != module:
                    edges.add(resolved)
            else:
                libraries.add(top)
        return edges, libraries

    def cycles(self) -> list[list[str]]:
        """Strongly connected groups of more than one module (Tarjan's algorithm).

        A package ``__init__`` that re-exports its own modules ties them into a group; such a
        group is a cycle only when two or more of its members are not ``__init__`` modules.
        """
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        groups: list[list[str]] = []
        counter = 0

        def visit(v: str) -> None:
            nonlocal counter
            index[v] = low[v] = counter
            counter += 1
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

        for v in sorted(self.modules):
            if v not in index:
                visit(v)
        return [g for g in groups if sum(self.modules[m].name != "__init__.py" for m in g) > 1]

    def violations(self) -> list[str]:
        """Every import that breaks a layering rule, as ``"module -> target (rule)"``."""
        out: list[str] = []
        for module in sorted(self.modules):
            targets = self.edges[module]
            libs = self.libraries[module]
            if _under(module, CORE):
                out += [
                    f"{module} -> {t} (core imports outside the core)"
                    for t in sorted(targets)
                    if not _under(t, CORE + LEAVES)
                ]
                out += [
                    f"{module} -> {lib} (core imports an I/O library)"
                    for lib in sorted(libs)
                    if lib in IO_LIBRARIES
                ]
            if _under(module, AGGREGATION):
                out += [
                    f"{module} -> {t} (analysis imports the CLI or presentation)"
                    for t in sorted(targets)
                    if _under(t, ("arbiter.cli", *PRESENTATION))
                ]
                out += [
                    f"{module} -> {lib} (analysis imports a rendering library)"
                    for lib in sorted(libs)
                    if lib in RENDERING_LIBRARIES
                ]
            if not _under(module, PRESENTATION):
                out += [
                    f"{module} -> {t} (only the shell imports the presentation layer)"
                    for t in sorted(targets)
                    if _under(t, PRESENTATION) and (_under(module, CORE + AGGREGATION + LEAVES))
                ]
        return out


__all__ = [
    "AGGREGATION",
    "CORE",
    "IO_LIBRARIES",
    "LEAVES",
    "PRESENTATION",
    "RENDERING_LIBRARIES",
    "ImportGraph",
]
