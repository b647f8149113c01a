"""Linear by hand.

Shapes: x (N, IN), weight (OUT, IN), bias (OUT,), y (N, OUT); leading dimensions beyond N are
flattened into N and restored.

forward:   y = x @ W^T + b
backward:  dx = gy @ W      dW = gy^T @ x      db = sum of gy over N
"""

from __future__ import annotations

import math

import torch
from torch import nn

from digitlab.scratch.module import Layer, accumulate


class Linear(Layer):
    """Linear(in_features, out_features, bias=True), as torch.nn.Linear, same initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        )
        self._saved = None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.dim() < 1 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"Linear expects input (N, {self.in_features}), got {shape}")
        x2 = x.reshape(-1, self.in_features)
        y = (
            x2 @ self.weight.t()
            if self.bias is None
            else torch.addmm(self.bias, x2, self.weight.t())
        )
        self._saved = (x2, x.shape)
        return y.view(*x.shape[:-1], self.out_features)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        x2, shape = self.saved()
        gy = grad_out.reshape(-1, self.out_features)
        if gy.shape[0] != x2.shape[0]:
            raise ValueError(
                f"Linear.backward expects grad_out {(*shape[:-1], self.out_features)}, "
                f"got {tuple(grad_out.shape)}"
            )
        accumulate(self.weight, gy.t() @ x2)
        if self.bias is not None:
            accumulate(self.bias, gy.sum(0))
        return (gy @ self.weight).view(shape) if input_grad else None
