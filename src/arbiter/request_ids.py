"""Request ids: random 128-bit UUIDs (version 4) drawn without a system call per request.

``uuid.uuid4()`` reads ``os.urandom``, and CPython releases the GIL around that
``getrandom()`` call. On a loaded gateway the event loop then waits to get the GIL back from
a scoring or flushing thread (up to the 5 ms switch interval): the tail profile
(``benchmarks/tail_profile.py``, docs/benchmarks_gateway.md) found ``uuid4`` to be the event
loop's largest single stall site. A request id only has to be unique, not secret, so a
Mersenne Twister seeded with 256 bits from ``os.urandom`` once per process (and again in a
forked child, which would otherwise repeat its parent's ids) draws them with the GIL held.
Hand-written because neither ``uuid`` nor ``secrets`` offers an id without the system call.
"""

from __future__ import annotations

import os
import random
import uuid

_rng = random.Random()


def _reseed() -> None:
    _rng.seed(int.from_bytes(os.urandom(32), "big"))


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A new request id: 32 hex digits of a version-4 UUID (as ``uuid.uuid4().hex``)."""
    return uuid.UUID(int=_rng.getrandbits(128), version=4).hex
