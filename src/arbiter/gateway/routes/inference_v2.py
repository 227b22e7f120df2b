"""The Open Inference Protocol v2 (KServe v2 / Triton), with Triton's binary tensor extension.

``tritonclient.http`` works against these routes with its defaults. Outputs are
``predictions`` (one per row) and, for classifiers, ``probabilities`` (rows x classes); a
multi-output model (a pyfunc returning a DataFrame of several columns) answers one tensor per
column, named as the column (its output signature names them in the metadata). The
unit id comes from the request parameter ``unit_id`` or the unit header; the response
parameters carry ``arbiter_request_id`` (for /feedback) and ``arm``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from arbiter import __version__
from arbiter.errors import ArbiterError, InvalidInputError, NotFoundError
from arbiter.gateway.dispatch import FrameInput
from arbiter.gateway.forcing import forced_arm
from arbiter.gateway.pool import Endpoint
from arbiter.gateway.protocols import inference_v2 as v2
from arbiter.gateway.responses import (
    ForbiddenError,
    NotReadyError,
    ORJSONResponse,
    UnauthorizedError,
    public_message,
    status_for,
)
from arbiter.gateway.routes.ops import readiness
from arbiter.gateway.state import GatewayState
from arbiter.servable import BoosterClassifier, ServableModel, output_columns

PLATFORM = "mlflow_pyfunc"


def v2_error(exc: BaseException) -> Response:
    status = status_for(exc)[0]
    if status == 422:
        status = 400  # the protocol reports every bad request as 400
    body = v2.error_body(public_message(exc), getattr(exc, "field", None))
    return Response(body, status_code=status, media_type="application/json")


def _champion(endpoint: Endpoint) -> ServableModel:
    model = endpoint.model(endpoint.config.champion_alias)
    if model is None:
        raise NotReadyError(f"model {endpoint.name!r} has no loaded champion yet")
    return model


def _output_names(model: ServableModel) -> list[str]:
    columns = _signature_outputs(model)
    if len(columns) > 1:  # a multi-output model: one tensor per column
        return columns
    names = ["predictions"]
    if model.raw is not None and hasattr(model.raw, "predict_proba") and model.classes:
        names.append("probabilities")
    return names


def _signature_outputs(model: ServableModel) -> list[str]:
    """The named columns of the model's output signature (empty when it has none)."""
    try:
        schema = model.pyfunc.metadata.get_output_schema()
    except AttributeError:  # not an MLflow model
        return []
    if schema is None or not schema.has_input_names():
        return []
    return [str(n) for n in schema.input_names()]


def _loaded_version(endpoint: Endpoint, version: str | None) -> ServableModel:
    """The champion, or the loaded model of ``version`` (404 when it is not loaded)."""
    if version is None:
        return _champion(endpoint)
    for model in endpoint.models.values():
        if model.version == version:
            return model
    loaded = sorted({m.version for m in endpoint.models.values()}, key=int)
    raise NotFoundError(
        f"version {version!r} of model {endpoint.name!r} is not loaded; loaded: {loaded}"
    )


def _output_specs(model: ServableModel) -> list[v2.TensorSpec]:
    """The output tensors inference returns (see :func:`_outputs`), as model metadata.

    A multi-output model: one tensor per column of its output signature. Otherwise
    ``predictions`` as the output signature has it (tensor dtype and shape, or the one
    column's type as ``[-1]``), else as the flavor answers: a LightGBM Booster's own output
    (FP64 P(class 1) ``[-1]``, or ``[-1, k]`` for k classes), a classifier's labels, FP64
    ``[-1]`` for anything else; and ``probabilities`` (FP64 ``[-1, classes]``) for a classifier.
    """
    if len(_signature_outputs(model)) > 1:
        return v2.tensor_specs_from_schema(model.pyfunc.metadata.get_output_schema())
    outputs = [_predictions_spec(model)]
    if "probabilities" in _output_names(model):
        outputs.append(v2.TensorSpec("probabilities", "FP64", (-1, len(model.classes or []))))
    return outputs


