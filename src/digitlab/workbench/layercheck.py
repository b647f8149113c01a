"""`digitlab check --layers FILE.py`: a learner's own layers against PyTorch, case by case.

The learner's file runs in a child process (nothing it does can crash or hang digitlab; a case
that runs past --timeout is stopped and the rest go on). Each case is small enough for a 5-deep
Python loop and chosen to break naive code: padding 0/1/2, stride 2, non-square inputs, batch 1,
overlapping pooling windows with ties, logits of +-1000, a grad_out that is not all ones, several
optimizer steps with momentum and weight decay. The learner's float32 results are compared with
PyTorch's float64 ones within a tolerance float32 rounding cannot trip (workbench.diagnose).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.workbench.diagnose import RTOL64, Failure, close, compare
from digitlab.workbench.layerfile import NAMES, find_classes, import_file, interface_of

DTYPE = torch.float32  # the learner's dtype: what PyTorch's layers default to


@dataclass
class Case:
    """One configuration of one class: `name` says what it tests; `kind` picks the runner."""

    layer: str
    name: str
    kind: str  # "layer", "accumulate", "loss", "optim"
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    shape: tuple = ()  # the input's
    ties: bool = False  # small integer inputs: pooling windows hold equal maxima
    scale: float = 1.0


def cases_for(name: str) -> list[Case]:
    layer = lambda text, *args, shape, ties=False, **kw: Case(  # noqa: E731
        name, text, "layer", args, kw, shape, ties
    )
    if name == "Conv2d":
        return [
            layer("3x3, padding 0, one channel, batch 1", 1, 1, 3, shape=(1, 1, 5, 5)),
            layer("3x3, padding 0, 2 -> 3 channels, 5x6 input", 2, 3, 3, shape=(2, 2, 5, 6)),
            layer("3x3, padding 1", 2, 3, 3, padding=1, shape=(2, 2, 5, 5)),
            layer("5x5, padding 2 (the study CNN's)", 1, 4, 5, padding=2, shape=(2, 1, 8, 8)),
            layer(
                "3x3, stride 2, padding 1, 7x6", 2, 3, 3, stride=2, padding=1, shape=(2, 2, 7, 6)
            ),
            layer("5x5, stride 2, 3 channels, 9x11", 3, 2, 5, stride=2, shape=(1, 3, 9, 11)),
            Case(
                name, "gradients over two backward calls", "accumulate", (2, 3, 3), {}, (2, 2, 5, 5)
            ),
        ]
    if name == "Linear":
        return [
            layer("5 -> 3, batch 4", 5, 3, shape=(4, 5)),
            layer("7 -> 4, batch 1", 7, 4, shape=(1, 7)),
            layer("6 -> 6 (square), batch 3", 6, 6, shape=(3, 6)),
            Case(name, "gradients over two backward calls", "accumulate", (5, 3), {}, (4, 5)),
        ]
    if name == "ReLU":
        return [
            layer("(2, 3, 4, 4)", shape=(2, 3, 4, 4)),
            layer("(5, 7) with zeros", shape=(5, 7), ties=True),
        ]
    if name == "MaxPool2d":
        return [
            layer("2x2, stride 2", 2, shape=(2, 2, 6, 6)),
            layer("2x2, stride 2, ties", 2, shape=(2, 2, 6, 6), ties=True),
            layer("3x3, stride 2 (windows overlap)", 3, 2, shape=(1, 2, 7, 7)),
            layer("3x3, stride 2, overlap and ties", 3, 2, shape=(2, 1, 7, 9), ties=True),
            layer("2x2, stride 1, overlap and ties", 2, 1, shape=(1, 2, 5, 5), ties=True),
        ]
    if name == "Flatten":
        return [
            layer("(2, 3, 4, 4) -> (2, 48)", shape=(2, 3, 4, 4)),
            layer("batch 1", shape=(1, 2, 3, 3)),
        ]
    if name == "CrossEntropyLoss":
        return [
            Case(name, "batch 4, 5 classes", "loss", shape=(4, 5)),
            Case(name, "batch 1, 10 classes", "loss", shape=(1, 10)),
            Case(name, "batch 8, 10 classes", "loss", shape=(8, 10)),
            Case(name, "logits of +-1000 (stability)", "loss", shape=(4, 10), scale=1000.0),
        ]
    if name == "SGD":
        return [
            Case(name, "lr 0.1, 5 steps", "optim", kwargs=dict(lr=0.1)),
            Case(
                name,
                "momentum 0.9, weight decay 0.01",
                "optim",
                kwargs=dict(lr=0.1, momentum=0.9, weight_decay=0.01),
            ),
            Case(
                name,
                "nesterov momentum 0.9",
                "optim",
                kwargs=dict(lr=0.05, momentum=0.9, nesterov=True),
            ),
        ]
    if name == "Adam":
        return [
            Case(name, "lr 0.01, 5 steps", "optim", kwargs=dict(lr=0.01)),
            Case(
                name,
                "betas (0.8, 0.99), weight decay 0.01",
                "optim",
                kwargs=dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
            ),
        ]
    return []


def make_input(shape, ties: bool, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if ties:
        return torch.randint(-1, 3, shape, generator=g).to(DTYPE)
    return (torch.randn(shape, generator=g) * scale).to(DTYPE)


# --- running one case (in the child) -------------------------------------------------------


class LearnerError(Exception):
    """The learner's code raised; `where` is their own frames."""


