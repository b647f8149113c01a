"""The hand-written layers against PyTorch (values and gradients) and against finite differences."""

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import digitlab.scratch
from digitlab import scratch
from digitlab.scratch.fast.batchnorm import FAR, ROWS_UP_TO, Rows, column_sums
from digitlab.scratch.fast.products import long_inner_product
from torch_compare import (
    compare_layer,
    compare_loss,
    compare_model,
    compare_optimizer,
    make_input,
)

F64, F32 = torch.float64, torch.float32


def assert_close(errors: dict, forward: float, grads: float):
    assert errors["output"] <= forward, errors
    assert all(v <= grads for k, v in errors.items() if k != "output"), errors


# (batch, in, out, H, W, kernel, stride, padding, dilation, bias)
CONV_GRID = [
    (1, 1, 16, 28, 28, 5, 1, 2, 1, True),
    (7, 16, 32, 14, 14, 5, 1, 2, 1, True),
    (7, 3, 5, 11, 9, 3, 2, 1, 1, True),
    (1, 2, 8, 13, 7, (3, 2), 3, 0, 1, False),
    (2, 8, 1, 10, 12, (2, 4), (2, 1), (3, 2), 1, True),
    (3, 4, 6, 15, 15, 3, 1, 3, 2, True),
    (2, 5, 3, 9, 17, (1, 3), (3, 2), (0, 1), (1, 2), True),
    (1, 1, 1, 5, 5, 5, 1, 0, 1, True),
    (2, 1, 3, 9, 9, 3, 1, 1, 1, False),  # one channel, no bias: no row of ones
    (3, 1, 4, 11, 10, (3, 2), (2, 1), (1, 2), (1, 2), True),  # one channel, images side by side
    # through the DFT (stride 1, several input channels): odd sizes, padding past the kernel
    (2, 3, 4, 9, 7, (3, 2), 1, (2, 3), 1, True),
    (3, 6, 5, 7, 7, 5, 1, 0, 1, False),
    (1, 4, 2, 6, 5, 3, 1, 1, 1, True),
]


