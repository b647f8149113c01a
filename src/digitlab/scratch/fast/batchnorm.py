"""BatchNorm2d's speed path: scratch.BatchNorm2d, PlainBatchNorm2d (scratch/batchnorm.py) made
fast by fusing passes over the batch, the layer's whole cost:

- forward scales the centred input into xhat in place (it is this layer's own temporary) and
  adds beta in the same pass as gamma's product (addcmul);
- backward's training-mode dL/dx, scale * (gy - dbeta / M - xhat * dgamma / M), is two
  addcmul passes instead of four element-wise ones (the rest of backward is the plain one's).
"""

from __future__ import annotations

import torch

from digitlab.scratch.batchnorm import PlainBatchNorm2d
from digitlab.scratch.module import check_input


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

    def training_input_grad(self, grad_out, xhat, scale, dbeta, dgamma, m: int) -> torch.Tensor:
        # scale * (gy - dbeta / M - xhat * dgamma / M), in two passes over the batch
        dx = torch.addcmul(self._view(-scale * dbeta / m), xhat, self._view(-scale * dgamma / m))
        return dx.addcmul_(grad_out, self._view(scale))
