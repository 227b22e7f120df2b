"""Demo traffic: requests with user ids to a running gateway, then their labels to /feedback.

With ``outcomes`` (the A/B phase), each answer also becomes business outcome events posted to
``POST /outcomes``: purchases at once, chargebacks after the traffic ("later").

A leaf of :mod:`arbiter.demo`: the demo's phases (:mod:`arbiter.demo.run`), its canaries
(:mod:`arbiter.demo.canary`) and the drift scenario all drive the gateway through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: The demo's fraud model (the canary simulations use their own).
MODEL = "fraud"

#: ``(row index, /predict answer) -> (events to post now, events to post after the traffic)``.
Outcomes = Callable[[int, dict[str, Any]], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


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
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    pending: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    arms: dict[str, int] = {}
    errors = 0
    labels_stored = 0
    outcomes_stored = 0

    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def flush_labels() -> None:
            nonlocal labels_stored, pending
            batch, pending = pending, []
            if batch:
                response = await client.post("/feedback", json={"feedback": batch})
                response.raise_for_status()
                labels_stored += response.json()["stored"]

        async def flush_outcomes(rows: list[dict[str, Any]]) -> None:
            nonlocal outcomes_stored
            for lo in range(0, len(rows), 5_000):
                response = await client.post("/outcomes", json={"outcomes": rows[lo : lo + 5_000]})
                response.raise_for_status()
                outcomes_stored += response.json()["stored"]

        async def one(i: int) -> None:
            nonlocal errors
            async with semaphore:
                response = await client.post(
                    f"/models/{model}/predict", json={"user_id": users[i], "features": rows[i]}
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


__all__ = ["MODEL", "Outcomes", "send_traffic"]
