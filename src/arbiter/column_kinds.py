"""What kind of data a table column holds: numeric, categorical or free text.

Retraining (how to encode a column), drift (which statistic to compare) and the demo's mixed
table all need the same answer for the same column, so it is decided once, here. Pure: reads
the values it is given, no I/O.

The rules, in order:

1. An explicit kind (``overrides``, from ``--categorical``/``--text`` or ``drift.kinds``) wins.
2. Integer, unsigned and float dtypes are numeric; booleans are categorical.
3. Strings (object, ``string``, ``category`` dtypes) are *text* when they read like prose:
   the median non-missing value has at least :data:`TEXT_MIN_TOKENS` whitespace-separated
   tokens. Otherwise they are categorical: merchant codes, countries, device names.

Why tokens and not cardinality: a high-cardinality ID column (``user_id``) is not text, and
a free-text field with few distinct values in a small sample (``"card declined twice"``)
still is; what makes text text is that its values are sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

# The rule itself lives in the drift core (pure, and the drift core may import nothing outside
# it, so it cannot import this module); this module is its public face for retraining and the
# demo, with the per-column overrides.
from arbiter.drift._frame import TEXT_MIN_TOKENS
from arbiter.drift._frame import infer_kind as _infer_kind

ColumnKind = Literal["numeric", "categorical", "text"]
KINDS: tuple[ColumnKind, ...] = ("numeric", "categorical", "text")


def infer_column_kind(values: Any) -> ColumnKind:
    """The kind of one column (a Series, an array or a sequence), by the rules above."""
    return _infer_kind(values)


def column_kinds(
    frame: Any, overrides: Mapping[str, ColumnKind] | None = None
) -> dict[str, ColumnKind]:
    """``{column: kind}`` for every column of ``frame`` (a DataFrame or a mapping of columns).

    ``overrides`` names kinds explicitly; a name that is not a column of ``frame`` is ignored
    here (the caller reports unknown names, since it knows which option they came from).
    """
    overrides = dict(overrides or {})
    for name, kind in overrides.items():
        if kind not in KINDS:
            raise ValueError(f"kind for column {name!r} must be one of {KINDS}, got {kind!r}")
    columns = list(frame.keys() if isinstance(frame, Mapping) else frame.columns)
    return {str(c): overrides.get(str(c)) or infer_column_kind(frame[c]) for c in columns}


__all__ = ["KINDS", "TEXT_MIN_TOKENS", "ColumnKind", "column_kinds", "infer_column_kind"]
