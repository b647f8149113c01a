"""Running a loss case and an optimizer case on a class, against PyTorch's float64 answers
(the layers' runners are workbench.runners)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.workbench.diagnose import Failure, compare
from digitlab.workbench.messages import Text
from digitlab.workbench.references import make_input, optimizer_alternatives
from digitlab.workbench.runners import call, changed_in_place, rtol

LATER_STEPS = Text(
    "step 1 is right, later ones are not: check the state kept between steps (momentum buffer, "
    "moment estimates, bias correction's step count)"
)


def run_loss_case(case, cls: type, interface: str = "", classes=None) -> list[Failure]:
    """The loss and dL/dlogits of the class against F.cross_entropy's, targets 0, 1, 2, ...
    With reduction "none" backward gets a random grad_out of the loss's shape."""
    n, c = case.shape
    x = make_input(case.shape, False, seed=3, scale=case.scale, dtype=case.dtype)
    target = torch.arange(n) % c
    x64 = x.detach().double().clone().requires_grad_(True)
    loss_ref = F.cross_entropy(x64, target, **case.kwargs)
    per_sample = case.kwargs.get("reduction") == "none"
    g = make_input((n,), False, seed=4, dtype=case.dtype) if per_sample else None
    loss_ref.backward(g.double() if per_sample else None)
    arguments = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    mine = call(f"CrossEntropyLoss({arguments}) constructor", cls, **case.kwargs)
    given = x.clone()
    loss = call("__call__ (forward)", mine, given, target)
    changed = changed_in_place("forward", Text("its input (the logits)"), given, x)
    if changed:
        return [changed]
    ctx = {"batch": n, "large_logits": case.scale > 100}
    loss = torch.as_tensor(loss) if isinstance(loss, float) else loss
    failure = compare(loss, loss_ref.detach(), "loss", ctx, rtol(case))
    if failure:
        return [failure]
    grad = call("backward", mine.backward, g) if per_sample else call("backward", mine.backward)
    changed = changed_in_place("backward", Text("forward's input (the logits)"), given, x)
    if changed:
        return [changed]
    failure = compare(grad, x64.grad, "dL/dlogits", ctx, rtol(case))
    return [failure] if failure else []


def run_optim_case(case, cls: type, interface: str = "", classes=None) -> list[Failure]:
    """case.steps updates of the class and of torch.optim's namesake from the same parameters
    and gradients; the parameters compared after every step. With case.reload the class is
    rebuilt halfway from its own state_dict (its state must survive a save and load)."""
    g = torch.Generator().manual_seed(4)
    start = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
    start = [p.to(case.dtype) for p in start]
    grads = [
        [torch.randn(p.shape, generator=g).to(case.dtype) for p in start] for _ in range(case.steps)
    ]
    p_ref = [nn.Parameter(p.double().clone()) for p in start]
    p_mine = [nn.Parameter(p.clone()) for p in start]
    opt_ref = getattr(torch.optim, case.layer)(p_ref, **case.kwargs)
    arguments = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    opt = call(f"{case.layer}(params, {arguments})", cls, p_mine, **case.kwargs)
    alternatives = optimizer_alternatives(case, start, grads)
    for step, grad in enumerate(grads, 1):
        opt_ref.zero_grad()
        for p, gp in zip(p_ref, grad, strict=True):
            p.grad = gp.double().clone()
        opt_ref.step()
        call("zero_grad", opt.zero_grad)
        for p, gp in zip(p_mine, grad, strict=True):
            p.grad = gp.clone()
        call("step", opt.step)
        if case.reload and step == case.steps // 2:
            opt = reloaded(cls, opt, p_mine, case)
        for k, (mine, ref) in enumerate(zip(p_mine, p_ref, strict=True)):
            alts = {d: traj[step - 1][k] for d, traj in alternatives.items()}
            tensor = f"parameter {k} after step {step}"
            failure = compare(
                mine.detach(), ref.detach(), tensor, {"alternatives": alts}, rtol(case)
            )
            if failure:
                if step > 1 and not failure.diagnosis:
                    failure.diagnosis = LATER_STEPS
                return [failure]
    return []


def reloaded(cls: type, opt, params, case):
    """A fresh optimizer of the class given the old one's state_dict."""
    fresh = call(f"{case.layer}(params, ...) after a save", cls, params, **case.kwargs)
    call("load_state_dict", fresh.load_state_dict, call("state_dict", opt.state_dict))
    return fresh
