"""MaxPool2d's speed path: scratch.MaxPool2d, PlainMaxPool2d (scratch/pooling.py) made fast.

The plain layer copies every window's KH*KW numbers to take their max. A window is a rectangle,
and the max over a rectangle is the max over its rows of the max along each row. So this one
runs as two 1-D passes, along W then along H, each a loop over that side's kernel offsets of
whole-tensor operations (no loop over pixels). Backward routes through the H pass, then the W
pass; the first offset of each pass wins a tie, which makes the winner the first in row-major
order, as in the plain layer and PyTorch. Two passes of K offsets instead of one of K*K: half
the work for 2x2 windows, and each pass reads memory along one axis only. Windows that tile an
axis exactly (a 2x2 pool on even sizes) write each pixel's gradient once, with no zeroing.
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import check_input
from digitlab.scratch.pooling import PlainMaxPool2d
from digitlab.scratch.windows import channels_last, unpad, window_grid


def along(x: torch.Tensor, dim: int, start: int, stride: int, count: int) -> torch.Tensor:
    """The `count` slices start, start + stride, ... of x along dim: a strided view."""
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + stride * (count - 1) + 1, stride)
    return x[tuple(index)]


def max_along(x: torch.Tensor, dim: int, kernel: int, stride: int, dilation: int, count: int):
    """1-D max pooling of x along dim: y (x's shape, `count` long along dim) with
    y[.., o, ..] = max over k < kernel of x[.., o * stride + k * dilation, ..]."""
    offsets = [along(x, dim, k * dilation, stride, count) for k in range(kernel)]
    if kernel == 1:
        return offsets[0].clone()
    y = torch.maximum(offsets[0], offsets[1])
    for xk in offsets[2:]:
        torch.maximum(y, xk, out=y)
    return y


def route_along(x, y, gy, dim: int, kernel: int, stride: int, dilation: int) -> torch.Tensor:
    """The backward of max_along: each gy goes to the first offset k along dim whose x equals
    its maximum y. Returns dx, x's shape."""
    count = y.shape[dim]
    # Windows that tile the axis exactly (a 2x2 pool on even sizes) write every pixel once:
    # no zeroing, no read-modify-add, each offset's share written straight into dx. dx is laid
    # out in memory as x is (empty_like): with dx in a layout other than x's and gy's, every
    # pass below read one of them against its memory order (the fast net's first pool's
    # backward: 2.5 ms against 2.0).
    tiled = stride == kernel and dilation == 1 and x.shape[dim] == count * kernel
    dx = torch.empty_like(x) if tiled else torch.zeros_like(x)
    targets = [along(dx, dim, k * dilation, stride, count) for k in range(kernel)]
    rest = gy  # the gradients not yet given to an offset
    for k in range(kernel - 1):
        xk = along(x, dim, k * dilation, stride, count)
        # x <= y everywhere, so x >= y is x == y. 0/1 floats, not booleans: faster here. Tiled,
        # the last offset's part of dx holds them until it is written (no temporary).
        won = torch.ge(xk, y, out=targets[-1] if tiled else torch.empty_like(y))
        if tiled:
            share = torch.mul(won, rest, out=targets[k])
        else:
            share = won.mul_(rest)
            targets[k].add_(share)
        if tiled and k == kernel - 2:  # what is left is all the last offset's
            torch.sub(rest, share, out=targets[-1])
            return dx
        rest = rest - share
    # no earlier offset held the maximum, so the last one does
    targets[-1].copy_(rest) if tiled else targets[-1].add_(rest)
    return dx


class MaxPool2d(PlainMaxPool2d):
    """scratch.MaxPool2d: PlainMaxPool2d's arguments and numbers, in two 1-D passes."""

    def passes(self):
        """(dim, kernel, stride, dilation) of the W pass, then the H pass, over (N, H, W, C)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (2, kw, sw, dw), (1, kh, sh, dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, None, "MaxPool2d")
        x = channels_last(x, self.padding, value=float("-inf"))  # -inf: padding never wins
        out_hw = window_grid(
            "MaxPool2d", x.shape[1:3], self.kernel_size, self.stride, self.dilation
        )
        (w_dim, *w_pass), (h_dim, *h_pass) = self.passes()
        rows = max_along(x, w_dim, *w_pass, out_hw[1])  # (N, Hp, OW, C): max along each row
        y = max_along(rows, h_dim, *h_pass, out_hw[0])  # (N, OH, OW, C): then over the rows
        self._saved = (x, rows, y)
        return y.permute(0, 3, 1, 2)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        x, rows, y = self.saved()
        n, oh, ow, c = y.shape
        if tuple(grad_out.shape) != (n, c, oh, ow):
            raise ValueError(
                f"MaxPool2d.backward expects grad_out {(n, c, oh, ow)}, got {tuple(grad_out.shape)}"
            )
        (w_dim, *w_pass), (h_dim, *h_pass) = self.passes()
        grad_rows = route_along(rows, y, grad_out.permute(0, 2, 3, 1), h_dim, *h_pass)
        dx = route_along(x, rows, grad_rows, w_dim, *w_pass)
        return unpad(dx, self.padding)
