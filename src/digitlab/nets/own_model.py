"""A learner's own network: the torch.nn.Module class in their file (`--model FILE.py[:Class]`).

Loaded from the file, built with its constructor's arguments, and walked shape by shape before
any training, so that a wrong size reads as one line in the learner's terms ("self.out =
Linear(1152 -> 10) gets 1568 features ...") instead of PyTorch's "mat1 and mat2 shapes cannot be
multiplied (2x1568 and 1152x10)".
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.nets.model_spec import split_spec

NUM_CLASSES = 10


def import_model_file(path: Path) -> types.ModuleType:
    """The learner's file as a module; a missing file or a syntax error is one line."""
    if not path.is_file():
        raise DigitlabError(f"{path}: no such model file; give the .py file that defines your net")
    name = "model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a class's module up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise DigitlabError(f"{path}:{e.lineno}: {e.msg}; fix the file and run again") from None
    except Exception as e:
        raise DigitlabError(
            f"{path}: importing it raised {type(e).__name__}: {e}; fix the file and run again"
        ) from None
    return module


def find_class(module: types.ModuleType, path: Path, name: str | None) -> type:
    """The nn.Module class `name` in the file, or the one nn.Module subclass it defines."""
    defined = [
        c
        for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, nn.Module) and c.__module__ == module.__name__
    ]
    if name is not None:
        found = getattr(module, name, None)
        if not (inspect.isclass(found) and issubclass(found, nn.Module)):
            names = ", ".join(c.__name__ for c in defined) or "none"
            raise DigitlabError(f"{path}: no nn.Module class {name!r} (it defines: {names})")
        return found
    if len(defined) != 1:
        names = ", ".join(c.__name__ for c in defined)
        what = f"{len(defined)} nn.Module classes ({names})" if defined else "no nn.Module class"
        raise DigitlabError(f"{path} defines {what}: name one with {path}:ClassName")
    return defined[0]


def build(spec: str, args: dict | None = None) -> nn.Module:
    """A fresh instance of the learner's class, made with `args` (from --model-args)."""
    path, name = split_spec(spec)
    cls = find_class(import_model_file(path), path, name)
    try:
        return cls(**(args or {}))
    except TypeError as e:
        raise DigitlabError(
            f"{cls.__name__}({json.dumps(args or {})[1:-1]}) failed: {e}; give its arguments with "
            "--model-args '{\"name\": value}'"
        ) from None


def describe(spec: str, args: dict | None = None) -> dict:
    """What config.json records of a learner's model: its file, class, arguments and SHA-256."""
    path, name = split_spec(spec)
    cls = find_class(import_model_file(path), path, name)
    return {
        "file": str(path.resolve()),
        "class": cls.__name__,
        "args": args or {},
        "sha256": file_sha256(path),
    }


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Step:
    """One leaf module's call in the walk: its name as the learner wrote it (self.conv1[0]), the
    module, and the shapes it took and gave."""

    name: str
    module: nn.Module
    input_shape: tuple
    output_shape: tuple | None = None


def learner_name(dotted: str) -> str:
    """ "conv1.0" -> "self.conv1[0]": a child as the learner's __init__ assigned it."""
    parts = dotted.split(".")
    return "self." + parts[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts[1:])


