"""Reference profiles stored with model versions, as MLflow artifacts (I/O shell).

The profile goes on the run that produced the version, at ``arbiter/reference_profile.json``,
so it travels with the model: whatever serves version V can check drift against V's training
data. The profile itself (:class:`~arbiter.drift.ReferenceProfile`) is pure core; this module is
the shell that stores it. MLflow is imported inside the functions, so importing this module
stays light.
"""

from __future__ import annotations

from typing import Any

from arbiter.drift.profile import ReferenceProfile
from arbiter.errors import NotFoundError, RegistryError

PROFILE_ARTIFACT = "arbiter/reference_profile.json"


def _client(tracking_uri: str, registry_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def _run_id(client: Any, model_name: str, version: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        run_id = client.get_model_version(model_name, str(version)).run_id
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
            raise NotFoundError(f"model version {model_name} v{version} not found") from exc
        raise RegistryError(f"reading {model_name} v{version}: {exc}") from exc
    if not run_id:
        raise NotFoundError(
            f"{model_name} v{version} has no MLflow run to store a reference profile on"
        )
    return str(run_id)


def log_profile(
    tracking_uri: str,
    model_name: str,
    version: str | int,
    profile: ReferenceProfile,
    *,
    registry_uri: str | None = None,
) -> str:
    """Store ``profile`` on the run of ``model_name`` version ``version``.

    Returns
    -------
    str
        The artifact URI of the stored JSON.

    Raises
    ------
    NotFoundError
        The version does not exist.
    RegistryError
        MLflow failed.
    """
    client = _client(tracking_uri, registry_uri)
    run_id = _run_id(client, model_name, str(version))
    try:
        client.log_text(run_id, profile.to_json(), PROFILE_ARTIFACT)
        root = client.get_run(run_id).info.artifact_uri
    except Exception as exc:
        raise RegistryError(
            f"storing the reference profile of {model_name} v{version}: {exc}"
        ) from exc
    return f"{root.rstrip('/')}/{PROFILE_ARTIFACT}"


def load_profile(
    tracking_uri: str,
    model_name: str,
    version: str | int,
    *,
    registry_uri: str | None = None,
) -> ReferenceProfile:
    """Load the profile stored by :func:`log_profile` for ``model_name`` v``version``.

    Raises
    ------
    NotFoundError
        The version does not exist or has no stored profile; the message says how to make one.
    """
    client = _client(tracking_uri, registry_uri)
    run_id = _run_id(client, model_name, str(version))
    try:
        names = {f.path for f in client.list_artifacts(run_id, "arbiter")}
    except Exception as exc:
        raise RegistryError(f"listing artifacts of {model_name} v{version}: {exc}") from exc
    if PROFILE_ARTIFACT not in names:
        raise NotFoundError(
            f"no reference profile stored for {model_name} v{version}; create one with "
            f"`arbiter drift profile --data TRAIN.parquet --model {model_name} "
            f"--version {version} --home HOME`"
        )
    try:
        text = _download_text(client, run_id)
    except Exception as exc:
        raise RegistryError(
            f"reading the reference profile of {model_name} v{version}: {exc}"
        ) from exc
    return ReferenceProfile.from_json(text)


def _download_text(client: Any, run_id: str) -> str:
    import tempfile
    from pathlib import Path

    # download_artifacts on the client uses the client's own tracking URI (no global state).
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, PROFILE_ARTIFACT, tmp)
        return Path(path).read_text(encoding="utf-8")


__all__ = ["PROFILE_ARTIFACT", "load_profile", "log_profile"]
