"""``/openapi.json`` equals the server: schemathesis, every check, against a live gateway.

The document is loaded from the running server (issue 14, item 9), so what is fuzzed is what a
client generator would read. Every operation is fuzzed with schema-valid (positive) and
schema-violating (negative) data and every response is validated with all of schemathesis'
checks: no 5xx, documented status codes and content types, schema-valid data accepted,
invalid data refused. A few examples per operation keep the run under a minute on a busy
machine; the exact-document tests below pin what the fuzzing cannot see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from arbiter.home import Home

MODELS = {"fraud": {"experiment": {"strategy": "ab", "unit_field": "user_id"}}}
EXAMPLES = 12  # per operation and mode
BUDGET_S = 90.0  # the whole fuzz run; only a failing (or very loaded) run comes near it

#: Findings in code other helpers own (input coercion, limits), to be emptied once merged:
#: (operation label, check name or error text fragment). Nothing of feedback/outcomes/openapi.
# Findings the fuzz run may skip while a fix is pending: none.
KNOWN_FINDINGS: list[tuple[str, str]] = []

Start = Callable[..., tuple[Any, Home]]


def _known(label: str, message: str) -> bool:
    return any(label == op and fragment in message for op, fragment in KNOWN_FINDINGS)


# The server runs in this process, where pytest turns warnings into errors; a model's numpy
# overflow warning on an extreme but valid input (1e300) is no failure of the gateway.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_schemathesis_finds_nothing(running: Start) -> None:
    server, _ = running(MODELS)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=30)
    findings: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                response = case.call(base_url=server.url, timeout=30)
                case.validate_response(response)

            try:
                fuzz()
            except Unsatisfiable:  # nothing to negate (no parameters, no body): nothing to send
                continue
            except (Exception, BaseExceptionGroup) as exc:  # a failed check: record, go on
                message = str(exc)
                if not _known(operation.label, message):
                    findings.append(f"{operation.label} [{mode.value}]: {message[:1500]}")
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations in {elapsed:.1f} s")
    assert not findings, "\n\n".join(findings)
    assert elapsed < BUDGET_S, elapsed


def test_document_names_the_configured_unit_field_and_features(running: Start) -> None:
    server, _ = running(MODELS)
    doc = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    paths = doc["paths"]
    assert "/models/{name}/predict" not in paths  # one path per served model
    body = paths["/models/fraud/predict"]["post"]["requestBody"]["content"]["application/json"]
    props = body["schema"]["properties"]
    assert "user_id" in props and "unit_id" not in props
    assert body["schema"]["additionalProperties"] is False
    row = props["features"]["oneOf"][0]
    assert row["required"] and row["additionalProperties"] is False  # no `features: {}`
    for path, item in paths.items():  # every path parameter is declared, admin included
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == wanted, (method, path)
    assert "/v2/models/fraud/versions/{version}/infer" in paths


def test_the_versioned_v2_route_serves_that_version(
    running: Start, fraud_rows: list[dict[str, float]], template_home: Any
) -> None:
    server, _ = running(MODELS)  # an A/B experiment: the challenger is loaded too
    champion = template_home.versions["fraud"]["champion"]
    challenger = template_home.versions["fraud"]["challenger"]
    row = fraud_rows[0]
    inputs = [
        {"name": k, "shape": [1], "datatype": "FP64", "data": [float(v)]} for k, v in row.items()
    ]
    url = f"{server.url}/v2/models/fraud/versions"
    r = httpx.post(f"{url}/{champion}/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == champion
    r = httpx.post(f"{url}/999/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 404 and "not loaded" in r.json()["error"], r.text
    # Pinning the challenger steers traffic: it needs the API token, and none is configured.
    r = httpx.post(f"{url}/{challenger}/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 403, r.text


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # schemathesis calls through requests, which honours proxy variables: talk to 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
