"""Hand-written layers, loss and optimizers: forward AND backward, no autograd.

Every layer is a torch.nn.Module with torch.nn's constructor arguments, parameter names, shapes and
buffers, so state_dicts move between backends. `y = layer(x)` keeps what backward needs;
`gx = layer.backward(gy)` returns dL/dx and adds dL/dparameter into `.grad`.

Inside this package only generic tensor operations are used: no torch.nn.functional (pad aside),
no convolution, pooling or softmax kernels, no unfold/fold, no autograd. A test reads the source
to hold that line.

Conv2d, MaxPool2d and BatchNorm2d are the fast versions (fast/); PlainConv2d, PlainMaxPool2d
and PlainBatchNorm2d are the same layers written as docs/backprop.md derives them, each in the
module named for it (conv.py, pooling.py, batchnorm.py), and usable on their own.
"""

from digitlab.scratch.activation import Dropout, ReLU
from digitlab.scratch.batchnorm import PlainBatchNorm2d
from digitlab.scratch.conv import PlainConv2d
from digitlab.scratch.fast import BatchNorm2d, Conv2d, MaxPool2d
from digitlab.scratch.linear import Linear
from digitlab.scratch.loss import CrossEntropyLoss
from digitlab.scratch.module import Layer, Sequential
from digitlab.scratch.optim import SGD, Adam, Optimizer
from digitlab.scratch.pooling import AdaptiveAvgPool2d, GlobalAvgPool2d, PlainMaxPool2d
from digitlab.scratch.shape import Flatten

__all__ = [
    "Adam",
    "AdaptiveAvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Optimizer",
    "PlainBatchNorm2d",
    "PlainConv2d",
    "PlainMaxPool2d",
    "ReLU",
    "SGD",
    "Sequential",
]