def call(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), the learner's code: its exception re-raised as LearnerError."""
    try:
        with torch.no_grad():
            return fn(*args, **kwargs)
    except Exception as e:  # their code may raise anything
        raise LearnerError(what, e) from e


def copy_parameters(mine: nn.Module, ref: nn.Module) -> Failure | None:
    """The learner's layer gets PyTorch's parameters, by name; a Failure when they differ."""
    own = dict(mine.named_parameters()) if isinstance(mine, nn.Module) else {}
    for pname, p in ref.named_parameters():
        if pname not in own:
            return Failure(
                pname, f"your layer has no parameter named {pname!r}", "name it as torch.nn does"
            )
        if own[pname].shape != p.shape:
            return Failure(
                pname, f"your {pname} is {tuple(own[pname].shape)}, PyTorch's is {tuple(p.shape)}"
            )
        with torch.no_grad():
            own[pname].copy_(p.to(DTYPE))
    return None


def input_grad(layer, returned):
    """dL/dx: what backward returned, or (the template's way) what it left in self.input.grad."""
    if returned is None and torch.is_tensor(getattr(layer, "input", None)):
        return layer.input.grad
    return returned


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
        "padding": p[0],
        "stride": s[0],
        "spatial": (h, w),
        "unpadded": size(0, s[0]),
        "unstrided": size(p[0], 1),
        "neither": size(0, 1),
        "padded": (h + 2 * p[0], w + 2 * p[0]),
        "overlap": overlap,
    }


def reference(ref: nn.Module, x: torch.Tensor, g: torch.Tensor):
    """PyTorch's float64 output and gradients: (y, dx, {param name: grad})."""
    ref = ref.double()
    ref.zero_grad(set_to_none=True)
    x64 = x.double().requires_grad_(True)
    y = ref(x64)
    y.backward(g.double())
    return y.detach(), x64.grad, {n: p.grad for n, p in ref.named_parameters()}


def output_alternatives(case: Case, ref: nn.Module, x: torch.Tensor) -> dict:
    if case.layer != "Conv2d":
        return {}
    x64, w = x.double(), ref.weight.double()
    b = ref.bias.double()
    conv = lambda weight, bias: F.conv2d(x64, weight, bias, ref.stride, ref.padding)  # noqa: E731
    return {
        "the kernel is flipped: that is textbook convolution; PyTorch's Conv2d does not flip "
        "(cross-correlation)": conv(w.flip(2, 3), b),
        "the bias is missing from the output": conv(w, None),
        "the bias is added twice": conv(w, 2 * b),
    }


def max_pool_all_maxima(x: torch.Tensor, g: torch.Tensor, k, s) -> torch.Tensor:
    """dL/dx if every tied maximum of a window got the window's gradient (a common bug)."""
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


IGNORES_GRAD_OUT = (
    "this is the gradient for grad_out = all ones: backward ignores the grad_out it is given "
    "(multiply by it)"
)
GRAD_NAMES = {"weight": "dL/dW (weight.grad)", "bias": "dL/db (bias.grad)"}


def construct(cls: type, case: Case):
    arguments = ", ".join([*map(repr, case.args), *(f"{k}={v!r}" for k, v in case.kwargs.items())])
    return call(f"{case.layer}({arguments})", cls, *case.args, **case.kwargs)


