"""Demo traffic: requests with user ids to a running gateway, then their labels to /feedback.

With ``outcomes`` (the A/B phase), each answer also becomes business outcome events posted to
``POST /outcomes``: purchases at once, chargebacks after the traffic ("later").

A leaf of :mod:`arbiter.demo`: the demo's phases (:mod:`arbiter.demo.run`), its canaries
(:mod:`arbiter.demo.canary`) and the drift scenario all drive the gateway through it.

Waiting for evidence, not for a fixed count. On a busy machine a gateway picks up a new
challenger seconds late, shadow workers load it later still (shadows of a version still loading
are dropped), and a fixed number of requests may not reach an analysis' minimum sample. So the
demos (and the loop's tests) first wait until the gateway has every arm loaded
(:func:`wait_for_arms_loaded`), then send traffic in rounds until the evidence they need is
there (:func:`send_until`), each with a generous bound on requests and time, so a slow machine
takes longer but decides the same way; :func:`wait_until` is the polling both build on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from arbiter.errors import ArbiterError

#: The demo's fraud model (the canary simulations use their own).
MODEL = "fraud"

#: ``(row index, /predict answer) -> (events to post now, events to post after the traffic)``.
Outcomes = Callable[[int, dict[str, Any]], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


#: Idle connections are dropped well before the server's keep-alive timeout (uvicorn: 5 s,
#: as httpx's own default expiry): reusing one the server is closing at that moment fails the
#: request with a ReadError, which on a busy machine happened within a demo's few thousand.
KEEPALIVE_EXPIRY_S = 1.0
#: Per-request timeout: a saturated machine answers in seconds, not the usual milliseconds.
REQUEST_TIMEOUT_S = 120.0
#: Attempts per request when the connection fails (not when the server answers an error).
ATTEMPTS = 3


def async_client(url: str) -> Any:
    """An ``httpx.AsyncClient`` for demo traffic (see :data:`KEEPALIVE_EXPIRY_S`)."""
    import httpx

    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits)


async def post(client: Any, path: str, body: dict[str, Any]) -> Any:
    """POST ``body``; retried on a new connection when the transport fails (a dropped
    keep-alive connection, a reset), at most :data:`ATTEMPTS` times. A retried prediction the
    server did score is logged twice under two request ids; only the answered one gets a label.
    """
    import httpx

    for attempt in range(ATTEMPTS):
        try:
            return await client.post(path, json=body)
        except httpx.TransportError:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def send_traffic(
    url: str,
    rows: list[dict[str, Any]],
    users: list[str],
    labels: list[int],
    *,
    concurrency: int,
    label_batch: int,
    advance: Callable[[int], None],
    model: str = MODEL,
    outcomes: Outcomes | None = None,
) -> dict[str, Any]:
    """POST every row to /predict with its user id, then its label to /feedback in batches.

    ``outcomes(i, answer)`` returns the (now, later) outcome events of row ``i`` given the
    gateway's answer; they are posted to /outcomes in batches of ``label_batch``.
    """
    semaphore = asyncio.Semaphore(concurrency)
    pending: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    arms: dict[str, int] = {}
    errors = 0
    labels_stored = 0
    outcomes_stored = 0

    async with async_client(url) as client:

        async def flush_labels() -> None:
            nonlocal labels_stored, pending
            batch, pending = pending, []
            if batch:
                response = await post(client, "/feedback", {"feedback": batch})
                response.raise_for_status()
                labels_stored += response.json()["stored"]

        async def flush_outcomes(rows: list[dict[str, Any]]) -> None:
            nonlocal outcomes_stored
            for lo in range(0, len(rows), 5_000):
                response = await post(client, "/outcomes", {"outcomes": rows[lo : lo + 5_000]})
                response.raise_for_status()
                outcomes_stored += response.json()["stored"]

        async def one(i: int) -> None:
            nonlocal errors
            async with semaphore:
                response = await post(
                    client, f"/models/{model}/predict", {"user_id": users[i], "features": rows[i]}
                )
            if response.status_code != 200:
                errors += 1
                advance(1)
                return
            body = response.json()
            arms[body["arm"]] = arms.get(body["arm"], 0) + 1
            pending.append({"request_id": body["request_id"], "label": labels[i]})
            if outcomes is not None:
                now, after = outcomes(i, body)
                events.extend(now)
                later.extend(after)
            if len(pending) >= label_batch:
                await flush_labels()
            if len(events) >= label_batch:
                batch = events[:]
                events.clear()
                await flush_outcomes(batch)
            advance(1)

        await asyncio.gather(*(one(i) for i in range(len(rows))))
        await flush_labels()
        await flush_outcomes(events + later)
    out: dict[str, Any] = {"arms": arms, "errors": errors, "labels": labels_stored}
    if outcomes is not None:
        out["outcomes"] = outcomes_stored
    return out


class EvidenceTimeoutError(ArbiterError, TimeoutError):
    """What a demo waited for did not show up within its bound (the message says what)."""


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.2,
) -> Any:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises :class:`EvidenceTimeoutError` naming ``what`` (and the last value seen) after
    ``timeout_s``; the condition is always checked at least once, and once more at the bound.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            last = f"last: {value!r}"
            raise EvidenceTimeoutError(f"{what}: not reached within {timeout_s:g} s ({last})")
        time.sleep(interval_s)


def describe_model(url: str, model: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """``model``'s entry of the gateway's ``GET /models`` (``{}`` when it is not served)."""
    import httpx

    models = httpx.get(f"{url}/models", timeout=timeout_s).json()["models"]
    return next((m for m in models if m["name"] == model), {})


def arms_loaded(
    entry: Mapping[str, Any], *, versions: Mapping[str, str] | None = None, shadow: bool = False
) -> bool:
    """Whether a ``GET /models`` entry shows every arm of its experiment loaded.

    ``running`` (or ``champion_only`` for a model without a challenger), the aliases at
    ``versions`` when given (``{"challenger": "3"}``: the gateway's poll picked up a new
    version), and with ``shadow`` the shadow workers ready for the challenger: until then the
    gateway drops the shadows it would mirror, and traffic sent meanwhile tests nothing.
    """
    experiment = entry.get("experiment") or {}
    if experiment.get("state") not in ("running", "champion_only"):
        return False
    aliases = entry.get("aliases") or {}
    if any(aliases.get(alias) != str(v) for alias, v in (versions or {}).items()):
        return False
    return not shadow or bool((experiment.get("shadow") or {}).get("ready"))


def wait_for_arms_loaded(
    url: str,
    model: str = MODEL,
    *,
    versions: Mapping[str, str] | None = None,
    shadow: bool = False,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """Wait until the gateway at ``url`` serves every arm of ``model`` (:func:`arms_loaded`).

    Returns the model's ``GET /models`` entry; raises :class:`EvidenceTimeoutError` after
    ``timeout_s`` (generous: loading a model on a saturated machine takes tens of seconds).
    """
    found: dict[str, Any] = {}

    def loaded() -> bool:
        nonlocal found
        found = describe_model(url, model)
        return arms_loaded(found, versions=versions, shadow=shadow)

    wanted = ", ".join(f"{a} v{v}" for a, v in (versions or {}).items()) or "every arm"
    what = f"the gateway loading {wanted} of {model!r}"
    if shadow:
        what += " in its shadow workers"
    wait_until(loaded, timeout_s=timeout_s, what=what)
    return found


@dataclass(frozen=True)
class Rounds:
    """What :func:`send_until` did: requests sent, rounds, whether the condition was met."""

    sent: int
    rounds: int
    reached: bool
    seconds: float
    results: tuple[Any, ...] = ()


def send_until(
    send_round: Callable[[int, int], Any],
    done: Callable[[], bool],
    *,
    round_size: int,
    max_requests: int,
    timeout_s: float,
    first_round: int | None = None,
) -> Rounds:
    """Send traffic in rounds until ``done()`` or a bound.

    ``send_round(start, n)`` sends ``n`` requests (the ``start``-th request of the whole run
    first, so callers can draw fresh rows and units) and returns what it measured; ``done()``
    checks the evidence after each round (an analysis with its minimum sample, a decision, a
    canary's end). Stops at the first of: ``done()`` true, ``max_requests`` sent, ``timeout_s``
    elapsed (checked between rounds). ``reached`` says whether it was the evidence.
    ``first_round``: the size of the first round when it differs (a demo's usual traffic,
    so a quiet machine sends exactly what it always did).
    """
    started = time.monotonic()
    sent = rounds = 0
    results: list[Any] = []
    reached = False
    while sent < max_requests and time.monotonic() - started < timeout_s:
        n = min(first_round if rounds == 0 and first_round else round_size, max_requests - sent)
        results.append(send_round(sent, n))
        sent += n
        rounds += 1
        if done():
            reached = True
            break
    return Rounds(sent, rounds, reached, round(time.monotonic() - started, 1), tuple(results))


__all__ = [
    "ATTEMPTS",
    "KEEPALIVE_EXPIRY_S",
    "MODEL",
    "REQUEST_TIMEOUT_S",
    "EvidenceTimeoutError",
    "Outcomes",
    "Rounds",
    "arms_loaded",
    "async_client",
    "describe_model",
    "post",
    "send_traffic",
    "send_until",
    "wait_for_arms_loaded",
    "wait_until",
]