def maps_side_by_side(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) laid out (H, W, N, C) in memory: the fast Conv2d's output through the DFT or
    from one input channel."""
    return t.permute(2, 3, 0, 1).contiguous().permute(2, 3, 0, 1)


def fast_against_plain(
    fast, plain, x: torch.Tensor, train: bool = True, layout=torch.contiguous_format
) -> dict:
    """Both versions of one layer on the same x, dL/dy and parameters (the plain one's, copied):
    the largest difference of output, dL/dx, each dL/dparameter and each buffer after the call.
    layout=torch.channels_last lays x and dL/dy out channels-last, as the fast layers do;
    layout=maps_side_by_side as the fast Conv2d leaves them."""
    plain, fast = plain.to(x.dtype).train(train), fast.to(x.dtype).train(train)
    fast.load_state_dict(plain.state_dict())
    lay = layout if callable(layout) else lambda t: t.clone(memory_format=layout)
    results = []
    for layer in (fast, plain):
        y = layer(lay(x))
        grad_out = lay(make_input(y.shape, x.dtype, seed=1))
        gx = layer.backward(grad_out)
        results.append([y, gx, *(q.grad for q in layer.parameters()), *layer.buffers()])
    names = ["output", "input grad"]
    names += [f"{name} grad" for name, _ in plain.named_parameters()]
    names += [name for name, _ in plain.named_buffers()]
    return {name: (a - b).abs().max().item() for name, a, b in zip(names, *results, strict=True)}


@pytest.mark.parametrize("conv", [scratch.Conv2d, scratch.PlainConv2d])
@pytest.mark.parametrize("n, cin, cout, h, w, k, s, p, d, bias", CONV_GRID)
def test_conv2d_matches_torch(conv, n, cin, cout, h, w, k, s, p, d, bias):
    args = (cin, cout, k, s, p, d)
    errors = compare_layer(
        conv(*args, bias=bias), nn.Conv2d(*args, bias=bias), make_input((n, cin, h, w))
    )
    assert_close(errors, 1e-10, 1e-8)
    errors = compare_layer(conv(*args), nn.Conv2d(*args), make_input((n, cin, h, w), F32))
    assert errors["output"] <= 1e-5


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("n, cin, cout, h, w, k, s, p, d, bias", CONV_GRID)
def test_fast_conv2d_gives_the_plain_ones_numbers(train, n, cin, cout, h, w, k, s, p, d, bias):
    """scratch.Conv2d (in training through the DFT where it pays, else its own im2col) against
    PlainConv2d, in float64: output, dL/dx, dL/dW, dL/db."""
    args = (cin, cout, k, s, p, d)
    fast, plain = scratch.Conv2d(*args, bias=bias), scratch.PlainConv2d(*args, bias=bias)
    errors = fast_against_plain(fast, plain, make_input((n, cin, h, w)), train)
    assert_close(errors, 1e-12, 1e-10)


def test_the_conv_grid_reaches_every_fast_path():
    """The grid above holds layers through the DFT, one-channel layers with and without the
    bias's row of ones, and strided or dilated im2col layers."""
    layers = [scratch.Conv2d(*row[1:3], *row[5:9], bias=row[9]) for row in CONV_GRID]
    assert sum(conv.through_dft() for conv in layers) >= 4
    one_channel = [conv.bias is not None for conv in layers if conv.in_channels == 1]
    assert True in one_channel and False in one_channel
    assert any(conv.stride != (1, 1) or conv.dilation != (1, 1) for conv in layers)


def test_conv2d_takes_the_dft_path_exactly_where_it_pays():
    assert scratch.Conv2d(16, 32, 5, 1, 2).through_dft()  # the study CNN's conv2
    assert scratch.Conv2d(32, 64, 3, 1, 1).through_dft()
    assert not scratch.Conv2d(1, 16, 5, 1, 2).through_dft()  # one input channel
    assert not scratch.Conv2d(16, 32, 5, 2, 2).through_dft()  # strided
    assert not scratch.Conv2d(16, 32, 3, 1, 2, dilation=2).through_dft()
    assert not scratch.Conv2d(50, 50, 1).through_dft()  # 1x1: already one product
    assert not scratch.Conv2d(16, 32, 5, 1, 2).eval().through_dft()  # eval keeps exact ties


@pytest.mark.parametrize("dtype", [F64, F32])
def test_conv2d_dft_path_gives_im2cols_numbers(dtype):
    """The two paths of one layer, on the same input and gradient: output, dL/dx, dL/dW."""
    conv = scratch.Conv2d(16, 32, 5, 1, 2).to(dtype)
    x, gy = make_input((4, 16, 14, 14), dtype), make_input((4, 32, 14, 14), dtype, seed=1)
    y = conv(x)
    gx = conv.backward(gy)
    gw, conv.weight.grad = conv.weight.grad, None
    with torch.no_grad():
        y2, saved = conv.im2col_forward(x, (14, 14))
        gx2 = conv.im2col_backward(gy, saved, True)
    tol = 1e-10 if dtype == F64 else 1e-4  # float32: dL/dW sums 784 products, so 1e-3
    assert (y - y2).abs().max() < tol and (gx - gx2).abs().max() < tol
    assert (gw - conv.weight.grad).abs().max() < 10 * tol


# (batch, C, H, W, kernel, stride, padding, dilation, ties)
POOL_GRID = [
    (7, 16, 28, 28, 2, None, 0, 1, False),
    (1, 3, 9, 7, 3, 2, 1, 1, True),
    (2, 2, 8, 8, 2, 1, 0, 1, True),
    (3, 4, 11, 10, (3, 2), (3, 1), (1, 0), 1, True),
    (2, 1, 12, 13, 3, 3, 1, 1, False),
    (2, 3, 11, 11, 2, 2, 1, 2, True),
    (1, 8, 5, 5, 5, 1, 2, 1, True),
]


@pytest.mark.parametrize("pool", [scratch.MaxPool2d, scratch.PlainMaxPool2d])
@pytest.mark.parametrize("n, c, h, w, k, s, p, d, ties", POOL_GRID)
def test_maxpool2d_matches_torch_including_ties(pool, n, c, h, w, k, s, p, d, ties):
    x = make_input((n, c, h, w), ties=ties)
    errors = compare_layer(pool(k, s, p, d), nn.MaxPool2d(k, s, p, d), x)
    assert_close(errors, 1e-10, 1e-8)


@pytest.mark.parametrize("n, c, h, w, k, s, p, d, ties", POOL_GRID)
def test_fast_maxpool2d_routes_as_the_plain_one(n, c, h, w, k, s, p, d, ties):
    """The two 1-D passes against the max over whole windows, on inputs full of ties: the same
    maxima exactly, and every gradient to the same pixel (a tie sent elsewhere would be off by
    a whole gradient, not by rounding)."""
    fast, plain = scratch.MaxPool2d(k, s, p, d), scratch.PlainMaxPool2d(k, s, p, d)
    errors = fast_against_plain(fast, plain, make_input((n, c, h, w), ties=True))
    assert_close(errors, 0, 1e-12)


@pytest.mark.parametrize("n", [1, 7])
def test_simple_layers_match_torch(n):
    for make, shape in [
        (lambda m: m.Linear(9, 4), (n, 9)),
        (lambda m: m.Linear(6, 3, bias=False), (n, 2, 6)),
        (lambda m: m.ReLU(), (n, 3, 5, 4)),
        (lambda m: m.Flatten(), (n, 3, 5, 4)),
        (lambda m: m.AdaptiveAvgPool2d(1), (n, 4, 3, 5)),
        (lambda m: m.Dropout(0.3), (n, 8)),  # compared in eval mode below
    ]:
        train = not isinstance(make(nn), nn.Dropout)
        errors = compare_layer(make(scratch), make(nn), make_input(shape), train=train)
        assert_close(errors, 1e-10, 1e-8)


@pytest.mark.parametrize("bn", [scratch.BatchNorm2d, scratch.PlainBatchNorm2d])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("n", [1, 7])
def test_batchnorm2d_train_and_eval_match_torch(bn, momentum, n):
    shape = (n, 3, 4, 5)
    bn_scratch, bn_torch = bn(3, momentum=momentum), nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():  # non-trivial gamma, beta and running statistics
        bn_torch.weight.uniform_(0.5, 2)
        bn_torch.bias.uniform_(-1, 1)
    for step in range(3):
        errors = compare_layer(bn_scratch, bn_torch, make_input(shape, seed=step) * 3 + 1)
        assert_close(errors, 1e-10, 1e-8)
        bn_scratch.load_state_dict(bn_torch.state_dict())
    errors = compare_layer(bn_scratch, bn_torch, make_input(shape, seed=9), train=False)
    assert_close(errors, 1e-10, 1e-8)
    assert bn_scratch.num_batches_tracked.item() == 3


@pytest.mark.parametrize(
    "layout", [torch.contiguous_format, torch.channels_last, maps_side_by_side]
)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (7, 2, 3, 3), (2, 5, 1, 7), (3, 33, 2, 2)])
def test_fast_batchnorm2d_gives_the_plain_ones_numbers(layout, train, affine, shape):
    """The fused passes against the formulas as derived, float64: output, dL/dx, dL/dgamma,
    dL/dbeta and the running statistics, over three steps with a non-trivial gamma and beta,
    also on the layouts the other fast layers hand it, where training works on the memory as
    an (M, C) matrix (up to ROWS_UP_TO channels; 33 takes the other path)."""
    plain = scratch.PlainBatchNorm2d(shape[1], momentum=None, affine=affine)
    if affine:
        with torch.no_grad():
            plain.weight.uniform_(0.5, 2)
            plain.bias.uniform_(-1, 1)
    plain.running_var.fill_(2.0)
    fast = scratch.BatchNorm2d(shape[1], momentum=None, affine=affine)
    for step in range(3):
        x = make_input(shape, seed=step) * 3 + 1
        assert_close(fast_against_plain(fast, plain, x, train, layout), 1e-12, 1e-10)
        rows = train and layout != torch.contiguous_format and shape[1] <= ROWS_UP_TO
        assert isinstance(fast.saved(), Rows) == rows
        plain.zero_grad()
        fast.zero_grad()


