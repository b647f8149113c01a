"""PyTorch's side of a case: its layers built from a Case, its float64 answers, what a windowed
layer's geometry is, and what common bugs would give instead (the diagnosis's alternatives)."""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.workbench.messages import Text

IGNORES_GRAD_OUT = Text(
    "this is the gradient for grad_out = all ones: backward ignores the grad_out it is given "
    "(multiply by it)"
)
ALL_MAXIMA = Text(
    "ties: the gradient went to every maximum of a window; PyTorch sends it to one only "
    "(the first in row-major order)"
)


def make_input(shape, ties: bool, seed: int, scale: float = 1.0, dtype=torch.float32):
    """A random (shape) tensor; with ties, small integers (pooling windows hold equal maxima)."""
    g = torch.Generator().manual_seed(seed)
    if ties:
        return torch.randint(-1, 3, shape, generator=g).to(dtype)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def build(layers, case):
    """`layers`' class case.layer made with the case's arguments; a Sequential's arguments are
    (name, *args) of its children."""
    if case.layer == "Sequential":
        return layers.Sequential(*(getattr(layers, name)(*args) for name, *args in case.args))
    return getattr(layers, case.layer)(*case.args, **case.kwargs)


def torch_layer(case) -> nn.Module:
    """PyTorch's namesake of the case's layer, in the case's mode, its state random if asked."""
    ref = build(nn, case).train(case.train)
    if case.perturb:  # batch norm's weight 1, bias 0 and running (0, 1) would hide bugs
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for t in [*ref.parameters(), *ref.buffers()]:
                if t.is_floating_point():
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return ref


def reference(ref: nn.Module, x: torch.Tensor, g: torch.Tensor):
    """PyTorch's float64 answers on a copy of `ref`: (y, dx, {param: grad}, {buffer: value after
    the forward})."""
    ref = copy.deepcopy(ref).double()
    x64 = x.detach().double().clone().requires_grad_(True)
    y = ref(x64)
    y.backward(g.double())
    grads = {n: p.grad for n, p in ref.named_parameters()}
    return y.detach(), x64.grad, grads, dict(ref.named_buffers())


def output_shape(ref: nn.Module, x: torch.Tensor) -> tuple:
    with torch.no_grad():
        return tuple(copy.deepcopy(ref).double()(x.double()).shape)


