"""A small PyTorch network on the demo's transactions (needs the ``torch`` extra).

Used by the PyTorch serving tests and benchmark, and shown in docs/flavors.md (PyTorch): a
2-layer MLP giving P(fraud) from the eight raw features, ready for
:meth:`arbiter.registry.MLflowRegistry.log_pytorch_model`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def train_mlp(features: Any, labels: Any, *, hidden: int = 16, steps: int = 300, seed: int = 0):
    """A 2-layer MLP (``nn.Sequential``, sigmoid output) giving P(label 1) from raw features.

    Trained full-batch with Adam on standardised features; the standardisation is then folded
    into the first layer (W' = W / std, b' = b - W' @ mean), so the served network takes the
    raw float32 columns of ``features`` in their order and needs no preprocessing step.
    """
    import torch

    torch.manual_seed(seed)
    x = torch.tensor(np.asarray(features, dtype=np.float32))
    y = torch.tensor(np.asarray(labels, dtype=np.float32)).unsqueeze(1)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    first, last = torch.nn.Linear(x.shape[1], hidden), torch.nn.Linear(hidden, 1)
    net = torch.nn.Sequential(first, torch.nn.ReLU(), last)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    z = (x - mean) / std
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(z), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        first.weight /= std
        first.bias -= first.weight @ mean
    return torch.nn.Sequential(first, torch.nn.ReLU(), last, torch.nn.Sigmoid()).eval()


__all__ = ["train_mlp"]
