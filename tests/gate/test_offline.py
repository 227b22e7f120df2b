"""offline_gate(): registry versions scored on one snapshot, verdict recorded as tags."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from arbiter.demo.data import make_transactions
from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.gate import (
    TAG_PASSED,
    TAG_SNAPSHOT,
    TAG_SUMMARY,
    GateConfig,
    is_blessed,
    offline_gate,
    read_blessing,
    read_snapshot,
    write_snapshot,
)
from arbiter.home import Home
from arbiter.registry import MLflowRegistry, registry_for_home

FAST = GateConfig(n_resamples=200)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    data = make_transactions(3_000, seed=11)
    return data.features.assign(is_fraud=data.labels)


@pytest.fixture
def home(make_home: Callable[..., Home]) -> Home:
    return make_home()


@pytest.fixture
def registry(home: Home) -> MLflowRegistry:
    return registry_for_home(home.root)


def test_better_challenger_passes_and_is_blessed(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    config = GateConfig(n_resamples=200, slices=("is_online",))
    result = offline_gate(registry, "fraud", holdout, "is_fraud", home=home.root, config=config)
    assert (result.champion_version, result.challenger_version) == ("1", "2")
    assert result.metric == "roc_auc" and result.primary_test == "delong"
    assert result.passed, [c.to_dict() for c in result.criteria if not c.met]
    assert result.challenger_score > result.champion_score
    assert set(result.tests) == {"delong", "mcnemar", "bootstrap"}
    slices = {c.name: c.n for c in result.criteria if c.name.startswith("slice:")}
    assert set(slices) == {"slice:is_online=0", "slice:is_online=1"}
    assert sum(slices.values()) == len(holdout)

    assert is_blessed(registry, "fraud", "2")
    assert is_blessed(registry, "fraud", "2", champion_version="1")
    assert not is_blessed(registry, "fraud", "2", champion_version="7")  # stale blessing
    tags = registry.model_version_tags("fraud", "2")
    assert tags[TAG_PASSED] == "true" and tags[TAG_SNAPSHOT] == result.snapshot_sha256
    summary = json.loads(tags[TAG_SUMMARY])
    assert summary["passed"] is True and summary["test"] == "delong" and summary["n"] == 3_000
    blessing = read_blessing(registry, "fraud", "2")
    assert blessing is not None and blessing["champion_version"] == "1"
    assert read_blessing(registry, "fraud", "1") is None
    out = result.to_dict()
    assert out["passed"] is True and out["tests"]["delong"]["p_value"] < 0.05
    json.dumps(out)  # plain values only


def test_identical_challenger_fails(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    result = offline_gate(
        registry, "fraud", holdout, "is_fraud",
        home=home.root, challenger_version="1", config=FAST,
    )  # fmt: skip
    assert not result.passed
    assert "min_improvement" in result.failed_criteria
    assert result.improvement == 0.0
    assert not is_blessed(registry, "fraud", "1")
    assert registry.model_version_tags("fraud", "1")[TAG_PASSED] == "false"


def test_record_false_writes_no_tags(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    result = offline_gate(
        registry, "fraud", holdout, "is_fraud", home=home.root, config=FAST, record=False
    )
    assert result.passed and not result.recorded
    assert not is_blessed(registry, "fraud", "2")


def test_snapshot_is_content_addressed_and_reused(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    first = offline_gate(
        registry, "fraud", holdout, "is_fraud", home=home.root, config=FAST, record=False
    )
    path = Path(first.snapshot_path)
    assert path.parent == home.root / "snapshots"
    assert path.name == f"{first.snapshot_sha256}.parquet"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.snapshot_sha256
    mtime = path.stat().st_mtime_ns
    # same content (even with another index) → same file, not rewritten
    again, digest = write_snapshot(home.root, holdout.set_index(holdout.index + 100))
    assert (again, digest) == (path, first.snapshot_sha256)
    assert path.stat().st_mtime_ns == mtime
    other, other_digest = write_snapshot(home.root, holdout.iloc[:100])
    assert other_digest != digest and other.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, other.name])
    pd.testing.assert_frame_equal(read_snapshot(home.root, digest), holdout)
    with pytest.raises(NotFoundError):
        read_snapshot(home.root, "0" * 64)


def test_bad_holdouts_and_versions(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    with pytest.raises(InvalidInputError, match="no column"):
        offline_gate(registry, "fraud", holdout, "label", home=home.root)
    with pytest.raises(InvalidInputError, match="lacks the features"):
        offline_gate(registry, "fraud", holdout.drop(columns=["hour"]), "is_fraud", home=home.root)
    with pytest.raises(InvalidInputError, match="no column"):
        offline_gate(
            registry, "fraud", holdout, "is_fraud", home=home.root,
            config=GateConfig(slices=("country",)),
        )  # fmt: skip
    with pytest.raises(NotFoundError):
        offline_gate(
            registry, "fraud", holdout, "is_fraud", home=home.root, challenger_version="99"
        )
    with pytest.raises(NotFoundError, match="alias"):
        offline_gate(
            registry, "fraud", holdout, "is_fraud", home=home.root, challenger_alias="nope"
        )


def test_slices_argument_overrides_config(
    registry: MLflowRegistry, home: Home, holdout: pd.DataFrame
) -> None:
    frame: Any = holdout.assign(channel=holdout["is_foreign"].map({0.0: "home", 1.0: "abroad"}))
    result = offline_gate(
        registry, "fraud", frame, "is_fraud",
        home=home.root, config=FAST, slices=["channel"], record=False,
    )  # fmt: skip
    names = {c.name for c in result.criteria}
    assert {"slice:channel=home", "slice:channel=abroad"} <= names
