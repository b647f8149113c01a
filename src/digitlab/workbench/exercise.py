"""`digitlab exercise DIR`: a starter file of layers to fill in, and a short guide.

Every class has its constructor done (torch.nn's arguments and parameter names, so checkpoints
load into PyTorch's layers), a docstring with the shapes and a hint, and bodies that raise
NotImplementedError, which `digitlab check --layers` reports as "not written yet".
"""

from __future__ import annotations

from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.workbench.messages import Text
from digitlab.workbench.messages_zh import ZH_STARTER_TEXTS

STYLES = ("digitlab", "template")

DIGITLAB_STYLE = '''"""My layers for digitlab: forward and backward by hand.

digitlab's interface: forward(x) returns y and keeps what backward needs; backward(grad_out)
gets dL/dy, returns dL/dx, and ADDS dL/dW, dL/db into self.weight.grad, self.bias.grad
(create them when they are None), as PyTorch's autograd does.

    digitlab check --layers layers.py      after each class
    digitlab train --layers layers.py      when the check is all ok
"""

import math

import torch
from torch import nn


class ReLU(nn.Module):
    def forward(self, x):
        """x: any shape -> y = max(x, 0), same shape. Hint: keep the mask x > 0."""
        raise NotImplementedError

    def backward(self, grad_out):
        """grad_out: dL/dy, y's shape -> dL/dx: the gradient passes where x > 0, else 0."""
        raise NotImplementedError


class Flatten(nn.Module):
    def forward(self, x):
        """x: (N, C, H, W) -> (N, C*H*W). Hint: keep x's shape."""
        raise NotImplementedError

    def backward(self, grad_out):
        """grad_out: (N, C*H*W) -> dL/dx: (N, C, H, W), the same numbers reshaped back."""
        raise NotImplementedError


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # PyTorch's initialisation
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x):
        """x: (N, in) -> y = x @ W^T + b: (N, out). Hint: keep x for backward."""
        raise NotImplementedError

    def backward(self, grad_out):
        """grad_out: (N, out) -> dL/dx = grad_out @ W: (N, in).
        Adds dL/dW = grad_out^T @ x (out, in) and dL/db = grad_out summed over N (out,)."""
        raise NotImplementedError


class Conv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding, self.kernel_size = stride, padding, kernel_size
        bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def forward(self, x):
        """x: (N, C, H, W) -> y: (N, O, OH, OW), OH = (H + 2*padding - K) // stride + 1.
        y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * xp[n, c, i*s + u, j*s + v],
        xp = x zero-padded by `padding` on every side (no kernel flip: cross-correlation).
        Hint: start with loops; then x.unfold gives every window at once."""
        raise NotImplementedError

    def backward(self, grad_out):
        """grad_out: (N, O, OH, OW) -> dL/dx: (N, C, H, W).
        dL/dW[o, c, u, v] = sum over n, i, j of grad_out[n, o, i, j] * xp[n, c, i*s + u, j*s + v]
        dL/db[o] = grad_out summed over n, i, j
        dL/dxp[n, c, i*s + u, j*s + v] += grad_out[n, o, i, j] * W[o, c, u, v]  (ADD: windows
        overlap), then crop the padding off."""
        raise NotImplementedError


class MaxPool2d(nn.Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        """x: (N, C, H, W) -> y: (N, C, OH, OW), the max of each window.
        Hint: remember WHERE each max was (the first one when several tie)."""
        raise NotImplementedError

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> dL/dx: (N, C, H, W), each window's gradient at its max
        only; where windows overlap (stride < kernel) the gradients ADD."""
        raise NotImplementedError


class CrossEntropyLoss(nn.Module):
    def forward(self, logits, target):
        """logits: (N, classes), target: (N,) class indices -> the mean over N of
        -log softmax(logits)[target]. Hint: subtract each row's max before exp (logits of 1000
        overflow otherwise)."""
        raise NotImplementedError

    def backward(self, grad_out=1.0):
        """-> dL/dlogits: (N, classes) = (softmax(logits) - onehot(target)) / N."""
        raise NotImplementedError


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
        """For each p: g = p.grad + weight_decay * p; with momentum mu: b = g at the first
        step, else b = mu * b + g; g = g + mu * b (nesterov) or b. Then p -= lr * g."""
        raise NotImplementedError


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
        """t += 1; for each p: g = p.grad + weight_decay * p; m = b1*m + (1-b1)*g;
        v = b2*v + (1-b2)*g^2; p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""
        raise NotImplementedError
'''

