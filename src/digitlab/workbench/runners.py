"""Running one case on one class and comparing every tensor with PyTorch's float64 answer.

The class may be a learner's (then this runs in workbench.sandbox's child process) or
digitlab.scratch's. Each runner returns the Failures it found ([] when the case passes); an
exception in the class's own code comes out as LearnerError. One tolerance rule for all:
workbench.diagnose's, relative to the largest value (RTOL32 in float32, RTOL64 in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.nets import backends, models
from digitlab.workbench.diagnose import RTOL32, RTOL64, Failure, compare
from digitlab.workbench.exceptions import LearnerError, method_source
from digitlab.workbench.messages import Text
from digitlab.workbench.references import (
    ALL_MAXIMA,
    IGNORES_GRAD_OUT,
    build,
    conv_backward_alternatives,
    geometry,
    make_input,
    max_pool_all_maxima,
    namespace,
    output_alternatives,
    output_shape,
    reference,
    torch_layer,
    window_contributions,
)

GRAD_NAMES = {"weight": "dL/dW (weight.grad)", "bias": "dL/db (bias.grad)"}


def rtol(case) -> float:
    return RTOL64 if case.dtype == torch.float64 else RTOL32


def call(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), the class's own code: its exception re-raised as LearnerError."""
    try:
        with torch.no_grad():
            return fn(*args, **kwargs)
    except Exception as e:  # their code may raise anything
        raise LearnerError(what, e) from e


def construct(cls: type, case, classes: dict):
    """The class made as the case says, in the case's dtype and mode."""
    arguments = ", ".join([*map(repr, case.args), *(f"{k}={v!r}" for k, v in case.kwargs.items())])
    mine = call(f"{case.layer}({arguments})", build, namespace({**classes, case.layer: cls}), case)
    if isinstance(mine, nn.Module) and case.dtype != torch.float32:
        mine = mine.to(case.dtype)
    if isinstance(mine, nn.Module) and not case.train:
        mine.eval()
    return mine


def copy_state(mine, ref: nn.Module) -> Failure | None:
    """The class's layer gets PyTorch's parameters (and buffers it has), by name; a Failure when
    a parameter is missing or shaped otherwise."""
    own = dict(mine.named_parameters()) if isinstance(mine, nn.Module) else {}
    for pname, p in ref.named_parameters():
        if pname not in own:
            return Failure(
                pname,
                Text("your layer has no parameter named {name!r}", name=pname),
                Text("name it as torch.nn does"),
            )
        if own[pname].shape != p.shape:
            mine, ref = str(tuple(own[pname].shape)), str(tuple(p.shape))
            return Failure(
                pname,
                Text(
                    "your {tensor} is {mine}, PyTorch's is {ref}", tensor=pname, mine=mine, ref=ref
                ),
            )
        with torch.no_grad():
            own[pname].copy_(p)
    buffers = dict(mine.named_buffers()) if isinstance(mine, nn.Module) else {}
    for bname, b in ref.named_buffers():
        if bname in buffers and buffers[bname].shape == b.shape:
            buffers[bname].copy_(b)
    return None


IN_PLACE = Text(
    "the caller's tensor must stay as it was (the layer before, autograd and the caller may "
    "still read it): make a new tensor (x = x - m, x * mask) instead of changing it (x -= m, "
    "x[...] = 0, x.sub_(m))"
)


def changed_in_place(method: str, name: str | Text, given, kept: torch.Tensor) -> Failure | None:
    """A Failure when `method` changed `given` (the tensor it was handed, a copy of `kept`)."""
    if not torch.is_tensor(given) or torch.equal(given, kept):
        return None
    if given.shape != kept.shape:
        what = Text(
            "its shape {old} -> {new}", old=str(tuple(kept.shape)), new=str(tuple(given.shape))
        )
    else:
        what = Text(
            "{wrong} of {total} elements", wrong=int((given != kept).sum()), total=given.numel()
        )
    return Failure(
        str(name),
        Text("{method} changed {name} in place ({what})", method=method, name=name, what=what),
        IN_PLACE,
    )


def input_grad(layer, returned):
    """dL/dx: what backward returned, or (the template's way) what it left in self.input.grad."""
    if returned is None and torch.is_tensor(getattr(layer, "input", None)):
        return layer.input.grad
    return returned


