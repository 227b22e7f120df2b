"""Native thread pools for serving.

A gateway scores small batches, one request at a time on each of several concurrent paths.
OpenMP and BLAS thread pools then cost more than they give: a one-row HistGradientBoosting
prediction takes 12 ms with 2 OpenMP threads and 1.7 ms with one, measured on this project's
2-core benchmark machine. Scale with worker processes instead.
"""

from __future__ import annotations

import os

_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_native_pools() -> None:
    """Default the native pools to one thread, unless the user set them.

    Must run before numpy/scikit-learn load their native libraries (the CLI calls it first
    thing in ``serve`` and ``demo``).
    """
    for name in _VARIABLES:
        os.environ.setdefault(name, "1")
