"""The networks, written once and built from either backend's layers.

`layers` is a namespace of layer classes with torch.nn's names: `torch.nn` (backend "torch", the
reference), `digitlab.scratch` (forward and backward by hand) or a learner's own (see
digitlab.nets.backends). All give the same parameter names and shapes, so a state_dict
trained by one backend loads into another.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.nets import backends, own_model
from digitlab.nets.model_spec import is_file_spec, split_spec


class Stack(nn.Module):
    """A network whose children run in the order they were assigned: x -> child_k(... child_1(x)).
    (A hand-written backend runs their backward in reverse: digitlab.nets.backends.backward.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x

    def blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The forward, also keeping each conv block's output: (output, {"conv1": (N, C, H, W),
        ...}), in order. What the feature maps and the "not sure" features are read from."""
        outputs = {}
        for name, layer in self.named_children():
            x = layer(x)
            if name.startswith("conv"):
                outputs[name] = x
        return x, outputs


def conv_block(layers, in_channels: int, out_channels: int):
    """The study log's block: Conv2d(in, out, 5, 1, 2), ReLU, MaxPool2d(2); halves H and W."""
    return layers.Sequential(
        layers.Conv2d(in_channels, out_channels, 5, 1, 2), layers.ReLU(), layers.MaxPool2d(2)
    )


class CNN(Stack):
    """The study log's CNN: (N, 1, 28, 28) images -> (N, 10) logits.

    conv1: Conv2d(1, 16, 5, 1, 2), ReLU, MaxPool2d(2)   -> (N, 16, 14, 14)
    conv2: Conv2d(16, 32, 5, 1, 2), ReLU, MaxPool2d(2)  -> (N, 32, 7, 7)
    out:   flatten, Linear(32 * 7 * 7, 10)              -> (N, 10)
    """

    def __init__(self, layers=nn, num_classes: int = 10):
        super().__init__()
        self.conv1 = conv_block(layers, 1, 16)
        self.conv2 = conv_block(layers, 16, 32)
        self.flatten = layers.Flatten()
        self.out = layers.Linear(32 * 7 * 7, num_classes)


class FCN(Stack):
    """The study log's fully convolutional variant: (N, 1, H, W) -> (N, 10) logits, H, W >= 28.

    conv1, conv2 as in CNN                               -> (N, 32, H/4, W/4)
    conv3: Conv2d(32, 50, 5), ReLU (the Linear as a conv) -> (N, 50, H/4 - 4, W/4 - 4)
    conv4: Conv2d(50, 50, 1), ReLU
    out:   Conv2d(50, 10, 1)                             -> (N, 10, h, w) class score maps
    pool, flatten: global average over h, w              -> (N, 10)
    """

    def __init__(self, layers=nn, num_classes: int = 10):
        super().__init__()
        self.conv1 = conv_block(layers, 1, 16)
        self.conv2 = conv_block(layers, 16, 32)
        self.conv3 = layers.Sequential(layers.Conv2d(32, 50, 5), layers.ReLU())
        self.conv4 = layers.Sequential(layers.Conv2d(50, 50, 1), layers.ReLU())
        self.out = layers.Conv2d(50, num_classes, 1)
        self.pool = layers.AdaptiveAvgPool2d(1)
        self.flatten = layers.Flatten()


def bn_block(layers, in_channels, out_channels, kernel_size, pool: bool, padding=None):
    """Conv2d (no bias: the batch norm's shift replaces it), [MaxPool2d(2)], BatchNorm2d, ReLU.
    Pooling first, so batch norm and ReLU work on a quarter of the values. Padding defaults to
    kernel_size // 2 (the size kept)."""
    padding = kernel_size // 2 if padding is None else padding
    return layers.Sequential(
        layers.Conv2d(in_channels, out_channels, kernel_size, 1, padding, bias=False),
        *([layers.MaxPool2d(2)] if pool else []),
        layers.BatchNorm2d(out_channels),
        layers.ReLU(),
    )


