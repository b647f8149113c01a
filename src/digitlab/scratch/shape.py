"""Flatten by hand: a reshape forward, the inverse reshape backward.

Flatten(start_dim=1, end_dim=-1): x (N, C, H, W) -> y (N, C*H*W);  dx = gy reshaped to x's shape.
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import Layer


class Flatten(Layer):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._saved = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._saved = x.shape
        start = self.start_dim % x.dim()
        end = self.end_dim % x.dim()
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        return grad_out.reshape(self.saved())
