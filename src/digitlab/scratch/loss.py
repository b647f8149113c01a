"""CrossEntropyLoss by hand: softmax, log and negative log-likelihood in one stable step.

Shapes: logits z (N, C), target t (N,) class indices; eps = label_smoothing.

forward:   log p = z - logsumexp(z), logsumexp(z) = max(z) + log(sum(exp(z - max(z))))
           (subtracting the max keeps exp finite: logits of 1e4 are fine)
           q = (1 - eps) * onehot(t) + eps / C          (the smoothed target distribution)
           loss_i = -sum_c q_ic * log p_ic;  reduced by mean (over N), sum, or none
backward:  dL/dz = (softmax(z) - q) * g_i,  g_i = dL/dloss_i: 1/N for mean, 1 for sum,
           grad_out[i] for none
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import Layer

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropyLoss(Layer):
    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0 and 1, got {label_smoothing}")
        self.reduction, self.label_smoothing = reduction, label_smoothing
        self._saved = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(logits) or logits.dim() != 2 or not logits.is_floating_point():
            shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
            raise ValueError(f"CrossEntropyLoss expects float logits (N, C), got {shape}")
        n, c = logits.shape
        if (
            not torch.is_tensor(target)
            or target.shape != (n,)
            or target.is_floating_point()
            or target.is_complex()
        ):
            shape = tuple(target.shape) if torch.is_tensor(target) else type(target).__name__
            raise ValueError(f"CrossEntropyLoss expects integer targets ({n},), got {shape}")
        if n and (target.min() < 0 or target.max() >= c):
            raise ValueError(f"CrossEntropyLoss targets must be in 0..{c - 1}")
        shifted = logits - logits.max(1, keepdim=True).values
        log_p = shifted - shifted.exp().sum(1, keepdim=True).log()
        eps = self.label_smoothing
        q = torch.full_like(log_p, eps / c)
        q.scatter_add_(1, target.view(-1, 1).long(), torch.full_like(log_p[:, :1], 1 - eps))
        losses = -(q * log_p).sum(1)
        self._saved = (log_p, q)
        if self.reduction == "mean":
            return losses.mean()
        return losses.sum() if self.reduction == "sum" else losses

    def backward(self, grad_out: torch.Tensor | float = 1.0) -> torch.Tensor:
        """dL/dlogits (N, C); `grad_out` is dL/dloss (a tensor (N,) for reduction='none')."""
        log_p, q = self.saved()
        grad = log_p.exp() - q
        if self.reduction == "mean":
            grad /= max(len(q), 1)
        if torch.is_tensor(grad_out) and grad_out.dim() == 1:
            return grad * grad_out.view(-1, 1)
        return grad * grad_out
