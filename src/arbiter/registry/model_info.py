"""What kind of model a registered version is, read from its files without loading it (shell).

A shadow report names the models it compares ("sklearn · HistGradientBoostingClassifier").
Loading a version to ask would cost seconds and import its whole stack, so this reads only:

* the ``MLmodel`` file: the flavors and the pyfunc ``loader_module``;
* for a scikit-learn version, the estimator's class from the saved file's own description:
  a skops file is a zip whose ``schema.json`` names every object's class (a pipeline's steps
  too); a pickle names its top object's class in its first ``GLOBAL`` opcode, which
  :mod:`pickletools` reads without executing anything;
* for a pyfunc ``python_model``, its class the same way from the pickle.

MLflow is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import json
import pickletools
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Why a version could not be described (``ModelVersionInfo.error``).
NOT_FOUND = "not in the registry"
UNREACHABLE = "registry unreachable"
#: Opcodes after which a pickle names no new class for its top object (read no further).
_MAX_OPCODES = 64


@dataclass(frozen=True, slots=True)
class ModelVersionInfo:
    """The flavors and estimator class of one registered version.

    ``estimator`` is the class name (a pipeline's as ``Pipeline(StandardScaler →
    LogisticRegression)``), None when the files do not say; ``error`` says why nothing
    could be read (registry unreachable, version gone), else None.
    """

    version: str
    flavors: tuple[str, ...] = ()
    loader_module: str | None = None
    estimator: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``sklearn · HistGradientBoostingClassifier``: the first non-pyfunc flavor and the
        estimator, as a report shows them."""
        if self.error is not None:
            return f"unknown ({self.error})"
        flavors = [f for f in self.flavors if f != "python_function"] or list(self.flavors)
        parts = [flavors[0] if flavors else "unknown flavor"]
        if self.estimator:
            parts.append(self.estimator)
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "flavors": list(self.flavors),
            "loader_module": self.loader_module,
            "estimator": self.estimator,
            "label": self.label,
            "error": self.error,
        }


def describe_version(registry: Any, name: str, version: str) -> ModelVersionInfo:
    """The :class:`ModelVersionInfo` of ``name`` v``version``, never raising for a version
    the registry cannot describe (its ``error`` says why: a report still renders)."""
    import yaml
    from mlflow.exceptions import MlflowException

    try:
        root = registry.client.get_model_version_download_uri(name, str(version)).rstrip("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = _fetch(root, "MLmodel", tmp, registry.tracking_uri)
            mlmodel = yaml.safe_load(local.read_text(encoding="utf-8")) or {}
            flavors = dict(mlmodel.get("flavors") or {})
            estimator = _estimator(root, flavors, tmp, registry.tracking_uri)
    except MlflowException as exc:
        missing = exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}
        return ModelVersionInfo(str(version), error=NOT_FOUND if missing else UNREACHABLE)
    except ConnectionError:  # requests' ConnectionError is one too (an OSError)
        return ModelVersionInfo(str(version), error=UNREACHABLE)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, yaml.YAMLError):
        return ModelVersionInfo(str(version), error="model files unreadable")
    pyfunc = flavors.get("python_function") or {}
    return ModelVersionInfo(
        version=str(version),
        flavors=tuple(flavors),
        loader_module=pyfunc.get("loader_module"),
        estimator=estimator,
    )


def _fetch(root: str, path: str, tmp: str, tracking_uri: str) -> Path:
    """One file of a version's artifacts: read in place when they are local (an embedded
    home), else downloaded into ``tmp``."""
    import mlflow
    from mlflow.utils.file_utils import local_file_uri_to_path

    if root.startswith("file:") or "://" not in root:
        return Path(local_file_uri_to_path(root)) / path
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{root}/{path}", dst_path=tmp, tracking_uri=tracking_uri
        )
    )


def _estimator(root: str, flavors: dict[str, Any], tmp: str, tracking_uri: str) -> str | None:
    """The estimator class named inside the version's saved model file, when it names one."""
    sklearn = flavors.get("sklearn") or {}
    pyfunc = flavors.get("python_function") or {}
    lightgbm = flavors.get("lightgbm") or {}
    if lightgbm.get("model_class") == "lightgbm.basic.Booster":  # the MLmodel file says
        return "Booster"
    path = sklearn.get("pickled_model") or pyfunc.get("python_model")
    if not path:
        return None
    local = _fetch(root, str(path), tmp, tracking_uri)
    if sklearn.get("serialization_format") == "skops" or zipfile.is_zipfile(local):
        with zipfile.ZipFile(local) as archive:
            return skops_class(json.loads(archive.read("schema.json")))
    with local.open("rb") as file:
        return pickle_class(file)


