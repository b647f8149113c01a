"""Windows over an image, shared by Conv2d and MaxPool2d: the channels-last padded input, how
many windows fit, a strided view of all windows at once, and col2im (its adjoint: window gradients
added back where the windows were read).

All work on channels-last tensors (N, H, W, C): a window row (KW, C) is then one contiguous run of
memory, so copying windows out moves long runs instead of single numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