TEMPLATE_STYLE = '''"""My layers in the recruitment template's shape (the study log's level 2).

The template's interface: forward(input) returns the output; backward(ones) gets dL/doutput
(named `ones` in the template, but it is NOT always ones), SETS self.input.grad, self.weight.grad
and self.bias.grad, and returns self.input.grad. So forward must keep self.input = input.

    digitlab check --layers layers.py      after each class
    digitlab train --layers layers.py      when the check is all ok (digitlab.scratch's ReLU,
                                           MaxPool2d and Flatten fill in)
"""

import math

import torch
from torch import Tensor
from torch.nn.modules import Module
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.utils import _pair
from torch.nn.parameter import Parameter


class Conv2d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(
            in_channels, out_channels, _pair(kernel_size), _pair(stride), _pair(padding),
            _pair(dilation), False, _pair(0), groups, bias, padding_mode, device=device,
            dtype=dtype)

    def conv2d(self, input: Tensor, kernel: Tensor, bias=0, stride=1, padding=0):
        """input (N, C, H, W), kernel (O, C, K, K), bias (O,) -> (N, O, OH, OW),
        OH = (H + 2*padding - K) // stride + 1; no kernel flip (cross-correlation)."""
        raise NotImplementedError

    def forward(self, input: Tensor):
        """Keep self.input, then call self.conv2d with THIS layer's stride and padding
        (self.stride[0], self.padding[0]): its defaults are stride 1, padding 0."""
        raise NotImplementedError

    def backward(self, ones: Tensor):
        """ones: dL/doutput (N, O, OH, OW). Set self.weight.grad (O, C, K, K), self.bias.grad
        (O,) and self.input.grad (N, C, H, W); return self.input.grad. Where windows overlap,
        their gradients ADD into the input's."""
        raise NotImplementedError


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # PyTorch's initialisation
        self.weight = Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, input):
        """input (N, in) -> input @ W^T + b (N, out). Keep self.input."""
        raise NotImplementedError

    def backward(self, ones: Tensor):
        """ones: (N, out). weight.grad = ones^T @ input (out, in); bias.grad = ones summed over
        N (out,); input.grad = ones @ W (N, in), returned."""
        raise NotImplementedError


class CrossEntropyLoss:
    def __init__(self):
        pass

    def __call__(self, input, target):
        """input (N, classes) logits, target (N,) -> mean over N of -log softmax(input)[target].
        Keep self.input and target; subtract each row's max before exp."""
        raise NotImplementedError

    def backward(self):
        """Set and return self.input.grad = (softmax(input) - onehot(target)) / N."""
        raise NotImplementedError
'''


def guide(path: Path, style: str) -> Text:
    """The short guide beside the starter file (DIR/README.md)."""
    return Text(
        """# Your own layers

`layers.py` holds the layers of the study CNN (and the optimizers) with their constructors written
and their bodies left to you: each raises NotImplementedError until you write it.

The order to go in:
{steps}

After each class:

    digitlab check --layers {path}

It compares every class you wrote with PyTorch on small cases chosen to break naive code, and says
for each failure which tensor is wrong, where, and the likely bug. When it says all ok:

    digitlab train --layers {path}

trains the study CNN on your layers (digitlab.scratch's fill in any class the file lacks) and
reports its test accuracy beside the same run on PyTorch's layers.
""",
        path=str(path),
        steps=STEPS[style],
    )


STEPS = {
    "digitlab": Text(
        """1. ReLU and Flatten (a few lines each), then Linear: forward, then backward.
2. CrossEntropyLoss: a stable forward (subtract each row's max), then its one-line gradient.
3. Conv2d: a loop version first is fine; the check's cases are small.
4. MaxPool2d: route each window's gradient to its maximum, and add where windows overlap.
5. SGD and Adam."""
    ),
    "template": Text(
        """1. Linear: forward (keep self.input), then backward.
2. CrossEntropyLoss: a stable forward (subtract each row's max), then its one-line gradient.
3. Conv2d: conv2d (a loop version first is fine; the check's cases are small), then forward,
   which must pass this layer's own stride and padding on to conv2d, then backward.
ReLU, MaxPool2d, Flatten, SGD and Adam are not in the template: digitlab.scratch's are used."""
    ),
}


def starter(style: str, lang: str = "en") -> str:
    """The starter file of `style`, its docstrings and comments in `lang`."""
    source = DIGITLAB_STYLE if style == "digitlab" else TEMPLATE_STYLE
    if lang == "zh":
        for english, chinese in ZH_STARTER_TEXTS.items():
            source = source.replace(f'"""{english}"""', f'"""{chinese}"""')
            source = source.replace(f"# {english}", f"# {chinese}")
    return source


def write_exercise(
    folder: str | Path, style: str = "digitlab", notebook: bool = False, lang: str = "en"
) -> list[Path]:
    """DIR/layers.py in `style` and DIR/README.md (and DIR/layers.ipynb with `notebook`), in
    `lang`; refuses to overwrite a learner's work."""
    if style not in STYLES:
        raise DigitlabError(f"--style {style}: choose one of {', '.join(STYLES)}")
    folder = Path(folder)
    layers, readme = folder / "layers.py", folder / "README.md"
    book = folder / "layers.ipynb"
    if layers.exists() or (notebook and book.exists()):
        taken = layers if layers.exists() else book
        raise DigitlabError(
            Text(
                "{path}: exists already (your work?); choose another folder or move it away",
                path=str(taken),
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    source = starter(style, lang)
    atomic_write(layers, source.encode())
    if not readme.exists():
        atomic_write(readme, guide(layers, style).render(lang).encode())
    if notebook:
        from digitlab.workbench.notebook import write_notebook

        return [layers, readme, write_notebook(book, source, STEPS[style].render(lang), lang)]
    return [layers, readme]
