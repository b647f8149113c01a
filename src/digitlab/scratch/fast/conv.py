"""Conv2d's speed paths: scratch.Conv2d, PlainConv2d (scratch/conv.py) made fast.

The plain layer copies its windows into a fresh (L, K) matrix and multiplies. This one computes
the same numbers with less work or memory traffic:

- im2col into workspace buffers reused from call to call (no page zeroing per call);
- a one-channel first layer takes its windows with the batch's images side by side, as the
  channels of one image: it fills the transposed windows (K, L) in long runs, with a row of ones
  that makes the bias one more weight (no pass of its own over the large output), and its
  output lies (OH, OW, N, O) in memory, the layout the DFT path takes without a copy;
- the weight gradient as one partial product per thread (long_inner_product);
- dcols as one batched product per kernel offset, laid out for col2im's adds (with one input
  channel, one matrix product: each offset's block is then a column);
- in training, a layer with stride 1, no dilation, more than one input channel and a kernel
  bigger than 1x1 correlates through the DFT instead (spectral.py): the same numbers up to
  rounding, a quarter of the multiplies for a 5x5 kernel. A one-channel first layer has too few
  products for the transforms to pay; eval mode keeps im2col's exact ties (see through_dft).
"""

from __future__ import annotations

import torch

from digitlab.scratch.conv import PlainConv2d
from digitlab.scratch.fast import spectral
from digitlab.scratch.fast.products import long_inner_product
from digitlab.scratch.module import accumulate, check_input
from digitlab.scratch.windows import channels_last, col2im, unpad, window_grid, windows