def run_layer_case(case: Case, cls: type) -> list[Failure]:
    """Forward, then (if the output is right) backward with a random grad_out: output, dL/dx and
    every parameter's gradient against PyTorch's."""
    ref = getattr(nn, case.layer)(*case.args, **case.kwargs)
    mine = construct(cls, case)
    failure = copy_parameters(mine, ref)
    if failure:
        return [failure]
    x = make_input(case.shape, case.ties, seed=1)
    with torch.no_grad():
        g = make_input(tuple(ref(x).shape), False, seed=2)  # not all ones: code assuming it fails
    y_ref, dx_ref, grads_ref = reference(ref, x, g)
    _, dx_ones, grads_ones = reference(ref, x, torch.ones_like(g))
    ctx = {"batch": x.shape[0], **geometry(x, ref), "forward": method_source(cls, "forward")}
    y = call("forward", mine, x.clone())
    failure = compare(
        y, y_ref, "output", {**ctx, "alternatives": output_alternatives(case, ref, x)}
    )
    if failure:
        return [failure]  # backward is checked once the output is right
    dx = input_grad(mine, call("backward", mine.backward, g.clone()))
    alternatives = {IGNORES_GRAD_OUT: dx_ones}
    if case.layer == "MaxPool2d":
        alternatives[
            "ties: the gradient went to every maximum of a window; PyTorch sends it to one only "
            "(the first in row-major order)"
        ] = max_pool_all_maxima(x, g, ref.kernel_size, ref.stride)
    checks = [("dL/dx", dx, dx_ref, alternatives)]
    params = dict(mine.named_parameters())
    for name, grad in grads_ref.items():
        checks.append(
            (GRAD_NAMES[name], params[name].grad, grad, {IGNORES_GRAD_OUT: grads_ones[name]})
        )
    failures = []
    for tensor, got, want, alts in checks:
        failure = compare(got, want, tensor, {**ctx, "alternatives": alts})
        if failure:
            failures.append(failure)
    return failures


def run_accumulate_case(case: Case, cls: type, interface: str) -> list[Failure]:
    """Two forward+backward calls without zeroing: digitlab's interface adds (like autograd),
    the template's sets."""
    ref = getattr(nn, case.layer)(*case.args)
    mine = construct(cls, case)
    if copy_parameters(mine, ref):
        return []  # reported by the other cases
    x = make_input(case.shape, False, seed=1)
    g = make_input(tuple(ref(x).shape), False, seed=2)
    _, _, grads = reference(ref, x, g)
    for _ in range(2):
        call("forward", mine, x.clone())
        call("backward", mine.backward, g.clone())
    got = mine.weight.grad
    if got is None or not torch.is_tensor(got) or got.shape != grads["weight"].shape:
        return []  # the layer cases say what is wrong with it
    once, twice = grads["weight"], 2 * grads["weight"]
    adds = torch.allclose(got.double(), twice, rtol=1e-4, atol=1e-5)
    sets = torch.allclose(got.double(), once, rtol=1e-4, atol=1e-5)
    if interface == "digitlab" and sets:
        return [
            Failure(
                "dL/dW (weight.grad)",
                "after two backward calls weight.grad holds one call's gradient",
                "gradients are SET where they should accumulate: digitlab's interface (like "
                "autograd) adds into .grad (grad += ...), and zero_grad clears it",
            )
        ]
    if interface == "template" and adds:
        return [
            Failure(
                "dL/dW (weight.grad)",
                "after two backward calls weight.grad holds the sum of both",
                "gradients accumulate, but this file follows the template's interface, where "
                "backward SETS self.weight.grad (=, not +=)",
            )
        ]
    if not (adds or sets):
        return [
            Failure(
                "dL/dW (weight.grad)",
                "after two backward calls weight.grad is neither one call's gradient nor their sum",
                "backward reuses state from the previous call",
            )
        ]
    return []


def run_loss_case(case: Case, cls: type) -> list[Failure]:
    n, c = case.shape
    x = make_input(case.shape, False, seed=3, scale=case.scale)
    target = torch.arange(n) % c
    x64 = x.double().requires_grad_(True)
    loss_ref = F.cross_entropy(x64, target, **case.kwargs)
    loss_ref.backward()
    arguments = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    mine = call(f"CrossEntropyLoss({arguments}) constructor", cls, **case.kwargs)
    loss = call("__call__ (forward)", mine, x.clone(), target)
    ctx = {"batch": n, "large_logits": case.scale > 100}
    failure = compare(
        torch.as_tensor(loss) if isinstance(loss, float) else loss, loss_ref.detach(), "loss", ctx
    )
    if failure:
        return [failure]
    grad = call("backward", mine.backward)
    failure = compare(grad, x64.grad, "dL/dlogits", ctx)
    return [failure] if failure else []


