"""Event-loop lag under each kind of background work a gateway does (issue 13, "a flat tail").

An asyncio loop in one thread sleeps 1 ms over and over and records how late it wakes up; the
main thread meanwhile repeats one kind of work the gateway does beside its requests. Work that
holds the GIL shows up as lag: the loop (which serves every request) cannot run until the
GIL comes back. Phases:

* ``idle``: the main thread sleeps (the machine's own noise);
* ``poll-mlflow``: ``MLflowRegistry.aliases`` (what every registry poll ran before);
* ``poll-fingerprint``: ``ModelPool.refresh`` with an unchanged SQLite registry (a ``stat``);
* ``flush``: the event writer appends and flushes 500 prediction rows (one flush interval at
  1,000 req/s), and ``append`` the appends alone (the part that runs on the loop anyway);
* ``gc-unfrozen`` / ``gc-frozen``: a full ``gc.collect()`` with the models and the gateway's
  imports loaded, before and after ``gc.freeze()``.

Usage (a home with a registered model ``fraud``, e.g. the demo's)::

    python benchmarks/loop_lag.py --home ./arbiter-home --seconds 6

Prints one line per phase: the work's mean and max duration and the loop's lag percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _probe(stop: threading.Event, lags_ms: list[float]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            lags_ms.append((loop.time() - before - 0.001) * 1000.0)

    asyncio.run(main())


def measure(label: str, work: Callable[[], object], seconds: float, pause_s: float = 0.0) -> None:
    """Repeat ``work`` for ``seconds`` while the probe runs; print one line."""
    stop = threading.Event()
    lags: list[float] = []
    probe = threading.Thread(target=_probe, args=(stop, lags))
    probe.start()
    end = time.perf_counter() + seconds
    durations = []
    while time.perf_counter() < end:
        began = time.perf_counter()
        work()
        durations.append(time.perf_counter() - began)
        if pause_s:
            time.sleep(pause_s)
    stop.set()
    probe.join()
    lags.sort()

    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(len(lags) * p))]

    mean = sum(durations) / len(durations) * 1000.0
    print(
        f"{label:18s} n={len(durations):6d} work mean={mean:8.3f} ms max="
        f"{max(durations) * 1000.0:8.2f} ms | loop lag p50={q(0.5):6.2f} p99={q(0.99):7.2f} "
        f"p99.9={q(0.999):7.2f} max={lags[-1]:7.2f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home with model 'fraud'")
    parser.add_argument("--seconds", type=float, default=6.0, help="per phase")
    args = parser.parse_args()

    import numpy as np

    import arbiter.gateway.app  # noqa: F401  (the gateway's imports, for the gc phases)
    from arbiter.config import HomeConfig
    from arbiter.events import EventStore, EventWriter
    from arbiter.gateway.pool import FINGERPRINT_SETTLE_S, ModelPool
    from arbiter.prediction_log import RequestContext, prediction_columns
    from arbiter.registry import registry_for_home

    registry = registry_for_home(args.home)
    config = HomeConfig.model_validate({"models": {"fraud": {"experiment": {"strategy": "ab"}}}})
    pool = ModelPool(registry, config)
    pool.refresh()
    measure("idle", lambda: time.sleep(0.05), args.seconds)
    measure("poll-mlflow", lambda: registry.aliases("fraud"), args.seconds, pause_s=0.02)
    time.sleep(FINGERPRINT_SETTLE_S)
    pool.refresh()
    measure("poll-fingerprint", pool.refresh, args.seconds, pause_s=0.02)

    writer = EventWriter(
        EventStore(Path(tempfile.mkdtemp())), flush_interval=3600, max_batch=50_000
    )
    ctx = RequestContext("r" * 32, 1, "fraud", "e", "ab", "u", False, "champion", "arbiter")
    proba = np.array([[0.9, 0.1]])

    def append(rows: int = 500) -> None:
        for _ in range(rows):
            writer.append_predictions(
                prediction_columns(
                    ctx,
                    role="served",
                    alias="champion",
                    version="1",
                    features_json=['{"amount": 120.5, "hour": 3, "merchant_risk": 0.7}'],
                    predictions=[0],
                    proba=proba,
                    classes=[0, 1],
                    latency_ms=1.0,
                    error=None,
                )
            )

    def append_only() -> None:
        append()
        writer._take()  # dropped: this phase measures the appends alone

    def append_and_flush() -> None:
        append()
        writer.flush()

    measure("append", append_only, args.seconds)
    measure("flush", append_and_flush, args.seconds)

    champion = pool.endpoints["fraud"].models  # keep the loaded models alive
    print(f"gc-tracked objects: {len(gc.get_objects())} ({len(champion)} models loaded)")
    measure("gc-unfrozen", gc.collect, args.seconds)
    gc.collect()
    gc.freeze()
    measure("gc-frozen", gc.collect, args.seconds)
    gc.unfreeze()


if __name__ == "__main__":
    main()
