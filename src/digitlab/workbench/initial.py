"""The parameters a learner's constructor makes, before any training: finite, not all equal, and
at the scale of PyTorch's default init (uniform within b = 1/sqrt(fan_in)). The layer cases copy
PyTorch's weights in, so only this case sees a weight left as torch.empty, all zeros, or drawn
by torch.randn without the 1/sqrt(fan_in), each of which makes a run blow up or stall at once.
"""

from __future__ import annotations

import contextlib
import math

import torch

from digitlab.workbench.diagnose import Failure
from digitlab.workbench.messages import Text
from digitlab.workbench.runners import construct

# He's normal init has 2.4 times the spread of PyTorch's uniform, Xavier's about as much; an
# unscaled randn has 7 times or more (b is 1/sqrt(fan_in), fan_in 50 and 75 in the cases).
TOO_LARGE = 4.0


@contextlib.contextmanager
def empty_as_nan():
    """torch.empty gives NaN while the constructor runs: memory it leaves uninitialised then
    shows as NaN instead of whatever the allocator happened to hold (zeros, or old numbers that
    look plausible)."""
    real = torch.empty

    def empty(*args, **kwargs):
        t = real(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    torch.empty = empty
    try:
        yield
    finally:
        torch.empty = real


def fan_in(weight: torch.Tensor) -> int:
    return math.prod(weight.shape[1:]) if weight.dim() > 1 else weight.numel()


def parameter_failure(name: str, p: torch.Tensor, bound: float) -> Failure | None:
    """What is wrong with one parameter as constructed, or None."""
    p = p.detach().double()
    tensor = f"{name} (as constructed)"
    fill = Text(
        "fill it as PyTorch does: .uniform_(-b, b), b = 1/sqrt(fan_in) = {bound:.3g}", bound=bound
    )
    bad = ~torch.isfinite(p)
    if bad.any():
        return Failure(
            tensor,
            Text(
                "{tensor} holds NaN or inf in {wrong} of {total} elements",
                tensor=name,
                wrong=int(bad.sum()),
                total=p.numel(),
            ),
            Text(
                "not initialised: torch.empty leaves whatever was in memory (the check fills that "
                "with NaN to show it); {fill}",
                fill=fill,
            ),
        )
    if name == "weight" and p.numel() > 1 and bool((p == p.flatten()[0]).all()):
        first = p.flatten()[0].item()
        return Failure(
            tensor,
            Text("{name} is all zeros", name=name)
            if first == 0
            else Text("{name} is every element {value:g}", name=name, value=first),
            Text(
                "every unit starts the same, gets the same gradient and stays the same: draw the "
                "weights at random; {fill}",
                fill=fill,
            ),
        )
    rms = p.pow(2).mean().sqrt().item()
    if rms > TOO_LARGE * bound:
        return Failure(
            tensor,
            Text(
                "{name}'s values are {times:.3g} times b = 1/sqrt(fan_in) (root mean square "
                "{rms:.3g}); PyTorch's start within ±b",
                name=name,
                times=rms / bound,
                rms=rms,
            ),
            Text(
                "too large: activations grow layer by layer and the loss blows up in the first "
                "steps (torch.randn without the 1/sqrt(fan_in)?); {fill}",
                fill=fill,
            ),
        )
    return None


def run_init_case(case, cls: type, interface: str, classes: dict) -> list[Failure]:
    """The class made as the case says (torch.empty's memory as NaN): each parameter checked."""
    torch.manual_seed(0)
    with empty_as_nan():
        mine = construct(cls, case, classes)
    params = dict(mine.named_parameters()) if isinstance(mine, torch.nn.Module) else {}
    weight = params.get("weight")
    if weight is None or not torch.is_tensor(weight):
        return []  # the layer cases say what is missing
    bound = 1 / math.sqrt(fan_in(weight))
    failures = [parameter_failure(name, p, bound) for name, p in params.items()]
    return [f for f in failures if f]
