"""ReLU and Dropout by hand: element-wise, so backward is the forward's mask times grad_out.

ReLU:     y = max(x, 0)                         dx = gy * [x > 0]   (0 at x == 0, as PyTorch)
Dropout:  y = x * m / (1 - p), m ~ Bernoulli(1 - p) per element, in training mode only
          dx = gy * m / (1 - p);  in eval mode y = x and dx = gy
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import Layer


class ReLU(Layer):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self._saved = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clamp(min=0)
        self._saved = y
        return y

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        y = self.saved()
        if grad_out.shape != y.shape:
            raise ValueError(
                f"ReLU.backward expects grad_out {tuple(y.shape)}, got {tuple(grad_out.shape)}"
            )
        # [x > 0] as a float: sign(y) is 1 where y = max(x, 0) > 0 and 0 elsewhere. Float
        # arithmetic is several times faster here than a boolean mask.
        return y.sign().mul_(grad_out)


class Dropout(Layer):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout probability p must be between 0 and 1, got {p}")
        self.p = p
        self._saved = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            self._saved = 1.0
            return x
        keep = 1.0 - self.p
        scale = (torch.rand_like(x) < keep).to(x.dtype) / keep if keep > 0 else torch.zeros_like(x)
        self._saved = scale
        return x * scale

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        return grad_out * self.saved()
