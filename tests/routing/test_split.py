"""Tests for the sticky, monotonic traffic split."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from arbiter.errors import InvalidInputError
from arbiter.routing import Arm, Split, slot_layout, unit_bucket


def test_bucket_is_stable_across_processes() -> None:
    """The same unit lands in the same bucket in a fresh interpreter with another hash seed."""
    ids = [f"user-{i}" for i in range(50)]
    here = [unit_bucket("exp", u) for u in ids]
    code = (
        f"from arbiter.routing import unit_bucket;print([unit_bucket('exp', u) for u in {ids!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert eval(out) == here


def test_golden_bucket_values() -> None:
    """Pinned values: changing the hash would silently reshuffle every running experiment."""
    assert [unit_bucket("fraud", f"u{i}") for i in range(5)] == GOLDEN


GOLDEN = [406, 3806, 6866, 1117, 5995]  # BLAKE2b-64, key "fraud", modulo 10,000


@given(st.text(min_size=1, max_size=40), st.text(max_size=20))
def test_bucket_in_range(unit: str, salt: str) -> None:
    assert 0 <= unit_bucket(salt, unit) < 10_000


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.text(min_size=1, max_size=10))
def test_bucket_uniformity(start: int, salt: str) -> None:
    """Buckets of 20,000 consecutive ids are uniform over 20 cells (chi-square, alpha=1e-4)."""
    buckets = np.array([unit_bucket(salt, str(start + i), 20) for i in range(20_000)])
    counts = np.bincount(buckets, minlength=20)
    assert stats.chisquare(counts).pvalue > 1e-4


@settings(max_examples=30, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_ramp_is_monotonic(a: float, b: float) -> None:
    """Raising the challenger's share only moves units from champion to challenger."""
    low, high = sorted((a, b))
    before = Split("exp", "champion", (Arm("challenger", low),))
    after = Split("exp", "champion", (Arm("challenger", high),))
    for i in range(2_000):
        unit = f"user-{i}"
        if before.assign(unit, 0.0).arm == "challenger":
            assert after.assign(unit, 0.0).arm == "challenger"


def test_shares_are_respected() -> None:
    split = Split("exp", "champion", (Arm("challenger", 0.2),))
    arms = [split.assign(f"u{i}", 0.0).arm for i in range(50_000)]
    share = arms.count("challenger") / len(arms)
    # binomial standard error is 0.0018; allow 4 of them
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 50_000)
    assert split.weights() == {"challenger": 0.2, "champion": 0.8}


def test_missing_unit_is_random_and_flagged() -> None:
    split = Split("exp", "champion", (Arm("challenger", 0.5),))
    low = split.assign(None, 0.1)
    high = split.assign("", 0.9)
    assert (low.arm, low.random) == ("challenger", True)
    assert (high.arm, high.random) == ("champion", True)
    assert split.assign("someone", 0.1).random is False


def test_abn_ranges() -> None:
    """Each challenger's range starts at its slot: its share plus half the champion's rest."""
    split = Split("exp", "champion", (Arm("b", 0.25), Arm("c", 0.25)))
    assert slot_layout([0.25, 0.25]) == ((0.0, 0.5), (0.5, 0.5))
    assert split.boundaries == (("b", 0, 2500), ("c", 5000, 7500))
    assert split.arm_for_bucket(0) == "b"
    assert split.arm_for_bucket(2500) == "champion"
    assert split.arm_for_bucket(5000) == "c"
    assert split.arm_for_bucket(7500) == "champion"
    assert split.weights() == {"b": 0.25, "c": 0.25, "champion": 0.5}


def test_a_share_beyond_its_slot_is_refused() -> None:
    layout = slot_layout([0.2, 0.2])  # slots of 0.5 each
    Split("exp", "champion", (Arm("b", 0.5), Arm("c", 0.0)), layout=layout)
    with pytest.raises(InvalidInputError) as info:
        Split("exp", "champion", (Arm("b", 0.55), Arm("c", 0.0)), layout=layout)
    assert info.value.field == "challengers.b.share"


_share = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(_share, min_size=2, max_size=4), st.data())
def test_abn_share_changes_only_move_units_to_or_from_the_champion(
    configured: list[float], data: st.DataObject
) -> None:
    """Any change of several shares at once: no unit moves between two challengers; a
    challenger whose share grew keeps all its units and gains only former champion units."""
    total = sum(configured)
    if total > 1.0:
        configured = [c / total for c in configured]
    layout = slot_layout(configured)
    names = [f"c{i}" for i in range(len(configured))]
    new = [data.draw(st.floats(min_value=0.0, max_value=cap), label=n)
           for n, (_start, cap) in zip(names, layout, strict=True)]  # fmt: skip
    before = Split("exp", "champion", tuple(map(Arm, names, configured)), layout=layout)
    after = Split("exp", "champion", tuple(map(Arm, names, new)), layout=layout)
    grew = {n for n, a, b in zip(names, configured, new, strict=True) if b >= a}
    for i in range(1_000):
        old_arm = before.assign(f"user-{i}", 0.0).arm
        new_arm = after.assign(f"user-{i}", 0.0).arm
        if old_arm == new_arm:
            continue
        assert "champion" in (old_arm, new_arm)  # never challenger -> challenger
        if old_arm in grew:
            pytest.fail(f"{old_arm} grew but lost a unit to {new_arm}")


@pytest.mark.parametrize(
    ("challengers", "field"),
    [
        ((Arm("b", 1.5),), "challengers.b.share"),
        ((Arm("b", 0.6), Arm("c", 0.6)), "challengers"),
        ((Arm("champion", 0.1),), "arms"),
    ],
)
def test_invalid_splits(challengers: tuple[Arm, ...], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Split("exp", "champion", challengers)
    assert info.value.field == field
