"""The catalogue of cases: one row per configuration of one class, checked against PyTorch.

LEARNER_CASES run on every file of layers (each small enough for a 5-deep Python loop and chosen
to break naive code: padding 0/1/2, stride 2, non-square inputs, batch 1, overlapping pooling
windows with ties, logits of +-1000, a grad_out that is not all ones, several optimizer steps with
momentum and weight decay). OWN_CASES are added for digitlab.scratch: the classes a learner does
not write (BatchNorm2d, Dropout, AdaptiveAvgPool2d, Sequential and whole networks), float64 where
rounding would hide a small bug, and the optimizers over 50 steps with a state_dict round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

F64 = torch.float64


@dataclass(frozen=True)
class Case:
    """One configuration of one class: `name` says what it tests; `kind` picks the runner
    (workbench.runners.RUNNERS). For "layer" cases `shape` is the input's (N, ...)."""

    layer: str
    name: str
    kind: str  # "layer", "accumulate", "init", "dropout", "network", "loss", "optim"
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    shape: tuple = ()
    ties: bool = False  # small integer inputs: pooling windows hold equal maxima
    scale: float = 1.0  # the inputs' (logits of +-1000 test a loss's stability)
    train: bool = True  # the layer's mode (batch norm, dropout)
    dtype: torch.dtype = torch.float32
    perturb: bool = False  # random parameters and buffers (batch norm's 1, 0 hide bugs)
    steps: int = 5  # optimizer steps
    reload: bool = False  # rebuild the optimizer from its state_dict halfway


C = Case
INIT = "the parameters as your constructor makes them"
SGD_MOMENTUM = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
ADAM_ALL = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)