def walk(model: nn.Module, image_size=(28, 28), batch: int = 2) -> torch.Tensor:
    """One small batch (batch, 1, H, W) through `model`, leaf module by leaf module (in eval
    mode: batch norm's running statistics stay as they were). Returns the output; a module that
    fails raises one DigitlabError naming it and both shapes."""
    steps: list[Step] = []
    hooks = []
    for dotted, module in model.named_modules():
        if dotted and not list(module.children()):
            hooks.append(module.register_forward_pre_hook(_enter(steps, dotted)))
            hooks.append(module.register_forward_hook(_leave(steps)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.rand(batch, 1, *image_size, generator=torch.Generator().manual_seed(0))
            out = model(x)
    except Exception as e:
        raise DigitlabError(failure_line(steps, e)) from None
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    check_output(out, batch)
    return out


def _enter(steps: list[Step], dotted: str):
    def hook(module, inputs):
        shape = tuple(inputs[0].shape) if inputs and torch.is_tensor(inputs[0]) else ()
        steps.append(Step(learner_name(dotted), module, shape))

    return hook


def _leave(steps: list[Step]):
    def hook(module, inputs, output):
        if torch.is_tensor(output):
            steps[-1].output_shape = tuple(output.shape)

    return hook


KINDS = {"MaxPool2d": "pooling", "AvgPool2d": "pooling", "Conv2d": "convolution"}


def after(step: Step | None) -> str:
    """'after conv2's pooling the maps are 32 x 7 x 7 = 1568' for the step before a failure."""
    if step is None or step.output_shape is None:
        return "the input"
    if isinstance(step.module, nn.Flatten) and len(step.input_shape) > 2:
        maps = step.input_shape[1:]
        return f"{step.name} flattens maps of {' x '.join(map(str, maps))} = {math.prod(maps)}"
    kind = type(step.module).__name__
    owner = step.name.removeprefix("self.").split("[")[0].split(".")[0]
    where = f"{owner}'s {KINDS.get(kind, kind)}" if "[" in step.name else step.name
    shape = step.output_shape[1:]
    size, total = " x ".join(map(str, shape)), math.prod(shape)
    return (
        f"after {where} the maps are {size} = {total}"
        if len(shape) > 1
        else (f"after {where} there are {total} features")
    )


def failure_line(steps: list[Step], error: Exception) -> str:
    """One line naming where the walk failed and how, in the learner's terms."""
    failed = steps[-1] if steps and steps[-1].output_shape is None else None
    before = [s for s in steps if s.output_shape is not None]
    previous = before[-1] if before else None
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if failed is None:  # between two modules: the forward's own code (a view, a reshape)
        return f"your forward failed {after(previous)}: {message}"
    module, shape = failed.module, failed.input_shape
    if isinstance(module, nn.Linear):
        return linear_line(failed, previous, message)
    if isinstance(module, nn.Conv2d) and len(shape) == 4 and shape[1] != module.in_channels:
        return (
            f"{failed.name} = Conv2d({module.in_channels} -> {module.out_channels}) gets "
            f"{shape[1]} channels ({after(previous)}); use nn.Conv2d({shape[1]}, "
            f"{module.out_channels}, ...)"
        )
    return f"{failed.name} = {module} gets input {format_shape(shape)}: {message}"


def linear_line(failed: Step, previous: Step | None, message: str) -> str:
    module, shape = failed.module, failed.input_shape
    head = f"{failed.name} = Linear({module.in_features} -> {module.out_features})"
    if len(shape) > 2:
        maps = " x ".join(map(str, shape[1:]))
        return (
            f"{head} gets maps of {maps}, not flat features: flatten them first "
            "(x = x.view(x.size(0), -1), or nn.Flatten())"
        )
    if len(shape) == 2 and shape[1] != module.in_features:
        dims = previous.output_shape[1:] if previous and previous.output_shape else ()
        if previous and isinstance(previous.module, nn.Flatten):
            dims = previous.input_shape[1:]  # what it flattened, as the learner counts: C x H x W
        size = " * ".join(map(str, dims)) if len(dims) > 1 else str(shape[1])
        return (
            f"{head} gets {shape[1]} features: {after(previous)}; use "
            f"nn.Linear({size}, {module.out_features})"
        )
    return f"{head} gets input {format_shape(shape)}: {message}"


def format_shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def check_output(out, batch: int) -> None:
    """The model must give (N, 10) logits."""
    if not torch.is_tensor(out):
        raise DigitlabError(
            f"your model's forward returns {type(out).__name__}; it must return one tensor of "
            f"(N, {NUM_CLASSES}) logits"
        )
    if tuple(out.shape) != (batch, NUM_CLASSES):
        raise DigitlabError(
            f"your model's output is {format_shape(tuple(out.shape))} for {batch} images; "
            f"digitlab needs ({batch}, {NUM_CLASSES}) logits, one row per image and one column "
            f"per digit: end with a layer of {NUM_CLASSES} outputs"
        )


def looks_like_probabilities(out: torch.Tensor) -> bool:
    """Every row non-negative and summing to 1: a softmax at the end of forward."""
    out = out.double()
    return bool(
        (out >= 0).all()
        and torch.allclose(out.sum(1), torch.ones(len(out), dtype=out.dtype), atol=1e-4)
    )


SOFTMAX_WARNING = (
    "your model's outputs look like probabilities (every row is non-negative and sums to 1): "
    "CrossEntropyLoss expects logits and applies softmax itself; remove the softmax at the end "
    "of forward"
)


def summary(model: nn.Module, image_size=(28, 28)) -> dict:
    """The layer table (torchinfo's): {"layers": [{"name", "output_shape", "parameters"}],
    "parameters", "text"}, for one image (1, 1, H, W)."""
    import torchinfo

    stats = torchinfo.summary(
        model,
        input_size=(1, 1, *image_size),
        verbose=0,
        depth=8,
        col_names=("output_size", "num_params"),
    )
    rows, path = [], []  # path: the dotted name's parts down to the current depth
    for layer in stats.summary_list[1:]:
        path = [*path[: layer.depth - 1], layer.var_name]
        rows.append(
            {
                "name": ".".join(path),
                "type": type(layer.module).__name__,
                "output_shape": list(layer.output_size),
                "parameters": layer.num_params,  # a container: its children's together
            }
        )
    return {"layers": rows, "parameters": stats.total_params, "text": str(stats)}
