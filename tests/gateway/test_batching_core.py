"""The batcher's queue rules and the merge/split of a batch, without a server.

The queue (:class:`arbiter.gateway.batching.Batcher`) runs on a real asyncio loop with a
launch function that answers when the test says so, so every rule is checked on evidence
(what was launched with what), not on timing. The merge/split runs a real scikit-learn model
loaded from the test registry.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arbiter.gateway.batching import (
    Batcher,
    BatchLimits,
    batch_part,
    score_parts,
    split_scored,
)
from arbiter.servable import Scored

LIMITS = BatchLimits.of(max_batch_size=4, max_batch_delay_ms=50.0)


class Calls:
    """A launch function whose calls the test settles by hand."""

    def __init__(self) -> None:
        self.launched: list[list[Any]] = []
        self.futures: list[asyncio.Future[list[tuple[bool, Any]]]] = []

    def __call__(self, key: Any, items: list[Any]) -> asyncio.Future[list[tuple[bool, Any]]]:
        future: asyncio.Future[list[tuple[bool, Any]]] = asyncio.get_running_loop().create_future()
        self.launched.append(items)
        self.futures.append(future)
        return future

    def answer(self, index: int) -> None:
        """Settle call ``index``: every item answers its own value doubled; "bad" fails."""
        self.futures[index].set_result(
            [
                (False, ValueError(item)) if item == "bad" else (True, item * 2)
                for item in self.launched[index]
            ]
        )


async def _turn() -> None:
    """Let the loop run the callbacks scheduled so far (a few turns)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_requests_of_one_turn_share_a_call_and_each_gets_its_own_answer() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        futures = [batcher.submit("k", item, 1, LIMITS) for item in ("a", "b", "c")]
        await _turn()
        assert calls.launched == [["a", "b", "c"]]
        calls.answer(0)
        assert await asyncio.gather(*futures) == ["aa", "bb", "cc"]

    asyncio.run(main())


def test_a_lone_request_on_an_idle_model_does_not_wait_for_the_delay() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        slow = BatchLimits.of(max_batch_size=32, max_batch_delay_ms=1000.0)
        future = batcher.submit("k", "a", 1, slow)
        await _turn()  # a turn of the loop, not a second
        assert calls.launched == [["a"]]
        calls.answer(0)
        assert await future == "aa"

    asyncio.run(main())


def test_while_a_call_runs_requests_queue_and_go_together_when_it_returns() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        slow = BatchLimits.of(max_batch_size=32, max_batch_delay_ms=1000.0)
        first = batcher.submit("k", "a", 1, slow)
        await _turn()
        later = [batcher.submit("k", item, 1, slow) for item in ("b", "c")]
        await _turn()
        assert calls.launched == [["a"]] and batcher.pending("k") == 2
        calls.answer(0)  # the model is free: what queued goes at once
        assert await first == "aa"
        await _turn()
        assert calls.launched[1] == ["b", "c"]
        calls.answer(1)
        assert await asyncio.gather(*later) == ["bb", "cc"]

    asyncio.run(main())


def test_a_busy_model_makes_requests_wait_at_most_the_delay() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        batcher.submit("k", "a", 1, LIMITS)  # never answered: a hung call
        await _turn()
        queued = batcher.submit("k", "b", 1, LIMITS)
        # Evidence, not a fixed sleep: the second call is launched once the delay passed.
        async with asyncio.timeout(30):
            while len(calls.launched) < 2:
                await asyncio.sleep(0.01)
        assert calls.launched[1] == ["b"]
        calls.answer(1)
        assert await queued == "bb"

    asyncio.run(main())


def test_rows_count_toward_the_size_and_a_full_queue_goes_at_once() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        batcher.submit("k", "hold", 1, LIMITS)  # keeps the model busy
        await _turn()
        batcher.submit("k", "a", 2, LIMITS)
        batcher.submit("k", "b", 2, LIMITS)  # 4 rows = max_batch_size: launched now
        assert calls.launched[1] == ["a", "b"]
        batcher.submit("k", "c", 3, LIMITS)
        batcher.submit("k", "d", 2, LIMITS)  # would make 5: "c" goes first, "d" waits
        assert calls.launched[2] == ["c"] and batcher.pending("k") == 1
        batcher.submit("k", "big", 9, LIMITS)  # larger than a batch: alone, at once
        assert calls.launched[3] == ["big"]

    asyncio.run(main())


def test_keys_never_share_a_call() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        batcher.submit(("m", "1"), "a", 1, LIMITS)
        batcher.submit(("m", "2"), "b", 1, LIMITS)
        batcher.submit(("m", "1"), "c", 1, LIMITS)
        await _turn()
        assert sorted(calls.launched) == [["a", "c"], ["b"]]

    asyncio.run(main())


def test_errors_are_per_item_and_a_failed_call_fails_each_item() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        good, bad = batcher.submit("k", "a", 1, LIMITS), batcher.submit("k", "bad", 1, LIMITS)
        await _turn()
        calls.answer(0)
        assert await good == "aa"
        with pytest.raises(ValueError, match="bad"):
            await bad
        both = [batcher.submit("k", item, 1, LIMITS) for item in ("x", "y")]
        await _turn()
        calls.futures[1].set_exception(RuntimeError("the pool broke"))
        for future in both:
            with pytest.raises(RuntimeError, match="the pool broke"):
                await future

    asyncio.run(main())


