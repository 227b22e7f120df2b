"""Misbehaving models for testing a deployment (and arbiter's own tests).

Register one as a challenger to check that shadow traffic, timeouts and canary rollbacks behave
before a real model misbehaves in production::

    registry.log_pyfunc_model("fraud", FailingModel(rate=0.2), example, aliases=("challenger",))
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

# predict() takes `model_input: pd.DataFrame`: MLflow reads the hint, infers no schema from it
# (the registered signature stays the one the example gives), and does not warn about a
# missing hint when the class is defined.


class FailingModel(PythonModel):
    """Raises on a share ``rate`` of calls (deterministically, every 1/rate-th call when < 1)."""

    def __init__(self, rate: float = 1.0, constant: int = 0) -> None:
        self.rate = rate
        self.constant = constant
        self._calls = 0

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        self._calls += 1
        if self.rate >= 1.0 or (self.rate > 0 and self._calls % max(1, round(1 / self.rate)) == 0):
            raise RuntimeError("injected failure (arbiter.testing.FailingModel)")
        return np.full(len(model_input), self.constant, dtype=np.int64)


class SlowModel(PythonModel):
    """Sleeps ``seconds`` per call (a hung challenger when large), then answers a constant."""

    def __init__(self, seconds: float, constant: int = 0) -> None:
        self.seconds = seconds
        self.constant = constant

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        time.sleep(self.seconds)
        return np.full(len(model_input), self.constant, dtype=np.int64)


class StallingModel(PythonModel):
    """Hangs for ``seconds`` on a request with a row whose ``column`` equals ``value`` (one
    poisoned input), answers every other request at once with a constant."""

    def __init__(self, seconds: float, column: str, value: float, constant: int = 0) -> None:
        self.seconds = seconds
        self.column = column
        self.value = value
        self.constant = constant

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if (model_input[self.column] == self.value).any():
            time.sleep(self.seconds)
        return np.full(len(model_input), self.constant, dtype=np.int64)


class RaisingOnValueModel(PythonModel):
    """Raises on a request with a row whose ``column`` equals ``value`` (a poisoned input),
    answers every other request at once with a constant: a challenger that fails only on the
    traffic one replica receives (tests/integration/test_two_homes.py)."""

    def __init__(self, column: str, value: float, constant: int = 0) -> None:
        self.column = column
        self.value = value
        self.constant = constant

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if (model_input[self.column] == self.value).any():
            raise RuntimeError("injected failure (arbiter.testing.RaisingOnValueModel)")
        return np.full(len(model_input), self.constant, dtype=np.int64)


class BusyModel(PythonModel):
    """Burns CPU for ``seconds`` per call while holding the GIL (a CPU-bound slow challenger)."""

    def __init__(self, seconds: float, constant: int = 0) -> None:
        self.seconds = seconds
        self.constant = constant

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        end = time.perf_counter() + self.seconds
        x = 0
        while time.perf_counter() < end:
            x += 1
        return np.full(len(model_input), self.constant, dtype=np.int64)


class EchoModel(PythonModel):
    """Answers ``"<value>@<call>"`` per row: the row's ``column`` value and an id of the call
    that scored it, so a test sees which row each answer belongs to and which requests shared
    a call (adaptive batching). Sleeps ``seconds`` per call; raises on a call with a row whose
    value is ``fail_value``; hangs ``stall_s`` on a call with a row whose value is
    ``stall_value``."""

    def __init__(
        self,
        column: str,
        seconds: float = 0.0,
        fail_value: float | None = None,
        stall_value: float | None = None,
        stall_s: float = 60.0,
    ) -> None:
        self.column = column
        self.seconds = seconds
        self.fail_value = fail_value
        self.stall_value = stall_value
        self.stall_s = stall_s

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        import uuid

        values = model_input[self.column]
        if self.fail_value is not None and (values == self.fail_value).any():
            raise ValueError(f"injected failure on {self.column}={self.fail_value:g}")
        if self.stall_value is not None and (values == self.stall_value).any():
            time.sleep(self.stall_s)
        time.sleep(self.seconds)
        call = uuid.uuid4().hex[:8]
        return np.array([f"{value:g}@{call}" for value in values], dtype=object)


class SimulatedClassifier(PythonModel):
    """A binary classifier with a chosen accuracy and failure rate, for simulations.

    The input carries the truth (column ``truth``, 0/1) and a row key (column ``key``); the
    model answers the truth on a share ``accuracy`` of rows and the opposite on the rest, and
    raises on a share ``error_rate`` of requests. Which rows it gets wrong and which requests
    fail are decided by a BLAKE2b hash of ``(salt, key)``, so a model is deterministic, two
    models with different salts err on independent rows, and a simulation is reproducible.
    This is what lets a canary simulation put "5 points less accurate" or "fails 20 % of the
    time" through the real gateway, registry and event log.
    """

    def __init__(self, accuracy: float, error_rate: float = 0.0, salt: str = "sim") -> None:
        self.accuracy = accuracy
        self.error_rate = error_rate
        self.salt = salt

    def _uniform(self, key: object, purpose: str) -> float:
        import hashlib

        digest = hashlib.blake2b(
            f"{self.salt}\x1f{purpose}\x1f{key}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") / 2**64

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        keys = list(model_input["key"])
        if keys and self._uniform(keys[0], "error") < self.error_rate:
            raise RuntimeError("injected failure (arbiter.testing.SimulatedClassifier)")
        truth = np.asarray(model_input["truth"], dtype=np.int64)
        right = np.array([self._uniform(k, "correct") < self.accuracy for k in keys], dtype=bool)
        return np.where(right, truth, 1 - truth).astype(np.int64)


__all__ = [
    "BusyModel",
    "EchoModel",
    "FailingModel",
    "RaisingOnValueModel",
    "SimulatedClassifier",
    "SlowModel",
]
