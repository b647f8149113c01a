""" "By hand" checked by what runs: every ATen operation of one full scratch training step of
every model is recorded, and none may be a convolution, pooling, softmax, batch-norm, unfold or
im2col kernel, a loss kernel, or an autograd backward."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from digitlab.nets import backends, models
from digitlab.train import step

FORBIDDEN = (
    "conv",
    "pool",
    "softmax",
    "batch_norm",
    "im2col",
    "col2im",
    "unfold",
    "fold",
    "cross_entropy",
    "nll_loss",
    "backward",  # autograd's *_backward kernels (threshold_backward, ...)
)


class Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def step_ops(model_name: str, backend: str) -> set[str]:
    torch.manual_seed(0)
    record = backends.get(backend)
    model = models.build(model_name, record).train()
    shape = (4, 1, 36, 44) if model_name == "fcn" else (4, 1, 28, 28)
    x, y = torch.randn(shape), torch.arange(4)
    optimizer = record.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = step.make_loss(record)
    with Recorder() as recorder:
        step.train_step(model, loss_fn, optimizer, x, y, record)
    return recorder.ops


@pytest.mark.parametrize("model_name", ["cnn", "fcn", "fast", "best"])
def test_a_scratch_training_step_runs_no_library_layer_kernel(model_name):
    ops = step_ops(model_name, "scratch")
    assert "mm" in ops or "addmm" in ops or "bmm" in ops  # it did run the products
    assert sorted(op for op in ops if any(word in op for word in FORBIDDEN)) == []


def test_the_recorder_sees_what_the_torch_backend_runs():
    """The same step on torch's layers shows the kernels the test forbids: it can fail."""
    ops = step_ops("fast", "torch")
    assert any("conv" in op for op in ops) and any("backward" in op for op in ops)