@pytest.mark.parametrize("deviations", [0, 3, 20])
def test_fast_batchnorm2d_in_float32_with_a_mean_far_from_zero(deviations):
    """The (M, C) path's var = mean(x^2) - mu^2 (and sum(gy * x) - mu * sum(gy)) in float32, on
    a training batch the size of the fast net's first (M = 36,864 values per channel), with the
    mean 0, 3 and 20 standard deviations from zero, against the plain layer, which centres the
    batch first: output and dL/dx within 2e-5 (past FAR the fast one centres too, and a mean of
    20 is then a few float32 steps, 6e-6, off its other order of summing; mean(x^2) - mu^2
    would be 3e-4 off), dL/dgamma (sums over 36,864 values) within 5e-3, the running variance
    within 1e-6. The fast net's first batch norm saw means up to 2.9 standard deviations (one
    speedrun, seed 0)."""
    plain, fast = scratch.PlainBatchNorm2d(16), scratch.BatchNorm2d(16)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 2)
        plain.bias.uniform_(-1, 1)
    x = make_input((256, 16, 12, 12), F32) + deviations
    errors = fast_against_plain(fast, plain, x, layout=maps_side_by_side)
    centred = deviations > FAR
    assert isinstance(fast.saved(), Rows) and bool(fast.saved().mean.any()) != centred
    assert errors["output"] <= 2e-5 and errors["input grad"] <= 2e-5, errors
    assert errors["weight grad"] <= 5e-3 and errors["running_var"] <= 1e-6, errors


