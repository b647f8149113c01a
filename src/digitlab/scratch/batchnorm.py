"""BatchNorm2d by hand.

Shapes: x (N, C, H, W), weight = gamma (C,), bias = beta (C,); statistics per channel over
M = N*H*W values.

training:  mu = mean(x), var = mean((x - mu)^2)  (biased), xhat = (x - mu) / sqrt(var + eps)
           y = gamma * xhat + beta
           running_mean <- (1 - momentum) * running_mean + momentum * mu
           running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1) (unbiased)
           (momentum=None: a cumulative average over the batches seen)
backward:  dbeta = sum(gy)    dgamma = sum(gy * xhat)
           dx = gamma / sqrt(var + eps) * (gy - dbeta / M - xhat * dgamma / M)
eval:      y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
           dx = gy * gamma / sqrt(running_var + eps)

PlainBatchNorm2d is that (docs/backprop.md derives it). scratch.BatchNorm2d computes the same
numbers in fewer passes over the batch (fast/batchnorm.py), checked against this one.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.scratch.module import Layer, accumulate, check_input


class PlainBatchNorm2d(Layer):
    """PlainBatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True), as
    torch.nn.BatchNorm2d: same parameters (weight, bias) and buffers (running_mean, running_var,
    num_batches_tracked)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
    ):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum, self.affine = (
            num_features,
            eps,
            momentum,
            affine,
        )
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self._saved = None

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )

    def _view(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1)

    def statistics(self, x: torch.Tensor):
        """(x - mu, var) per channel: in training the batch's, which also update the running
        averages; in eval mode the running ones."""
        if not self.training:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
            return x - self._view(mean), var
        m = self.values_per_channel(x)
        mean = x.mean((0, 2, 3))
        centered = x - self._view(mean)
        var = centered.square().mean((0, 2, 3))
        self.track(mean, var, m)
        return centered, var

    def values_per_channel(self, x: torch.Tensor) -> int:
        """M = N * H * W, which training's statistics need to be more than 1."""
        m = x.numel() // self.num_features
        if m < 2:
            raise ValueError(
                f"BatchNorm2d needs more than 1 value per channel in training, got shape "
                f"{tuple(x.shape)}"
            )
        return m

    def track(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        """Move the running averages towards a training batch's mean and (biased) var (C,),
        taken over m values per channel."""
        self.num_batches_tracked += 1
        factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        unbiased = (var * m / (m - 1)).to(self.running_var.dtype)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)

    def gamma_over_s(self, inv_std: torch.Tensor) -> torch.Tensor:
        """gamma / s per channel (C,), from inv_std = 1 / s; without gamma (affine=False), 1 / s."""
        return inv_std if self.weight is None else self.weight * inv_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.num_features, "BatchNorm2d")
        centered, var = self.statistics(x)
        inv_std = (var + self.eps).rsqrt()
        xhat = centered * self._view(inv_std)
        self._saved = (xhat, inv_std, self.training)
        if not self.affine:
            return xhat
        return self._view(self.weight) * xhat + self._view(self.bias)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        xhat, inv_std, training = self.saved()
        if grad_out.shape != xhat.shape:
            raise ValueError(
                f"BatchNorm2d.backward expects grad_out {tuple(xhat.shape)}, "
                f"got {tuple(grad_out.shape)}"
            )
        dbeta = grad_out.sum((0, 2, 3))
        dgamma = (grad_out * xhat).sum((0, 2, 3))
        if self.affine:
            accumulate(self.weight, dgamma)
            accumulate(self.bias, dbeta)
        scale = self.gamma_over_s(inv_std)
        if not training:  # mu and var were constants
            return grad_out * self._view(scale)
        m = xhat.numel() // self.num_features
        return self.training_input_grad(grad_out, xhat, scale, dbeta, dgamma, m)

    def training_input_grad(self, grad_out, xhat, scale, dbeta, dgamma, m: int) -> torch.Tensor:
        """dL/dx in training mode, (N, C, H, W): scale * (gy - dbeta / M - xhat * dgamma / M),
        scale = gamma / s and the sums (C,) per channel, M = N * H * W."""
        return self._view(scale) * (
            grad_out - self._view(dbeta / m) - xhat * self._view(dgamma / m)
        )
