"""What an exception in the learner's code means: their own traceback frames, the likely cause
(read from PyTorch's and Python's error texts), and a syntax error shown as Python shows it."""

from __future__ import annotations

import ast
import inspect
import linecache
import re
import traceback
from pathlib import Path

import torch

from digitlab.workbench.messages import Text


class LearnerError(Exception):
    """The learner's code raised: args are (what was called, the exception)."""


def their_traceback(error: BaseException, files) -> list[str]:
    """The traceback's frames in the learner's own files (here a traceback is the help)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in files]
    lines = []
    for frame in frames[-4:]:
        lines.append(f"{Path(frame.filename).name}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    lines.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return lines


def syntax_error_lines(error: SyntaxError) -> list[str]:
    """The error as Python prints it: the file and line, the line, a ^ under the column, the
    message."""
    return "".join(traceback.format_exception_only(error)).rstrip("\n").splitlines()


def method_source(cls: type, what: str) -> str:
    name = {"forward": "forward", "backward": "backward"}.get(what, "__init__")
    try:
        return inspect.getsource(getattr(cls, name))
    except (TypeError, OSError, AttributeError):
        return ""


NOT_WRITTEN = Text("not written yet")


def exception_diagnosis(error: BaseException, what: str, source: str) -> Text | str:
    """The likely cause of an exception in the learner's method `what` (its source given)."""
    text = str(error)
    if isinstance(error, NotImplementedError):
        return NOT_WRITTEN
    if "TODO" in source:  # the template's unfinished body: say so, and why it fails as it is
        reason = exception_diagnosis(error, what, "")
        if reason:
            return Text("not written yet (as it stands: {reason})", reason=reason)
        return NOT_WRITTEN
    if "CUDA" in text or "NVIDIA" in text or "cuda" in text:
        return Text(
            "a tensor is put on 'cuda' and this machine has no GPU: make new tensors on the "
            "input's device (device=x.device) instead of a fixed device='cuda'"
        )
    if "gradient of size" in text or "assigned grad has data of a different size" in text:
        return grad_shape_diagnosis(text)
    if isinstance(error, AttributeError) and "has no attribute" in text:
        name = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else "?"
        if what == "backward":
            return Text(
                "backward reads self.{name}, which forward never saved: store it in forward "
                "(self.{name} = ...)",
                name=name,
            )
        return Text("self.{name} is never set: set it in __init__ or forward", name=name)
    if isinstance(error, TypeError) and "argument" in text:
        return Text(
            "{what} does not take the arguments torch.nn's namesake takes: {text}",
            what=what,
            text=text,
        )
    return ""


def grad_shape_diagnosis(text: str) -> Text:
    """PyTorch refused a .grad of the wrong shape: which wrong shape, from its error text."""
    sizes = re.search(r"gradient of size '\[(.*?)\]' to a tensor of size '\[(.*?)\]'", text)
    if sizes:
        given, wanted = (tuple(int(v) for v in g.split(",") if v.strip()) for g in sizes.groups())
        shapes = dict(given=str(given), wanted=str(wanted))
        if [d for d in given if d != 1] == [d for d in wanted if d != 1]:
            return Text(
                "a .grad of shape {given} for a parameter of shape {wanted}: the same "
                "numbers with an extra dimension of 1, which only matches by broadcasting; "
                "reshape it (sum over the batch without keepdim)",
                **shapes,
            )
        if given == wanted[::-1]:
            return Text(
                "a .grad of shape {given} for a parameter of shape {wanted}: transposed", **shapes
            )
    return Text(
        "a .grad was assigned a tensor of another shape than its parameter's (transposed? "
        "a batch dimension not summed away?)"
    )


GRAD_TENSORS = (("bias", "dL/db"), ("weight", "dL/dW"))


def failed_assignment(error: BaseException) -> tuple[str, tuple, tuple] | None:
    """(target, shape given, shape wanted) of a `target.grad = value` PyTorch refused for its
    shape, read in the learner's frame where it failed: the line parsed, target and value
    evaluated there again. None when the line is not such an assignment or cannot be read."""
    text = str(error)
    if "gradient of size" not in text and "assigned grad has data of a different size" not in text:
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    frame = tb.tb_frame
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno).strip()
    try:
        node = ast.parse(line).body[0]
        target = node.targets[0]
        if not (isinstance(target, ast.Attribute) and target.attr == "grad"):
            return None
        owner = ast.unparse(target.value)
        with torch.no_grad():
            wanted = eval(owner, frame.f_globals, dict(frame.f_locals))  # noqa: S307
            given = eval(ast.unparse(node.value), frame.f_globals, dict(frame.f_locals))  # noqa: S307
        return owner, tuple(given.shape), tuple(wanted.shape)
    except Exception:  # a line split over several, or a value that cannot be made again
        return None


def assignment_diagnosis(owner: str, given: tuple, wanted: tuple, ctx: dict) -> tuple[str, str]:
    """(the tensor's name, the likely cause) of a .grad of shape `given` set on `owner`, whose
    shape is `wanted`; ctx is the case's (padding, the padded input's size)."""
    from digitlab.workbench.diagnose import shape_diagnosis

    short = next((d for name, d in GRAD_TENSORS if owner.endswith(name)), "dL/dx")
    tensor = f"{short} ({owner}.grad)"
    squeezed = [d for d in given if d != 1] == [d for d in wanted if d != 1]
    if short == "dL/db" and len(wanted) == 1 and not squeezed:
        if len(given) > 1 and wanted[0] in given:
            return tensor, Text(
                "the bias's gradient is not summed over the batch: sum grad_out over every axis "
                "but the channels (.sum(0) for Linear, .sum((0, 2, 3)) for Conv2d)"
            )
        return tensor, Text(
            "the bias's gradient is summed over the wrong axes: keep the channel axis, sum the "
            "others (.sum(0) for Linear, .sum((0, 2, 3)) for Conv2d)"
        )
    mine, ref = torch.empty(given, device="meta"), torch.empty(wanted, device="meta")
    return tensor, shape_diagnosis(mine, ref, short, ctx)
