"""The MLflow model registry: aliases say which version is champion and challenger.

Works with the embedded SQLite store in a home folder and with a remote tracking server
(``http://...``). Model files are downloaded through MLflow's artifact API with this registry's
own tracking URI, so no process-global MLflow state is touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.errors import NotFoundError, RegistryError
from arbiter.features import FeatureSpec, InputSchema
from arbiter.redact import redact, redact_loggers
from arbiter.registry.skops_import import import_skops_io
from arbiter.servable import ServableModel, native_model
from arbiter.tensors import METADATA_KEY, tensor_layout

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "arbiter"

# Passed explicitly: without them MLflow spends 10-16 s inferring requirements in a subprocess.
SKLEARN_PIP_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy")
LIGHTGBM_PIP_REQUIREMENTS = ("lightgbm", "numpy", "pandas", "scipy")
#: The same for PyTorch models (the CPU build arbiter's ``torch`` extra pins).
PYTORCH_PIP_REQUIREMENTS = ("torch==2.13.0", "numpy")


def _quiet_http_client() -> None:
    # MLflow's REST client retries for minutes by default; a gateway polling an unreachable
    # server must fail fast and keep serving. Only set when the user has not chosen values.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


#: MLflow loggers whose lines quote the tracking URI (REST retries) or SQL (the database store
#: logs every SQLAlchemy OperationalError with its statement, at ERROR, with a traceback).
MLFLOW_LOGGERS = ("mlflow.store.db.utils", "mlflow.utils.rest_utils")


def _local_dirs(*uris: str | None) -> list[tuple[str, str]]:
    """(absolute folder, label) for local stores: the sqlite DB's folder is ``HOME``.

    A file artifact root outside it is ``ARTIFACTS``; longest first, for ``str.replace``.
    """
    from urllib.parse import unquote, urlparse

    found: dict[str, str] = {}
    for uri in uris:
        if not uri:
            continue
        parsed = urlparse(uri)
        path = unquote(parsed.path)
        if parsed.scheme == "sqlite" and path.startswith("//"):  # sqlite:////abs/mlflow.db
            found[str(Path(path[1:]).parent)] = "HOME"
        elif parsed.scheme == "file" and path.startswith("/"):
            found.setdefault(str(Path(path)), "ARTIFACTS")
    homes = [d for d, label in found.items() if label == "HOME"]
    pairs = [
        (d, label)
        for d, label in found.items()
        if d != "/" and not (label == "ARTIFACTS" and any(d.startswith(h + "/") for h in homes))
    ]
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def _short_reason(exc: BaseException) -> str:
    """Why a registry call failed, in one redacted line without SQL.

    A database error (SQLAlchemy, anywhere in the exception's chain) is named by its driver
    error (``OperationalError: unable to open database file``), never by its statement.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if type(cause).__module__.startswith("sqlalchemy"):
            orig = getattr(cause, "orig", None) or cause
            first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
            return redact(f"the registry database failed: {type(orig).__name__}: {first}")
        cause = cause.__cause__ or cause.__context__
    text = redact(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _schema_of(pyfunc: Any) -> InputSchema | None:
    try:
        schema = pyfunc.metadata.get_input_schema()
    except Exception:
        return None
    if schema is None or not schema.has_input_names():
        return None
    specs = []
    for spec in schema.inputs:
        type_name = getattr(spec.type, "name", str(spec.type))
        specs.append(FeatureSpec(spec.name, str(type_name), bool(getattr(spec, "required", True))))
    return InputSchema(tuple(specs))


class MLflowRegistry:
    """Model registry backed by MLflow.

    Parameters
    ----------
    tracking_uri
        ``sqlite:///path/mlflow.db`` (embedded), ``http://host:port`` (tracking server) or a
        database URI (``postgresql://...``).
    artifact_location
        Where new experiments keep artifacts (embedded homes set it to ``HOME/artifacts``).
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        registry_uri: str | None = None,
        artifact_location: str | None = None,
    ) -> None:
        _quiet_http_client()
        redact_loggers(*MLFLOW_LOGGERS)
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_location = artifact_location
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        self._private_dirs = _local_dirs(tracking_uri, self.registry_uri, artifact_location)

    @property
    def client(self) -> Any:
        return self._client

    def _wrap(self, exc: Exception, what: str) -> Exception:
        """arbiter's error for a registry failure, with a message safe to show and to log.

        MLflow's messages quote the tracking URI (with any password in it) and, for database
        stores, SQLAlchemy's SQL text and parameters; they reach ``/readyz`` and the log. The
        message keeps what failed and why, redacted; the full text goes to DEBUG, redacted too.
        Callers raise the result ``from None`` so tracebacks do not print the original.
        """
        from mlflow.exceptions import MlflowException

        log.debug("%s: %s", what, redact(exc))
        if isinstance(exc, MlflowException) and exc.error_code in {
            "RESOURCE_DOES_NOT_EXIST",
            "NOT_FOUND",
        }:
            return NotFoundError(f"{what}: {self._hide_dirs(redact(exc.message))}")
        return RegistryError(f"{what}: {self._hide_dirs(_short_reason(exc))}")

    def _hide_dirs(self, text: str) -> str:
        # The home's absolute location is the server's business: HOME/artifacts/... says enough.
        for directory, label in self._private_dirs:
            text = text.replace(directory, label)
        return text

    def ping(self) -> None:
        """Raise RegistryError if the registry cannot be reached."""
        try:
            self._client.search_registered_models(max_results=1)
        except Exception as exc:
            raise self._wrap(exc, "registry unreachable") from None

    def fingerprint(self) -> tuple[tuple[int, int], ...] | None:
        """A cheap fingerprint of what the registry stores, or None when there is none.

        For an embedded SQLite registry: ``(mtime_ns, size)`` of the database file and its
        journal and WAL, which every write (an alias moved, a version registered) changes.
        The gateway reads it before each poll and skips MLflow when it has not changed: a
        ``stat`` costs microseconds, while ``get_registered_model`` runs SQLAlchemy's ORM for
        milliseconds holding the GIL the event loop needs (docs/benchmarks_gateway.md). Other
        stores (a tracking server, PostgreSQL): None, they are asked every poll.
        """
        path = _sqlite_path(self.registry_uri)
        if path is None:
            return None
        stamps = []
        for suffix in ("", "-journal", "-wal"):
            try:
                st = os.stat(f"{path}{suffix}")
            except OSError:
                stamps.append((0, -1))
                continue
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def aliases(self, name: str) -> dict[str, str]:
        # search_model_versions returns empty aliases in MLflow 3; the registered model has them.
        try:
            model = self._client.get_registered_model(name)
        except Exception as exc:
            raise self._wrap(exc, f"registered model {name!r}") from None
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def load(self, name: str, version: str) -> ServableModel:
        import mlflow

        try:
            uri = self._client.get_model_version_download_uri(name, version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=self.tracking_uri
            )
            if any(Path(local).glob("*.skops")):  # MLflow imports skops.io to read it
                import_skops_io()
            # suppress_warnings skips MLflow's check of the model's pip requirements against
            # this environment: it scans every installed distribution's files (2.8 s of a
            # 12 s first load on a busy 2-core VM, benchmarks/startup.py) only to log a warning.
            pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True)
        except Exception as exc:
            raise self._wrap(exc, f"loading {name} v{version}") from None
        try:
            tensor = tensor_layout(pyfunc.metadata, model=f"{name} v{version}")
        except RegistryError as exc:
            raise RegistryError(f"loading {name} v{version}: {exc}") from None
        raw = native_model(pyfunc)
        return ServableModel(
            name=name,
            version=str(version),
            pyfunc=pyfunc,
            schema=tensor.schema() if tensor is not None else _schema_of(pyfunc),
            raw=raw,
            metadata={"run_id": pyfunc.metadata.run_id, "source": uri},
            tensor=tensor,
        )

    def set_alias(self, name: str, alias: str, version: str) -> None:
        try:
            self._client.set_registered_model_alias(name, alias, str(version))
        except Exception as exc:
            raise self._wrap(exc, f"setting {name}@{alias} -> v{version}") from None

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self._client.delete_registered_model_alias(name, alias)
        except Exception as exc:
            raise self._wrap(exc, f"deleting {name}@{alias}") from None

    @contextlib.contextmanager
    def _logging_run(self, run_id: str) -> Iterator[None]:
        """Make ``run_id`` MLflow's active run, against this registry's URIs.

        ``mlflow.<flavor>.log_model`` only logs into the process-global active run and tracking
        URI; they are pointed at this registry for the call and restored afterwards. Logging is
        a CLI/notebook operation, never done concurrently by the gateway.
        """
        import mlflow

        previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            with mlflow.start_run(run_id=run_id):
                yield
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])

    def _experiment_id(self, experiment: str) -> str:
        found = self._client.get_experiment_by_name(experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(
            self._client.create_experiment(experiment, artifact_location=self.artifact_location)
        )

    def log_sklearn_model(
        self,
        name: str,
        model: Any,
        example: Any,
        *,
        aliases: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        extra_pip_requirements: tuple[str, ...] = (),
        input_schema: Any = None,
    ) -> str:
        """Log a fitted scikit-learn model, register it as a new version of ``name``.

        ``example`` (a DataFrame of a few rows) gives the signature, so the gateway can validate
        requests; ``input_schema`` (an MLflow ``Schema``), when given, replaces the inputs
        inferred from it (a few rows cannot tell which columns may be missing).
        ``extra_pip_requirements`` adds packages the estimator needs beyond scikit-learn
        (``"lightgbm"`` for its sklearn API). Returns the new version number.
        """
        import mlflow
        from mlflow.models import ModelSignature, infer_signature

        import_skops_io()
        import skops.io

        # Estimators fitted on bare arrays warn when handed a DataFrame; give each what it knows.
        sample = example if hasattr(model, "feature_names_in_") else np.asarray(example)
        if _one_text_column(model, example):  # Pipeline(TfidfVectorizer, ...) on 1-D strings
            sample = example.iloc[:, 0]
        signature = infer_signature(example, model.predict(sample))
        if input_schema is not None:
            signature = ModelSignature(inputs=input_schema, outputs=signature.outputs)
        # skops refuses types it does not know (e.g. tree ensembles) unless told to trust them.
        # We trust the estimator we were handed: it was trained in this process.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        experiment_id = self._experiment_id(experiment)
        try:
            run = self._client.create_run(experiment_id, tags={"arbiter.model": name})
            run_id = run.info.run_id
            for key, value in (params or {}).items():
                self._client.log_param(run_id, key, value)
            for key, value in (metrics or {}).items():
                self._client.log_metric(run_id, key, float(value))
            with self._logging_run(run_id):
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=signature,
                    pip_requirements=[*SKLEARN_PIP_REQUIREMENTS, *extra_pip_requirements],
                    serialization_format="skops",
                    skops_trusted_types=trusted or None,
                    registered_model_name=name,
                )
        except Exception as exc:
            raise self._wrap(exc, f"registering {name}") from None
        version = str(info.registered_model_version)
        for key, value in (tags or {}).items():
            self._client.set_model_version_tag(name, version, key, value)
        for alias in aliases:
            self.set_alias(name, alias, version)
        return version

    def log_lightgbm_model(
        self,
        name: str,
        booster: Any,
        example: Any,
        *,
        aliases: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
    ) -> str:
        """Log a LightGBM model with the ``mlflow.lightgbm`` flavor; register a new version.

        ``booster`` is what ``lightgbm.train`` returns (a ``Booster``; an ``LGBMClassifier``
        works too). ``example`` (a DataFrame of a few rows, the training columns in training
        order) gives the signature the gateway validates requests against. A booster trained
        with a ``binary`` or ``multiclass`` objective is served as a classifier
        (docs/flavors.md). Returns the new version number.
        """
        import mlflow
        from mlflow.models import infer_signature

        signature = infer_signature(example, booster.predict(example))
        experiment_id = self._experiment_id(experiment)
        try:
            run = self._client.create_run(experiment_id, tags={"arbiter.model": name})
            run_id = run.info.run_id
            for key, value in (params or {}).items():
                self._client.log_param(run_id, key, value)
            for key, value in (metrics or {}).items():
                self._client.log_metric(run_id, key, float(value))
            with self._logging_run(run_id):
                info = mlflow.lightgbm.log_model(
                    booster,
                    name="model",
                    signature=signature,
                    pip_requirements=list(LIGHTGBM_PIP_REQUIREMENTS),
                    registered_model_name=name,
                )
        except Exception as exc:
            raise self._wrap(exc, f"registering {name}") from None
        version = str(info.registered_model_version)
        for key, value in (tags or {}).items():
            self._client.set_model_version_tag(name, version, key, value)
        for alias in aliases:
            self.set_alias(name, alias, version)
        return version

    def log_pytorch_model(
        self,
        name: str,
        model: Any,
        columns: list[str] | tuple[str, ...],
        example: Any,
        *,
        classes: list[Any] | tuple[Any, ...] | None = None,
        aliases: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        pip_requirements: tuple[str, ...] = PYTORCH_PIP_REQUIREMENTS,
    ) -> str:
        """Log a ``torch.nn.Module`` taking one ``[batch, len(columns)]`` float tensor, register
        it as a new version of ``name`` and return the version number.

        The signature is that tensor (``example``'s dtype, float32 or float64) and the model's
        output; ``columns`` names the tensor's columns in order and ``classes`` (optional) says
        the output is the probabilities of these classes (or, for two, the probability of
        ``classes[1]``), both stored in the MLmodel metadata that :mod:`arbiter.tensors` reads.
        The model is saved in PyTorch's ``pt2`` export format (no pickle); ``example`` (a few
        rows, more than one so the batch dimension is exported as dynamic) traces it.
        """
        import mlflow
        import torch
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        x = np.ascontiguousarray(np.asarray(example))
        if x.ndim != 2 or x.shape[1] != len(columns) or x.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"example must be a float32/float64 array of shape [rows, {len(columns)}] "
                f"(one column per name in columns), got {x.dtype} {list(x.shape)}"
            )
        model.eval()
        with torch.no_grad():
            output = model(torch.from_numpy(x)).numpy()
        signature = ModelSignature(
            inputs=Schema([TensorSpec(x.dtype, (-1, x.shape[1]))]),
            outputs=Schema([TensorSpec(output.dtype, (-1, *output.shape[1:]))]),
        )
        settings: dict[str, Any] = {"columns": list(columns)}
        if classes is not None:
            settings["classes"] = list(classes)
        experiment_id = self._experiment_id(experiment)
        try:
            run = self._client.create_run(experiment_id, tags={"arbiter.model": name})
            run_id = run.info.run_id
            for key, value in (params or {}).items():
                self._client.log_param(run_id, key, value)
            for key, value in (metrics or {}).items():
                self._client.log_metric(run_id, key, float(value))
            with self._logging_run(run_id):
                info = mlflow.pytorch.log_model(
                    model,
                    name="model",
                    signature=signature,
                    input_example=x,
                    serialization_format="pt2",
                    pip_requirements=list(pip_requirements),
                    metadata={METADATA_KEY: settings},
                    registered_model_name=name,
                )
        except Exception as exc:
            raise self._wrap(exc, f"registering {name}") from None
        version = str(info.registered_model_version)
        for alias in aliases:
            self.set_alias(name, alias, version)
        return version

    def start_run(
        self,
        *,
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
    ) -> str:
        """Create a tracking run (left running) and return its id.

        ``parent_run_id`` nests it under another run, as MLflow's UI shows child runs.
        Finish it with :meth:`end_run`.
        """
        from mlflow.entities import Param

        all_tags = dict(tags or {})
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        try:
            run = self._client.create_run(
                self._experiment_id(experiment), run_name=run_name, tags=all_tags
            )
            run_id = str(run.info.run_id)
            if params:
                # MLflow params are strings of at most 6000 characters, logged once.
                batch = [Param(k, str(v)[:6000]) for k, v in params.items()]
                self._client.log_batch(run_id, params=batch)
        except Exception as exc:
            raise self._wrap(exc, f"creating run {run_name or ''}".strip()) from None
        return run_id

    def end_run(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        status: str = "FINISHED",
    ) -> None:
        """Log final ``metrics`` and ``tags`` on a run and set its status (FINISHED, FAILED...)."""
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        try:
            self._client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )
            self._client.set_terminated(run_id, status=status)
        except Exception as exc:
            raise self._wrap(exc, f"finishing run {run_id}") from None

    def model_version_run_id(self, name: str, version: str) -> str | None:
        """The id of the run that logged ``name`` v``version`` (None if it has none)."""
        try:
            found = self._client.get_model_version(name, str(version))
        except Exception as exc:
            raise self._wrap(exc, f"{name} v{version}") from None
        return found.run_id or None

    def set_model_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set (overwrite) tags on one model version."""
        try:
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), key, str(value))
        except Exception as exc:
            raise self._wrap(exc, f"tagging {name} v{version}") from None

    def model_version_tags(self, name: str, version: str) -> dict[str, str]:
        """The tags of one model version."""
        try:
            found = self._client.get_model_version(name, str(version))
        except Exception as exc:
            raise self._wrap(exc, f"{name} v{version}") from None
        return dict(found.tags or {})

    def log_pyfunc_model(
        self,
        name: str,
        python_model: Any,
        example: Any,
        *,
        aliases: tuple[str, ...] = (),
        experiment: str = DEFAULT_EXPERIMENT,
        output_example: Any = None,
    ) -> str:
        """Log an ``mlflow.pyfunc.PythonModel`` and register it as a new version of ``name``.

        ``output_example`` (what the model returns for ``example``) adds an output signature:
        a multi-output model's columns then name its OIP v2 output tensors.
        """
        import mlflow
        from mlflow.models import infer_signature

        signature = infer_signature(example, output_example)
        experiment_id = self._experiment_id(experiment)
        try:
            run = self._client.create_run(experiment_id, tags={"arbiter.model": name})
            with self._logging_run(run.info.run_id):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=python_model,
                    signature=signature,
                    pip_requirements=["mlflow", "numpy", "pandas"],
                    registered_model_name=name,
                )
        except Exception as exc:
            raise self._wrap(exc, f"registering {name}") from None
        version = str(info.registered_model_version)
        for alias in aliases:
            self.set_alias(name, alias, version)
        return version


