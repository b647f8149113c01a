"""Conv2d by hand: convolution as one matrix product over the input's windows (im2col).

Shapes: x (N, C, H, W), weight (O, C, KH, KW), bias (O,), y (N, O, OH, OW) with
OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1 (OW likewise). L = N*OH*OW windows, K = C*KH*KW.

forward:   cols (L, K)  = the windows of the zero-padded x, one per row (as_strided view, copied)
           y (L, O)     = cols @ W2^T + b          W2 = weight as (O, K), K ordered (KH, KW, C)
backward:  dW2 (O, K)   = gy^T @ cols                         gy = dL/dy viewed as (L, O)
           db (O,)      = sum of gy over L
           dcols (L, K) = gy @ W2   (computed per kernel offset, for col2im's layout)
           dx           = col2im(dcols): each window's gradient added back where the window was
                          read, as KH*KW shifted, strided adds over the padded input, then cropped
"""

from __future__ import annotations

import math

import torch
from torch import nn

from digitlab.scratch.module import Layer, accumulate, check_input, pair
from digitlab.scratch.windows import channels_last, col2im, unpad, window_grid, windows


class Conv2d(Layer):
    """Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True),
    as torch.nn.Conv2d (groups=1, zero padding), with the same parameters and initialisation."""

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

    def im2col(self, x: torch.Tensor, out_hw) -> torch.Tensor:
        """The windows of the padded channels-last x (N, Hp, Wp, C) as an (L, K) matrix."""
        win = windows(x, self.kernel_size, self.stride, self.dilation, out_hw)
        n, oh, ow, kh, kw, c = win.shape
        if c > 1:  # rows of KW*C numbers, copied in that order
            cols = self.workspace("cols", (n * oh * ow, kh * kw * c), x)
            cols.view(win.shape).copy_(win)
            return cols
        # One channel (a first layer): a window row is only KW numbers, while a row of the image
        # is OW; fill the transpose, (K, L), one image row at a time, and hand out its (L, K) view.
        cols_t = self.workspace("cols", (kh * kw, n * oh * ow), x)
        cols_t.view(kh, kw, c, n, oh, ow).copy_(win.permute(3, 4, 5, 0, 1, 2))
        return cols_t.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.in_channels, "Conv2d")
        # Work channels-last, (N, H, W, C): free when x came from another hand-written layer.
        x = channels_last(x, self.padding).contiguous()
        out_hw = window_grid("Conv2d", x.shape[1:3], self.kernel_size, self.stride, self.dilation)
        n = x.shape[0]
        cols = self.im2col(x, out_hw)
        # The weight in the windows' (KH, KW, C) order, as an (O, K) matrix.
        w2 = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)
        y = cols @ w2.t() if self.bias is None else torch.addmm(self.bias, cols, w2.t())
        self._saved = (cols, w2, x.shape, out_hw)
        # (L, O) rows are channels-last (N, OH, OW, O); the permuted view keeps them uncopied.
        return y.view(n, *out_hw, self.out_channels).permute(0, 3, 1, 2)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        cols, w2, padded_shape, out_hw = self.saved()
        n, hp, wp, c = padded_shape
        if tuple(grad_out.shape) != (n, self.out_channels, *out_hw):
            raise ValueError(
                f"Conv2d.backward expects grad_out {(n, self.out_channels, *out_hw)}, "
                f"got {tuple(grad_out.shape)}"
            )
        gy = grad_out.permute(0, 2, 3, 1).reshape(-1, self.out_channels)  # (L, O)
        kh, kw = self.kernel_size
        # dW2 (O, K) = gy^T @ cols, multiplied in the order that reads both operands along their
        # rows: for a first layer cols is the transpose of a (K, L) matrix, so form dW2^T.
        dw2 = gy.t() @ cols if cols.is_contiguous() else (cols.t() @ gy).t()
        accumulate(self.weight, dw2.view(self.out_channels, kh, kw, c).permute(0, 3, 1, 2))
        if self.bias is not None:
            accumulate(self.bias, gy.sum(0))
        if not input_grad:
            return None
        # dcols, one (L, C) block per kernel offset: gy @ W_k, W_k = weight[:, :, i, j] (O, C).
        # A batched product over the KH*KW offsets, laid out for col2im's adds.
        w_k = w2.view(self.out_channels, kh * kw, c).transpose(0, 1).contiguous()
        dwin = self.workspace("dwin", (kh * kw, gy.shape[0], c), gy)
        torch.bmm(gy.expand(kh * kw, *gy.shape), w_k, out=dwin)
        dwin = dwin.view(kh, kw, n, *out_hw, c)
        dx = col2im(dwin, (hp, wp), self.stride, self.dilation)
        return unpad(dx, self.padding)