class Fast(Stack):
    """The speedrun's net: the CNN's two 5x5 blocks, unpadded and batch-normalised.

    conv1: Conv2d(1, 16, 5), MaxPool2d(2), BatchNorm2d(16), ReLU    -> (N, 16, 12, 12)
    conv2: Conv2d(16, 32, 5), MaxPool2d(2), BatchNorm2d(32), ReLU   -> (N, 32, 4, 4)
    out:   flatten, Linear(32 * 4 * 4, 10)                           -> (N, 10)
    Unpadded, it does 37% of the CNN's multiply-adds (1.05M against 2.84M per image). Batch norm
    lets a high learning rate work from the first steps; placed after the pooling it normalises a
    quarter of the values. The convolutions have no bias: the batch norm's shift replaces it.
    """

    def __init__(self, layers=nn, num_classes: int = 10):
        super().__init__()
        self.conv1 = bn_block(layers, 1, 16, 5, pool=True, padding=0)
        self.conv2 = bn_block(layers, 16, 32, 5, pool=True, padding=0)
        self.flatten = layers.Flatten()
        self.out = layers.Linear(32 * 4 * 4, num_classes)


class Best(Stack):
    """The best recipe's net: three batch-normalised conv blocks, (N, 1, 28, 28) -> (N, 10).

    conv1: Conv2d(1, 32, 5, padding 2), MaxPool2d(2), BatchNorm2d, ReLU   -> (N, 32, 14, 14)
    conv2: Conv2d(32, 64, 3, padding 1), MaxPool2d(2), BatchNorm2d, ReLU  -> (N, 64, 7, 7)
    conv3: Conv2d(64, 128, 3, padding 1), BatchNorm2d, ReLU               -> (N, 128, 7, 7)
    out:   flatten, Linear(128 * 7 * 7, 10)                               -> (N, 10)
    No dropout: augmentation, label smoothing and weight decay regularise, and PyTorch's CPU
    dropout mask alone cost about a ninth of a training step.
    """

    def __init__(self, layers=nn, num_classes: int = 10):
        super().__init__()
        self.conv1 = bn_block(layers, 1, 32, 5, pool=True)
        self.conv2 = bn_block(layers, 32, 64, 3, pool=True)
        self.conv3 = bn_block(layers, 64, 128, 3, pool=False)
        self.flatten = layers.Flatten()
        self.out = layers.Linear(128 * 7 * 7, num_classes)


MODELS = {"cnn": CNN, "fcn": FCN, "fast": Fast, "best": Best}


def build(name: str = "cnn", backend="torch", args: dict | None = None) -> nn.Module:
    """A freshly initialised model `name` made of `backend`'s layers (a name or a
    digitlab.nets.backends.Backend): one of MODELS, or a learner's own class, "FILE.py[:Class]"
    made with `args` (torch's layers only: nets.own_model)."""
    backend = backends.get(backend)
    check_model(name, backend.name, backend.autograd)
    if is_file_spec(name):
        return own_model.build(name, args)
    return MODELS[name](backend.layers)


def check_model(name: str, backend: str, autograd: bool | None = None) -> None:
    """One line for an unknown net, or a learner's own one on hand-written layers: their class is
    made of torch.nn's layers, whose backward only autograd has."""
    if not is_file_spec(name):
        if name not in MODELS:
            raise DigitlabError(
                f"unknown model {name!r}; choose one of {', '.join(MODELS)}, or your own FILE.py"
            )
        return
    if autograd is None:
        autograd = backend in backends.BACKENDS and backends.get(backend).autograd
    if not autograd:
        raise DigitlabError(
            f"--backend {backend}: your model ({split_spec(name)[0].name}) is made of "
            "torch.nn's layers, whose backward is autograd's, so there is no hand-written "
            "backward to run; train it with --backend torch (to write the layers yourself: "
            "digitlab exercise)"
        )


def blocks(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(output, {name: (N, C, H, W) map}) of each conv block, as Stack.blocks gives; for a
    learner's own net, every top-level child whose output is a map (read through hooks)."""
    if isinstance(model, Stack):
        return model.blocks(x)
    outputs, hooks = {}, []
    for name, child in model.named_children():

        def keep(module, inputs, output, name=name):
            if torch.is_tensor(output) and output.dim() == 4:
                outputs[name] = output

        hooks.append(child.register_forward_hook(keep))
    try:
        return model(x), outputs
    finally:
        for hook in hooks:
            hook.remove()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