class Conv2d(PlainConv2d):
    """scratch.Conv2d: PlainConv2d's arguments, parameters and numbers (up to rounding), through
    the speed paths above. Windows and temporaries live in buffers kept from call to call."""

    def workspace(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised buffer kept from call to call for a big internal temporary (im2col's
        windows). Fresh multi-megabyte tensors on every call cost the OS's page zeroing, which
        here took longer than the arithmetic. Only internals go here, never a returned tensor."""
        spaces = self.__dict__.setdefault("_workspaces", {})
        buf = spaces.get(name)
        if (
            buf is None
            or buf.shape != shape
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = spaces[name] = like.new_empty(shape)
        return buf

    def im2col(self, x: torch.Tensor, out_hw) -> torch.Tensor:
        """The windows of images(x), the padded channels-last x (N, Hp, Wp, C), as an (L, K)
        matrix, L = N*OH*OW, K = KH*KW*C. For one channel x is (1, Hp, Wp, N), the rows come in
        (OH, OW, N) order, and with a bias K has one more column, of ones."""
        win = windows(x, self.kernel_size, self.stride, self.dilation, out_hw)
        n, oh, ow, kh, kw, c = win.shape
        if not self.one_channel():  # rows of KW*C numbers, copied in that order
            cols = self.workspace("cols", (n * oh * ow, kh * kw * c), x)
            cols.view(win.shape).copy_(win)
            return cols
        # One channel (a first layer): x is the batch as the channels of one image, so the
        # last dimension counts images. A window row would be only KW numbers; fill the
        # transpose, (K, L), where each kernel offset's row copies runs of N numbers (OW*N at
        # stride 1), and hand out its (L, K) view. With a bias, one more row of ones: the
        # products then add the bias (forward) and sum its gradient (backward), saving a pass
        # over the large first-layer output for each.
        k, batch = kh * kw, c
        cols_t = self.workspace("cols", (k + (self.bias is not None), oh * ow * batch), x)
        cols_t[:k].view(kh, kw, oh, ow, batch).copy_(win[0].permute(2, 3, 0, 1, 4))
        cols_t[k:].fill_(1)
        return cols_t.t()

    def one_channel(self) -> bool:
        """A first layer: its windows are taken with the batch's images side by side, as the
        channels of one image (images). Its windows (L, K) are then ordered (OH, OW, N), and so
        is its output: (OH, OW, N, O) in memory, the maps side by side that the next layers
        keep and the DFT path (spectral.py) reads without a copy."""
        return self.in_channels == 1

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) as the channels-last padded tensor im2col takes: (N, Hp, Wp, C); for a
        one-channel layer (1, Hp, Wp, N), the images side by side."""
        return channels_last(x.transpose(0, 1) if self.one_channel() else x, self.padding)

    def through_dft(self) -> bool:
        """Whether forward goes through the DFT: where it pays (measured: from two input
        channels on, for 3x3 and 5x5 kernels), and only in training. In eval mode (predictions,
        saliency) the windows keep equal inputs' outputs exactly equal, as PyTorch's do; the
        DFT's rounding (about 1e-16 of the map's size in float64) would make them differ in the
        last bits, and a following MaxPool2d would route a gradient by that noise instead of by
        its tie rule, e.g. over MNIST's blank background. Training does not care which tied
        input gets the gradient."""
        return (
            self.training
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.in_channels > 1
            and self.kernel_size != (1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, 4, self.in_channels, "Conv2d")
        (ph, pw), (n, _, h, w) = self.padding, x.shape
        out_hw = window_grid(
            "Conv2d", (h + 2 * ph, w + 2 * pw), self.kernel_size, self.stride, self.dilation
        )
        dft = self.through_dft()
        y, saved = (self.dft_forward if dft else self.im2col_forward)(x, out_hw)
        self._saved = (saved, (n, self.out_channels, *out_hw), dft)
        return y

    def dft_forward(self, x: torch.Tensor, out_hw):
        y, saved = spectral.correlate(x, self.weight, self.padding, out_hw, self.workspace)
        if self.bias is not None:
            y += self.bias.view(-1, 1, 1)
        return y, saved

    def im2col_forward(self, x: torch.Tensor, out_hw):
        # Work channels-last, (N, H, W, C): free when x came from another hand-written layer
        # (a first layer's images, (1, H, W, N), are one small copy of the batch).
        n, x = x.shape[0], self.images(x).contiguous()
        cols = self.im2col(x, out_hw)
        # The weight in the windows' (KH, KW, C) order, as an (O, K) matrix.
        w2 = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)
        if cols.shape[1] > w2.shape[1]:  # a column of ones: the bias is one more weight
            y = cols @ torch.cat((w2, self.bias[:, None]), 1).t()
        else:
            y = cols @ w2.t() if self.bias is None else torch.addmm(self.bias, cols, w2.t())
        # (L, O) rows are (N, OH, OW, O), or (OH, OW, N, O) for one channel: views, uncopied.
        if self.one_channel():
            return y.view(*out_hw, n, self.out_channels).permute(2, 3, 0, 1), (cols, w2, x.shape)
        return y.view(n, *out_hw, self.out_channels).permute(0, 3, 1, 2), (cols, w2, x.shape)

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        saved, out_shape, dft = self.saved()
        if tuple(grad_out.shape) != out_shape:
            raise ValueError(
                f"Conv2d.backward expects grad_out {out_shape}, got {tuple(grad_out.shape)}"
            )
        return (self.dft_backward if dft else self.im2col_backward)(grad_out, saved, input_grad)

    def dft_backward(self, grad_out: torch.Tensor, saved, input_grad: bool):
        dx, dweight = spectral.correlate_backward(grad_out, saved, input_grad, self.workspace)
        accumulate(self.weight, dweight)
        if self.bias is not None:
            accumulate(self.bias, grad_out.sum((0, 2, 3)))
        return dx

    def im2col_backward(self, grad_out: torch.Tensor, saved, input_grad: bool):
        cols, w2, (n, hp, wp, cp) = saved  # the padded images' shape, as im2col took them
        out_hw, c, (kh, kw) = grad_out.shape[2:], self.in_channels, self.kernel_size
        # (L, O), its rows in the windows' order: (N, OH, OW), or (OH, OW, N) for one channel
        rows = (2, 3, 0, 1) if self.one_channel() else (0, 2, 3, 1)
        gy = grad_out.permute(*rows).reshape(-1, self.out_channels)
        # dW2 (O, K) = gy^T @ cols, multiplied in the order that reads both operands along their
        # rows: for a first layer cols is the transpose of a (K, L) matrix, so form dW2^T.
        if cols.is_contiguous():
            dw2 = long_inner_product(gy.t(), cols)
        else:
            dw2 = long_inner_product(cols.t(), gy).t()
        if dw2.shape[1] > w2.shape[1]:  # the column of ones' weight is the bias: db = sum gy
            dw2, db = dw2[:, :-1], dw2[:, -1]
        else:
            db = None if self.bias is None else gy.sum(0)
        accumulate(self.bias, db)
        accumulate(self.weight, dw2.reshape(self.out_channels, kh, kw, c).permute(0, 3, 1, 2))
        if not input_grad:
            return None
        # dcols, one (L, C) block per kernel offset: gy @ W_k, W_k = weight[:, :, i, j] (O, C).
        # A batched product over the KH*KW offsets, laid out for col2im's adds.
        w_k = w2.view(self.out_channels, kh * kw, c).transpose(0, 1).contiguous()
        dwin = self.workspace("dwin", (kh * kw, gy.shape[0], c), gy)
        if self.one_channel():
            # One channel: each offset's block is a matrix-vector product, which the batched
            # product ran at a tenth of its speed (conv1's dx: 2.3 ms). As one product,
            # (KH*KW, O) @ gy^T (O, L), its rows are already col2im's (KH*KW, L) blocks.
            torch.mm(w_k.view(kh * kw, -1), gy.t(), out=dwin.view(kh * kw, -1))
        else:
            torch.bmm(gy.expand(kh * kw, *gy.shape), w_k, out=dwin)
        dwin = dwin.view(kh, kw, n, *out_hw, cp)
        dx = unpad(col2im(dwin, (hp, wp), self.stride, self.dilation), self.padding)
        return dx.transpose(0, 1) if self.one_channel() else dx  # images: (1, N, H, W)