@pytest.mark.parametrize("m, c", [(36864, 16), (36863, 16), (8192, 32), (100, 3), (4096, 200)])
def test_column_sums_are_the_sums_over_rows(m, c):
    """The batch norm's sum over M, taken as wider rows where that is faster, against sum(0)."""
    rows = make_input((m, c), seed=2)
    assert torch.allclose(column_sums(rows), rows.sum(0), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("inner", [63, 64, 36864])
def test_long_inner_product_splits_between_threads_and_adds_up(threads, inner):
    """a (M, L) @ b (L, P) as one partial product per thread, with either operand transposed
    in memory as the callers hand them (conv's cols^T, batch norm's gy^T)."""
    a, b = make_input((16, inner), seed=3), make_input((inner, 5), seed=4)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for left, right in ((a, b), (a.t().contiguous().t(), b), (a, b.t().contiguous().t())):
            assert torch.allclose(long_inner_product(left, right), a @ b, rtol=1e-12, atol=1e-10)
    finally:
        torch.set_num_threads(saved)


def test_dropout_in_training_drops_and_scales_consistently():
    torch.manual_seed(0)
    layer = scratch.Dropout(0.25)
    x = torch.rand(200, 500, dtype=F64) + 1
    y = layer(x)
    kept = y != 0
    assert abs(1 - kept.double().mean().item() - 0.25) < 0.01
    assert torch.allclose(y[kept], x[kept] / 0.75)
    g = torch.randn_like(x)
    assert torch.allclose(layer.backward(g), g * kept / 0.75, rtol=1e-12, atol=0)
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("n", [1, 7])
def test_cross_entropy_matches_torch(reduction, smoothing, n):
    for scale in (1.0, 1e4):
        x = make_input((n, 10)) * scale
        errors = compare_loss(
            x, torch.arange(n) % 10, reduction=reduction, label_smoothing=smoothing
        )
        assert_close(errors, 1e-10 * scale, 1e-8)


def test_cross_entropy_is_finite_for_huge_logits():
    loss_fn = scratch.CrossEntropyLoss()
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=F32)
    loss = loss_fn(logits, torch.tensor([1, 1]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1e4)
    assert torch.isfinite(loss_fn.backward()).all()


@pytest.mark.parametrize(
    "name, options",
    [
        ("SGD", dict(lr=0.1)),
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("SGD", dict(lr=0.1, weight_decay=0.01)),
        ("Adam", dict(lr=1e-3)),
        ("Adam", dict(lr=0.01, betas=(0.5, 0.9))),
        ("Adam", dict(lr=0.01, eps=1e-3)),
        ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ],
)
def test_optimizers_match_torch_over_50_steps(name, options):
    for dtype in (F64, F32):
        assert compare_optimizer(name, 50, dtype, **options)["output"] <= 1e-6


@pytest.mark.parametrize(
    "name, shape",
    [
        ("cnn", (7, 1, 28, 28)),
        ("cnn", (1, 1, 28, 28)),
        ("fcn", (3, 1, 28, 28)),
        ("fcn", (2, 1, 56, 84)),
    ],
)
def test_whole_networks_match_torch(name, shape):
    assert_close(compare_model(name, shape), 1e-8, 1e-8)


def test_gradients_accumulate_until_zero_grad():
    layer = scratch.Conv2d(2, 3, 3, padding=1).double()
    x = make_input((2, 2, 5, 5))
    g = make_input((2, 3, 5, 5), seed=1)
    layer(x)
    layer.backward(g)
    first = layer.weight.grad.clone()
    layer(x)
    layer.backward(g)
    assert torch.allclose(layer.weight.grad, 2 * first)
    opt = scratch.SGD(layer.parameters(), lr=0.1)
    opt.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def numerical_grad(f, t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of the scalar f() with respect to every element of t (in place)."""
    grad = torch.zeros_like(t)
    flat, gflat = t.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: scratch.Conv2d(2, 3, (3, 2), stride=2, padding=1, dilation=(1, 2)), (2, 2, 6, 7)),
        (lambda: scratch.Conv2d(3, 2, 3, padding=(2, 1)), (2, 3, 5, 4)),  # through the DFT
        (lambda: scratch.MaxPool2d(3, 2, 1), (2, 2, 7, 6)),
        (lambda: scratch.BatchNorm2d(2), (3, 2, 3, 3)),
        (lambda: scratch.PlainConv2d(2, 3, (3, 2), 2, 1, (1, 2)), (2, 2, 6, 7)),
        (lambda: scratch.PlainMaxPool2d(3, 2, 1), (2, 2, 7, 6)),
        (lambda: scratch.PlainBatchNorm2d(2), (3, 2, 3, 3)),
    ],
)
def test_backward_matches_finite_differences(layer, shape):
    layer = layer().double()
    x = make_input(shape)
    y = layer(x)
    g = make_input(y.shape, seed=1)

    def loss():
        return (layer(x) * g).sum().item()

    layer(x)
    gx = layer.backward(g)
    assert (gx - numerical_grad(loss, x)).abs().max() < 1e-6
    for p in layer.parameters():
        assert (p.grad - numerical_grad(loss, p.data)).abs().max() < 1e-6


def test_cross_entropy_backward_matches_finite_differences():
    for options in (dict(), dict(reduction="sum", label_smoothing=0.3)):
        loss_fn = scratch.CrossEntropyLoss(**options)
        x, target = make_input((4, 6)), torch.tensor([0, 5, 2, 2])
        loss_fn(x, target)
        g = loss_fn.backward()
        numerical = numerical_grad(lambda f=loss_fn, x=x, t=target: f(x, t).item(), x)
        assert (g - numerical).abs().max() < 1e-7


def test_bad_shapes_and_arguments_raise_value_error():
    with pytest.raises(ValueError, match=r"Conv2d expects input \(N, C, H, W\) with C=3"):
        scratch.Conv2d(3, 4, 3)(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        scratch.Conv2d(1, 1, 5)(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="kernel_size must be at least 1"):
        scratch.Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match="stride must be an int or a pair"):
        scratch.Conv2d(1, 1, 3, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"Linear expects input \(N, 5\)"):
        scratch.Linear(5, 2)(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="padding .* at most half"):
        scratch.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="integer targets"):
        scratch.CrossEntropyLoss()(torch.zeros(3, 10), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        scratch.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="before forward"):
        scratch.ReLU().backward(torch.zeros(3))
    with pytest.raises(ValueError, match="grad_out"):
        layer = scratch.Conv2d(1, 2, 3)
        layer(torch.zeros(1, 1, 5, 5))
        layer.backward(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="Adam needs lr > 0"):
        scratch.Adam([nn.Parameter(torch.zeros(1))], lr=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
@pytest.mark.parametrize("name", ["cnn", "best"])
def test_cuda_matches_cpu(name):
    """The hand-written layers on the GPU give the CPU's values: logits, loss and every
    parameter's gradient of one training batch, in float64."""
    from digitlab.nets import backends

    torch.manual_seed(0)
    cpu = digitlab.nets.models.build(name, "scratch").double().train()
    gpu = digitlab.nets.models.build(name, "scratch").double().train().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x, y = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.arange(4)
    results = []
    for model, device in ((cpu, "cpu"), (gpu, "cuda")):
        loss_fn = scratch.CrossEntropyLoss()
        logits = model(x.to(device))
        loss = loss_fn(logits, y.to(device))
        backends.backward(model, loss_fn.backward())
        assert logits.device.type == device
        grads = [p.grad.cpu() for p in model.parameters()]
        results.append((logits.cpu(), loss.cpu(), grads))
    (l1, s1, g1), (l2, s2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-10) and torch.allclose(s1, s2, atol=1e-10)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g1, g2, strict=True))


