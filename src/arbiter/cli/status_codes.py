"""Exit codes of the ``arbiter`` command, in one place (pip's ``cli/status_codes.py`` pattern)."""

from __future__ import annotations

SUCCESS = 0
ERROR = 1
BAD_INPUT = 2
NOT_FOUND = 3
CONFIG_ERROR = 4
REGISTRY_ERROR = 5
EVENT_STORE_ERROR = 6
INTERRUPTED = 130
GATE_FAILED = 10  # arbiter gate: the challenger did not pass the offline gate
