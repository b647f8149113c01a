"""What every hand-written layer shares: no autograd, gradients that accumulate, argument checks.

A layer's `forward` computes its output with plain tensor operations and keeps what its backward
needs; `backward(grad_out)` returns dL/dinput and ADDS dL/dparameter into each parameter's `.grad`,
so gradients accumulate over calls exactly as PyTorch's do until `zero_grad` clears them.
`backward(grad_out, input_grad=False)` may skip dL/dinput and return None: a network's first layer
has no one to pass it to (autograd skips it the same way for inputs that need no gradient).
"""

from __future__ import annotations

import torch
from torch import nn


class Layer(nn.Module):
    """Base of the hand-written layers. forward and backward run under torch.no_grad(): no graph
    is ever built, whatever the caller's grad mode."""

    def __call__(self, *args, **kwargs):
        with torch.no_grad():
            return super().__call__(*args, **kwargs)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:  # every layer's backward runs without a graph, too
            cls.backward = torch.no_grad()(cls.__dict__["backward"])

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        raise NotImplementedError

    def saved(self):
        """What forward kept for backward; a clear error when backward comes first."""
        if getattr(self, "_saved", None) is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return self._saved


def accumulate(param: torch.Tensor | None, grad: torch.Tensor) -> None:
    """param.grad += grad, creating .grad on first use (PyTorch's accumulation rule)."""
    if param is None:
        return
    if param.grad is None:
        param.grad = grad.contiguous()
    else:
        param.grad.add_(grad)


def pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> (h, w), each at least `minimum`; ValueError naming `name`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return tuple(value)


def check_input(x, ndim: int, channels: int | None, layer: str) -> None:
    """ValueError unless x is a float tensor of `ndim` dims with `channels` at dim 1."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"{layer} expects a float tensor, got {type(x).__name__}")
    if x.dim() != ndim or (channels is not None and x.shape[1] != channels):
        expected = "(N, C, H, W)" if ndim == 4 else f"{ndim} dimensions"
        extra = f" with C={channels}" if channels is not None else ""
        raise ValueError(f"{layer} expects input {expected}{extra}, got shape {tuple(x.shape)}")


class Sequential(nn.Sequential, Layer):
    """Layers in order, named "0", "1", ... like nn.Sequential; backward runs them in reverse."""

    def backward(self, grad_out: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        return backward_through(list(self), grad_out, input_grad)


def backward_through(layers, grad_out: torch.Tensor, input_grad: bool = True):
    """The backward of layers applied in order: their backward calls in reverse, the first
    layer told whether dL/dinput is wanted at all."""
    for layer in reversed(layers[1:]):
        grad_out = layer.backward(grad_out)
    return layers[0].backward(grad_out, input_grad) if layers else grad_out