# Calls that would hand the math to PyTorch: kernels for convolution, pooling, softmax and
# friends, unfold/fold, and autograd. Only generic tensor operations (and F.pad) may be used.
FORBIDDEN_NAMES = {
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "convolution",
    "max_pool1d",
    "max_pool2d",
    "max_pool2d_with_indices",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "nll_loss",
    "batch_norm",
    "dropout",
    "relu",
    "linear",
    "unfold",
    "fold",
    "autograd",
    "requires_grad",
    "requires_grad_",
    "grad_fn",
    "optim",
}
TORCH_LAYERS = {
    "Conv2d",
    "Linear",
    "ReLU",
    "MaxPool2d",
    "BatchNorm2d",
    "Dropout",
    "Flatten",
    "AdaptiveAvgPool2d",
    "CrossEntropyLoss",
}


def forbidden_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_NAMES:
                found.append(node.attr)
            base = node.value
            if isinstance(base, ast.Name) and base.id == "F" and node.attr != "pad":
                found.append(f"F.{node.attr}")
            if isinstance(base, ast.Name) and base.id == "nn" and node.attr in TORCH_LAYERS:
                found.append(f"nn.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "backward" and not node.args and not node.keywords:
                found.append(".backward()")  # autograd's backward, not a layer's backward(grad)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
            for name in names:
                if "autograd" in name or name.startswith("torch.optim") or name.endswith(".grad"):
                    found.append(f"import {name}")
        elif isinstance(node, ast.keyword) and node.arg == "requires_grad":
            found.append("requires_grad=")
    return found


SCRATCH = Path(digitlab.scratch.__file__).parent
SCRATCH_FILES = sorted(SCRATCH.rglob("*.py"))


def test_scratch_source_uses_only_generic_tensor_operations():
    names = {str(path.relative_to(SCRATCH)) for path in SCRATCH_FILES}
    assert {"conv.py", "fast/conv.py", "fast/spectral.py", "fast/pooling.py"} <= names
    for path in SCRATCH_FILES:
        assert forbidden_calls(path.read_text(encoding="utf-8")) == [], path.name


def test_the_public_layers_are_the_fast_ones_over_the_plain_ones():
    """What the nets build (models.build(name, "scratch")) is the fast layer; it stands in for the
    plain one (a subclass, same constructor, parameters and buffers)."""
    from digitlab.nets import models

    for fast, plain in [
        (scratch.Conv2d, scratch.PlainConv2d),
        (scratch.MaxPool2d, scratch.PlainMaxPool2d),
        (scratch.BatchNorm2d, scratch.PlainBatchNorm2d),
    ]:
        assert issubclass(fast, plain) and fast.__module__.startswith("digitlab.scratch.fast.")
    kinds = {type(m) for m in models.build("best", "scratch").modules()}
    assert {scratch.Conv2d, scratch.MaxPool2d, scratch.BatchNorm2d} <= kinds
    assert not kinds & {scratch.PlainConv2d, scratch.PlainMaxPool2d, scratch.PlainBatchNorm2d}


def test_the_speedruns_net_keeps_its_maps_side_by_side_from_conv1_to_batch_norm():
    """The layouts the speed paths hand each other in a training forward of the `fast` net:
    conv1 (one channel) leaves its output (OH, OW, N, O) in memory, the max pool keeps it, and
    both batch norms then take the (M, C) path. A layer falling back to another layout would
    still compute the right numbers (the other tests), only slower: this test says which."""
    from digitlab.nets import models

    net = models.build("fast", "scratch").train()
    conv1, pool1, bn1 = list(net.conv1)[:3]
    with torch.no_grad():
        y = conv1(make_input((5, 1, 28, 28), F32))
        assert y.permute(2, 3, 0, 1).is_contiguous()  # (OH, OW, N, O)
        assert pool1(y).permute(2, 3, 0, 1).is_contiguous()
        net(make_input((5, 1, 28, 28), F32))
    assert isinstance(bn1.saved(), Rows) and isinstance(list(net.conv2)[2].saved(), Rows)


@pytest.mark.parametrize(
    "x_layout, grad_layout",
    [(maps_side_by_side, torch.contiguous_format), (torch.contiguous_format, maps_side_by_side)],
)
def test_fast_batch_norm_takes_a_gradient_laid_out_otherwise(x_layout, grad_layout):
    """dL/dy need not lie as x did (another layer's backward may hand it in any layout): on
    both paths, the (M, C) one (x side by side) and the other (x contiguous)."""
    plain, fast = scratch.PlainBatchNorm2d(3), scratch.BatchNorm2d(3)
    x, gy = make_input((4, 3, 5, 6)) * 2 + 1, make_input((4, 3, 5, 6), seed=1)
    lay = {maps_side_by_side: maps_side_by_side, torch.contiguous_format: torch.clone}
    results = []
    for layer in (fast, plain):
        layer.double()
        y = layer(lay[x_layout](x))
        results.append((y, layer.backward(lay[grad_layout](gy)), layer.weight.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_source_check_catches_forbidden_calls():
    samples = [
        "import torch.nn.functional as F\ny = F.conv2d(x, w)",
        "y = torch.nn.functional.max_pool2d(x, 2)",
        "y = x.unfold(2, 3, 1)",
        "y = torch.softmax(x, 1)",
        "loss.backward()",
        "x.requires_grad_(True)",
        "t = torch.zeros(3, requires_grad=True)",
        "from torch import autograd",
        "g = torch.autograd.grad(y, x)",
        "layer = nn.Conv2d(1, 2, 3)",
        "opt = torch.optim.Adam(params)",
    ]
    for sample in samples:
        assert forbidden_calls(sample), sample
    assert forbidden_calls("y = F.pad(x, (1, 1))\ngx = layer.backward(gy)") == []
