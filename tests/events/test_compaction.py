"""Compaction: merge, no double counting, crash recovery, the lease."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from arbiter.events import EventStore, EventWriter, count_events
from arbiter.events.segments import COMPACTED_FROM_KEY, list_segments, read_compacted_sources


def _fill(store: EventStore, segments: int, rows: int = 10) -> None:
    writer = EventWriter(store)
    for s in range(segments):
        writer.append_predictions({"request_id": f"r{s}", "row_index": range(rows), "model": "m"})
        writer.flush()
    writer.close()
    for s in range(segments):
        store.write_feedback([{"request_id": f"r{s}", "row_index": 0, "label": s}])


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_compact_merges_and_deletes_sources(store: EventStore) -> None:
    _fill(store, segments=5)
    sources = _files(store.predictions_dir)
    result = store.compact(min_age_s=0, grace_s=0)
    assert (result.merged_files, result.merged_segments, result.deleted_files) == (2, 10, 10)
    (merged,) = _files(store.predictions_dir)
    assert merged.startswith("cmp-")
    assert read_compacted_sources(store.predictions_dir / merged) == sources
    meta = pq.read_schema(store.predictions_dir / merged).metadata
    assert json.loads(meta[COMPACTED_FROM_KEY]) == sources
    assert count_events(store) == 50
    assert count_events(store, "feedback") == 5
    con = store.connect()
    assert con.sql("SELECT count(label) FROM labeled").fetchall() == [(5,)]
    # Nothing left to merge: a second run is a no-op.
    assert store.compact(min_age_s=0, grace_s=0).merged_files == 0


def test_young_and_large_segments_are_left_alone(store: EventStore) -> None:
    _fill(store, segments=3)
    assert store.compact(min_age_s=3600).merged_files == 0
    assert store.compact(min_age_s=0, small_bytes=1).merged_files == 0
    assert len(_files(store.predictions_dir)) == 3


def test_sources_kept_for_grace_are_not_double_counted(store: EventStore) -> None:
    """Same state as a crash between rename and delete: merged file and sources both on disk."""
    _fill(store, segments=4)
    result = store.compact(min_age_s=0, grace_s=3600)
    assert (result.merged_files, result.deleted_files) == (2, 0)
    assert len(_files(store.predictions_dir)) == 5  # 4 sources + 1 merged
    assert [p.name[:4] for p in store.segments("predictions")] == ["cmp-"]
    assert count_events(store) == 40
    assert count_events(store, "feedback") == 4
    # A later run (after the grace period) completes the deletion: the recovery step.
    result = store.compact(min_age_s=0, grace_s=0)
    assert (result.merged_files, result.deleted_files) == (0, 8)
    assert len(_files(store.predictions_dir)) == 1
    assert count_events(store) == 40


def test_unsettled_compacted_file_is_not_merged_again(store: EventStore) -> None:
    """A merged file whose sources still exist must not be merged (and later deleted) again,
    or its sources would become visible and be counted twice."""
    _fill(store, segments=2)
    store.compact(min_age_s=0, grace_s=3600)
    _fill(store, segments=2)
    result = store.compact(min_age_s=0, grace_s=3600)
    # Only the two new segments merge; the first merged file still hides its sources.
    assert result.merged_segments == 2 + 2  # predictions + feedback
    assert count_events(store) == 40
    # Recovery deletes the 8 held sources first; then both merged files are settled and
    # merge into one per table, deleted at once with grace_s=0.
    result = store.compact(min_age_s=0, grace_s=0)
    assert (result.merged_segments, result.deleted_files) == (4, 8 + 4)
    assert len(_files(store.predictions_dir)) == 1
    assert count_events(store) == 40
    assert count_events(store, "feedback") == 4


def test_stale_temp_files_are_invisible_and_removed(store: EventStore) -> None:
    import os

    _fill(store, segments=1)
    temp = store.predictions_dir / ".seg-20260101T000000.000000-1-0.parquet.tmp"
    temp.write_bytes(b"PAR1 truncated")
    assert count_events(store) == 10
    store.compact(min_age_s=0, grace_s=0)
    assert temp.exists()  # young: it may belong to a live writer
    os.utime(temp, (0, 0))
    store.compact(min_age_s=0, grace_s=0)
    assert not temp.exists()


def test_compaction_lease_is_exclusive(store: EventStore) -> None:
    _fill(store, segments=2)
    with store.compaction_lease() as held:  # another process's lease, as far as compact() knows
        assert held.held
        assert store.compact(min_age_s=0).skipped
    assert not store.compact(min_age_s=0, grace_s=0).skipped
    assert len(list_segments(store.predictions_dir)) == 1