def skops_class(schema: dict[str, Any]) -> str | None:
    """The class of a skops file's top object; a pipeline as ``Pipeline(A → B)``."""
    name = schema.get("__class__")
    if not isinstance(name, str):
        return None
    if name != "Pipeline":
        return name
    try:
        steps = schema["content"]["content"]["steps"]["content"]
        inner = [step["content"][1].get("__class__") for step in steps]
    except (KeyError, IndexError, TypeError, AttributeError):
        return name
    return f"Pipeline({' → '.join(str(c) for c in inner)})"


def pickle_class(file: Any) -> str | None:
    """The class of a pickle's top object, from its first ``GLOBAL``/``STACK_GLOBAL`` opcode
    (:mod:`pickletools` parses opcodes; nothing is imported or executed)."""
    strings: list[str] = []
    try:
        for i, (op, arg, _) in enumerate(pickletools.genops(file)):
            if i > _MAX_OPCODES:
                return None
            if op.name == "GLOBAL":
                return str(arg).split(" ")[-1]
            if op.name in {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}:
                strings.append(str(arg))
            elif op.name == "STACK_GLOBAL" and strings:
                return strings[-1]
    except ValueError:  # not a pickle, or truncated
        return None
    return None


def describe_versions(registry: Any, name: str, versions: list[str]) -> list[dict[str, Any]]:
    """:func:`describe_version` of each version, as dicts, in the order given.

    Once the registry is unreachable, the remaining versions are not asked: MLflow's HTTP
    client retries with backoff for minutes, and a report must not wait that long per model.
    """
    out: list[dict[str, Any]] = []
    for version in versions:
        if out and out[-1]["error"] == UNREACHABLE:
            out.append(ModelVersionInfo(str(version), error=UNREACHABLE).to_dict())
        else:
            out.append(describe_version(registry, name, version).to_dict())
    return out


def describe_sides(
    home: Any, name: str, versions: dict[str, list[str]]
) -> dict[str, list[dict[str, Any]]] | None:
    """Per side (champion, challenger), :func:`describe_version` of each version that ran.

    None when the home has no registry to ask (no embedded store and no tracking URI
    configured): opening one would create an empty store as a side effect.
    """
    from arbiter.registry.mlflow_registry import registry_for_home

    if not home.config().registry.tracking_uri and not home.mlflow_db.exists():
        return None
    registry = registry_for_home(home.root)
    sides = list(versions.items())
    out: dict[str, list[dict[str, Any]]] = {}
    for side, vs in sides:
        unreachable = any(m["error"] == UNREACHABLE for ms in out.values() for m in ms)
        out[side] = (
            [ModelVersionInfo(str(v), error=UNREACHABLE).to_dict() for v in vs]
            if unreachable
            else describe_versions(registry, name, vs)
        )
    return out


def describe_summary_models(home: Any, name: str, summary: dict[str, Any]) -> None:
    """Set ``models`` (:func:`describe_sides`) on each shadow section of an ``arbiter report``
    summary (:func:`arbiter.report.summary.summarize`), in place."""
    roles = {"champion": "served", "challenger": "shadow"}
    for section in summary["experiments"]:
        if "shadow" not in section:
            continue
        versions = {
            side: sorted({str(r["version"]) for r in section["arms"]
                          if r.get("role") == role and r.get("version") is not None})
            for side, role in roles.items()
        }  # fmt: skip
        section["models"] = describe_sides(home, name, versions)


def describe_analysis_models(home: Any, name: str, analysis: Any) -> Any:
    """A shadow :class:`~arbiter.analysis.ExperimentAnalysis` with ``models`` set
    (:func:`describe_sides`); any other analysis as it is."""
    from dataclasses import replace

    if getattr(analysis, "shadow", None) is None:
        return analysis
    versions = {side: list(analysis.arms[side]["versions"]) for side in ("champion", "challenger")}
    return replace(analysis, models=describe_sides(home, name, versions))


__all__ = [
    "NOT_FOUND",
    "UNREACHABLE",
    "ModelVersionInfo",
    "describe_analysis_models",
    "describe_sides",
    "describe_summary_models",
    "describe_version",
    "describe_versions",
    "pickle_class",
    "skops_class",
]
