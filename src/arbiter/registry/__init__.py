"""Model registries: where model versions live and which one an alias points to."""

from __future__ import annotations

from arbiter.registry.base import ModelRegistry
from arbiter.registry.mlflow_registry import (
    SKLEARN_PIP_REQUIREMENTS,
    MLflowRegistry,
    registry_for_home,
)

__all__ = ["SKLEARN_PIP_REQUIREMENTS", "MLflowRegistry", "ModelRegistry", "registry_for_home"]
