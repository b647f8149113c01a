"""Conv2d's fast path: correlation through the discrete Fourier transform (DFT), as matrix products.

Why: a KH x KW correlation costs KH*KW multiplies per output pixel per channel pair; in the
frequency domain it costs one complex multiply per frequency per channel pair (the correlation
theorem, derived in docs/backprop.md). For the study CNN's conv2 (16->32, 5x5, 14x14) that is a
quarter of im2col's multiplies, and the transforms themselves are small matrix products. The
DFTs here are plain real matrices (cosines and sines), applied with matmul: no FFT routine.

Layout: maps side by side, (H, W, M), where M counts every (image, channel) pair and is the
fastest dimension; each transform is then one matrix product along a long M axis. A spectrum
is (2, HS, WF, M): real and imaginary parts at the HS x WF frequencies of an HS x WS DFT
(WF = WS//2 + 1: a real map's other frequencies are the conjugates of these).

The frame (HS, WS) is the zero-padded input's size. A map placed at (top, left) in it uses only
its own rows of the DFT matrices (zero padding costs nothing), and an inverse transform
computes only the block asked for.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch


class DFT(NamedTuple):
    """Real matrices of the 2-D DFT of an (HS, WS) frame, X = sum x e^{-2 pi i (kh/HS + fw/WS)}:

    along_w (2, WF, WS):     [cos; -sin](2 pi f w / WS): a real row -> WF complex numbers
    along_h (2, HS, HS, 2):  one complex number per row -> HS, as (re, im) out of (re, im) in
    back_h  (HS, 2, 2, HS):  the inverse along H, e^{+...} / HS
    back_w  (WS, 2, WF):     complex WF -> the real row, each frequency but 0 (and WS/2)
                             counted twice for its conjugate
    """

    along_w: torch.Tensor
    along_h: torch.Tensor
    back_h: torch.Tensor
    back_w: torch.Tensor


@functools.lru_cache(maxsize=64)
def dft(hs: int, ws: int, dtype: torch.dtype, device: torch.device) -> DFT:
    """The DFT matrices of an (hs, ws) frame, built once in float64 then cast."""

    def angles(n, m, size):  # 2 pi a b / size for a < n, b < m
        a, b = torch.arange(n, dtype=torch.float64), torch.arange(m, dtype=torch.float64)
        return 2 * math.pi * torch.outer(a, b) / size

    wf = ws // 2 + 1
    a = angles(wf, ws, ws)
    along_w = torch.stack((a.cos(), -a.sin()))
    c, s = angles(hs, hs, hs).cos(), angles(hs, hs, hs).sin()
    # e^{-ia} (u + iv) = (c u + s v) + i (c v - s u); indices (re/im out, k, h, re/im in)
    along_h = torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)))
    # e^{+ia} (u + iv) / HS = (c u - s v + i (s u + c v)) / HS; indices (h, re/im out, re/im in, k)
    back_h = torch.stack((torch.stack((c, -s), 1), torch.stack((s, c), 1)), 1) / hs
    twice = torch.full((wf,), 2.0, dtype=torch.float64)
    twice[0] = 1
    if ws % 2 == 0:
        twice[-1] = 1  # the Nyquist frequency is its own conjugate
    a = angles(ws, wf, ws)
    back_w = torch.stack((a.cos(), -a.sin()), 1) * twice / ws  # Re((u + iv) e^{ia}) = u c - v s
    return DFT(*(m.to(dtype=dtype, device=device) for m in (along_w, along_h, back_h, back_w)))


def fresh(name: str, shape, like: torch.Tensor) -> torch.Tensor:
    """The default place for a temporary: a new tensor (Conv2d passes its reused workspaces)."""
    return like.new_empty(shape)


def spectrum(maps, frame, top=0, left=0, space=fresh, name="spectrum") -> torch.Tensor:
    """maps (H, W, M), placed at (top, left) of a zero (HS, WS) frame -> spectra (2, HS, WF, M)."""
    (h, w, m), hs = maps.shape, frame[0]
    d = dft(*frame, maps.dtype, maps.device)
    wf = d.along_w.shape[1]
    rows = space(f"{name} rows", (h, 2 * wf, m), maps)
    torch.matmul(d.along_w[:, :, left : left + w].reshape(2 * wf, w), maps, out=rows)
    out = space(name, (2, hs, wf, m), maps)
    along_h = d.along_h[:, :, top : top + h].reshape(2 * hs, h * 2)
    torch.mm(along_h, rows.view(h * 2, wf * m), out=out.view(2 * hs, wf * m))
    return out


def image(spectra, frame, top, rows, left, cols, space=fresh, name="image") -> torch.Tensor:
    """spectra (2, HS, WF, M), in any shape with that memory -> the real maps' block at
    (top, left), (rows, cols, M)."""
    hs = frame[0]
    d = dft(*frame, spectra.dtype, spectra.device)
    wf = d.along_w.shape[1]
    spectra = spectra.reshape(2 * hs, -1)
    half = space(f"{name} rows", (rows * 2, spectra.shape[1]), spectra)
    torch.mm(d.back_h[top : top + rows].reshape(rows * 2, 2 * hs), spectra, out=half)
    return torch.matmul(
        d.back_w[left : left + cols].reshape(cols, 2 * wf), half.view(rows, 2 * wf, -1)
    )


def complex_bmm(a, b, out, conj_a: bool = False, conj_b: bool = False) -> torch.Tensor:
    """One complex matrix product per frequency: a (2, F, M, K) @ b (2, F, K, P) into out
    (2, F, M, P), as (re, im) pairs, either side optionally conjugated (its imaginary part's
    sign flipped)."""
    sa, sb = (-1 if conj_a else 1), (-1 if conj_b else 1)
    torch.bmm(a[0], b[0], out=out[0]).baddbmm_(a[1], b[1], alpha=-sa * sb)
    torch.bmm(a[1], b[0], out=out[1]).baddbmm_(a[0], b[1], beta=sa, alpha=sb)
    return out


def side_by_side(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (H, W, N*C) maps; a view when x already lies that way (this module's
    outputs do)."""
    n, c, h, w = x.shape
    return x.permute(2, 3, 0, 1).reshape(h, w, n * c)