def _predictions_spec(model: ServableModel) -> v2.TensorSpec:
    try:
        schema = model.pyfunc.metadata.get_output_schema()
    except AttributeError:  # not an MLflow model
        schema = None
    if schema is not None and len(schema.inputs) == 1:
        try:
            (spec,) = v2.tensor_specs_from_schema(schema)
        except InvalidInputError:  # a column type with no v2 datatype: derive it below
            pass
        else:
            return v2.TensorSpec("predictions", spec.datatype, spec.shape)
    if isinstance(model.raw, BoosterClassifier):
        k = len(model.raw.classes_)
        return v2.TensorSpec("predictions", "FP64", (-1,) if k == 2 else (-1, k))
    if model.classes and model.tensor is None:
        try:
            return v2.TensorSpec(
                "predictions", v2.numpy_to_datatype(_dtype_of(model.classes)), (-1,)
            )
        except InvalidInputError:
            pass
    return v2.TensorSpec("predictions", "FP64", (-1,))


def _dtype_of(values: Any) -> np.dtype:
    return np.asarray(list(values)).dtype


async def server_live(request: Request) -> Response:
    """Liveness (v2).

    ---
    summary: v2 liveness
    responses:
      200: {description: "{\\"live\\": true}"}
    """
    return ORJSONResponse({"live": True})