def run_optim_case(case: Case, cls: type, steps: int = 5) -> list[Failure]:
    g = torch.Generator().manual_seed(4)
    start = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(steps)]
    p_ref = [nn.Parameter(p.double()) for p in start]
    p_mine = [nn.Parameter(p.clone()) for p in start]
    opt_ref = getattr(torch.optim, case.layer)(p_ref, **case.kwargs)
    arguments = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    opt = call(f"{case.layer}(params, {arguments})", cls, p_mine, **case.kwargs)
    alternatives = {}
    for key, plain in (("weight_decay", 0.0), ("momentum", 0.0), ("nesterov", False)):
        if case.kwargs.get(key):
            ignored = {**case.kwargs, key: plain}
            if key == "momentum":
                ignored["nesterov"] = False  # torch refuses nesterov without momentum
            alternatives[f"{key} looks ignored"] = run_torch_optim(
                case.layer, start, grads, ignored
            )
    for step, grad in enumerate(grads, 1):
        opt_ref.zero_grad()
        for p, gp in zip(p_ref, grad, strict=True):
            p.grad = gp.double()
        opt_ref.step()
        call("zero_grad", opt.zero_grad)
        for p, gp in zip(p_mine, grad, strict=True):
            p.grad = gp.clone()
        call("step", opt.step)
        for k, (mine, ref) in enumerate(zip(p_mine, p_ref, strict=True)):
            alts = {d: traj[step - 1][k] for d, traj in alternatives.items()}
            failure = compare(
                mine.detach(),
                ref.detach(),
                f"parameter {k} after step {step}",
                {"alternatives": alts},
            )
            if failure:
                if step > 1 and not failure.diagnosis:
                    failure.diagnosis = (
                        "step 1 is right, later ones are not: check the state kept between "
                        "steps (momentum buffer, moment estimates, bias correction's step count)"
                    )
                return [failure]
    return []


def run_torch_optim(name: str, start, grads, kwargs) -> list[list[torch.Tensor]]:
    params = [nn.Parameter(p.double()) for p in start]
    opt = getattr(torch.optim, name)(params, **kwargs)
    trajectory = []
    for grad in grads:
        opt.zero_grad()
        for p, gp in zip(params, grad, strict=True):
            p.grad = gp.double()
        opt.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory


# --- the learner's exceptions ---------------------------------------------------------------


def their_traceback(error: BaseException, path: str) -> list[str]:
    """The traceback's frames in the learner's own file (here a traceback is the help)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    lines = []
    for frame in frames[-4:]:
        lines.append(f"{Path(frame.filename).name}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    lines.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return lines


def exception_diagnosis(error: BaseException, what: str, source: str) -> str:
    """The likely cause of an exception in the learner's method `what` (its source given)."""
    text = str(error)
    if isinstance(error, NotImplementedError):
        return "not written yet"
    if "TODO" in source:  # the template's unfinished body: say so, and why it fails as it is
        reason = exception_diagnosis(error, what, "")
        return "not written yet" + (f" (as it stands: {reason})" if reason else "")
    if "CUDA" in text or "NVIDIA" in text or "cuda" in text:
        return (
            "a tensor is put on 'cuda' and this machine has no GPU: make new tensors on the "
            "input's device (device=x.device) instead of a fixed device='cuda'"
        )
    sizes = re.search(r"gradient of size '\[(.*?)\]' to a tensor of size '\[(.*?)\]'", text)
    if sizes or "assigned grad has data of a different size" in text:
        if sizes:
            given, wanted = (
                tuple(int(v) for v in g.split(",") if v.strip()) for g in sizes.groups()
            )
            if [d for d in given if d != 1] == [d for d in wanted if d != 1]:
                return (
                    f"a .grad of shape {given} for a parameter of shape {wanted}: the same "
                    "numbers with an extra dimension of 1, which only matches by broadcasting; "
                    "reshape it (sum over the batch without keepdim)"
                )
            if given == wanted[::-1]:
                return f"a .grad of shape {given} for a parameter of shape {wanted}: transposed"
        return (
            "a .grad was assigned a tensor of another shape than its parameter's (transposed? "
            "a batch dimension not summed away?)"
        )
    if isinstance(error, AttributeError) and "has no attribute" in text:
        name = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else "?"
        if what == "backward":
            return (
                f"backward reads self.{name}, which forward never saved: store it in forward "
                f"(self.{name} = ...)"
            )
        return f"self.{name} is never set: set it in __init__ or forward"
    if isinstance(error, TypeError) and "argument" in text:
        return f"{what} does not take the arguments torch.nn's namesake takes: {text}"
    return ""


