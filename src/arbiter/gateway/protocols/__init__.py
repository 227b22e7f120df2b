"""Wire protocols the gateway speaks: pure parse and encode functions, no routing or models.

* :mod:`~arbiter.gateway.protocols.mlflow_scoring`: MLflow's ``POST /invocations``.
* :mod:`~arbiter.gateway.protocols.inference_v2`: the Open Inference Protocol (KServe v2)
  with Triton's binary tensor extension.

The submodules are imported on first access, so the v2 codec does not pay for importing
MLflow.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["inference_v2", "mlflow_scoring"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
