"""A completed exercise in digitlab's interface: the test suite's own solution.

Plain tensor code a learner could write after the exercise: windows as unfold views, einsum for the
products, the backward of each layer beside its forward.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Conv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.k, self.stride, self.padding = kernel_size, stride, padding
        bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None
        )

    def forward(self, x):
        p = self.padding
        xp = F.pad(x, (p, p, p, p))
        win = xp.unfold(2, self.k, self.stride).unfold(3, self.k, self.stride)  # N C OH OW K K
        y = torch.einsum("nchwij,ocij->nohw", win, self.weight)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        self.saved = (xp.shape, win)
        return y

    def backward(self, grad_out):
        shape, win = self.saved
        dw = torch.einsum("nohw,nchwij->ocij", grad_out, win)
        self.weight.grad = dw if self.weight.grad is None else self.weight.grad + dw
        if self.bias is not None:
            db = grad_out.sum((0, 2, 3))
            self.bias.grad = db if self.bias.grad is None else self.bias.grad + db
        dwin = torch.einsum("nohw,ocij->nchwij", grad_out, self.weight)
        dxp = torch.zeros(shape, dtype=grad_out.dtype)
        oh, ow, s = win.shape[2], win.shape[3], self.stride
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, :, i : i + s * oh : s, j : j + s * ow : s] += dwin[..., i, j]
        p = self.padding
        return dxp[:, :, p : shape[2] - p, p : shape[3] - p]


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        )

    def forward(self, x):
        self.x = x
        y = x @ self.weight.t()
        return y if self.bias is None else y + self.bias

    def backward(self, grad_out):
        dw = grad_out.t() @ self.x
        self.weight.grad = dw if self.weight.grad is None else self.weight.grad + dw
        if self.bias is not None:
            db = grad_out.sum(0)
            self.bias.grad = db if self.bias.grad is None else self.bias.grad + db
        return grad_out @ self.weight


class ReLU(nn.Module):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad_out):
        return grad_out * self.mask


class MaxPool2d(nn.Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.k, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        win = x.unfold(2, self.k, self.stride).unfold(3, self.k, self.stride)
        flat = win.reshape(*win.shape[:4], -1)
        y, self.argmax = flat.max(-1)  # the first maximum on ties, as PyTorch
        self.shape = x.shape
        return y

    def backward(self, grad_out):
        dx = torch.zeros(self.shape, dtype=grad_out.dtype)
        oh, ow, s = grad_out.shape[2], grad_out.shape[3], self.stride
        for i in range(self.k):
            for j in range(self.k):
                routed = grad_out * (self.argmax == i * self.k + j)
                dx[:, :, i : i + s * oh : s, j : j + s * ow : s] += routed
        return dx


class Flatten(nn.Module):
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


class CrossEntropyLoss(nn.Module):
    def forward(self, logits, target):
        shifted = logits - logits.max(1, keepdim=True).values
        log_p = shifted - shifted.exp().sum(1, keepdim=True).log()
        self.p, self.target = log_p.exp(), target
        return -log_p[torch.arange(len(target)), target].mean()

    def backward(self, grad_out=1.0):
        grad = self.p.clone()
        grad[torch.arange(len(self.target)), self.target] -= 1
        return grad / len(self.target) * grad_out


class SGD:
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.buffers = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for k, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p
            if self.momentum:
                b = self.buffers[k]
                b = g.clone() if b is None else self.momentum * b + g
                self.buffers[k] = b
                g = g + self.momentum * b if self.nesterov else b
            p -= self.lr * g


class Adam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.weight_decay, self.t = weight_decay, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad + self.weight_decay * p
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
            p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)
