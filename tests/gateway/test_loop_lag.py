"""The opt-in stall recorder catches a real stall of the loop, with the stalling frame."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from arbiter.gateway.loop_lag import ENV_FILE, ENV_MS, LoopLagMonitor, LoopLagSettings


def test_off_unless_asked() -> None:
    assert LoopLagSettings.from_env({}) is None
    assert LoopLagSettings.from_env({ENV_MS: "10", ENV_FILE: "/tmp/x.jsonl"}) == LoopLagSettings(
        10.0, Path("/tmp/x.jsonl")
    )
    with pytest.raises(ValueError, match=ENV_MS):
        LoopLagSettings.from_env({ENV_MS: "ten"})
    with pytest.raises(ValueError, match=ENV_MS):
        LoopLagSettings.from_env({ENV_MS: "0"})


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # stands for any synchronous work on the loop's thread


def test_records_a_stall_with_every_thread_stack(tmp_path: Path) -> None:
    path = tmp_path / "lag.jsonl"

    async def main() -> list[dict]:
        monitor = LoopLagMonitor(LoopLagSettings(20.0, path)).start()
        await asyncio.sleep(0.1)  # a few quiet heartbeats first
        _hold_the_loop(0.3)
        deadline = time.monotonic() + 30
        records: list[dict] = []
        while time.monotonic() < deadline:  # the watchdog writes once the loop is back
            await asyncio.sleep(0.02)
            if path.exists():
                records = [json.loads(x) for x in path.read_text().splitlines()]
                if any(r["kind"] == "stall" for r in records):
                    break
        await monitor.stop()
        return records

    stalls = [r for r in asyncio.run(main()) if r["kind"] == "stall"]
    assert stalls, "no stall recorded"
    stall = max(stalls, key=lambda r: r["ms"])
    assert 250 <= stall["ms"] < 10_000
    assert stall["seen_after_ms"] is not None  # caught while the loop was still stalled
    assert any("_hold_the_loop" in frame for frame in stall["stacks"][stall["loop_thread"]])
    assert stall["loop_cpu_ms"] < stall["ms"] / 2  # it slept: held the loop, not a CPU