def compare_all(checks, ctx: dict, tolerance: float) -> list[Failure]:
    """compare() over (tensor name, got, want, {bug: alternative}) rows: the Failures."""
    failures = []
    for tensor, got, want, alts in checks:
        failure = compare(got, want, tensor, {**ctx, "alternatives": alts}, tolerance)
        if failure:
            failures.append(failure)
    return failures


def run_layer_case(case, cls: type, interface: str, classes: dict) -> list[Failure]:
    """Forward, then (if the output is right) backward with a random grad_out: output, dL/dx,
    every parameter's gradient and every buffer (batch norm's running statistics)."""
    ref = torch_layer(case)
    mine = construct(cls, case, classes)
    failure = copy_state(mine, ref)
    if failure:
        return [failure]
    x = make_input(case.shape, case.ties, seed=1, dtype=case.dtype)
    g = make_input(output_shape(ref, x), False, seed=2, dtype=case.dtype)  # not all ones
    y_ref, dx_ref, grads_ref, buffers_ref = reference(ref, x, g)
    _, dx_ones, grads_ones, _ = reference(ref, x, torch.ones_like(g))
    ctx = {"batch": x.shape[0], **geometry(x, ref), "forward": method_source(cls, "forward")}
    given = x.clone()
    y = call("forward", mine, given)
    changed = changed_in_place("forward", Text("its input x"), given, x)
    if changed:
        return [changed]
    alternatives = output_alternatives(case, ref, x)
    failure = compare(y, y_ref, "output", {**ctx, "alternatives": alternatives}, rtol(case))
    if failure:
        return [failure]  # backward is checked once the output is right
    buffers = dict(mine.named_buffers()) if isinstance(mine, nn.Module) else {}
    checks = [(name, buffers.get(name), want, {}) for name, want in buffers_ref.items()]
    given_g = g.clone()
    try:
        dx = input_grad(mine, call("backward", mine.backward, given_g))
    except LearnerError as e:
        e.ctx = ctx  # the shapes a refused .grad is read against
        raise
    for name, tensor, kept in (("grad_out", given_g, g), (Text("forward's input x"), given, x)):
        changed = changed_in_place("backward", name, tensor, kept)
        if changed:
            return [changed]
    dx_alts, dw_alts = conv_backward_alternatives(case, ref, x, g)
    alternatives = {IGNORES_GRAD_OUT: dx_ones, **dx_alts}
    if case.layer == "MaxPool2d" and not ref.padding:
        alternatives[ALL_MAXIMA] = max_pool_all_maxima(x, g, ref.kernel_size, ref.stride)
    checks.append(("dL/dx", dx, dx_ref, alternatives))
    params = dict(mine.named_parameters())
    for name, grad in grads_ref.items():
        alts = {IGNORES_GRAD_OUT: grads_ones[name], **(dw_alts if name == "weight" else {})}
        checks.append((GRAD_NAMES.get(name, f"{name}.grad"), params[name].grad, grad, alts))
    ctx["contributions"] = window_contributions(case, ref, x, g)
    return compare_all(checks, ctx, rtol(case))


def run_accumulate_case(case, cls: type, interface: str, classes: dict) -> list[Failure]:
    """Two forward+backward calls without zeroing: digitlab's interface adds (like autograd),
    the template's sets."""
    ref = torch_layer(case)
    mine = construct(cls, case, classes)
    if copy_state(mine, ref):
        return []  # reported by the other cases
    x = make_input(case.shape, False, seed=1, dtype=case.dtype)
    g = make_input(output_shape(ref, x), False, seed=2, dtype=case.dtype)
    weight = reference(ref, x, g)[2]["weight"]
    for _ in range(2):
        call("forward", mine, x.clone())
        call("backward", mine.backward, g.clone())
    got = mine.weight.grad
    if got is None or not torch.is_tensor(got) or got.shape != weight.shape:
        return []  # the layer cases say what is wrong with it
    adds = torch.allclose(got.double(), 2 * weight, rtol=1e-4, atol=1e-5)
    sets = torch.allclose(got.double(), weight, rtol=1e-4, atol=1e-5)
    if interface == "digitlab" and sets:
        return [
            accumulation_failure(
                Text("after two backward calls weight.grad holds one call's gradient"), SETS
            )
        ]
    if interface == "template" and adds:
        return [
            accumulation_failure(
                Text("after two backward calls weight.grad holds the sum of both"), ADDS
            )
        ]
    if not (adds or sets):
        return [
            accumulation_failure(
                Text(
                    "after two backward calls weight.grad is neither one call's gradient nor "
                    "their sum"
                ),
                Text("backward reuses state from the previous call"),
            )
        ]
    return []


