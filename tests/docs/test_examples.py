"""Every shell example in README.md and docs/*.md runs verbatim on the home `make demo` leaves.

Each fenced ``sh``/``bash``/``shell`` block runs as a bash script (``set -eo pipefail``); in a
``console`` block, the ``$ `` lines (and their ``\\`` continuations) are the commands and the
rest is output. They run in doc order in the folder that holds the demo's ``arbiter-home``,
with ``arbiter`` on the PATH and ``.venv/bin/arbiter`` there too (the README says both), and
``curl`` failing on any HTTP error (``--fail-with-body``), so a 422 fails the example.

Two things are not verbatim, both to share one server: a line starting ``arbiter serve`` is
left out (the session's ``arbiter serve`` on the demo's home plays its part) and port 8000 is
that server's free port. A block that must not run says so in the docs source, on the line
just above its fence: ``<!-- docs-test: skip (why) -->`` (installs, benchmarks, a user's own
files), or ``<!-- docs-test: allow-errors -->`` when the example shows an error on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.conftest import ADMIN_TOKEN, arbiter_env

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|allow-errors)\b(.*?)-->")
SERVE_LINE = re.compile(r"^\s*(?:\S*/)?arbiter serve\b")
PORT = re.compile(r"\b(localhost|127\.0\.0\.1):8000\b")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    lang: str
    text: str
    marker: str | None  # skip | allow-errors | None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def script(self, port: int) -> str:
        lines = self.text.splitlines()
        if self.lang == "console":
            lines = _console_commands(lines)
        kept = [
            "# (arbiter serve: the session's server)" if SERVE_LINE.match(x) else x for x in lines
        ]
        return "set -eo pipefail\n" + PORT.sub(f"127.0.0.1:{port}", "\n".join(kept)) + "\n"


def _console_commands(lines: list[str]) -> list[str]:
    """The commands of a console transcript: ``$ `` lines and their continuations."""
    out: list[str] = []
    continued = False
    for line in lines:
        if line.startswith("$ "):
            out.append(line[2:])
        elif continued:
            out.append(line)
        else:
            continue
        continued = line.rstrip().endswith("\\")
    return out


def collect() -> list[Example]:
    examples = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) not in SHELLS:
                continue
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            examples.append(
                Example(
                    path=path,
                    line=text.count("\n", 0, m.start()) + 1,
                    lang=m.group(1),
                    text=m.group(2),
                    marker=marker.group(1) if marker else None,
                    reason=marker.group(2).strip(" —-:()") if marker else "",
                )
            )
    return examples


EXAMPLES = collect()


def test_every_skip_marker_says_why() -> None:
    for example in EXAMPLES:
        if example.marker == "skip":
            assert example.reason, f"{example.id}: say why the example does not run"


@pytest.fixture(scope="module")
def workdir(demo_home: object) -> Path:
    """The folder holding ./arbiter-home, with .venv/bin/arbiter (and python) as after
    `make demo`; ``strict-bin/curl`` fails on HTTP errors."""
    root = demo_home.root.parent  # type: ignore[attr-defined]
    shims = {
        ".venv/bin/arbiter": f'exec "{sys.executable}" -m arbiter "$@"',
        ".venv/bin/python": f'exec "{sys.executable}" "$@"',
        ".venv/bin/activate": f'PATH="{root}/.venv/bin:$PATH"; export PATH',
        "strict-bin/curl": 'exec /usr/bin/curl --fail-with-body "$@"',
    }
    for name, body in shims.items():
        shim = root / name
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        shim.chmod(0o755)
    return root


# A bound, not a budget: the first example also builds the demo's home and starts the server,
# and an HTML report took over 5 minutes beside a CPU burner.
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_runs_verbatim(
    example: Example, workdir: Path, request: pytest.FixtureRequest
) -> None:
    if example.marker == "skip":
        pytest.skip(f"marked in the docs: {example.reason}")
    port = 8000
    if PORT.search(example.text):
        port = request.getfixturevalue("docs_server").port
    env = arbiter_env(ARBITER_ADMIN_TOKEN=ADMIN_TOKEN)
    path = [str(workdir / ".venv" / "bin"), env["PATH"]]
    if example.marker != "allow-errors":
        path.insert(0, str(workdir / "strict-bin"))
    env["PATH"] = os.pathsep.join(path)
    script = example.script(port)
    result = subprocess.run(
        ["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{example.id} failed ({result.returncode}):\n{script}\n"
        f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}"
    )