async def server_ready(request: Request) -> Response:
    """Readiness (v2): every model has a champion loaded.

    ---
    summary: v2 readiness
    responses:
      200: {description: "{\\"ready\\": true}"}
      503: {description: "{\\"ready\\": false}"}
    """
    ready, _ = readiness(request.app.state.arbiter)
    return ORJSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def server_metadata(request: Request) -> Response:
    """Server metadata (v2).

    ---
    summary: v2 server metadata
    responses:
      200: {description: name, version, extensions}
    """
    return ORJSONResponse(
        {"name": "arbiter", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


async def model_metadata(request: Request) -> Response:
    """Model metadata (v2): input tensors from the MLflow signature, output tensors.

    ``/v2/models/{name}`` describes the champion, ``/v2/models/{name}/versions/{version}``
    that loaded version (404 when it is not loaded).

    ---
    summary: v2 model metadata
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: name, versions, platform, inputs, outputs}
      404: {description: Unknown model}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        endpoint = state.pool.endpoint(request.path_params["name"])
        model = _loaded_version(endpoint, request.path_params.get("version"))
        schema = model.pyfunc.metadata.get_input_schema()
        inputs = v2.tensor_specs_from_schema(schema) if schema is not None else []
        outputs = _output_specs(model)
        versions = sorted({m.version for m in endpoint.models.values()}, key=int)
        return ORJSONResponse(v2.model_metadata(endpoint.name, versions, PLATFORM, inputs, outputs))
    except ArbiterError as exc:
        return v2_error(exc)


async def model_ready(request: Request) -> Response:
    """Model readiness (v2).

    ---
    summary: v2 model readiness
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: ready}
      404: {description: Unknown model}
      503: {description: no champion loaded}
    """
    state: GatewayState = request.app.state.arbiter
    try:
        endpoint = state.pool.endpoint(request.path_params["name"])
    except ArbiterError as exc:
        return v2_error(exc)
    ready = endpoint.ready
    return ORJSONResponse(
        {"name": endpoint.name, "ready": ready}, status_code=200 if ready else 503
    )


def _outputs(model_outputs: list[str], scored: Any) -> list[tuple[str, np.ndarray]]:
    columns = output_columns(scored)
    if columns is not None:  # a multi-output model: one tensor per column
        return list(columns.items())
    predictions = np.asarray(scored.raw if scored.raw is not None else scored.predictions)
    if isinstance(scored.raw, np.ndarray):
        predictions = scored.raw
    out = [("predictions", predictions)]
    if "probabilities" in model_outputs and scored.proba is not None:
        out.append(("probabilities", scored.proba))
    return out


def _field_namer(names: list[str]) -> Callable[[str], str]:
    """How errors name a column: the index of its tensor (``inputs[2]``), else ``inputs[0]``
    for the single ``[batch, n_features]`` tensor."""

    def field_of(column: str) -> str:
        return f"inputs[{names.index(column)}]" if column in names else "inputs[0]"

    return field_of


async def infer(request: Request) -> Response:
    """Inference (v2), JSON or Triton binary tensors.

    ---
    summary: Predict (Open Inference Protocol v2)
    description: >
      Inputs either one tensor per signature column (`[batch]` or `[batch, 1]`) or one
      `[batch, n_features]` tensor in signature order. Binary tensor data per Triton's
      extension (`Inference-Header-Content-Length`). Outputs `predictions` and, for
      classifiers, `probabilities`. Request parameter `unit_id` makes A/B assignment sticky.
      On `/v2/models/{name}/versions/{version}/infer` that exact version answers if it is
      loaded (404 otherwise), as a forced arm left out of the analysis; a challenger's
      version needs the API token.
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema: {type: object, required: [inputs]}
        application/octet-stream:
          schema: {type: string, format: binary}
    responses:
      200: {description: Inference response (JSON or binary)}
      400: {description: "Bad request: {\\"error\\": ...}"}
      401: {description: "A challenger's version without the API token"}
      403: {description: "A challenger's version, and no API token configured"}
      404: {description: Unknown model, or the version is not loaded}
    """
    start = time.perf_counter()
    state: GatewayState = request.app.state.arbiter
    name = request.path_params["name"]
    try:
        endpoint = state.pool.endpoint(name)
        champion = _champion(endpoint)
        parsed = v2.parse_infer_request(await request.body(), request.headers)
        names = _output_names(champion)
        v2.check_requested_outputs(parsed.requested_outputs, names)
        if champion.unnamed_tensor:
            raise InvalidInputError(
                f"model {name!r} takes a tensor without column names: send it to "
                "/invocations ('inputs' or 'instances'), or log the model with the column "
                "names in its MLmodel metadata (arbiter.columns)",
                field="inputs",
            )
        if champion.schema is None:
            raise InvalidInputError(
                f"model {name!r} has no input signature; v2 needs column names to build its input",
                field="inputs",
            )
        frame = v2.inputs_to_dataframe(parsed.inputs, champion.schema.names)
        unit = parsed.parameters.get("unit_id") or request.headers.get(
            endpoint.config.experiment.unit_header
        )
        outcome = await state.dispatcher.aserve(
            endpoint,
            FrameInput(
                frame,
                field_of=_field_namer(list(parsed.inputs)),
                allow_non_finite=endpoint.config.inputs.allow_non_finite,
            ),
            unit_id=str(unit) if unit is not None else None,
            protocol="v2",
            forced_arm=_pinned_arm(request, endpoint, state.token),
        )
        body, headers = v2.encode_infer_response(
            name,
            outcome.version,
            parsed.id,
            _outputs(names, outcome.scored),
            requested_outputs=parsed.requested_outputs,
            binary_output_default=parsed.binary_output_default,
            parameters={"arbiter_request_id": outcome.request_id, "arm": outcome.arm},
        )
    except ArbiterError as exc:
        state.count_error(name, exc, protocol="v2")
        return v2_error(exc)
    state.count_ok(name, outcome.arm, "v2", start)
    return Response(body, headers=headers)


def _pinned_arm(request: Request, endpoint: Endpoint, token: str | None) -> str | None:
    """The arm to serve: the one holding ``/versions/{version}``, else ``X-Arbiter-Arm``'s.

    A pinned version is served as a forced arm (logged ``forced``, left out of the analysis:
    the client chose the model, not the experiment). Pinning the champion's version is open
    to anyone; pinning another arm's version needs the API token, as ``X-Arbiter-Arm`` does,
    so no client can steer traffic to a challenger. A version that is not loaded is a 404.
    """
    version = request.path_params.get("version")
    if version is None:
        return forced_arm(request, endpoint, token)
    for arm, alias in endpoint.arms.items():
        model = endpoint.model(alias)
        if model is None or model.version != version:
            continue
        if alias != endpoint.config.champion_alias:
            if token is None:
                raise ForbiddenError(
                    "serving a challenger's version needs an API token configured on the server"
                )
            scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                supplied.strip().encode(), token.encode()
            ):
                raise UnauthorizedError(
                    "serving a challenger's version requires 'Authorization: Bearer <token>'"
                )
        return arm
    loaded = sorted({m.version for m in endpoint.models.values()}, key=int)
    raise NotFoundError(
        f"version {version!r} of model {endpoint.name!r} is not loaded; loaded: {loaded}"
    )


def routes() -> list[Route]:
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", server_live, methods=["GET"]),
        Route("/v2/health/ready", server_ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    ]