LEARNER_CASES = (
    C("Conv2d", "3x3, padding 0, one channel, batch 1", "layer", (1, 1, 3), shape=(1, 1, 5, 5)),
    C(
        "Conv2d",
        "3x3, padding 0, 2 -> 3 channels, 5x6 input",
        "layer",
        (2, 3, 3),
        shape=(2, 2, 5, 6),
    ),
    C("Conv2d", "3x3, padding 1", "layer", (2, 3, 3), dict(padding=1), (2, 2, 5, 5)),
    C(
        "Conv2d",
        "5x5, padding 2 (the study CNN's)",
        "layer",
        (1, 4, 5),
        dict(padding=2),
        (2, 1, 8, 8),
    ),
    C(
        "Conv2d",
        "3x3, stride 2, padding 1, 7x6",
        "layer",
        (2, 3, 3),
        dict(stride=2, padding=1),
        (2, 2, 7, 6),
    ),
    C(
        "Conv2d",
        "5x5, stride 2, 3 channels, 9x11",
        "layer",
        (3, 2, 5),
        dict(stride=2),
        (1, 3, 9, 11),
    ),
    C("Conv2d", "gradients over two backward calls", "accumulate", (2, 3, 3), shape=(2, 2, 5, 5)),
    C("Conv2d", INIT, "init", (3, 4, 5)),
    C("Linear", "5 -> 3, batch 4", "layer", (5, 3), shape=(4, 5)),
    C("Linear", "7 -> 4, batch 1", "layer", (7, 4), shape=(1, 7)),
    C("Linear", "6 -> 6 (square), batch 3", "layer", (6, 6), shape=(3, 6)),
    C("Linear", "gradients over two backward calls", "accumulate", (5, 3), shape=(4, 5)),
    C("Linear", INIT, "init", (50, 20)),
    C("ReLU", "(2, 3, 4, 4)", "layer", shape=(2, 3, 4, 4)),
    C("ReLU", "(5, 7) with zeros", "layer", shape=(5, 7), ties=True),
    C("MaxPool2d", "2x2, stride 2", "layer", (2,), shape=(2, 2, 6, 6)),
    C("MaxPool2d", "2x2, stride 2, ties", "layer", (2,), shape=(2, 2, 6, 6), ties=True),
    C("MaxPool2d", "3x3, stride 2 (windows overlap)", "layer", (3, 2), shape=(1, 2, 7, 7)),
    C(
        "MaxPool2d",
        "3x3, stride 2, overlap and ties",
        "layer",
        (3, 2),
        shape=(2, 1, 7, 9),
        ties=True,
    ),
    C(
        "MaxPool2d",
        "2x2, stride 1, overlap and ties",
        "layer",
        (2, 1),
        shape=(1, 2, 5, 5),
        ties=True,
    ),
    C("Flatten", "(2, 3, 4, 4) -> (2, 48)", "layer", shape=(2, 3, 4, 4)),
    C("Flatten", "batch 1", "layer", shape=(1, 2, 3, 3)),
    C("CrossEntropyLoss", "batch 4, 5 classes", "loss", shape=(4, 5)),
    C("CrossEntropyLoss", "batch 1, 10 classes", "loss", shape=(1, 10)),
    C("CrossEntropyLoss", "batch 8, 10 classes", "loss", shape=(8, 10)),
    C("CrossEntropyLoss", "logits of +-1000 (stability)", "loss", shape=(4, 10), scale=1000.0),
    C("SGD", "lr 0.1, 5 steps", "optim", kwargs=dict(lr=0.1)),
    C(
        "SGD",
        "momentum 0.9, weight decay 0.01",
        "optim",
        kwargs=dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    C("SGD", "nesterov momentum 0.9", "optim", kwargs=dict(lr=0.05, momentum=0.9, nesterov=True)),
    C("Adam", "lr 0.01, 5 steps", "optim", kwargs=dict(lr=0.01)),
    C(
        "Adam",
        "betas (0.8, 0.99), weight decay 0.01",
        "optim",
        kwargs=dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
    ),
)

OWN_CASES = (
    C(
        "Conv2d",
        "5x5, padding 2, 1 -> 16, 28x28 (the CNN's conv1), float64",
        "layer",
        (1, 16, 5, 1, 2),
        shape=(2, 1, 28, 28),
        dtype=F64,
    ),
    C(
        "Conv2d",
        "5x5, padding 2, 16 -> 32 (the CNN's conv2, the DFT path), float64",
        "layer",
        (16, 32, 5, 1, 2),
        shape=(2, 16, 14, 14),
        dtype=F64,
    ),
    C(
        "Conv2d",
        "3x2, stride 2, padding 1, float64",
        "layer",
        (3, 4, (3, 2), 2, 1),
        shape=(3, 3, 9, 8),
        dtype=F64,
    ),
    C(
        "Conv2d",
        "dilation 2, stride 3, padding 3, float64",
        "layer",
        (2, 3, 3, 3, 3),
        dict(dilation=2),
        (2, 2, 11, 13),
        dtype=F64,
    ),
    C(
        "Conv2d",
        "1x1, no bias, batch 1, float64",
        "layer",
        (4, 2, 1),
        dict(bias=False),
        (1, 4, 6, 6),
        dtype=F64,
    ),
    C("Linear", "20 -> 10, batch 7, float64", "layer", (20, 10), shape=(7, 20), dtype=F64),
    C("Linear", "9 -> 4, batch 1, float64", "layer", (9, 4), shape=(1, 9), dtype=F64),
    C("ReLU", "(3, 4, 5, 5), float64", "layer", shape=(3, 4, 5, 5), dtype=F64),
    C("MaxPool2d", "2x2, stride 2, float64", "layer", (2,), shape=(2, 3, 8, 8), dtype=F64),
    C(
        "MaxPool2d",
        "3x3, stride 2, padding 1, overlap and ties, float64",
        "layer",
        (3, 2, 1),
        shape=(2, 3, 9, 7),
        ties=True,
        dtype=F64,
    ),
    C(
        "MaxPool2d",
        "2x2, stride 1, overlap and ties, float64",
        "layer",
        (2, 1),
        shape=(1, 2, 6, 6),
        ties=True,
        dtype=F64,
    ),
    C("MaxPool2d", "3x3, stride 3, padding 1, batch 1", "layer", (3, 3, 1), shape=(1, 2, 10, 11)),
    C("Flatten", "(3, 2, 4, 4), float64", "layer", shape=(3, 2, 4, 4), dtype=F64),
    C(
        "Dropout",
        "p 0.5 in eval mode: the identity",
        "layer",
        (0.5,),
        shape=(3, 10),
        train=False,
        dtype=F64,
    ),
    C("Dropout", "p 0 in training: the identity", "layer", (0.0,), shape=(3, 10), dtype=F64),
    C(
        "Dropout",
        "p 0.25 in training: the mask forward used, scaled by 1/(1-p)",
        "dropout",
        (0.25,),
        shape=(200, 500),
        dtype=F64,
    ),
    C(
        "BatchNorm2d",
        "training: batch statistics, running statistics updated",
        "layer",
        (3,),
        shape=(4, 3, 5, 5),
        perturb=True,
        dtype=F64,
    ),
    C(
        "BatchNorm2d",
        "training, batch 1, momentum 0.5",
        "layer",
        (3,),
        dict(momentum=0.5),
        (1, 3, 4, 5),
        perturb=True,
        dtype=F64,
    ),
    C(
        "BatchNorm2d",
        "eval: running statistics",
        "layer",
        (3,),
        shape=(4, 3, 5, 5),
        train=False,
        perturb=True,
        dtype=F64,
    ),
    C("BatchNorm2d", "training, float32", "layer", (3,), shape=(4, 3, 5, 5), perturb=True),
    C(
        "AdaptiveAvgPool2d",
        "output size 1, 5x7, float64",
        "layer",
        (1,),
        shape=(2, 3, 5, 7),
        dtype=F64,
    ),
    C("AdaptiveAvgPool2d", "output size 1, batch 1", "layer", (1,), shape=(1, 4, 3, 5)),
    C("CrossEntropyLoss", "batch 7, 10 classes, float64", "loss", shape=(7, 10), dtype=F64),
    C("CrossEntropyLoss", "logits of +-1e4, float64", "loss", shape=(5, 10), scale=1e4, dtype=F64),
    C(
        "CrossEntropyLoss",
        "reduction sum, label smoothing 0.1, float64",
        "loss",
        kwargs=dict(reduction="sum", label_smoothing=0.1),
        shape=(7, 10),
        dtype=F64,
    ),
    C(
        "CrossEntropyLoss",
        "reduction none, float64",
        "loss",
        kwargs=dict(reduction="none"),
        shape=(7, 10),
        dtype=F64,
    ),
    C(
        "SGD",
        "lr 0.1, 50 steps, state_dict round trip, float64",
        "optim",
        kwargs=dict(lr=0.1),
        steps=50,
        reload=True,
        dtype=F64,
    ),
    C(
        "SGD",
        "nesterov momentum, weight decay, 50 steps, state_dict round trip, float64",
        "optim",
        kwargs=SGD_MOMENTUM,
        steps=50,
        reload=True,
        dtype=F64,
    ),
    C(
        "Adam",
        "lr 1e-3, 50 steps, state_dict round trip, float64",
        "optim",
        kwargs=dict(lr=1e-3),
        steps=50,
        reload=True,
        dtype=F64,
    ),
    C(
        "Adam",
        "betas, eps, weight decay, 50 steps, state_dict round trip, float64",
        "optim",
        kwargs=ADAM_ALL,
        steps=50,
        reload=True,
        dtype=F64,
    ),
    C(
        "Sequential",
        "Linear, ReLU, Linear: backward in reverse",
        "layer",
        (("Linear", 6, 5), ("ReLU",), ("Linear", 5, 3)),
        shape=(4, 6),
        dtype=F64,
    ),
    C(
        "Sequential",
        "the CNN (whole network), float64",
        "network",
        ("cnn",),
        shape=(3, 1, 28, 28),
        dtype=F64,
    ),
    C(
        "Sequential",
        "the FCN (whole network, 36x44 input), float64",
        "network",
        ("fcn",),
        shape=(2, 1, 36, 44),
        dtype=F64,
    ),
    C(
        "Sequential",
        "the fast net (whole network), float64",
        "network",
        ("fast",),
        shape=(3, 1, 28, 28),
        dtype=F64,
    ),
    C(
        "Sequential",
        "the best net (whole network, batch norm), float64",
        "network",
        ("best",),
        shape=(4, 1, 28, 28),
        dtype=F64,
    ),
)


def cases_for(classes, own: bool = False) -> list[Case]:
    """The cases of the classes named in `classes`, in the catalogue's order; with `own`,
    digitlab's own extra cases too (a network case needs every layer class it is built of)."""
    rows = LEARNER_CASES + OWN_CASES if own else LEARNER_CASES
    return [case for case in rows if case.layer in classes]
