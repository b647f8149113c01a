"""Pooling by hand: max pooling routes each window's gradient to its maximum; global average
pooling spreads it evenly.

MaxPool2d, x (N, C, H, W) -> y (N, C, OH, OW), windows as in Conv2d (padding reads as -inf):
forward:   y[n, c, oh, ow] = max over the window; remember which offset of the window held it
           (the first in row-major order when several tie: PyTorch's choice)
backward:  dwin = gy at that offset of each window, zero at the others
           dx   = col2im(dwin): overlapping windows may route several gradients to one pixel,
                  and they add up, exactly as Conv2d's window gradients do

PlainMaxPool2d is that (docs/backprop.md derives it). scratch.MaxPool2d is the same layer in
two 1-D passes, tiled where windows tile (fast/pooling.py), checked against this one.

AdaptiveAvgPool2d(1), x (N, C, H, W) -> y (N, C, 1, 1):
forward:   y = mean of x over H, W          backward:  dx = gy / (H*W) at every position
"""

from __future__ import annotations

import torch

from digitlab.scratch.module import Layer, check_input, pair
from digitlab.scratch.windows import channels_last, col2im, unpad, window_grid, windows


class PlainMaxPool2d(Layer):
    """PlainMaxPool2d(kernel_size, stride=None, padding=0, dilation=1), as torch.nn.MaxPool2d."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, None, "MaxPool2d")
        x = channels_last(x, self.padding, value=float("-inf"))  # -inf: padding never wins
        out_hw = window_grid(
            "MaxPool2d", x.shape[1:3], self.kernel_size, self.stride, self.dilation
        )
        win = windows(x, self.kernel_size, self.stride, self.dilation, out_hw)
        n, oh, ow, kh, kw, c = win.shape
        # Each window's KH*KW offsets in row-major order; max returns the first that holds it.
        y, where = win.reshape(n, oh, ow, kh * kw, c).max(3)  # (N, OH, OW, C) each
        self._saved = (where, x.shape)
        return y.permute(0, 3, 1, 2)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        where, (n, hp, wp, c) = self.saved()
        oh, ow = where.shape[1:3]
        if tuple(grad_out.shape) != (n, c, oh, ow):
            raise ValueError(
                f"MaxPool2d.backward expects grad_out {(n, c, oh, ow)}, got {tuple(grad_out.shape)}"
            )
        (kh, kw), gy = self.kernel_size, grad_out.permute(0, 2, 3, 1)  # (N, OH, OW, C)
        # dL/dwindow: the whole gradient at the offset that held the max, nothing elsewhere.
        dwin = gy.new_zeros(n, oh, ow, kh * kw, c)
        dwin.scatter_(3, where.unsqueeze(3), gy.unsqueeze(3))
        dwin = dwin.view(n, oh, ow, kh, kw, c).permute(3, 4, 0, 1, 2, 5)  # col2im's layout
        dx = col2im(dwin, (hp, wp), self.stride, self.dilation)
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
