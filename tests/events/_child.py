"""Producer processes for the multi-process, kill -9 and SIGTERM tests.

Run as ``python _child.py MODE HOME`` (kill, term) or imported by multiprocessing (produce).
Only arbiter.events is imported, so start-up stays quick.
"""

from __future__ import annotations

import signal
import sys
import time

from arbiter.events import EventStore, EventWriter


def produce(home: str, tag: str, batches: int, batch_size: int) -> None:
    """Append ``batches`` batches of rows tagged ``tag``, then close."""
    writer = EventWriter(EventStore(home), flush_interval=0.05).start()
    for b in range(batches):
        writer.append_predictions(
            {"request_id": f"{tag}-{b}", "row_index": range(batch_size), "model": tag}
        )
    writer.close()


def run_until_killed(home: str) -> None:
    """Append rows numbered 0, 1, 2... forever, reporting how many are durably written."""
    writer = EventWriter(EventStore(home), flush_interval=0.2).start()
    i = 0
    last_report = time.monotonic()
    while True:
        writer.append_prediction(request_id="k", row_index=i, model="kill")
        i += 1
        if i % 500 == 0:
            time.sleep(0.001)  # leave the other core to the parent and the flusher
        now = time.monotonic()
        if now - last_report > 0.05:
            print(f"written {writer.stats().events_written}", flush=True)
            last_report = now


def run_until_terminated(home: str) -> None:
    """Append until SIGTERM, close, and report how many appends were acknowledged."""
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True  # close() takes the buffer lock, so it runs in the loop, not in here

    signal.signal(signal.SIGTERM, _on_term)
    # Nothing flushes by itself (long interval, no size trigger): without close() every
    # buffered row would be lost.
    writer = EventWriter(
        EventStore(home), flush_interval=30.0, max_batch=10**8, max_buffer=10**8
    ).start()
    appended = 0
    print("ready", flush=True)
    while not stop:
        writer.append_prediction(request_id="t", row_index=appended, model="term")
        appended += 1
        if appended % 500 == 0:
            time.sleep(0.001)
    writer.close()
    print(f"final {appended}", flush=True)


if __name__ == "__main__":
    mode, home = sys.argv[1], sys.argv[2]
    if mode == "kill":
        run_until_killed(home)
    elif mode == "term":
        run_until_terminated(home)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
