"""A fixed-rate, open-loop HTTP/1.1 load generator for loopback benchmarks (wrk2 stand-in).

wrk offers as much load as the server absorbs (closed loop), so it measures saturation
throughput but cannot say what latency a client sees at a given request rate. Debian ships no
wrk2, so this script does that part: request ``i`` is due at ``start + i / rate`` whatever the
server does, ``--connections`` keep-alive connections carry the requests, and latencies are
corrected for coordinated omission the way wrk2 does it:

* a connection that is idle when a request falls due sleeps until then and sends it; latency
  is measured from the send, so the event loop's ~1 ms timer granularity is not charged to
  the server;
* a request that falls due while every connection is still busy waits for one; its latency is
  measured from when it was *due*, so server stalls show up in the tail instead of silently
  lowering the offered rate.

Every request goes to one ``127.0.0.1`` port; the run is bounded by ``--duration``. Prints one
JSON object (latency percentiles in milliseconds, achieved rate, errors) on stdout.

Usage::

    python benchmarks/_load.py --port 8000 --path /models/m/predict \\
        --bodies bodies.json --rate 1000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99, 99.9)


def _request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed, as uvicorn sends them); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


class OpenLoop:
    """Offers ``rate`` requests per second for ``duration`` seconds over ``connections``."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        bodies: list[bytes],
        *,
        rate: float,
        duration: float,
        connections: int,
    ) -> None:
        self.host, self.port = host, port
        self.requests = [_request_bytes(host, port, path, b) for b in bodies]
        self.rate = rate
        self.total = max(1, int(rate * duration))
        self.connections = connections
        self.next_index = 0
        self.latency_s = np.full(self.total, np.nan)
        self.late = 0  # requests that found every connection busy when they fell due
        self.errors = 0
        self.statuses: dict[int, int] = {}

    async def _connection(self, start: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
        try:
            while self.next_index < self.total:
                i = self.next_index
                self.next_index += 1
                due = start + i / self.rate
                now = clock()
                busy = now > due
                if not busy:
                    await asyncio.sleep(due - now)
                sent = clock()
                writer.write(self.requests[i % len(self.requests)])
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    continue
                done = clock()
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status != 200:
                    self.errors += 1
                self.late += busy
                self.latency_s[i] = done - (due if busy else sent)
        finally:
            writer.close()

    async def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        start = t0 + 0.05
        await asyncio.gather(*(self._connection(start) for _ in range(self.connections)))
        elapsed = time.perf_counter() - t0 - 0.05
        done = self.latency_s[~np.isnan(self.latency_s)] * 1000.0
        pct = np.percentile(done, PERCENTILES) if len(done) else [float("nan")] * 4
        return {
            "offered_rps": self.rate,
            "achieved_rps": len(done) / elapsed,
            "requests": len(done),
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "late_share": self.late / max(1, len(done)),
            "connections": self.connections,
            "latency_ms": {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, pct, strict=True)},
            "mean_ms": float(done.mean()) if len(done) else float("nan"),
            "max_ms": float(done.max()) if len(done) else float("nan"),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="JSON list of request bodies")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("this generator only targets loopback addresses")
    bodies = [json.dumps(b).encode() for b in json.loads(args.bodies.read_text())]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # the default loop works too, with a little more client overhead
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            OpenLoop(
                args.host,
                args.port,
                args.path,
                bodies,
                rate=args.rate,
                duration=args.duration,
                connections=args.connections,
            ).run()
        )
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
