"""Pooling by hand: max pooling routes each window's gradient to its maximum; global average
pooling spreads it evenly.

MaxPool2d, x (N, C, H, W) -> y (N, C, OH, OW), windows as in Conv2d (padding reads as -inf):
forward:   y[n, c, oh, ow] = max over the window;  a = offset of that max in the window
           (the first one, in row-major order, when several tie: PyTorch's choice)
backward:  dx[n, c, pixel at offset a of window (oh, ow)] += gy[n, c, oh, ow]; zero elsewhere.
           Overlapping windows may route several gradients to one pixel: they add up.
Both loop over the KH*KW kernel offsets, each step a whole-tensor operation on the (N, OH, OW, C)
slice of the input that this offset of every window reads.

AdaptiveAvgPool2d(1), x (N, C, H, W) -> y (N, C, 1, 1):
forward:   y = mean of x over H, W          backward:  dx = gy / (H*W) at every position
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import Layer, check_input, pair
from digitlab.scratch.windows import channels_last, unpad, window_grid


class MaxPool2d(Layer):
    """MaxPool2d(kernel_size, stride=None, padding=0, dilation=1), as torch.nn.MaxPool2d."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        for d in range(2):
            if self.padding[d] > self.kernel_size[d] // 2:
                raise ValueError(
                    f"MaxPool2d padding {self.padding} must be at most half the kernel size "
                    f"{self.kernel_size}"
                )
        self._saved = None

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}"
        )

    def offsets(self, out_hw):
        """(k, rows, cols) per kernel offset k: the slices of the padded (N, Hp, Wp, C) input
        that offset k of every window reads, one (N, OH, OW, C) slice per offset."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (out_hw[0] - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (out_hw[1] - 1) + 1, sw)
                yield i * kw + j, rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, None, "MaxPool2d")
        x = channels_last(x, self.padding, value=float("-inf"))  # -inf: padding never wins
        out_hw = window_grid(
            "MaxPool2d", x.shape[1:3], self.kernel_size, self.stride, self.dilation
        )
        # A running maximum over the kernel offsets (a loop over KH*KW offsets, not pixels).
        y = None
        for _, rows, cols in self.offsets(out_hw):
            y = x[:, rows, cols].clone() if y is None else torch.maximum(y, x[:, rows, cols])
        self._saved = (x, y, out_hw)
        return y.permute(0, 3, 1, 2)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        x, y, out_hw = self.saved()
        n, hp, wp, c = x.shape
        if tuple(grad_out.shape) != (n, c, *out_hw):
            raise ValueError(
                f"MaxPool2d.backward expects grad_out {(n, c, *out_hw)}, "
                f"got {tuple(grad_out.shape)}"
            )
        gy = grad_out.permute(0, 2, 3, 1)
        # When the windows tile the input exactly (MaxPool2d(2) on even sizes), every input pixel
        # gets exactly one write, so dx needs no zeroing and the writes no read-modify-add.
        tiled = (
            self.stride == self.kernel_size
            and self.dilation == (1, 1)
            and (hp, wp)
            == (
                out_hw[0] * self.kernel_size[0],
                out_hw[1] * self.kernel_size[1],
            )
        )
        dx = gy.new_empty(n, hp, wp, c) if tiled else gy.new_zeros(n, hp, wp, c)
        # Route each window's gradient to the first offset (row-major) that holds its maximum:
        # `free` is 1 until an offset has taken the window. 0/1 floats, not booleans: faster here.
        offsets = list(self.offsets(out_hw))
        free = None  # all ones before the first offset, so not made
        for k, rows, cols in offsets:
            hit = torch.eq(x[:, rows, cols], y, out=torch.empty_like(y))
            if free is not None:
                hit.mul_(free)
            if k == 0:
                free = 1 - hit
            elif k < len(offsets) - 1:  # after the last offset nothing asks
                free.sub_(hit)
            if tiled:
                torch.mul(hit, gy, out=dx[:, rows, cols])
            else:
                dx[:, rows, cols].add_(hit.mul_(gy))
        return unpad(dx, self.padding)


class AdaptiveAvgPool2d(Layer):
    """AdaptiveAvgPool2d(1): the global average pool, (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size=1):
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError(
                f"only output_size=1 (global pooling) is supported, got {output_size!r}"
            )
        self.output_size = output_size
        self._saved = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, None, "AdaptiveAvgPool2d")
        self._saved = x.shape
        return x.mean((2, 3), keepdim=True)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        n, c, h, w = self.saved()
        return (grad_out / (h * w)).expand(n, c, h, w)


GlobalAvgPool2d = AdaptiveAvgPool2d
