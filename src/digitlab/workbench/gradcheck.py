"""Hand-written layers, loss and optimizers compared with PyTorch: values and gradients.

Each comparison runs the same input and parameters through a digitlab.scratch piece and its
PyTorch namesake (whose gradients come from autograd) and reports the largest absolute difference
over the output, dL/dinput and every dL/dparameter. `digitlab check` runs CASES; the test suite
runs the same functions over a wider grid of shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab import scratch
from digitlab.nets import backends, models

TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4}


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def make_input(shape, dtype=torch.float64, ties: bool = False, seed: int = 0) -> torch.Tensor:
    """A random input; with ties=True, small integers, so pooling windows hold equal maxima."""
    g = torch.Generator().manual_seed(seed)
    if ties:
        return torch.randint(0, 3, shape, generator=g).to(dtype)
    return torch.randn(shape, generator=g, dtype=dtype)


def compare_layer(scratch_layer, torch_layer, x: torch.Tensor, train: bool = True) -> dict:
    """Forward and backward of both layers on x: errors of output, dL/dx and each dL/dparam.

    The scratch layer gets the torch layer's parameters and buffers first. L = sum(y * g) for a
    fixed random g, so dL/dy = g.
    """
    torch_layer = torch_layer.to(x.dtype).train(train)
    scratch_layer = scratch_layer.to(x.dtype).train(train)
    scratch_layer.load_state_dict(torch_layer.state_dict())
    xt = x.clone().requires_grad_(True)
    y_torch = torch_layer(xt)
    g = make_input(y_torch.shape, x.dtype, seed=1)
    y_torch.backward(g)
    y_scratch = scratch_layer(x.clone())
    gx = scratch_layer.backward(g.clone())
    errors = {"output": max_error(y_scratch, y_torch), "input grad": max_error(gx, xt.grad)}
    for (name, p_torch), (_, p_scratch) in zip(
        torch_layer.named_parameters(), scratch_layer.named_parameters(), strict=True
    ):
        errors[f"{name} grad"] = max_error(p_scratch.grad, p_torch.grad)
    for (name, b_torch), (_, b_scratch) in zip(
        torch_layer.named_buffers(), scratch_layer.named_buffers(), strict=True
    ):
        errors[name] = max_error(b_scratch, b_torch)
    return errors


def compare_loss(x: torch.Tensor, target: torch.Tensor, **options) -> dict:
    """scratch.CrossEntropyLoss against nn.CrossEntropyLoss: loss and dL/dlogits."""
    xt = x.clone().requires_grad_(True)
    loss_torch = nn.CrossEntropyLoss(**options)(xt, target)
    g = make_input(loss_torch.shape, x.dtype, seed=1)
    loss_torch.backward(g)
    loss_fn = scratch.CrossEntropyLoss(**options)
    loss = loss_fn(x, target)
    return {
        "output": max_error(loss, loss_torch),
        "input grad": max_error(loss_fn.backward(g), xt.grad),
    }


def compare_optimizer(name: str, steps: int = 50, dtype=torch.float64, **options) -> dict:
    """`steps` updates of scratch.<name> and torch.optim.<name> from the same parameters and
    the same sequence of gradients; error of the parameters at the end, and after a state_dict
    round trip halfway."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=g, dtype=dtype), torch.randn(4, generator=g, dtype=dtype)]
    grads = [[torch.randn(p.shape, generator=g, dtype=dtype) for p in start] for _ in range(steps)]
    p_torch = [nn.Parameter(p.clone()) for p in start]
    p_scratch = [nn.Parameter(p.clone()) for p in start]
    opt_torch = getattr(torch.optim, name)(p_torch, **options)
    opt_scratch = getattr(scratch, name)(p_scratch, **options)
    for step, grad in enumerate(grads):
        for params, opt in ((p_torch, opt_torch), (p_scratch, opt_scratch)):
            opt.zero_grad()
            for p, gp in zip(params, grad, strict=True):
                p.grad = gp.clone()
            opt.step()
        if step == steps // 2:  # the state must survive a save and load
            fresh = getattr(scratch, name)(p_scratch, **options)
            fresh.load_state_dict(opt_scratch.state_dict())
            opt_scratch = fresh
    return {
        "output": max(max_error(a, b) for a, b in zip(p_scratch, p_torch, strict=True)),
    }


def compare_model(name: str, shape, dtype=torch.float64) -> dict:
    """A whole network, both backends, same weights and batch: loss and every parameter grad."""
    torch.manual_seed(0)
    reference = models.build(name, "torch").to(dtype)
    mine = models.build(name, "scratch").to(dtype)
    mine.load_state_dict(reference.state_dict())
    for net in (reference, mine):  # batch norm in training mode, dropout off: same on both
        for layer in net.modules():
            if type(layer).__name__ == "Dropout":
                layer.eval()
    x = make_input(shape, dtype)
    target = torch.arange(shape[0]) % 10
    loss_torch = nn.functional.cross_entropy(reference(x), target)
    loss_torch.backward()
    loss_fn = scratch.CrossEntropyLoss()
    loss = loss_fn(mine(x), target)
    backends.backward(mine, loss_fn.backward())
    errors = {"output": max_error(loss, loss_torch)}
    for (key, p_torch), (_, p_scratch) in zip(
        reference.named_parameters(), mine.named_parameters(), strict=True
    ):
        errors[f"{key} grad"] = max_error(p_scratch.grad, p_torch.grad)
    for (key, b_torch), (_, b_scratch) in zip(
        reference.named_buffers(), mine.named_buffers(), strict=True
    ):
        errors[key] = max_error(b_scratch, b_torch)  # batch norm's running statistics
    return errors


