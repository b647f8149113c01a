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
import torch.nn.functional as F
from torch import nn

from digitlab.scratch.module import Layer, accumulate, check_input, pair


def channels_last(x: torch.Tensor, padding, value: float = 0.0) -> torch.Tensor:
    """x (N, C, H, W) -> (N, Hp, Wp, C), padded by `padding` (PH, PW) with `value`.

    A view when there is no padding and x came channels-last from another hand-written layer.
    """
    x = x.permute(0, 2, 3, 1)
    ph, pw = padding
    return F.pad(x, (0, 0, pw, pw, ph, ph), value=value) if ph or pw else x


def unpad(dx: torch.Tensor, padding) -> torch.Tensor:
    """The inverse of channels_last for a gradient: (N, Hp, Wp, C) -> (N, C, H, W), padding cut
    off (padded pixels were constants; their gradients go nowhere)."""
    (ph, pw), (hp, wp) = padding, dx.shape[1:3]
    return dx[:, ph : hp - ph, pw : wp - pw].permute(0, 3, 1, 2)


def window_grid(layer: str, padded_hw, kernel, stride, dilation) -> tuple[int, int]:
    """(OH, OW): how many windows fit along each side of the padded input; ValueError if none."""
    out_hw = tuple(
        (padded_hw[d] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1 for d in range(2)
    )
    if min(out_hw) < 1:
        raise ValueError(
            f"{layer}: kernel {tuple(kernel)} with dilation {tuple(dilation)} does not fit the "
            f"padded input {tuple(padded_hw)}"
        )
    return out_hw


def windows(x: torch.Tensor, kernel, stride, dilation, out_hw) -> torch.Tensor:
    """View of the windows of x (N, H, W, C): (N, OH, OW, KH, KW, C), sharing x's memory.

    With x channels-last in memory, a window row (KW, C) is one contiguous run of KW*C numbers,
    so copying the windows out (im2col) moves long runs instead of single numbers.
    """
    n, c = x.shape[0], x.shape[3]
    sn, sh, sw, sc = x.stride()
    return x.as_strided(
        (n, *out_hw, *kernel, c),
        (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc),
        x.storage_offset(),
    )


def col2im(dwin: torch.Tensor, padded_hw, stride, dilation) -> torch.Tensor:
    """Sum window gradients dwin (KH, KW, N, OH, OW, C) back into a (N, Hp, Wp, C) gradient.

    One shifted, strided add per kernel offset (KH*KW of them, no loop over pixels): offset (i, j)
    of window (oh, ow) read input pixel (oh*SH + i*DH, ow*SW + j*DW). Each offset's gradients are
    one contiguous block, added into rows of OW*C numbers.
    """
    kh, kw, n, oh, ow, c = dwin.shape
    dx = dwin.new_zeros(n, *padded_hw, c)
    rows, cols = stride[0] * (oh - 1) + 1, stride[1] * (ow - 1) + 1
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            dx[:, top : top + rows : stride[0], left : left + cols : stride[1]].add_(dwin[i, j])
    return dx


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
