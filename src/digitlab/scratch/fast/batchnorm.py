"""BatchNorm2d's speed path: scratch.BatchNorm2d, PlainBatchNorm2d (scratch/batchnorm.py) made
fast by fusing passes over the batch, the layer's whole cost:

- forward scales the centred input into xhat in place (it is this layer's own temporary) and
  adds beta in the same pass as gamma's product (addcmul);
- backward forms dx = scale * (gy - dbeta / M - xhat * dgamma / M) as two addcmul passes
  instead of four element-wise ones.
"""

from __future__ import annotations

import torch

from digitlab.scratch.batchnorm import PlainBatchNorm2d
from digitlab.scratch.module import accumulate, check_input


class BatchNorm2d(PlainBatchNorm2d):
    """scratch.BatchNorm2d: PlainBatchNorm2d's arguments, parameters, buffers and numbers (up to
    rounding), in fewer passes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.num_features, "BatchNorm2d")
        centered, var = self.statistics(x)
        inv_std = (var + self.eps).rsqrt()
        xhat = centered.mul_(self._view(inv_std))  # in place: centered is this layer's own
        self._saved = (xhat, inv_std, self.training)
        if not self.affine:
            return xhat
        return torch.addcmul(self._view(self.bias), xhat, self._view(self.weight))

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
        scale = inv_std if self.weight is None else self.weight * inv_std
        if not training:
            return grad_out * self._view(scale)
        m = xhat.numel() // self.num_features
        # scale * (gy - dbeta / M - xhat * dgamma / M), in two passes over the batch
        dx = torch.addcmul(self._view(-scale * dbeta / m), xhat, self._view(-scale * dgamma / m))
        return dx.addcmul_(grad_out, self._view(scale))