def test_a_request_that_stopped_waiting_is_left_out_of_its_batch() -> None:
    async def main() -> None:
        calls = Calls()
        batcher: Batcher[Any] = Batcher(calls)
        batcher.submit("k", "hold", 1, LIMITS)
        await _turn()
        gone = batcher.submit("k", "gone", 1, LIMITS)
        stays = batcher.submit("k", "stays", 1, LIMITS)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(gone, 0)  # its deadline: it cancels its future
        calls.answer(0)
        await _turn()
        assert calls.launched[1] == ["stays"]
        calls.answer(1)
        assert await stays == "staysstays"

    asyncio.run(main())


def test_batching_is_off_when_either_setting_is_zero() -> None:
    assert BatchLimits.of(32, 2.0).enabled
    assert not BatchLimits.of(32, 0.0).enabled
    assert not BatchLimits.of(0, 2.0).enabled
    assert not BatchLimits.of(1, 2.0).enabled


def test_split_follows_the_row_counts_and_refuses_an_output_not_per_row() -> None:
    proba = np.arange(12, dtype=np.float64).reshape(6, 2)
    raw = pd.DataFrame({"p": list("abcdef")}, index=range(10, 16))
    pieces = split_scored(Scored(list("abcdef"), proba, [0, 1], raw), [1, 3, 2])
    assert pieces is not None
    assert [p.predictions for p in pieces] == [["a"], ["b", "c", "d"], ["e", "f"]]
    assert pieces[1].proba.tolist() == proba[1:4].tolist()
    assert pieces[2].raw["p"].tolist() == ["e", "f"] and list(pieces[2].raw.index) == [0, 1]
    assert split_scored(Scored(["one answer"], None, None, "one answer"), [1, 2]) is None
    assert split_scored(Scored(list("abc"), None, None, {"a": 1}), [1, 2]) is None


@pytest.fixture(scope="module")
def champion(template_home: Any) -> Any:
    from arbiter.registry import registry_for_home

    registry = registry_for_home(template_home.root)
    return registry.load("fraud", template_home.versions["fraud"]["champion"])


def test_a_batch_answers_each_request_as_its_own_call_would(
    champion: Any, fraud_rows: list[dict[str, float]]
) -> None:
    requests = [fraud_rows[0:1], fraud_rows[1:4], fraud_rows[4:5]]
    parts = [batch_part(champion, "rows", rows, None) for rows in requests]
    results, alone = score_parts(champion, parts)  # type: ignore[arg-type]
    assert not alone
    for rows, (ok, scored, start, end) in zip(requests, results, strict=True):
        alone = champion.predict_rows(rows)
        assert ok and start <= end
        assert scored.predictions == alone.predictions
        np.testing.assert_allclose(scored.proba, alone.proba, rtol=1e-12)
    frames = [pd.DataFrame(rows) for rows in requests]
    parts = [batch_part(champion, "frame", frame, None) for frame in frames]
    for frame, (ok, scored, _s, _e) in zip(frames, score_parts(champion, parts)[0], strict=True):  # type: ignore[arg-type]
        assert ok and scored.predictions == champion.predict_frame(frame).predictions


def test_a_row_that_makes_the_model_fail_fails_only_its_own_request(
    champion: Any, fraud_rows: list[dict[str, float]]
) -> None:
    """Logistic regression refuses NaN (scored with ``finite=False``, as under
    ``inputs.allow_non_finite``): the batched call raises, and each request is scored again on
    its own."""
    poisoned = [{**fraud_rows[2], "amount": math.nan}]
    requests = [fraud_rows[0:1], poisoned, fraud_rows[3:5]]
    parts = [batch_part(champion, "rows", rows, None, finite=False) for rows in requests]
    results, alone = score_parts(champion, parts)  # type: ignore[arg-type]
    assert alone and [result[0] for result in results] == [True, False, True]
    assert "NaN" in str(results[1][1])


def test_inputs_that_must_run_alone() -> None:
    from arbiter.features import FeatureSpec, InputSchema
    from arbiter.servable import ServableModel

    schema = InputSchema((FeatureSpec("x", "double", True),))
    model = ServableModel("m", "1", pyfunc=None, schema=schema)
    assert batch_part(model, "rows", [{"x": 1.0}], None) is not None
    assert batch_part(model, "rows", [{"x": 1.0}], {"temperature": 1}) is None  # params
    assert batch_part(model, "rows", [], None) is None
    assert batch_part(model, "frame", np.ones((2, 1)), None) is None  # not a DataFrame
    no_schema = ServableModel("m", "1", pyfunc=None, schema=None)
    assert batch_part(no_schema, "rows", [{"x": 1.0}], None) is None
    a = batch_part(model, "frame", pd.DataFrame({"x": [1.0]}), None)
    b = batch_part(model, "frame", pd.DataFrame({"x": [1]}), None)
    assert a is not None and b is not None and a.signature != b.signature  # dtypes differ
