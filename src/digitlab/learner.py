"""A learner's own layers: find them in their file, tell which interface each one follows, and
adapt them to digitlab's, so that they can be checked (digitlab.layercheck) and trained on
(the "learner" backend).

Two interfaces are understood, per class:
  digitlab   forward(x); backward(grad_out) returns dL/dx and ADDS dL/dW, dL/db into .grad
             (../shared/DESIGN.md, digitlab.scratch's own)
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


def learner_backend(path: str | Path, optimizer: str = "adam"):
    """The "learner" backend: the file's classes where it has them, digitlab.scratch's elsewhere.

    The file is checked first (digitlab.layercheck, in a child process); a class the run needs
    that fails refuses the run with the check's summary. Template layers are adapted."""
    from digitlab import backends, scratch
    from digitlab.layercheck import check_file

    result = check_file(path)
    unused = {"SGD", "Adam"} - {optimizer.upper() if optimizer == "sgd" else optimizer.title()}
    failing = sorted({r["layer"] for r in result["rows"] if not r["ok"]} - unused)
    if failing:
        from digitlab.checkreport import summary

        raise DigitlabError(
            f"{path}: {', '.join(failing)} do not match PyTorch yet ({summary(result)}); not "
            f"training on them: see digitlab check --layers {path}"
        )
    found = find_classes(import_file(path))
    own = {name: adapt(name, cls, interface_of(name, cls)) for name, cls in found.items()}
    own = {name: cls for name, cls in own.items() if name not in unused}
    layers = types.SimpleNamespace(
        **{
            **{k: getattr(scratch, k) for k in scratch.__all__},
            **{k: own[k] for k in own if k in LAYERS},
        }
    )
    optim = types.SimpleNamespace(
        SGD=own.get("SGD", scratch.SGD), Adam=own.get("Adam", scratch.Adam)
    )
    loss = smoothing_checked(own["CrossEntropyLoss"]) if "CrossEntropyLoss" in own else None
    yours = [f"{n} ({interface_of(n, found[n])})" for n in own]
    theirs = [n for n in NAMES if n not in own and n not in unused]
    note = (
        f"your classes from {Path(path).name}: {', '.join(yours)}; digitlab.scratch's: "
        + ", ".join([*theirs, "any other layer the net needs (Sequential, BatchNorm2d, ...)"])
    )
    loss = loss or scratch.CrossEntropyLoss
    return backends.Backend("learner", layers, optim, loss, autograd=False, note=note)


def smoothing_checked(loss: type):
    """The learner's CrossEntropyLoss as a run makes it. digitlab check tests it without label
    smoothing; a run with smoothing (the recipes use it) first compares it with PyTorch's at that
    value, and refuses in one line with the fix if it does not take the argument or disagrees."""

    def make(label_smoothing: float = 0.0):
        if not label_smoothing:
            return loss()
        check_smoothing(loss, label_smoothing)
        return loss(label_smoothing=label_smoothing)

    return make


def check_smoothing(loss: type, label_smoothing: float) -> None:
    """DigitlabError unless the learner's `loss` class, made with `label_smoothing`, gives
    PyTorch's loss and dL/dlogits."""
    from digitlab.layercheck import Case, LearnerError, run_loss_case

    fix = "or train on it without smoothing: add --label-smoothing 0"
    kwargs = {"label_smoothing": label_smoothing}
    case = Case("CrossEntropyLoss", "label smoothing", "loss", kwargs=kwargs, shape=(8, 10))
    try:
        failures = run_loss_case(case, loss)
    except LearnerError as e:
        raise DigitlabError(
            f"this run smooths labels by {label_smoothing} (a recipe or --label-smoothing), and "
            f"your CrossEntropyLoss(label_smoothing={label_smoothing}) raised "
            f"{type(e.__cause__).__name__}: give its __init__ that argument, as PyTorch's, {fix}"
        ) from e
    if failures:
        raise DigitlabError(
            f"your CrossEntropyLoss(label_smoothing={label_smoothing}) does not match PyTorch's "
            f"({failures[0].tensor}: {failures[0].message}; PyTorch's targets: 1 - S + S/C for "
            f"the true class, S/C for each other, S = {label_smoothing}, C classes); fix it, {fix}"
        )
