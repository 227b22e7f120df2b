"""Tables every engine connection has besides the views: what the analysis may look up.

``experiment_changes`` holds the split changes of a model (registered by
:func:`arbiter.experiments.split_store.attach_experiment_changes`). DuckDB reports a missing
table as ``duckdb.CatalogException``, which :func:`arbiter.analysis.periods.stored_changes`
reads as "no changes"; the other engines raise their own errors, so they start with the
table present and empty, and :meth:`register` replaces it when changes are attached.
"""

from __future__ import annotations

import pyarrow as pa

EXPERIMENT_CHANGES = "experiment_changes"
EXPERIMENT_CHANGES_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("experiment", pa.string()),
        ("previous_experiment", pa.string()),
        ("ts", pa.float64()),
        ("action", pa.string()),
        ("shares_before", pa.string()),
        ("shares_after", pa.string()),
        ("grace_s", pa.float64()),
    ]
)

__all__ = ["EXPERIMENT_CHANGES", "EXPERIMENT_CHANGES_SCHEMA"]
