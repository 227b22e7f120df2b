"""skops is imported only to load a skops model, and its import no longer drags in PyTorch.

Each check runs in a fresh interpreter: what a process has imported is the thing under test,
and the test session itself has imported skops and torch long before.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from arbiter.home import Home

TORCH_INSTALLED = importlib.util.find_spec("torch") is not None

_TRUSTED = """
import json, sys
if sys.argv[1] == "arbiter":
    from arbiter.registry.skops_import import TORCH_SHIM, import_skops_io
    import_skops_io()
    assert TORCH_SHIM not in sys.modules  # the marker is gone: the shim stays importable
else:
    import skops.io
from skops.io import _trusted_types as t
lists = {k: list(v) for k, v in vars(t).items() if k.endswith("_TYPE_NAMES")}
print(json.dumps({"lists": lists, "torch": "torch" in sys.modules}))
"""


def _run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_skops_trusted_types_are_the_same_without_the_torch_import() -> None:
    plain = _run(_TRUSTED, "plain")
    ours = _run(_TRUSTED, "arbiter")
    assert ours["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]  # the walk still found the estimators
    assert ours["lists"] == plain["lists"]
    assert ours["torch"] is False
    if TORCH_INSTALLED:  # else the plain import cannot show the cost this avoids
        assert plain["torch"] is True


_SERVE = """
import json, sys
from arbiter.gateway.app import create_app
from arbiter.gateway.server import ServerThread
from arbiter.home import Home

server = ServerThread(create_app(Home.at(sys.argv[1]))).start()  # returns once models loaded
mods = {m: m in sys.modules for m in ("skops", "skops.io", "torch")}
server.stop()
print(json.dumps(mods))
"""


@pytest.mark.parametrize(
    ("models", "skops_loaded"),
    [
        ({"faulty": {"champion_alias": "raising"}}, False),  # a cloudpickled pyfunc model
        ({"fraud": {}}, True),  # a scikit-learn model in skops format
    ],
    ids=["pyfunc", "skops"],
)
def test_gateway_imports_skops_only_for_a_skops_model(
    make_home: Callable[..., Home], models: dict[str, Any], skops_loaded: bool
) -> None:
    home = make_home(models)
    imported = _run(_SERVE, str(home.root))
    assert imported["skops.io"] is skops_loaded
    assert imported["skops"] is skops_loaded
    assert imported["torch"] is False