SETS = Text(
    "gradients are SET where they should accumulate: digitlab's interface (like autograd) adds "
    "into .grad (grad += ...), and zero_grad clears it"
)
ADDS = Text(
    "gradients accumulate, but this file follows the template's interface, where backward SETS "
    "self.weight.grad (=, not +=)"
)


def accumulation_failure(message: Text, diagnosis: Text) -> Failure:
    return Failure("dL/dW (weight.grad)", message, diagnosis)


def run_dropout_case(case, cls: type, interface: str, classes: dict) -> list[Failure]:
    """Dropout with p > 0 in training: about p of the elements zeroed, the rest scaled by
    1/(1-p), and backward applying the very mask forward drew (with the same scale)."""
    p = case.args[0]
    mine = construct(cls, case, classes)
    x = make_input(case.shape, False, seed=1, dtype=case.dtype).abs() + 1  # no zeros of its own
    y = call("forward", mine, x.clone())
    if not torch.is_tensor(y) or y.shape != x.shape:
        return [compare(y, x, "output", {})]
    kept = y != 0
    dropped = 1 - kept.double().mean().item()
    # the share of n Bernoulli(p) draws: 7 standard deviations, no honest mask falls outside
    if abs(dropped - p) > 7 * (p * (1 - p) / x.numel()) ** 0.5:
        return [Failure("output", f"{dropped:.3f} of the elements are zeroed, p = {p}")]
    ctx = {"alternatives": {"the kept elements are not scaled by 1/(1-p)": x * kept}}
    failure = compare(y, x * kept / (1 - p), "output", ctx, rtol(case))
    if failure:
        return [failure]
    g = make_input(case.shape, False, seed=2, dtype=case.dtype)
    dx = input_grad(mine, call("backward", mine.backward, g.clone()))
    alts = {"backward does not scale by 1/(1-p)": g * kept, IGNORES_GRAD_OUT: kept / (1 - p)}
    failure = compare(dx, g * kept / (1 - p), "dL/dx", {"alternatives": alts}, rtol(case))
    if failure and not failure.diagnosis:
        failure.diagnosis = "backward must apply the mask forward used (save it), not a new one"
    return [failure] if failure else []


def run_network_case(case, cls: type, interface: str, classes: dict) -> list[Failure]:
    """A whole network (digitlab.nets.models, args[0]) of the classes against PyTorch's, same
    weights and batch: loss, every parameter's gradient, batch norm's running statistics.
    Batch norm in training mode; dropout in eval (both sides then compute the same)."""
    torch.manual_seed(0)
    ref = models.MODELS[case.args[0]](nn).to(case.dtype)
    mine = call("building the network", models.MODELS[case.args[0]], namespace(classes))
    mine = mine.to(case.dtype)
    mine.load_state_dict(ref.state_dict())
    for net in (ref, mine):
        for layer in net.modules():
            if type(layer).__name__ == "Dropout":
                layer.eval()
    x = make_input(case.shape, False, seed=1, dtype=case.dtype)
    target = torch.arange(case.shape[0]) % 10
    loss_ref = F.cross_entropy(ref(x), target)
    loss_ref.backward()
    loss_fn = classes["CrossEntropyLoss"]()
    loss = call("forward", loss_fn, call("forward", mine, x), target)
    failure = compare(loss, loss_ref.detach(), "loss", {}, rtol(case))
    if failure:
        return [failure]
    call("backward", backends.backward, mine, loss_fn.backward())
    params = dict(mine.named_parameters())
    checks = [(f"{n}.grad", params[n].grad, p.grad, {}) for n, p in ref.named_parameters()]
    buffers = dict(mine.named_buffers())
    checks += [(n, buffers.get(n), b, {}) for n, b in ref.named_buffers()]
    return compare_all(checks, {}, rtol(case))
