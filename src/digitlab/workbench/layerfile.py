"""A file of layers: find its classes by torch name, tell which interface each one follows, and
adapt them to digitlab's, so that they can be checked (workbench.layercheck) and trained on
(workbench.learner's backend).

Two interfaces are understood, per class:
  digitlab   forward(x); backward(grad_out) returns dL/dx and ADDS dL/dW, dL/db into .grad
             (digitlab.scratch's own)
  template   the recruitment task's: Conv2d(_ConvNd) with conv2d(input, kernel, bias, stride,
             padding); backward(ones) SETS self.input.grad, self.weight.grad, self.bias.grad and
             returns the input gradient; CrossEntropyLoss()(input, target) with backward()
Optimizers follow torch.optim's: Cls(params, lr=..., ...), zero_grad(), step().
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from pathlib import Path

import torch

from digitlab.errors import DigitlabError

LAYERS = ("Conv2d", "Linear", "ReLU", "MaxPool2d", "Flatten")
NAMES = (*LAYERS, "CrossEntropyLoss", "SGD", "Adam")


def import_file(path: str | Path) -> types.ModuleType:
    """Import the learner's file as a module named after it. Their exceptions propagate."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DigitlabError(f"{path}: no such file; give the .py file that holds your layers")
    name = f"learner_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_classes(module: types.ModuleType) -> dict[str, type]:
    """{torch name: class} of the classes the file defines or imports under a torch name."""
    return {
        name: getattr(module, name)
        for name in NAMES
        if inspect.isclass(getattr(module, name, None))
    }


def interface_of(name: str, cls: type) -> str:
    """ "digitlab", "template" or "torch.optim" (optimizers), from how the class is written."""
    if name in ("SGD", "Adam"):
        return "torch.optim"
    if name == "CrossEntropyLoss":
        backward = getattr(cls, "backward", None)
        params = list(inspect.signature(backward).parameters)[1:] if backward else []
        return "digitlab" if params else "template"
    if hasattr(cls, "conv2d"):
        return "template"
    backward = getattr(cls, "backward", None)
    if backward is None:
        return "digitlab"
    params = list(inspect.signature(backward).parameters)
    return "template" if len(params) > 1 and params[1] == "ones" else "digitlab"


def adapt(name: str, cls: type, interface: str) -> type:
    """The learner's class seen through digitlab's interface: a template layer's backward(g)
    becomes one that returns dL/dx (its return value, or self.input.grad) and ADDS the parameter
    gradients it set to those already there, whichever convention (set or add) it follows.
    A digitlab-style layer whose backward lacks `input_grad` gets it (and computes dL/dx all the
    same). A subclass, so parameter names and checkpoints stay the learner's (and torch's)."""
    if name not in LAYERS:
        return cls
    if interface != "template":
        if "input_grad" in inspect.signature(cls.backward).parameters:
            return cls

        class Adapted(cls):
            def backward(self, grad_out, input_grad: bool = True):
                return cls.backward(self, grad_out)

        Adapted.__name__ = Adapted.__qualname__ = cls.__name__
        return Adapted

    class Adapted(cls):
        def backward(self, grad_out, input_grad: bool = True):
            params = list(self.parameters())
            before = [p.grad for p in params]
            for p in params:
                p.grad = None
            with torch.no_grad():
                dx = cls.backward(self, grad_out)
            if dx is None and torch.is_tensor(getattr(self, "input", None)):
                dx = self.input.grad
            for p, old in zip(params, before, strict=True):
                if old is not None:
                    p.grad = old if p.grad is None else old + p.grad
            return dx

    Adapted.__name__ = Adapted.__qualname__ = cls.__name__
    return Adapted
