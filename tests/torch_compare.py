"""digitlab.scratch's pieces beside PyTorch's over test_scratch.py's wider grids: the largest
absolute difference of the output, dL/dinput and every dL/dparameter. (`digitlab check` runs the
catalogue's cases through workbench.layercheck; these grids are the test suite's own.)"""

import torch
from torch import nn

from digitlab import scratch
from digitlab.nets import backends, models


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
