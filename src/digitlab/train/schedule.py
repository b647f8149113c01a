"""Learning-rate schedules, shared by both backends: they only set each param group's "lr".

one-cycle (Smith & Topin; the learning rate of torch.optim.lr_scheduler.OneCycleLR with its
defaults and anneal_strategy="cos"): over the first `warmup` fraction of the steps the rate
climbs from lr / 25 to lr, then falls to lr / 25e4 at the last step, both along half a cosine.
A short warm-up lets a high peak rate be used safely; the long fall settles the weights. Any
number of steps >= 1 and any warm-up in [0, 1) work: a warm-up under one step starts at the peak,
and a run of one step runs it at lr. Unlike OneCycleLR's default, momentum (Adam's beta1) is not
cycled: it stays what the optimizer was given.
"""

from __future__ import annotations

import math

from digitlab.errors import DigitlabError

SCHEDULES = ("constant", "onecycle")
DIV_FACTOR, FINAL_DIV_FACTOR = 25.0, 1e4


def cosine(start: float, end: float, fraction: float) -> float:
    """From `start` (fraction 0) to `end` (fraction 1) along half a cosine."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))


def learning_rate(schedule: str, lr: float, step: int, total_steps: int, warmup: float) -> float:
    """The rate for `step` (0-based) of `total_steps`; `lr` is the peak (or constant) rate."""
    if schedule == "constant":
        return lr
    if schedule != "onecycle":
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    initial, final = lr / DIV_FACTOR, lr / DIV_FACTOR / FINAL_DIV_FACTOR
    # OneCycleLR's step of the peak; a warm-up shorter than one step has none (the climb is
    # skipped and the first step runs at the peak rate).
    peak = max(warmup * total_steps - 1, 0.0)
    if step < peak:
        return cosine(initial, lr, step / peak)
    span = total_steps - 1 - peak
    return lr if span <= 0 else cosine(lr, final, (step - peak) / span)


def set_learning_rate(optimizer, lr: float) -> None:
    """torch.optim's way (every param_group's "lr"), or a learner's own optimizer's `lr`."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None and hasattr(optimizer, "lr"):
        optimizer.lr = lr
        return
    if groups is None:
        raise DigitlabError(
            f"{type(optimizer).__name__} has neither param_groups nor an lr attribute, so a "
            "schedule cannot set its learning rate; store the rate as self.lr"
        )
    for group in groups:
        group["lr"] = lr