def method_source(cls: type, what: str) -> str:
    import inspect

    name = {"forward": "forward", "backward": "backward"}.get(what, "__init__")
    try:
        return inspect.getsource(getattr(cls, name))
    except (TypeError, OSError, AttributeError):
        return ""


def run_case(case: Case, cls: type, interface: str, path: str) -> dict:
    """One case, as the row the report shows: {"layer", "case", "ok", "failures", ...}."""
    row = {"layer": case.layer, "case": case.name, "ok": True, "failures": []}
    try:
        if case.kind == "layer":
            failures = run_layer_case(case, cls)
        elif case.kind == "accumulate":
            failures = run_accumulate_case(case, cls, interface)
        elif case.kind == "loss":
            failures = run_loss_case(case, cls)
        else:
            failures = run_optim_case(case, cls)
    except LearnerError as e:
        what, error = e.args
        diagnosis = exception_diagnosis(error, what, method_source(cls, what))
        # backward runs only after the output matched: say so, it is half the answer
        passed = "the output matches PyTorch; " if what == "backward" else ""
        failures = [Failure(what, f"{passed}{what} raised {type(error).__name__}", diagnosis)]
        row["traceback"] = their_traceback(error, path)
        row["not_written"] = diagnosis.startswith("not written yet")
    except Exception as e:  # a learner's object broke the check itself: say what, go on
        failures = [Failure("case", f"could not be checked: {type(e).__name__}: {e}")]
        row["traceback"] = their_traceback(e, path)
    row["failures"] = [f.as_dict() for f in failures]
    row["ok"] = not failures
    if row["ok"] and case.kind == "layer":
        row["note"] = float64_note(case, cls)
    return row


def float64_note(case: Case, cls: type) -> str:
    """float32 passed; does float64 separate right from wrong? "" when it agrees to 1e-9 too
    (or the class cannot run in float64 at all, which is no requirement)."""
    try:
        ref = getattr(nn, case.layer)(*case.args, **case.kwargs).double()
        with torch.no_grad():
            mine = cls(*case.args, **case.kwargs)
            mine = mine.double() if isinstance(mine, nn.Module) else mine
            for name, p in ref.named_parameters():
                dict(mine.named_parameters())[name].copy_(p)
            x = make_input(case.shape, case.ties, seed=1).double()
            y = mine(x.clone())
    except Exception:
        return ""
    y_ref = ref(x).detach()
    if not torch.is_tensor(y) or y.shape != y_ref.shape or close(y, y_ref, RTOL64):
        return ""
    error = (y.double() - y_ref).abs().max().item()
    if y.dtype != torch.float64:
        return (
            f"in float64 your output comes back as {y.dtype} (error {error:.1e}): something inside "
            "is made in float32; create tensors with dtype=x.dtype"
        )
    return (
        f"right in float32, but in float64 the output is off by {error:.1e}: only float64 "
        "separates this from right; a small bug float32 rounding hides"
    )


# --- the child process ----------------------------------------------------------------------


def inventory(path: str) -> tuple[dict, list[Case]]:
    """({name: interface} of the classes found, the cases to run), in the child."""
    found = find_classes(import_file(path))
    interfaces = {name: interface_of(name, cls) for name, cls in found.items()}
    cases = [case for name in NAMES if name in found for case in cases_for(name)]
    return interfaces, cases


def worker(path: str, start: int, results_fd: int) -> None:
    """The child (-m digitlab.workbench.layercheck FILE START FD): one JSON line per case on FD;
    the learner's own prints go to stdout and stderr, which the parent keeps apart."""
    results = os.fdopen(results_fd, "w")

    def send(message: dict) -> None:
        results.write(json.dumps(message) + "\n")
        results.flush()

    torch.set_num_threads(1)
    try:
        interfaces, cases = inventory(path)
    except BaseException as e:  # their file may raise anything at import, or SyntaxError
        send(
            {
                "import_error": their_traceback(e, path) or [f"{type(e).__name__}: {e}"],
                "syntax": isinstance(e, SyntaxError),
                "detail": syntax_detail(e),
            }
        )
        return
    send({"interfaces": interfaces, "cases": [(c.layer, c.name) for c in cases]})
    module = sys.modules[f"learner_{Path(path).stem}"]
    for case in cases[start:]:
        send(run_case(case, getattr(module, case.layer), interfaces[case.layer], path))


