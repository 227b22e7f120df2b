"""Writer processes for the PostgreSQL store's two-process test (imported by multiprocessing)."""

from __future__ import annotations

import pyarrow.compute as pc

from arbiter.events import EventWriter
from arbiter.events.postgres_store import PostgresEventStore

#: 2026-09-21 UTC, microseconds: a fixed day, so both processes create the same partition.
TS0 = 1_790_000_000_000_000


def produce(url: str, tag: str, batches: int, batch_size: int) -> None:
    """Append ``batches`` batches of rows tagged ``tag`` through an EventWriter, then close.

    Then re-send every row of this process straight to the store, as a flush retried after
    its commit's answer was lost would: it must insert nothing.
    """
    store = PostgresEventStore(url)
    writer = EventWriter(store, flush_interval=0.05, max_batch=500).start()
    for b in range(batches):
        writer.append_predictions(
            {
                "request_id": f"{tag}-{b}",
                "row_index": range(batch_size),
                "model": tag,
                "role": "served",
                "ts": TS0 + b,
            }
        )
    writer.close()
    assert writer.stats().events_written == batches * batch_size
    mine = store.read_table("predictions").filter(pc.field("model") == tag)
    assert mine.num_rows == batches * batch_size
    assert store.append_prediction_table(mine) == 0
    store.close()
