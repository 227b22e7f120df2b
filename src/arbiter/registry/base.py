"""What the gateway needs from a model registry.

A small Protocol so other backends can be added later; arbiter ships the MLflow one and tests
use a real MLflow store, never an in-memory stand-in.
"""

from __future__ import annotations

from typing import Protocol

from arbiter.servable import ServableModel


class ModelRegistry(Protocol):
    """Reads aliases and loads model versions."""

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version for registered model ``name``. Raises NotFoundError/RegistryError."""
        ...

    def load(self, name: str, version: str) -> ServableModel:
        """Load one version so it can serve. Raises NotFoundError/RegistryError."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        ...
