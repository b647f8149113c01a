"""A completed file in the recruitment template's shape (the study log's level 2, finished):
backward(ones) SETS self.input.grad, self.weight.grad, self.bias.grad and returns dL/dx."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules import Module
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.utils import _pair
from torch.nn.parameter import Parameter


class Conv2d(_ConvNd):
    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            _pair(kernel_size),
            _pair(stride),
            _pair(padding),
            _pair(dilation),
            False,
            _pair(0),
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )

    def conv2d(self, input: Tensor, kernel: Tensor, bias=0, stride=1, padding=0):
        self.pad = padding
        x = F.pad(input, (padding,) * 4)
        k = kernel.shape[2]
        self.windows = x.unfold(2, k, stride).unfold(3, k, stride)  # N C OH OW K K
        self.padded_shape = x.shape
        out = torch.einsum("nchwij,ocij->nohw", self.windows, kernel)
        return out + bias.view(1, -1, 1, 1) if bias is not None else out

    def forward(self, input: Tensor):
        self.input = input
        return self.conv2d(input, self.weight, self.bias, self.stride[0], self.padding[0])

    def backward(self, ones: Tensor):
        self.weight.grad = torch.einsum("nohw,nchwij->ocij", ones, self.windows)
        if self.bias is not None:
            self.bias.grad = ones.sum((0, 2, 3))
        dwin = torch.einsum("nohw,ocij->nchwij", ones, self.weight)
        dx = torch.zeros(self.padded_shape, dtype=ones.dtype)
        s, k = self.stride[0], self.weight.shape[2]
        oh, ow = ones.shape[2], ones.shape[3]
        for i in range(k):
            for j in range(k):
                dx[:, :, i : i + s * oh : s, j : j + s * ow : s] += dwin[..., i, j]
        p = self.pad
        self.input.grad = dx[:, :, p : dx.shape[2] - p, p : dx.shape[3] - p]
        return self.input.grad


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, input):
        self.input = input
        return torch.addmm(self.bias, input, self.weight.t())

    def backward(self, ones: Tensor):
        self.weight.grad = ones.t() @ self.input
        self.bias.grad = ones.sum(0)
        self.input.grad = ones @ self.weight
        return self.input.grad


class CrossEntropyLoss:
    def __init__(self):
        pass

    def __call__(self, input, target):
        self.input, self.target = input, target
        shifted = input - input.max(1, keepdim=True).values
        self.log_p = shifted - shifted.exp().sum(1, keepdim=True).log()
        return -self.log_p[torch.arange(len(target)), target].mean()

    def backward(self):
        grad = self.log_p.exp()
        grad[torch.arange(len(self.target)), self.target] -= 1
        self.input.grad = grad / len(self.target)
        return self.input.grad
