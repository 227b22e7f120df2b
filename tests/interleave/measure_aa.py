"""Measure the A/A false-positive rates quoted in docs/interleaving-and-bandits.md.

Not collected by pytest. Run::

    .venv/bin/python -m tests.interleave.measure_aa

Prints, per method and setting, the share of 1,000 simulated A/A experiments (40 users x 6
impressions, through the event log and ``analyze_interleave`` with ``sequential: false``)
that end significant at alpha = 5 %, and the same for the always-valid decision with 16 looks
(3,000 runs) next to the t-test looked at 16 times. Seeds as in the slow tests.
"""

from __future__ import annotations

import math

from .test_analysis import AA_CASES, _aa_rejections
from .test_decision import _aa_with_looks


def main() -> None:
    """Print each rate with its Monte-Carlo standard error."""

    def fmt(k: int, n: int) -> str:
        p = k / n
        return f"{k}/{n} = {p:.2%} (MC SE {math.sqrt(p * (1 - p) / n):.2%})"

    for method, setting in AA_CASES:
        print(
            f"{method:10s} {setting:9s}",
            fmt(_aa_rejections(1_000, 7, method, setting, via_log=True), 1_000),
            flush=True,
        )
    seq, fixed = _aa_with_looks(3_000, 7)
    print(
        "16 looks: confidence sequence",
        fmt(seq, 3_000),
        "; t-test at every look",
        fmt(fixed, 3_000),
    )


if __name__ == "__main__":
    main()