def _one_text_column(model: Any, example: Any) -> bool:
    """True for an estimator fitted on a 1-D sequence of strings, logged with a one-column
    example (the gateway hands it that column: arbiter.servable)."""
    columns = getattr(example, "columns", None)
    if hasattr(model, "feature_names_in_") or columns is None or len(columns) != 1:
        return False
    from pandas.api.types import is_string_dtype

    return bool(is_string_dtype(example.iloc[:, 0]))


def _sqlite_path(uri: str) -> str | None:
    """The database file of a ``sqlite:///`` URI (None for anything else, or in-memory)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(uri).database
    except Exception:  # not a URL SQLAlchemy can read: no fingerprint, poll as before
        return None
    if not database or database == ":memory:":
        return None
    return os.path.abspath(database)


def registry_for_home(home: Path | str, tracking_uri: str | None = None) -> MLflowRegistry:
    """The registry of a home folder, as ``arbiter.yaml`` configures it.

    Its ``registry.tracking_uri`` (default: the embedded SQLite store) and
    ``registry.registry_uri`` (default: the tracking URI), the same ones the gateway and
    ``arbiter canary`` use, so every command reads and moves the aliases the gateway serves.
    ``tracking_uri`` overrides the configured one.
    """
    from arbiter.home import Home

    h = Home.at(home, create=True)
    config = h.config()
    return MLflowRegistry(
        tracking_uri or h.tracking_uri(config),
        registry_uri=config.registry.registry_uri,
        artifact_location=h.artifact_location(),
    )


__all__ = [
    "LIGHTGBM_PIP_REQUIREMENTS",
    "PYTORCH_PIP_REQUIREMENTS",
    "SKLEARN_PIP_REQUIREMENTS",
    "MLflowRegistry",
    "registry_for_home",
]
