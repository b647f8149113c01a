"""A backend is a record: which layers, optimizers and loss a run uses, and how one step makes the
gradients. Chosen once from its name; the models, the training loop and the benchmarks read the
record and never test a backend's name. Adding a backend means adding one record.

    torch    torch.nn layers, torch.optim, autograd makes the gradients (the reference)
    scratch  digitlab.scratch: every forward and backward written by hand, no autograd
    learner  a learner's own file of layers (`--layers FILE.py`), digitlab.scratch's elsewhere
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from digitlab.errors import DigitlabError


@dataclass(frozen=True)
class Backend:
    """name; layers: a namespace with torch.nn's layer names (Conv2d, Linear, ReLU, MaxPool2d,
    Flatten, Sequential, ...); optim: a namespace with SGD and Adam; loss: makes the
    CrossEntropyLoss (its class; for a learner's own, a function that checks it first);
    autograd: True when autograd makes the gradients, False when each layer's own backward does;
    channels_last: keep activations channels-last in memory (PyTorch's CPU kernels are faster
    so)."""

    name: str
    layers: object
    optim: object
    loss: Callable
    autograd: bool
    channels_last: bool = False
    note: str = ""  # said at the start of a run: where the classes came from

    def gradients(self, model, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, loss and backward of one batch x (N, C, H, W), y (N,): leaves dL/dparameter
        in every .grad and returns the loss. Under DDP autograd's backward also averages the
        gradients over the ranks; a hand-written backward leaves that to the training loop."""
        if self.autograd:
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        with torch.no_grad():
            loss = loss_fn(model(x), y)
            backward(model, loss_fn.backward(), input_grad=False)
        return loss

    def input_gradient(self, model, x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
        """dL/dx for L = sum(model(x) * grad_out): x (N, C, H, W) -> (N, C, H, W), by autograd
        or by the layers' own backward. Autograd leaves the parameters' .grad alone (so that
        several threads may ask at once); the hand-written backward adds into them, so they are
        cleared after it (and its layers keep state: one thread at a time)."""
        if self.autograd:
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                (dx,) = torch.autograd.grad(model(x), x, grad_out)
            return dx
        with torch.no_grad():
            model(x)
            dx = backward(model, grad_out, input_grad=True)
        model.zero_grad(set_to_none=True)
        return dx

    def parallel(self, model: nn.Module, ranks) -> nn.Module:
        """What the steps call: DDP around an autograd model in a data-parallel run."""
        if self.autograd and ranks.world > 1:
            return nn.parallel.DistributedDataParallel(model)
        return model

    def memory_format(self, tensor_or_model):
        """The model or a batch in this backend's preferred memory layout."""
        if not self.channels_last:
            return tensor_or_model
        if isinstance(tensor_or_model, nn.Module):
            return tensor_or_model.to(memory_format=torch.channels_last)
        return tensor_or_model.contiguous(memory_format=torch.channels_last)


def backward(model: nn.Module, grad: torch.Tensor, input_grad: bool = True):
    """The hand-written backward of a network whose children run in order (models.Stack):
    each child's backward in reverse. Returns dL/dx (None with input_grad=False)."""
    from digitlab.scratch.module import backward_through

    return backward_through(list(model.children()), grad, input_grad)


def _torch() -> Backend:
    return Backend("torch", nn, torch.optim, nn.CrossEntropyLoss, autograd=True, channels_last=True)


def _scratch() -> Backend:
    from digitlab import scratch

    return Backend("scratch", scratch, scratch, scratch.CrossEntropyLoss, autograd=False)


BACKENDS = {"torch": _torch, "scratch": _scratch}
NAMES = (*BACKENDS, "learner")


def validate(name: str, layers_file: str | None = None) -> None:
    """A one-line error for an unknown backend, or a learner backend without its file (checked
    before anything is imported or trained)."""
    if name not in NAMES:
        raise DigitlabError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "learner" and not layers_file:
        raise DigitlabError("backend learner: give the file of layers with --layers FILE.py")


def get(name: str | Backend) -> Backend:
    """The Backend called `name` ("torch" or "scratch"; a learner's is made by
    digitlab.workbench.learner.learner_backend from their file)."""
    if isinstance(name, Backend):
        return name
    validate(name, "-" if name == "learner" else None)
    if name == "learner":
        raise DigitlabError("backend learner: give the file of layers with --layers FILE.py")
    return BACKENDS[name]()