def _layer(scratch_cls, torch_cls, shape, *args, ties=False, train=True, **kwargs):
    def run(dtype):
        return compare_layer(
            scratch_cls(*args, **kwargs),
            torch_cls(*args, **kwargs),
            make_input(shape, dtype, ties),
            train,
        )

    return run


def _logits(n, c, scale=1.0):
    def run(dtype, **options):
        x = make_input((n, c), dtype) * scale
        return compare_loss(x, torch.arange(n) % c, **options)

    return run


# name -> function(dtype) -> {what: max abs error}. Small inputs: `digitlab check` runs them all.
CASES = {
    "Conv2d 5x5 pad 2 (cnn conv1)": _layer(
        scratch.Conv2d, nn.Conv2d, (2, 1, 28, 28), 1, 16, 5, 1, 2
    ),
    "Conv2d 16->32 (cnn conv2)": _layer(
        scratch.Conv2d, nn.Conv2d, (2, 16, 14, 14), 16, 32, 5, 1, 2
    ),
    "Conv2d 3x2 stride 2 pad 1": _layer(
        scratch.Conv2d, nn.Conv2d, (3, 3, 9, 8), 3, 4, (3, 2), 2, 1
    ),
    "Conv2d dilation 2 stride 3": _layer(
        scratch.Conv2d, nn.Conv2d, (2, 2, 11, 13), 2, 3, 3, 3, 3, dilation=2
    ),
    "Conv2d no bias": _layer(scratch.Conv2d, nn.Conv2d, (1, 4, 6, 6), 4, 2, 1, bias=False),
    "Linear": _layer(scratch.Linear, nn.Linear, (7, 20), 20, 10),
    "ReLU": _layer(scratch.ReLU, nn.ReLU, (3, 4, 5, 5)),
    "MaxPool2d 2": _layer(scratch.MaxPool2d, nn.MaxPool2d, (2, 3, 8, 8), 2),
    "MaxPool2d 3 stride 2 pad 1 (overlap, ties)": _layer(
        scratch.MaxPool2d, nn.MaxPool2d, (2, 3, 9, 7), 3, 2, 1, ties=True
    ),
    "MaxPool2d 2 stride 1 (overlap, ties)": _layer(
        scratch.MaxPool2d, nn.MaxPool2d, (1, 2, 6, 6), 2, 1, ties=True
    ),
    "Flatten": _layer(scratch.Flatten, nn.Flatten, (3, 2, 4, 4)),
    "Dropout (eval)": _layer(scratch.Dropout, nn.Dropout, (3, 10), 0.5, train=False),
    "BatchNorm2d (train)": _layer(scratch.BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 5), 3),
    "BatchNorm2d (eval)": _layer(scratch.BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 5), 3, train=False),
    "AdaptiveAvgPool2d(1)": _layer(
        scratch.AdaptiveAvgPool2d, nn.AdaptiveAvgPool2d, (2, 3, 5, 7), 1
    ),
    "CrossEntropyLoss": _logits(7, 10),
    "CrossEntropyLoss logits 1e4": _logits(5, 10, scale=1e4),
    "CrossEntropyLoss sum, smoothing 0.1": lambda dtype: _logits(7, 10)(
        dtype, reduction="sum", label_smoothing=0.1
    ),
    "CrossEntropyLoss none": lambda dtype: _logits(7, 10)(dtype, reduction="none"),
    "SGD": lambda dtype: compare_optimizer("SGD", dtype=dtype, lr=0.1),
    "SGD momentum, nesterov, weight decay": lambda dtype: compare_optimizer(
        "SGD", dtype=dtype, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "Adam": lambda dtype: compare_optimizer("Adam", dtype=dtype, lr=1e-3),
    "Adam betas, eps, weight decay": lambda dtype: compare_optimizer(
        "Adam", dtype=dtype, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01
    ),
    "CNN (whole network)": lambda dtype: compare_model("cnn", (3, 1, 28, 28), dtype),
    "FCN (whole network, 36x44 input)": lambda dtype: compare_model("fcn", (2, 1, 36, 44), dtype),
    "Fast (whole network)": lambda dtype: compare_model("fast", (3, 1, 28, 28), dtype),
    "Best (whole network, batch norm)": lambda dtype: compare_model("best", (4, 1, 28, 28), dtype),
}


def run_checks(dtype=torch.float64) -> dict:
    """Every case in CASES: {"checks": [{"name", "max_abs_error", "ok"}], "ok"}."""
    tolerance = TOLERANCE[dtype]
    rows = []
    for name, case in CASES.items():
        error = max(case(dtype).values())
        rows.append({"name": name, "max_abs_error": error, "ok": error <= tolerance})
    return {"checks": rows, "ok": all(row["ok"] for row in rows)}
