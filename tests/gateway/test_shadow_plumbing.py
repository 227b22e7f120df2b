"""The shadow executor's plumbing without a model: grouped messages, deadlines, slots.

The gateway-level behaviour (batching in the worker, hung workers, bursts) is in
test_batching.py with real servers; these pin down the parts that make it cheap per job:
tasks travel in lists, outcomes come back in one wake-up, and each accepted job is answered
exactly once, by its outcome or its deadline, whichever is first.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from arbiter.gateway.shadow import ShadowExecutor, ShadowJob, _Inbox


def _inbox(*messages: Any) -> _Inbox:
    q: queue.Queue[Any] = queue.Queue()
    for m in messages:
        q.put(m)
    return _Inbox(q.get, q.get_nowait)


def test_a_call_takes_tasks_across_messages_up_to_the_row_cap_and_keeps_the_rest() -> None:
    inbox = _inbox(["a", "b", "c"], ["d"], ["e", "f"], None)

    def rows(task: str) -> int:
        return 3 if task == "e" else 1

    assert inbox.next_call(rows, 2) == ["a", "b"]
    assert inbox.next_call(rows, 2) == ["c", "d"]  # "c" waited for the next call
    assert inbox.next_call(rows, 2) == ["e"]  # too big for any call: alone
    assert inbox.next_call(rows, 2) == ["f"]  # taken before the stop message: still handed out
    assert inbox.next_call(rows, 2) is None


def test_a_call_does_not_wait_for_more_than_is_queued() -> None:
    q: queue.Queue[Any] = queue.Queue()
    inbox = _Inbox(q.get, q.get_nowait)
    q.put(["a"])
    assert inbox.next_call(lambda _: 1, 32) == ["a"]
    q.put(None)
    assert inbox.next_call(lambda _: 1, 32) is None


class _Model:
    name, version = "m", "1"


class _HeldRunner:
    """Keeps what the executor sends; the test answers from another thread."""

    def __init__(self) -> None:
        self.tickets: list[Any] = []

    def is_ready(self, name: str, version: str) -> bool:
        return True

    def run(self, job: ShadowJob, ticket: Any, in_flight: int) -> None:
        self.tickets.append(ticket)

    def stop(self) -> None:
        return None


def test_each_job_is_answered_once_by_its_outcome_or_its_deadline() -> None:
    async def main() -> tuple[list[tuple[Any, str | None]], ShadowExecutor]:
        executor = ShadowExecutor("m", max_in_flight=3, timeout_s=1.0, kind="thread")
        runner = executor._runner = _HeldRunner()
        answers: list[tuple[Any, str | None]] = []

        def done(result: Any, error: str | None, latency_ms: float) -> None:
            answers.append((result, error))

        job = ShadowJob(_Model(), "rows", [{"x": 1.0}])  # type: ignore[arg-type]
        assert [executor.submit(job, done) for _ in range(4)] == [True, True, True, False]
        assert executor.in_flight == 3 and executor.dropped == 1
        first, second, third = runner.tickets
        # Two outcomes of one call, from a worker's reader thread: one wake-up of the loop.
        reader = threading.Thread(
            target=executor._settle,
            args=([(first, ("p1", None, 1.0)), (second, (None, "ValueError: bad", 1.0))],),
        )
        reader.start()
        reader.join()
        while len(answers) < 2:
            await asyncio.sleep(0.01)
        assert executor.in_flight == 1  # their slots are free; the third is still out
        while len(answers) < 3:  # the third one's deadline
            await asyncio.sleep(0.01)
        assert executor.in_flight == 1  # timed out, but its call has not returned: slot held
        executor._settle([(third, ("late", None, 500.0))])
        assert executor.in_flight == 0  # the call returned: its slot is free at once
        # The late outcome reaches the loop on its next turn (FIFO), which drops it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await executor.drain(1.0)
        return answers, executor

    answers, executor = asyncio.run(main())
    # In any order: on a loaded machine the deadline may come before the two outcomes.
    assert sorted(answers, key=repr) == sorted(
        [("p1", None), (None, "ValueError: bad"), (None, "timeout after 1 s")], key=repr
    )
    assert (executor.failures, executor.timeouts, executor.accepted) == (1, 1, 3)


def test_drain_waits_for_open_jobs_then_abandons_the_rest_unlogged() -> None:
    async def main() -> list[Any]:
        executor = ShadowExecutor("m", max_in_flight=2, timeout_s=60.0, kind="thread")
        runner = executor._runner = _HeldRunner()
        answers: list[Any] = []
        job = ShadowJob(_Model(), "rows", [{"x": 1.0}])  # type: ignore[arg-type]
        executor.submit(job, lambda r, e, ms: answers.append(r))
        executor.submit(job, lambda r, e, ms: answers.append(r))
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, executor._settle, [(runner.tickets[0], ("in time", None, 1.0))])
        await executor.drain(0.5)  # the second never answers
        executor._settle([(runner.tickets[1], ("after shutdown", None, 1.0))])
        await asyncio.sleep(0)  # it reaches the loop on its next turn (FIFO), which drops it
        await asyncio.sleep(0)
        assert not executor.submit(job, lambda r, e, ms: answers.append(r))  # closed
        return answers

    assert asyncio.run(main()) == ["in time"]
