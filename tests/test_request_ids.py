"""Request ids: UUID4-shaped, unique, unique across a fork, and no system call per id."""

from __future__ import annotations

import os
import uuid

import pytest

from arbiter.request_ids import new_request_id


def test_ids_are_version_4_uuids_in_hex() -> None:
    rid = new_request_id()
    assert len(rid) == 32
    parsed = uuid.UUID(hex=rid)
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == rid


def test_ids_do_not_repeat() -> None:
    ids = {new_request_id() for _ in range(200_000)}
    assert len(ids) == 200_000


def test_an_id_makes_no_system_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # os.urandom releases the GIL: the reason this module exists (see its docstring).
    def urandom(n: int) -> bytes:
        raise AssertionError("os.urandom called for a request id")

    monkeypatch.setattr(os, "urandom", urandom)
    assert len({new_request_id() for _ in range(100)}) == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, to the parent
        try:
            os.write(write, "".join(new_request_id() for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    parent = "".join(new_request_id() for _ in range(5))
    assert len(child) == len(parent) == 160
    assert child != parent
