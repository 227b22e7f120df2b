"""The home folder: where an embedded arbiter keeps its registry, artifacts, events and config.

Layout::

    HOME/
      arbiter.yaml      configuration (see arbiter.config)
      mlflow.db         MLflow tracking + registry store (SQLite)
      artifacts/        MLflow artifacts (set explicitly; MLflow would default to ./mlruns)
      events/           the event log (Parquet segments), unless events.url names a shared
                        one (arbiter.events.location.open_event_store opens either)
      reports/          reports written by `arbiter report` and `arbiter analyze`
      .arbiter-home     the path this home lives at (arbiter.registry.relocate)

A home is relocatable: copy it with ``cp -a``, move it, or restore a backup elsewhere, and the
copy serves (and logs new model versions into) its own ``artifacts/``; see
:mod:`arbiter.registry.relocate`.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from arbiter.config import CONFIG_FILE, HomeConfig, ModelConfig, load_config

#: The challenger alias of a model whose configuration names none (no experiment, or A/B/n).
DEFAULT_CHALLENGER_ALIAS = "challenger"


@dataclass(frozen=True)
class Home:
    """Paths inside one home folder, plus its parsed configuration."""

    root: Path

    @classmethod
    def at(cls, root: str | Path, *, create: bool = False) -> Home:
        path = Path(root).expanduser().resolve()
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def spill_dir(self, config: HomeConfig | None = None) -> Path:
        """Where the gateway spills predictions it cannot write at shutdown.

        ``events.fallback_dir`` (relative to the home when relative), else a folder of the
        system temporary directory named after this home's path: usually another file system
        than a full ``HOME/events``, and found again by the next start of the same home.
        """
        config = config or self.config()
        configured = config.events.fallback_dir
        if configured is not None:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else self.root / path
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "arbiter-spill" / digest

    def config(self) -> HomeConfig:
        return load_config(self.config_path)

    def model_config(self, model: str, config: HomeConfig | None = None) -> ModelConfig:
        """``model``'s settings in ``arbiter.yaml``, or the defaults when it is not configured."""
        config = config or self.config()
        return config.models.get(model) or ModelConfig()

    def aliases(self, model: str, config: HomeConfig | None = None) -> tuple[str, str]:
        """``(champion alias, challenger alias)`` of ``model`` as ``arbiter.yaml`` names them.

        The gateway serves these aliases, so every command that moves or reads them (promote,
        rollback, gate, retrain, drift, the loop) must use the same names, not the defaults.
        A model without one challenger (no experiment, or several) gets ``"challenger"``.
        """
        model_config = self.model_config(model, config)
        arms = model_config.arms()
        return model_config.champion_alias, arms.get("challenger", DEFAULT_CHALLENGER_ALIAS)

    def tracking_uri(self, config: HomeConfig | None = None) -> str:
        """The configured tracking URI, or the embedded SQLite store in this home.

        Every registry of a home is opened through this URI, so this is where a copied or
        moved home's embedded store is pointed at its own artifacts (once, cheap afterwards;
        :func:`arbiter.registry.relocate.relocate_home`). A remote tracking server is left
        alone.
        """
        config = config or self.config()
        if config.registry.tracking_uri:
            return config.registry.tracking_uri
        if self.root.is_dir():
            from arbiter.registry.relocate import relocate_home

            relocate_home(self.root, self.mlflow_db)
        return f"sqlite:///{self.mlflow_db}"

    def artifact_location(self) -> str:
        return self.artifacts.as_uri()


__all__ = ["DEFAULT_CHALLENGER_ALIAS", "Home"]
