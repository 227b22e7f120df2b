"""``POST /models/{name}/invocations`` and ``POST /invocations``: the MLflow scoring protocol.

An unmodified ``mlflow models serve`` client works here: same bodies, same response, same
error shape. The experiment still applies (shadow, A/B); which arm answered comes back in
``X-Arbiter-*`` response headers, which MLflow clients ignore.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from arbiter.errors import ArbiterError, InvalidInputError, ModelError, NotFoundError
from arbiter.gateway.dispatch import FrameInput
from arbiter.gateway.forcing import forced_arm
from arbiter.gateway.protocols import mlflow_scoring
from arbiter.gateway.responses import NotReadyError, public_message, status_for
from arbiter.gateway.state import GatewayState

_ERROR_CODES: list[tuple[type[BaseException], str]] = [
    (NotFoundError, "RESOURCE_DOES_NOT_EXIST"),
    (NotReadyError, "TEMPORARILY_UNAVAILABLE"),
    (ModelError, "BAD_REQUEST"),  # what `mlflow models serve` answers when predict raises
    (InvalidInputError, "BAD_REQUEST"),
]


def mlflow_error(exc: BaseException) -> Response:
    """An error in MLflow's shape (``{"error_code", "message"}``) with MLflow's status."""
    if isinstance(exc, mlflow_scoring.UnsupportedContentTypeError):
        return Response(str(exc), status_code=415, media_type="text/plain")
    if isinstance(exc, mlflow_scoring.ScoringInputError):
        code = exc.error_code
        status = mlflow_scoring.error_status(code)
    else:
        code = next((c for t, c in _ERROR_CODES if isinstance(exc, t)), "INTERNAL_ERROR")
        status = status_for(exc)[0]
        if isinstance(exc, ModelError) or status == 422:
            status = 400  # MLflow answers 400 to both bad input and a model that raised
    body = mlflow_scoring.error_body(public_message(exc), code, field=getattr(exc, "field", None))
    return Response(body, status_code=status, media_type="application/json")


def _field_namer(fmt: str) -> Callable[[str], str]:
    """How errors name a column: ``dataframe_split.hour`` for JSON bodies, ``hour`` for CSV."""
    if fmt in ("csv", "parquet"):
        return lambda column: column or "body"
    return lambda column: f"{fmt}.{column}" if column else fmt


async def _score(request: Request, name: str) -> Response:
    start = time.perf_counter()
    state: GatewayState = request.app.state.arbiter
    try:
        endpoint = state.pool.endpoint(name)
        champion = endpoint.model(endpoint.config.champion_alias)
        if champion is None:
            raise NotReadyError(f"model {name!r} has no loaded champion yet")
        parsed = mlflow_scoring.parse_request(
            await request.body(),
            request.headers.get("content-type"),
            metadata=champion.pyfunc.metadata,
        )
        unit = request.headers.get(endpoint.config.experiment.unit_header) or None
        outcome = await state.dispatcher.aserve(
            endpoint,
            FrameInput(
                parsed.data,
                parsed.params,
                field_of=_field_namer(parsed.format),
                allow_non_finite=endpoint.config.inputs.allow_non_finite,
            ),
            unit_id=unit,
            protocol="mlflow",
            forced_arm=forced_arm(request, endpoint, state.token),
        )
        body = mlflow_scoring.encode_predictions(outcome.scored.raw, unwrapped=parsed.unwrapped)
    except ArbiterError as exc:
        state.count_error(name, exc, protocol="mlflow")
        return mlflow_error(exc)
    state.count_ok(name, outcome.arm, "mlflow", start)
    return Response(
        body,
        media_type="application/json",
        headers={
            "X-Arbiter-Request-Id": outcome.request_id,
            "X-Arbiter-Arm": outcome.arm,
            "X-Arbiter-Model-Version": outcome.version,
        },
    )


async def invocations(request: Request) -> Response:
    """Score with the MLflow scoring protocol.

    ---
    summary: Predict (MLflow scoring protocol)
    description: >
      Exactly what `mlflow models serve` accepts on /invocations: a JSON object with one of
      `dataframe_split`, `dataframe_records`, `instances` or `inputs` (plus optional `params`),
      or a `text/csv` body. Responds `{"predictions": ...}`; errors as
      `{"error_code": ..., "message": ...}`. The response headers `X-Arbiter-Request-Id`,
      `X-Arbiter-Arm` and `X-Arbiter-Model-Version` say which model answered.
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema: {type: object}
        text/csv:
          schema: {type: string}
    responses:
      200: {description: "{\\"predictions\\": [...]}"}
      400: {description: Bad input (MLflow error shape)}
      404: {description: Unknown model}
      415: {description: Unsupported content type}
    """
    return await _score(request, request.path_params["name"])


async def invocations_single(request: Request) -> Response:
    """Score with the MLflow scoring protocol when exactly one model is served.

    ---
    summary: Predict (MLflow scoring protocol, single model)
    description: Same as /models/{name}/invocations, for drop-in use where clients post to
      /invocations. Answers 404 when several models are served.
    responses:
      200: {description: "{\\"predictions\\": [...]}"}
      404: {description: Several models are served; name one}
    """
    state: GatewayState = request.app.state.arbiter
    names = list(state.pool.endpoints)
    if len(names) != 1:
        return mlflow_error(
            NotFoundError(
                f"{len(names)} models are served here ({', '.join(names) or 'none'}); "
                "post to /models/{name}/invocations"
            )
        )
    return await _score(request, names[0])
