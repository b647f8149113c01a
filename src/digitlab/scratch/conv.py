"""Conv2d by hand: convolution as one matrix product over the input's windows (im2col).

Shapes: x (N, C, H, W), weight (O, C, KH, KW), bias (O,), y (N, O, OH, OW) with
OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1 (OW likewise). L = N*OH*OW windows, K = C*KH*KW.

forward:   cols (L, K)  = the windows of the zero-padded x, one per row (as_strided view, copied)
           y (L, O)     = cols @ W2^T + b          W2 = weight as (O, K), K ordered (KH, KW, C)
backward:  dW2 (O, K)   = gy^T @ cols                         gy = dL/dy viewed as (L, O)
           db (O,)      = sum of gy over L
           dcols (L, K) = gy @ W2
           dx           = col2im(dcols): each window's gradient added back where the window was
                          read, as KH*KW shifted, strided adds over the padded input, then cropped

PlainConv2d is that, line for line (docs/backprop.md derives it). scratch.Conv2d is the same
layer with its speed paths (fast/conv.py): reused buffers, a per-thread weight gradient and, in
training, correlation through the DFT; the same numbers up to rounding, checked against this one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from digitlab.scratch.module import Layer, accumulate, check_input, pair
from digitlab.scratch.windows import channels_last, col2im, unpad, window_grid, windows


class PlainConv2d(Layer):
    """PlainConv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
    bias=True), as torch.nn.Conv2d (groups=1, zero padding), with the same parameters and
    initialisation."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        fan_in = in_channels * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)  # what torch's kaiming_uniform_(a=sqrt(5)) works out to
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, *self.kernel_size).uniform_(-bound, bound)
        )
        self.bias = (
            nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None
        )
        self._saved = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.in_channels, "Conv2d")
        (ph, pw), (n, _, h, w) = self.padding, x.shape
        out_hw = window_grid(
            "Conv2d", (h + 2 * ph, w + 2 * pw), self.kernel_size, self.stride, self.dilation
        )
        # Channels-last (N, Hp, Wp, C), so that a window's numbers come in (KH, KW, C) order.
        x = channels_last(x, self.padding)
        win = windows(x, self.kernel_size, self.stride, self.dilation, out_hw)
        cols = win.reshape(n * out_hw[0] * out_hw[1], -1)  # (L, K): a copy, one window per row
        w2 = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)  # (O, K), same order
        y = cols @ w2.t()
        if self.bias is not None:
            y = y + self.bias
        self._saved = (cols, w2, x.shape, out_hw)
        # (L, O) rows are (N, OH, OW, O); the layer's output is (N, O, OH, OW).
        return y.view(n, *out_hw, self.out_channels).permute(0, 3, 1, 2)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        cols, w2, (n, hp, wp, c), (oh, ow) = self.saved()
        if tuple(grad_out.shape) != (n, self.out_channels, oh, ow):
            raise ValueError(
                f"Conv2d.backward expects grad_out {(n, self.out_channels, oh, ow)}, "
                f"got {tuple(grad_out.shape)}"
            )
        (kh, kw), o = self.kernel_size, self.out_channels
        gy = grad_out.permute(0, 2, 3, 1).reshape(-1, o)  # (L, O)
        dw2 = gy.t() @ cols  # (O, K), K in (KH, KW, C) order: back to (O, C, KH, KW)
        accumulate(self.weight, dw2.view(o, kh, kw, c).permute(0, 3, 1, 2))
        if self.bias is not None:
            accumulate(self.bias, gy.sum(0))
        if not input_grad:
            return None
        dcols = gy @ w2  # (L, K): the gradient of each window's copy of its pixels
        dwin = dcols.view(n, oh, ow, kh, kw, c).permute(3, 4, 0, 1, 2, 5)  # col2im's layout
        dx = col2im(dwin, (hp, wp), self.stride, self.dilation)
        return unpad(dx, self.padding)
