"""A synthetic event log of N events, written fast and in bounded memory for the benchmarks.

``generate`` writes what a gateway serving the ``fraud`` model would have logged into a
home's event store: Parquet segments under ``events/predictions`` and ``events/feedback`` with
exactly the columns of :data:`~arbiter.events.PREDICTIONS_SCHEMA` and
:data:`~arbiter.events.FEEDBACK_SCHEMA`, named like the store names its segments
(:func:`arbiter.events.segments.segment_name`), so ``EventStore.connect`` and every engine read
them like a real log. Content:

* ``ab``: every request is served by one arm, assigned 50/50 and sticky by unit (about five
  requests per user; even users get the champion);
* ``shadow``: every request is served by the champion and shadowed by the challenger, two rows
  with the same request id, time, unit, features and truth;
* a 10 % positive class; the champion is right 92 % of the time, the challenger 93 %; scores
  around the prediction with normal noise; gamma latency (the challenger 10 % slower); 0.1 %
  errors; short feature-JSON strings; a week of timestamps;
* labels for ``label_share`` of the served rows, posted an hour after the request.

Why it is built this way (the first version built each segment with numpy string arrays on
one core, and a 100 M-event log took the better part of an hour on a loaded box):

* **Chunks of at most** :data:`MAX_CHUNK` **requests**, each written as soon as it is built,
  so memory follows the chunk size and the number of workers, never the number of events.
* **Each chunk seeds its own random generators** from ``(seed, first request)``: a chunk's rows
  do not depend on which worker built it or in which order, so the log is the same for any
  number of workers, and the served and shadow rows of a request draw the same request-level
  values (time, unit, truth, label, features) from the same stream.
* **Worker threads, not processes.** numpy's generators, ufuncs, pyarrow's compute kernels and
  the Parquet writer release the GIL on arrays this size, so two threads keep two cores busy
  without pickling tables between processes.
* **Strings are built by Arrow kernels** (constant columns with ``pa.repeat``, two-valued ones
  with ``if_else``, ids by joining a prefix to cast integers), never as numpy unicode arrays.
* **Row groups of** :data:`~arbiter.events.segments.COMPACTED_ROW_GROUP` **rows**, the size
  compaction writes (a long-running store's files are compacted ones), so DuckDB and Spark
  can split every file across their threads; dictionary encoding only for the columns with few
  distinct values.

Files are written under a temporary name and renamed into place (a reader never sees half a
file) but not fsynced: this is a benchmark's scratch log, not acknowledged events.

Usage (writes a log to keep and reuse with ``analysis_engines.py --home``)::

    PYTHONPATH=src .venv/bin/python benchmarks/synthetic_log.py /tmp/bench100m \\
        --events 100000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arbiter.events import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA, EventStore
from arbiter.events.segments import COMPACTED_ROW_GROUP, COMPRESSION, TEMP_PREFIX, segment_name

T0_US = 1_795_996_800_000_000  # the first request's time (µs since the epoch, UTC)
SPAN_US = 7 * 86_400 * 1_000_000  # a week of traffic
LABEL_DELAY_US = 3_600_000_000  # labels arrive an hour after the request

#: Requests per chunk at most (a chunk is one segment per role): ~0.3 GiB of arrays each.
MAX_CHUNK = 1_000_000

POSITIVE_RATE = 0.1
ACCURACY = {"champion": 0.92, "challenger": 0.93}
LATENCY_SCALE = {"champion": 1.0, "challenger": 1.1}  # gamma(2, scale) ms
ERROR_RATE = 0.001
REQUESTS_PER_USER = 5

# Dictionary encoding pays for columns with a handful of values; on the unique ones (request
# ids, features, scores) the writer would build a dictionary only to throw it away.
_DICTIONARY_COLUMNS = [
    "model", "experiment", "strategy", "arm", "role", "alias", "version", "prediction",
    "error", "protocol", "label",
]  # fmt: skip


@dataclass(frozen=True)
class _Plan:
    """What every chunk needs to know about the whole log."""

    strategy: str
    requests: int
    users: int
    label_share: float
    seed: int
    predictions_dir: Path
    feedback_dir: Path


def _join(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")


def _nullable(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(values, mask=missing)


def _predictions(
    plan: _Plan, start: int, n: int, role: str, base: dict[str, np.ndarray]
) -> pa.Table:
    """The ``role`` rows of requests ``start .. start + n - 1``."""
    rng = np.random.default_rng([plan.seed, start, 1 if role == "served" else 2])
    y = base["y"]
    if plan.strategy == "ab":
        challenger = base["unit"] % 2 == 1  # sticky by unit
        arm = pc.if_else(pa.array(challenger), "challenger", "champion")
    else:
        challenger = np.full(n, role == "shadow")
        arm = pa.repeat("champion", n)
    correct = rng.random(n) < np.where(challenger, ACCURACY["challenger"], ACCURACY["champion"])
    pred = np.where(correct, y, 1 - y)
    score = np.clip(0.15 + 0.6 * pred + rng.normal(0.0, 0.12, n), 0.001, 0.999)
    latency = rng.gamma(
        2.0, np.where(challenger, LATENCY_SCALE["challenger"], LATENCY_SCALE["champion"])
    )
    error = rng.random(n) < ERROR_RATE
    is_challenger = pa.array(challenger)
    error_mask = pa.array(error)
    return pa.table(
        {
            "request_id": base["request_id"],
            "row_index": pa.repeat(pa.scalar(0, pa.int32()), n),
            "ts": base["ts"],
            "model": pa.repeat("fraud", n),
            "experiment": pa.repeat(f"fraud-{plan.strategy}", n),
            "strategy": pa.repeat(plan.strategy, n),
            "unit_id": base["unit_id"],
            "unit_random": pa.repeat(False, n),
            "arm": arm,
            "role": pa.repeat(role, n),
            "alias": pc.if_else(is_challenger, "challenger", "champion"),
            "version": pc.if_else(is_challenger, "8", "7"),
            "prediction": pc.if_else(
                error_mask, pa.scalar(None, pa.string()), pc.if_else(pa.array(pred == 1), "1", "0")
            ),
            "prediction_num": _nullable(pred.astype(np.float64), error),
            "score": _nullable(score, error),
            "confidence": _nullable(np.maximum(score, 1.0 - score), error),
            "probabilities": pa.nulls(n, pa.string()),
            "latency_ms": pa.array(latency),
            "error": pc.if_else(error_mask, "model raised", pa.scalar(None, pa.string())),
            "features": base["features"],
            "protocol": pa.repeat("arbiter", n),
            "forced": pa.repeat(False, n),
            "impression": pa.nulls(n, pa.string()),  # interleaving only
        },
        schema=PREDICTIONS_SCHEMA,
    )


def _write(directory: Path, table: pa.Table) -> None:
    """Write ``table`` as one segment of ``directory``: temporary name, then rename."""
    name = segment_name()
    temp = directory / f"{TEMP_PREFIX}{name}.tmp"
    try:
        pq.write_table(
            table,
            temp,
            compression=COMPRESSION,
            row_group_size=COMPACTED_ROW_GROUP,
            use_dictionary=[c for c in _DICTIONARY_COLUMNS if c in table.column_names],
        )
        os.rename(temp, directory / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _chunk(plan: _Plan, start: int, n: int) -> None:
    """Build and write the segments (every role, plus labels) of requests ``start ..``."""
    rng = np.random.default_rng([plan.seed, start, 0])
    ids = np.arange(start, start + n, dtype=np.int64)
    # The chunk's slice of the week (chunks are written in time order, as a gateway would),
    # uniform and sorted within it.
    lo = T0_US + int(start * SPAN_US / plan.requests)
    hi = T0_US + int((start + n) * SPAN_US / plan.requests)
    ts = np.sort(rng.integers(lo, max(hi, lo + 1), n))
    unit = rng.integers(0, plan.users, n)
    y = (rng.random(n) < POSITIVE_RATE).astype(np.int64)
    labelled = rng.random(n) < plan.label_share
    features = pc.binary_join_element_wise(
        '{"amount": ',
        pc.cast(pa.array(np.round(rng.gamma(2.0, 40.0, n), 2)), pa.string()),
        ', "hour": ',
        pc.cast(pa.array(rng.integers(0, 24, n)), pa.string()),
        ', "country": "DE"}',
        "",
    )
    request_id = _join("req-", ids)
    base = {
        "y": y,
        "unit": unit,
        "ts": pa.array(ts, PREDICTIONS_SCHEMA.field("ts").type),
        "request_id": request_id,
        "unit_id": _join("user-", unit),
        "features": features,
    }
    roles = ("served",) if plan.strategy == "ab" else ("served", "shadow")
    for role in roles:
        _write(plan.predictions_dir, _predictions(plan, start, n, role, base))
    keep = np.flatnonzero(labelled)
    feedback = pa.table(
        {
            "request_id": request_id.take(pa.array(keep)),
            "row_index": pa.repeat(pa.scalar(0, pa.int32()), keep.size),
            "ts": pa.array(ts[keep] + LABEL_DELAY_US, FEEDBACK_SCHEMA.field("ts").type),
            "label": pc.if_else(pa.array(y[keep] == 1), "1", "0"),
            "label_num": pa.array(y[keep].astype(np.float64)),
        },
        schema=FEEDBACK_SCHEMA,
    )
    _write(plan.feedback_dir, feedback)


def generate(
    home: Path,
    strategy: str,
    events: int,
    segments: int,
    label_share: float,
    *,
    workers: int | None = None,
    seed: int = 7,
) -> EventStore:
    """Write a synthetic experiment of ``events`` prediction rows (plus labels) under ``home``.

    Parameters
    ----------
    home : Path
        The arbiter home; its event store is created if missing.
    strategy : {"ab", "shadow"}
        ``ab``: one served row per request. ``shadow``: a served and a shadow row per request,
        so ``events // 2`` requests.
    events : int
        Prediction rows to write.
    segments : int
        Segments per role at least; more when a segment would exceed :data:`MAX_CHUNK` rows.
    label_share : float
        Share of the served rows that get a label.
    workers : int, optional
        Threads building chunks at once (default: the number of CPUs, at most 4). Memory
        grows with it (about 0.3 GiB per worker per million-request chunk), time shrinks.
    seed : int, default 7
        The same seed, events, segments and share give the same rows for any ``workers``.

    Returns
    -------
    EventStore
        The store the log was written into.
    """
    if strategy not in ("ab", "shadow"):
        raise ValueError(f"strategy must be 'ab' or 'shadow', not {strategy!r}")
    store = EventStore(home)
    requests = events // (1 if strategy == "ab" else 2)
    per_chunk = max(1, min(MAX_CHUNK, -(-requests // max(segments, 1))))
    plan = _Plan(
        strategy=strategy,
        requests=requests,
        users=max(requests // REQUESTS_PER_USER, 1),
        label_share=label_share,
        seed=seed,
        predictions_dir=store.predictions_dir,
        feedback_dir=store.feedback_dir,
    )
    starts = range(0, requests, per_chunk)
    workers = workers or min(os.cpu_count() or 1, 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Submit at most 2 × workers chunks ahead, so a slow disk cannot pile up built tables.
        pending = []
        for start in starts:
            pending.append(pool.submit(_chunk, plan, start, min(per_chunk, requests - start)))
            if len(pending) >= 2 * workers:
                pending.pop(0).result()
        for future in pending:
            future.result()
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="The home to write the log into.")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument("--scenario", choices=("ab", "shadow"), default="ab")
    parser.add_argument("--workers", type=int, help="Threads (default: CPUs, at most 4).")
    args = parser.parse_args(argv)
    t, cpu = time.perf_counter(), time.process_time()
    generate(
        args.home, args.scenario, args.events, args.segments, args.label_share,
        workers=args.workers,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    on_disk = sum(f.stat().st_size for f in args.home.rglob("*.parquet"))
    print(
        f"{args.events:,} events ({args.scenario}) in {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"{on_disk / 2**20:.0f} MB Parquet, load avg {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
