"""The gate's verdict, recorded on the challenger's model version as tags (a "blessing").

Tags written by :func:`record_blessing`:

``arbiter.gate.passed``            ``true`` or ``false``
``arbiter.gate.snapshot``          SHA-256 of the holdout (``HOME/snapshots/<sha>.parquet``)
``arbiter.gate.champion_version``  the version it was compared with
``arbiter.gate.metric``            the primary metric
``arbiter.gate.summary``           short JSON: scores, improvement, p-value, failed criteria
``arbiter.gate.ts``                when the gate ran (UTC, ISO 8601)

Later steps (promotion, the closed loop) call :func:`is_blessed` before acting on a version.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from arbiter.gate.result import GateResult
from arbiter.registry.mlflow_registry import MLflowRegistry
from arbiter.stats import finite_or_none

TAG_PASSED = "arbiter.gate.passed"
TAG_SNAPSHOT = "arbiter.gate.snapshot"
TAG_CHAMPION = "arbiter.gate.champion_version"
TAG_METRIC = "arbiter.gate.metric"
TAG_SUMMARY = "arbiter.gate.summary"
TAG_TS = "arbiter.gate.ts"

# MLflow caps model version tag values at 5000 characters.
_MAX_SUMMARY = 4_000


def _rounded(x: float) -> float | None:
    # Six decimals keep the tag short; NaN (no score) becomes null.
    value = finite_or_none(x)
    return None if value is None else round(value, 6)


def summary_json(result: GateResult) -> str:
    """The short JSON stored in :data:`TAG_SUMMARY`."""
    primary = result.tests.get(result.primary_test)
    summary: dict[str, Any] = {
        "passed": result.passed,
        "metric": result.metric,
        "champion": _rounded(result.champion_score),
        "challenger": _rounded(result.challenger_score),
        "improvement": _rounded(result.improvement),
        "test": result.primary_test,
        "p_value": None if primary is None else _rounded(primary.p_value),
        "n": result.n_rows,
        "failed": list(result.failed_criteria),
    }
    text = json.dumps(summary, separators=(",", ":"))
    while len(text) > _MAX_SUMMARY and summary["failed"]:
        summary["failed"] = [*summary["failed"][: len(summary["failed"]) // 2], "..."]
        text = json.dumps(summary, separators=(",", ":"))
    return text


def record_blessing(registry: MLflowRegistry, name: str, result: GateResult) -> dict[str, str]:
    """Write the gate tags on ``name`` v``result.challenger_version``; return them."""
    tags = {
        TAG_PASSED: "true" if result.passed else "false",
        TAG_SNAPSHOT: result.snapshot_sha256,
        TAG_CHAMPION: result.champion_version,
        TAG_METRIC: result.metric,
        TAG_SUMMARY: summary_json(result),
        TAG_TS: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    registry.set_model_version_tags(name, result.challenger_version, tags)
    return tags


def read_blessing(registry: MLflowRegistry, name: str, version: str) -> dict[str, Any] | None:
    """The gate tags of a version (summary parsed), or None if it was never gated."""
    tags = registry.model_version_tags(name, version)
    if TAG_PASSED not in tags:
        return None
    summary = tags.get(TAG_SUMMARY)
    return {
        "passed": tags[TAG_PASSED] == "true",
        "snapshot_sha256": tags.get(TAG_SNAPSHOT),
        "champion_version": tags.get(TAG_CHAMPION),
        "metric": tags.get(TAG_METRIC),
        "ts": tags.get(TAG_TS),
        "summary": json.loads(summary) if summary else None,
    }


def is_blessed(
    registry: MLflowRegistry, name: str, version: str, *, champion_version: str | None = None
) -> bool:
    """Whether ``name`` v``version`` passed the offline gate.

    With ``champion_version``, only a pass against that champion counts (a blessing earned
    against an older champion is stale).
    """
    tags = registry.model_version_tags(name, version)
    if tags.get(TAG_PASSED) != "true":
        return False
    return champion_version is None or tags.get(TAG_CHAMPION) == str(champion_version)


__all__ = [
    "TAG_CHAMPION",
    "TAG_METRIC",
    "TAG_PASSED",
    "TAG_SNAPSHOT",
    "TAG_SUMMARY",
    "TAG_TS",
    "is_blessed",
    "read_blessing",
    "record_blessing",
    "summary_json",
]