def geometry(x: torch.Tensor, ref) -> dict:
    """What the diagnosis needs to know about a windowed layer's shapes."""
    k = getattr(ref, "kernel_size", None)
    if k is None:
        return {}
    k = k if isinstance(k, tuple) else (k, k)
    s = ref.stride if isinstance(ref.stride, tuple) else (ref.stride, ref.stride)
    p = ref.padding if isinstance(ref.padding, tuple) else (ref.padding, ref.padding)
    h, w = x.shape[2:]

    def size(pad, stride):
        return ((h + 2 * pad - k[0]) // stride + 1, (w + 2 * pad - k[1]) // stride + 1)

    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    cols = F.unfold(ones, k, padding=p, stride=s)
    overlap = F.fold(cols, (h, w), k, padding=p, stride=s)[0, 0]
    return {
        "kernel": k,
        "padding": p[0],
        "stride": s[0],
        "spatial": (h, w),
        "unpadded": size(0, s[0]),
        "unstrided": size(p[0], 1),
        "neither": size(0, 1),
        "padded": (h + 2 * p[0], w + 2 * p[0]),
        "overlap": overlap,
    }


def output_alternatives(case, ref: nn.Module, x: torch.Tensor) -> dict:
    """{bug: the output it would give} for a convolution (none for other layers)."""
    if case.layer != "Conv2d" or ref.bias is None:
        return {}
    x64, w, b = x.double(), ref.weight.double(), ref.bias.double()

    def conv(weight, bias):
        return F.conv2d(x64, weight, bias, ref.stride, ref.padding, ref.dilation)

    return {
        Text(
            "the kernel is flipped: that is textbook convolution; PyTorch's Conv2d does not flip "
            "(cross-correlation)"
        ): conv(w.flip(2, 3), b),
        Text("the bias is missing from the output"): conv(w, None),
        Text("the bias is added twice"): conv(w, 2 * b),
    }


def window_contributions(case, ref: nn.Module, x: torch.Tensor, g: torch.Tensor):
    """What each window sends back to each of its pixels, laid out as F.unfold lays windows out,
    (N, C*kh*kw, windows); None for the layers without windows. The overlap diagnosis reads it:
    a pixel several windows share holds the sum of their contributions, and an overwrite
    (= for +=) leaves exactly one of them."""
    if case.layer not in ("Conv2d", "MaxPool2d"):
        return None
    k, s, p = geometry(x, ref)["kernel"], ref.stride, ref.padding
    x64, g64 = x.double(), g.double()
    if case.layer == "Conv2d" and ref.dilation == (1, 1) and ref.groups == 1:
        w = ref.weight.detach().double().flatten(2)  # (O, C, kh*kw)
        cols = torch.einsum("nol,ock->nckl", g64.flatten(2), w)
        return cols.flatten(1, 2)
    if case.layer == "MaxPool2d" and ref.dilation == 1:
        n, c = x.shape[:2]
        padded = F.pad(x64, (p, p, p, p), value=-torch.inf) if p else x64
        windows = F.unfold(padded, k, stride=s).view(n, c, k[0] * k[1], -1)
        first = windows.argmax(2, keepdim=True)  # the first maximum, as PyTorch's
        routed = torch.zeros_like(windows).scatter_(2, first, 1.0) * g64.flatten(2)[:, :, None]
        return routed.flatten(1, 2)
    return None


FLIPPED_KERNEL = Text(
    "dL/dx is what the kernel rotated by 180 degrees gives: one flip too many (or too few); "
    "send each grad_out value back over its window with the weights as forward used them "
    "(w[i, j] to the pixel at +i, +j)"
)


def conv_backward_alternatives(case, ref: nn.Module, x: torch.Tensor, g: torch.Tensor):
    """({bug: dL/dx it gives}, {bug: dL/dW it gives}) for a convolution's backward: the kernel
    flipped, the padding cropped at another offset, the stride ignored."""
    if case.layer != "Conv2d" or ref.dilation != (1, 1) or ref.groups != 1:
        return {}, {}
    x64, g64, w = x.double(), g.double(), ref.weight.detach().double()
    (s, _), (p, _), k = ref.stride, ref.padding, w.shape[2:]
    h, wd = x.shape[2:]
    dx = {FLIPPED_KERNEL: torch.nn.grad.conv2d_input(x.shape, w.flip(2, 3), g64, s, p)}
    xp = F.pad(x64, (p, p, p, p))
    dxp = torch.nn.grad.conv2d_input(xp.shape, w, g64, s, 0)
    for a in range(2 * p + 1):
        for b in range(2 * p + 1):
            if (a, b) != (p, p):
                bug = Text(
                    "the padding is cropped at the wrong offset (dxp[:, :, {a}:{a_end}, "
                    "{b}:{b_end}]): crop {p} on each side, dxp[:, :, {p}:{p_h}, {p}:{p_w}]",
                    a=a,
                    a_end=a + h,
                    b=b,
                    b_end=b + wd,
                    p=p,
                    p_h=p + h,
                    p_w=p + wd,
                )
                dx[bug] = dxp[:, :, a : a + h, b : b + wd]
    if s == 1:
        return dx, {}
    oh, ow = g.shape[2:]
    full = F.conv_transpose2d(g64, w)  # each grad_out value at (i, j), not (i*s, j*s)
    ignored = torch.zeros_like(dxp)
    ignored[:, :, : full.shape[2], : full.shape[3]] = full[:, :, : xp.shape[2], : xp.shape[3]]
    bug = Text(
        "stride {s} is ignored in backward: output position (i, j) belongs to the window at "
        "(i*{s}, j*{s}) of the padded input, not at (i, j)",
        s=s,
    )
    dx[bug] = ignored[:, :, p : p + h, p : p + wd]
    unstrided = xp[:, :, : oh + k[0] - 1, : ow + k[1] - 1]
    dw = torch.nn.grad.conv2d_weight(unstrided, w.shape, g64, 1, 0)
    return dx, {bug: dw}


def max_pool_all_maxima(x: torch.Tensor, g: torch.Tensor, k, s) -> torch.Tensor | None:
    """dL/dx if every tied maximum of a window got the window's gradient (a common bug); None
    for the windows this simple sketch does not cover (padding, rectangles)."""
    if not isinstance(k, int) or not isinstance(s, int):
        return None
    x, g = x.double(), g.double()
    dx = torch.zeros_like(x)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k]
            top = window.amax((2, 3), keepdim=True)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += (window == top) * g[
                :, :, i : i + 1, j : j + 1
            ]
    return dx


def torch_optimizer_run(name: str, start, grads, kwargs) -> list[list[torch.Tensor]]:
    """torch.optim.<name>'s parameters after each step, in float64, from `start` and `grads`."""
    params = [nn.Parameter(p.double().clone()) for p in start]
    opt = getattr(torch.optim, name)(params, **kwargs)
    trajectory = []
    for grad in grads:
        opt.zero_grad()
        for p, gp in zip(params, grad, strict=True):
            p.grad = gp.double().clone()
        opt.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory


def optimizer_alternatives(case, start, grads) -> dict:
    """{"<option> looks ignored": the trajectory without it} for the options the case sets."""
    alternatives = {}
    for key, plain in (("weight_decay", 0.0), ("momentum", 0.0), ("nesterov", False)):
        if case.kwargs.get(key):
            ignored = {**case.kwargs, key: plain}
            if key == "momentum":
                ignored["nesterov"] = False  # torch refuses nesterov without momentum
            alternatives[Text("{option} looks ignored", option=key)] = torch_optimizer_run(
                case.layer, start, grads, ignored
            )
    return alternatives


def namespace(classes: dict) -> types.SimpleNamespace:
    return types.SimpleNamespace(**classes)
