"""Misbehaving models for testing a deployment (and arbiter's own tests).

Register one as a challenger to check that shadow traffic, timeouts and canary rollbacks behave
before a real model misbehaves in production::

    registry.log_pyfunc_model("fraud", FailingModel(rate=0.2), example, aliases=("challenger",))
"""

from __future__ import annotations

import time

import numpy as np
from mlflow.pyfunc import PythonModel

# predict() is left unannotated on purpose: MLflow reads type hints on PythonModel.predict as
# an input schema and warns when they are not list[...]; these models take any DataFrame.


class FailingModel(PythonModel):
    """Raises on a share ``rate`` of calls (deterministically, every 1/rate-th call when < 1)."""

    def __init__(self, rate: float = 1.0, constant: int = 0) -> None:
        self.rate = rate
        self.constant = constant
        self._calls = 0

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        self._calls += 1
        if self.rate >= 1.0 or (self.rate > 0 and self._calls % max(1, round(1 / self.rate)) == 0):
            raise RuntimeError("injected failure (arbiter.testing.FailingModel)")
        return np.full(len(model_input), self.constant, dtype=np.int64)


class SlowModel(PythonModel):
    """Sleeps ``seconds`` per call (a hung challenger when large), then answers a constant."""

    def __init__(self, seconds: float, constant: int = 0) -> None:
        self.seconds = seconds
        self.constant = constant

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        time.sleep(self.seconds)
        return np.full(len(model_input), self.constant, dtype=np.int64)


class BusyModel(PythonModel):
    """Burns CPU for ``seconds`` per call while holding the GIL (a CPU-bound slow challenger)."""

    def __init__(self, seconds: float, constant: int = 0) -> None:
        self.seconds = seconds
        self.constant = constant

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        end = time.perf_counter() + self.seconds
        x = 0
        while time.perf_counter() < end:
            x += 1
        return np.full(len(model_input), self.constant, dtype=np.int64)


__all__ = ["BusyModel", "FailingModel", "SlowModel"]