def correlate(x: torch.Tensor, weight: torch.Tensor, padding, out_hw, space=fresh):
    """Conv2d's forward, stride 1: x (N, C, H, W), weight (O, C, KH, KW) -> y (N, O, OH, OW)
    (a view of an (OH, OW, N, O) tensor, without bias), and what backward needs.

    Y = X conj(Wk) at every frequency, summed over C: per frequency an (N, C) @ (C, O) product.
    """
    (n, c, h, w), o, (ph, pw) = x.shape, weight.shape[0], padding
    frame = (h + 2 * ph, w + 2 * pw)
    xs = spectrum(side_by_side(x), frame, ph, pw, space, "x").view(2, -1, n, c)  # (2, F, N, C)
    ws = spectrum(side_by_side(weight), frame, space=space, name="w").view(2, -1, o, c)
    ys = complex_bmm(xs, ws.transpose(2, 3), space("y", (2, xs.shape[1], n, o), x), conj_b=True)
    y = image(ys, frame, 0, out_hw[0], 0, out_hw[1], space, "y").view(*out_hw, n, o)
    return y.permute(2, 3, 0, 1), (xs, ws, frame, x.shape)


def correlate_backward(grad_out: torch.Tensor, saved, input_grad: bool = True, space=fresh):
    """(dL/dx or None, dL/dweight) from grad_out (N, O, OH, OW) and correlate's saved spectra.

    dWk = conj(dY)^T X per frequency (summed over N); dX = dY Wk, then cropped to x's pixels.
    """
    xs, ws, frame, (n, c, h, w) = saved
    o, (oh, ow), f = ws.shape[2], grad_out.shape[2:], xs.shape[1]
    kh, kw = frame[0] - oh + 1, frame[1] - ow + 1
    gs = spectrum(side_by_side(grad_out), frame, space=space, name="gy").view(2, f, n, o)
    dws = complex_bmm(gs.transpose(2, 3), xs, space("dw", (2, f, o, c), xs), conj_a=True)
    dweight = image(dws, frame, 0, kh, 0, kw, space, "dw").view(kh, kw, o, c).permute(2, 3, 0, 1)
    if not input_grad:
        return None, dweight
    dxs = complex_bmm(gs, ws, space("dx", (2, f, n, c), xs))
    ph, pw = (frame[0] - h) // 2, (frame[1] - w) // 2
    dx = image(dxs, frame, ph, h, pw, w, space, "dx").view(h, w, n, c)
    return dx.permute(2, 3, 0, 1), dweight
