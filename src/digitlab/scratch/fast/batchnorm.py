"""BatchNorm2d's speed path: scratch.BatchNorm2d, PlainBatchNorm2d (scratch/batchnorm.py) made
fast by fusing passes over the batch, the layer's whole cost:

- forward scales the centred input into xhat in place (it is this layer's own temporary) and
  adds beta in the same pass as gamma's product (addcmul);
- backward's training-mode dL/dx, scale * (gy - dbeta / M - xhat * dgamma / M), is two
  addcmul passes instead of four element-wise ones (the rest of backward is the plain one's);
- in training, where the batch lies in memory with each pixel's channels side by side (as the
  hand-written Conv2d and MaxPool2d leave it) and there are at most ROWS_UP_TO channels, the
  layer works on that memory as an (M, C) matrix (channel_rows): the variance and dgamma are
  the diagonals of (C, M) @ (M, C) products (one read of each operand and no (M, C) temporary
  for the squares or products, for C times the multiplies), xhat is never written (the centred
  x is kept), and forward's output is one addcmul. The fast net's hand-written step took 4%
  less time; the best net's, with 64 and 128 channels, 2% more, hence the limit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from digitlab.scratch.batchnorm import PlainBatchNorm2d
from digitlab.scratch.module import accumulate, check_input

ROWS_UP_TO = 32  # channels: above this the diagonal's wasted multiplies cost more than they save


def channel_rows(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]] | None:
    """x (N, C, H, W) as an (M, C) matrix view, M = N*H*W, where its memory holds each pixel's
    C values side by side (channels-last, or Conv2d's maps side by side): (the view, the order
    of N, H and W in memory, outermost first); None where it does not."""
    order = tuple(sorted((0, 2, 3), key=lambda d: -x.stride(d)))
    rows = x.permute(*order, 1)
    return (rows.view(-1, x.shape[1]), order) if rows.is_contiguous() else None


def from_rows(rows: torch.Tensor, order: tuple[int, ...], shape: torch.Size) -> torch.Tensor:
    """channel_rows' inverse: an (M, C) matrix back to (N, C, H, W) = shape, a view."""
    laid = (*order, 1)
    return rows.view(*(shape[d] for d in laid)).permute(*(laid.index(d) for d in range(4)))


class Rows(NamedTuple):
    """What the (M, C) path keeps for backward."""

    centered: torch.Tensor  # x - mean, (M, C)
    inv_std: torch.Tensor  # 1 / sqrt(var + eps), (C,)
    order: tuple[int, ...]  # N, H and W in memory order (channel_rows), to give dx x's layout
    shape: torch.Size  # x's, (N, C, H, W)


class BatchNorm2d(PlainBatchNorm2d):
    """scratch.BatchNorm2d: PlainBatchNorm2d's arguments, parameters, buffers and numbers (up to
    rounding), in fewer passes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.num_features, "BatchNorm2d")
        rows = channel_rows(x) if self.training and self.num_features <= ROWS_UP_TO else None
        if rows is not None:
            return self.rows_forward(x, *rows)
        centered, var = self.statistics(x)
        inv_std = (var + self.eps).rsqrt()
        xhat = centered.mul_(self._view(inv_std))  # in place: centered is this layer's own
        self._saved = (xhat, inv_std, self.training)
        if not self.affine:
            return xhat
        return torch.addcmul(self._view(self.bias), xhat, self._view(self.weight))

    def rows_forward(self, x: torch.Tensor, rows: torch.Tensor, order: tuple[int, ...]):
        """Training's forward of x (N, C, H, W) through rows, its memory as an (M, C) matrix
        (channel_rows, with N, H and W in `order`): y = centered * (gamma / s) + beta with
        s = sqrt(var + eps), (N, C, H, W) laid out as x."""
        m = self.values_per_channel(x)
        mean = rows.mean(0)
        centered = rows - mean
        var = (centered.t() @ centered).diagonal() / m  # sum over M of centered^2, per channel
        self.track(mean, var, m)
        inv_std = (var + self.eps).rsqrt()
        self._saved = Rows(centered, inv_std, order, x.shape)
        if not self.affine:
            return from_rows(centered * inv_std, order, x.shape)
        y = torch.addcmul(self.bias, centered, self.weight * inv_std)
        return from_rows(y, order, x.shape)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        saved = self.saved()
        if not isinstance(saved, Rows):
            return super().backward(grad_out, input_grad)
        if grad_out.shape != saved.shape:
            raise ValueError(
                f"BatchNorm2d.backward expects grad_out {tuple(saved.shape)}, "
                f"got {tuple(grad_out.shape)}"
            )
        centered, inv_std = saved.centered, saved.inv_std
        gy = grad_out.permute(*saved.order, 1).reshape(centered.shape)  # (M, C)
        dbeta = gy.sum(0)
        dgamma = (gy.t() @ centered).diagonal() * inv_std  # sum(gy * xhat), xhat = centered / s
        if self.affine:
            accumulate(self.weight, dgamma)
            accumulate(self.bias, dbeta)
        scale = inv_std if self.weight is None else self.weight * inv_std  # gamma / s
        # The same dx as the other path's, with xhat * dgamma = centered * (dgamma / s)
        centered = from_rows(centered, saved.order, saved.shape)  # (N, C, H, W), a view
        m = saved.centered.shape[0]
        return self.training_input_grad(grad_out, centered, scale, dbeta, dgamma * inv_std, m)

    def training_input_grad(self, grad_out, xhat, scale, dbeta, dgamma, m: int) -> torch.Tensor:
        # scale * (gy - dbeta / M - xhat * dgamma / M), in two passes over the batch
        dx = torch.addcmul(self._view(-scale * dbeta / m), xhat, self._view(-scale * dgamma / m))
        return dx.addcmul_(grad_out, self._view(scale))