def syntax_detail(e: BaseException) -> list[str]:
    if not isinstance(e, SyntaxError):
        return []
    lines = [f"{Path(e.filename or '?').name}, line {e.lineno}: {e.msg}"]
    if e.text:
        lines.append("    " + e.text.rstrip())
    return lines


def check_file(path: str | Path, timeout: float = 60.0) -> dict:
    """Every case of every class the file has, run in a child process, each case under
    `timeout` seconds (a case past it is stopped and the rest run in a fresh child).
    Returns {"path", "found", "missing", "rows", "ok", "output_lines", "first_output"}."""
    path = str(Path(path).expanduser().resolve())
    if not Path(path).is_file():
        raise DigitlabError(f"{path}: no such file; give the .py file that holds your layers")
    rows: list[dict] = []
    names: list | None = None
    interfaces: dict = {}
    with tempfile.TemporaryFile("w+b") as output:
        while names is None or len(rows) < len(names):
            child = Child(path, len(rows), output)
            try:
                first = child.next_message(timeout)
                if first is None or "import_error" in first:
                    raise import_failure(path, first, timeout, child)
                interfaces, names = first["interfaces"], first["cases"]
                if not names:
                    raise DigitlabError(
                        f"{path}: defines none of {', '.join(NAMES)}; write at least one "
                        "(digitlab exercise DIR gives a starter file)"
                    )
                while len(rows) < len(names):
                    message = child.next_message(timeout)
                    if message is None:  # a hang or a crash: this case fails, the rest go on
                        rows.append(lost_case(*names[len(rows)], child, timeout))
                        break
                    rows.append(message)
            finally:
                child.stop()
        output.seek(0)
        printed = output.read().decode(errors="replace").splitlines()
    return {
        "path": path,
        "found": interfaces,
        "missing": [n for n in NAMES if n not in interfaces],
        "rows": rows,
        "ok": all(r["ok"] for r in rows),
        "output_lines": len(printed),
        "first_output": printed[:3],
    }


class Child:
    """`-m digitlab.workbench.layercheck` running the learner's file from case `start` on; its
    results come through a pipe of their own, its prints go to `output`."""

    def __init__(self, path: str, start: int, output):
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digitlab.workbench.layercheck", path, str(start), str(write)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=(write,),
        )
        os.close(write)
        self.read, self.buffer, self.ended = read, b"", False

    def next_message(self, timeout: float) -> dict | None:
        """The next JSON line, or None when the child hangs past `timeout` or dies."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read], [], [], left)[0]:
                return None
            chunk = os.read(self.read, 1 << 16)
            if not chunk:  # the child closed its end: it ended or died
                self.ended = True
                self.process.wait()
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.read)


def lost_case(layer: str, case: str, child: Child, timeout: float) -> dict:
    alive, process = not child.ended, child.process
    message = (
        f"did not finish within {timeout:g} s; stopped, the other cases ran"
        if alive
        else f"the process running your code died (exit code {process.returncode})"
    )
    failure = Failure(
        "case",
        message,
        "an endless loop? look for a loop whose condition never changes" if alive else "",
    )
    return {
        "layer": layer,
        "case": case,
        "ok": False,
        "failures": [failure.as_dict()],
        "timeout": alive,
    }


def import_failure(path: str, message: dict | None, timeout: float, child) -> DigitlabError:
    process = child.process
    if message is None and not child.ended:
        return DigitlabError(
            f"{path}: importing it did not finish within {timeout:g} s; move work out of the "
            "module level or raise --timeout"
        )
    if message is None:
        return DigitlabError(
            f"{path}: the process importing it died (exit code {process.returncode}); does the "
            "file call exit() or crash the interpreter at import?"
        )
    detail = message["detail"] or message["import_error"]
    kind = "has a syntax error" if message["syntax"] else "raised an exception when imported"
    error = DigitlabError(f"{path}: {kind}: {' | '.join(line.strip() for line in detail[-2:])}")
    error.lines = detail
    return error


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
