"""BatchNorm2d's speed path: scratch.BatchNorm2d, PlainBatchNorm2d (scratch/batchnorm.py) made
fast by fusing passes over the batch, the layer's whole cost:

- forward scales the centred input into xhat in place (it is this layer's own temporary) and
  adds beta in the same pass as gamma's product (addcmul);
- backward's training-mode dL/dx, scale * (gy - dbeta / M - xhat * dgamma / M), is two
  addcmul passes instead of four element-wise ones (the rest of backward is the plain one's);
- in training, where the batch lies in memory with each pixel's channels side by side (as the
  hand-written Conv2d and MaxPool2d leave it) and there are at most ROWS_UP_TO channels, the
  layer works on that memory as an (M, C) matrix X (channel_rows): the sums of squares and
  sum(gy * x) are the diagonals of (C, M) @ (M, C) products (one read of each operand and no
  (M, C) temporary, for C times the multiplies); neither xhat nor X - mu is written: x itself
  is kept, var = mean(x^2) - mu^2, and mu moves into the per-channel constants (unless a
  channel's mean is FAR from zero); forward's output is one addcmul. The fast net's
  hand-written step took 4% less time with the (M, C) matrix (each later change's own figures
  are in docs/records.md); the best net's, with 64 and 128 channels, 2% more, hence the limit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from digitlab.scratch.batchnorm import PlainBatchNorm2d
from digitlab.scratch.fast.products import long_inner_product
from digitlab.scratch.module import accumulate, check_input

ROWS_UP_TO = 32  # channels: above this the diagonal's wasted multiplies cost more than they save
FAR = 4  # standard deviations from zero: a channel's mean beyond it costs var = mean(x^2) - mu^2
# up to 1 + FAR^2 = 17 times a centred pass's rounding, so such a batch is centred first


def channel_rows(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]] | None:
    """x (N, C, H, W) as an (M, C) matrix view, M = N*H*W, where its memory holds each pixel's
    C values side by side (channels-last, or Conv2d's maps side by side): (the view, the order
    of N, H and W in memory, outermost first); None where it does not."""
    order = tuple(sorted((0, 2, 3), key=lambda d: -x.stride(d)))
    rows = x.permute(*order, 1)
    return (rows.view(-1, x.shape[1]), order) if rows.is_contiguous() else None


def column_sums(rows: torch.Tensor) -> torch.Tensor:
    """rows (M, C) summed over M, (C,): sum(0), faster. With few columns PyTorch's sum over M ran
    at a third of its speed on wider rows ((36864, 16): 0.15 ms, against 0.06 as (4608, 128));
    so k = 128 / C pixels' rows are summed side by side as one row of k * C, then the k parts.
    Below 2^18 values the plain sum was as fast, and the two more calls cost more."""
    m, c = rows.shape
    k = 128 // c if c < 128 and m * c >= 2**18 and m % (128 // c) == 0 else 1
    return rows.sum(0) if k == 1 else rows.reshape(m // k, k * c).sum(0).view(k, c).sum(0)


def from_rows(rows: torch.Tensor, order: tuple[int, ...], shape: torch.Size) -> torch.Tensor:
    """channel_rows' inverse: an (M, C) matrix back to (N, C, H, W) = shape, a view."""
    laid = (*order, 1)
    return rows.view(*(shape[d] for d in laid)).permute(*(laid.index(d) for d in range(4)))


class Rows(NamedTuple):
    """What the (M, C) path keeps for backward."""

    x: torch.Tensor  # the input (M, C), not copied (as autograd, backward expects it unchanged),
    # or x - mean where a mean was FAR from zero
    mean: torch.Tensor  # (C,): the mean of x as kept (0 when centred)
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
        (channel_rows, with N, H and W in `order`): y = x * (gamma / s) + (beta - mu * gamma / s)
        with s = sqrt(var + eps), (N, C, H, W) laid out as x."""
        m = self.values_per_channel(x)
        mean = column_sums(rows) / m
        # var = mean(x^2) - mu^2, the squares' sums read off x: no centred copy written. It
        # loses about log10(1 + mu^2 / var) digits: where a channel's mean is more than FAR
        # standard deviations from zero, the batch is centred after all (and kept so, with
        # mean 0 for backward's sake).
        var = long_inner_product(rows.t(), rows).diagonal() / m - mean.square()
        kept, kept_mean = rows, mean
        if (mean.square() > FAR**2 * var).any():
            kept = rows - mean
            kept_mean = torch.zeros_like(mean)
            var = long_inner_product(kept.t(), kept).diagonal() / m
        self.track(mean, var, m)
        inv_std = (var + self.eps).rsqrt()
        self._saved = Rows(kept, kept_mean, inv_std, order, x.shape)
        scale = self.gamma_over_s(inv_std)
        shift = -kept_mean * scale if self.bias is None else self.bias - kept_mean * scale
        return from_rows(torch.addcmul(shift, kept, scale), order, x.shape)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        saved = self.saved()
        if not isinstance(saved, Rows):
            return super().backward(grad_out, input_grad)
        if grad_out.shape != saved.shape:
            raise ValueError(
                f"BatchNorm2d.backward expects grad_out {tuple(saved.shape)}, "
                f"got {tuple(grad_out.shape)}"
            )
        rows, mean, inv_std = saved.x, saved.mean, saved.inv_std
        gy = grad_out.permute(*saved.order, 1).reshape(rows.shape)  # (M, C)
        dbeta = column_sums(gy)
        # dgamma = sum(gy * xhat) = (sum(gy * x) - mu * sum(gy)) / s
        dgamma = (long_inner_product(gy.t(), rows).diagonal() - mean * dbeta) * inv_std
        if self.affine:
            accumulate(self.weight, dgamma)
            accumulate(self.bias, dbeta)
        scale = self.gamma_over_s(inv_std)
        # The other path's dx with xhat = (x - mu) / s: x's factor is dgamma / s, and mu's
        # part joins dbeta's in the per-channel constant.
        x = from_rows(rows, saved.order, saved.shape)  # (N, C, H, W), a view
        m = rows.shape[0]
        dgamma_x = dgamma * inv_std
        return self.training_input_grad(grad_out, x, scale, dbeta - mean * dgamma_x, dgamma_x, m)

    def training_input_grad(self, grad_out, xhat, scale, dbeta, dgamma, m: int) -> torch.Tensor:
        # scale * (gy - dbeta / M - xhat * dgamma / M), in two passes over the batch
        dx = torch.addcmul(self._view(-scale * dbeta / m), xhat, self._view(-scale * dgamma / m))
        return dx.addcmul_(grad_out, self._view(scale))
