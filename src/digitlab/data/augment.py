"""Data augmentation, applied to a whole batch at once (no loop over images, same code on CPU and
GPU), every draw from the given generator.

RandomAffine  each image its own rotation, scale and shift (the ways people's digits differ from
              MNIST's centred ones): one affine_grid + grid_sample call warps the batch.
Sturdy        a share of the images each get one everyday fault: a shaded background, sensor
              noise, blur, or a stray stroke (what digits met outside MNIST suffer; see
              digitlab.study.robustness for how much they cost a model trained without them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RandomAffine:
    """Rotation in [-degrees, degrees], scale in [1 - scale, 1 + scale], shift in [-shift, shift]
    pixels along each axis; independent and uniform per image."""

    degrees: float = 10.0
    scale: float = 0.1
    shift: float = 2.5

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (N, H, W) floats in [0, 1] (background 0) -> (N, H, W), warped."""
        n, h, w = images.shape

        def uniform(*shape):  # in [-1, 1], drawn on the CPU so a seed gives the same on any device
            return (torch.rand(*shape, generator=generator) * 2 - 1).to(images.device)

        angle = uniform(n) * math.radians(self.degrees)
        zoom = 1 + uniform(n) * self.scale
        # affine_grid maps output coordinates in [-1, 1] to input ones, so the matrix is the
        # inverse warp: rotating by -angle and dividing by the zoom shows a turned, zoomed digit.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        shift = uniform(n, 2) * self.shift * 2 / torch.tensor([w, h], device=images.device)
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)
        return F.grid_sample(images[:, None], grid, align_corners=False)[:, 0]


class Draws:
    """Random numbers from one generator, drawn on the CPU (a seed gives the same numbers on any
    device, and any number of threads) and moved to `device`."""

    def __init__(self, generator: torch.Generator, device):
        self.generator, self.device = generator, device

    def uniform(self, *shape, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return (low + (high - low) * torch.rand(*shape, generator=self.generator)).to(self.device)

    def normal(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator).to(self.device)


@dataclass(frozen=True)
class Sturdy:
    """Each image, with probability p, gets one of four faults, chosen uniformly:

    shade   a smooth background of brightness U(0.1, 0.7), from a random 4x4 field upsampled
            (lit, foggy or grey paper)
    noise   Gaussian noise of sigma U(0.05, 0.35) (a grainy sensor)
    blur    a Gaussian blur of sigma U(0.5, 1.5) (out of focus)
    stroke  a straight line 1 to 2.5 pixels wide at a random angle and place (a pen slip, a rule)

    These are not MNIST-C's corruptions nor its parameters: its test set stays unseen, and the
    share p is chosen on corrupted held-out training images (`digitlab robustness --on
    validation`)."""

    p: float = 0.5
    faults = ("shade", "noise", "blur", "stroke")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (N, H, W) floats in [0, 1] (background 0) -> (N, H, W), in [0, 1]."""
        n, draw = images.shape[0], Draws(generator, images.device)
        chosen = torch.randint(len(self.faults), (n,), generator=generator).to(images.device)
        chosen[draw.uniform(n) >= self.p] = -1  # untouched
        out = images.clone()
        for k, fault in enumerate(self.faults):
            hit = (chosen == k).nonzero().flatten()
            if len(hit):
                out[hit] = getattr(self, fault)(images[hit], draw)
        return out

    @staticmethod
    def shade(x, draw):
        n, h, w = x.shape
        field = F.interpolate(
            draw.uniform(n, 1, 4, 4), size=(h, w), mode="bilinear", align_corners=False
        )
        return (x + draw.uniform(n, 1, 1, low=0.1, high=0.7) * field[:, 0]).clamp(0, 1)

    @staticmethod
    def noise(x, draw):
        sigma = draw.uniform(x.shape[0], 1, 1, low=0.05, high=0.35)
        return (x + sigma * draw.normal(*x.shape)).clamp(0, 1)

    @staticmethod
    def blur(x, draw):
        n = x.shape[0]
        sigma = draw.uniform(n, 1, low=0.5, high=1.5)
        taps = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-(taps**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum(1, keepdim=True)  # (N, 5), one 1-D Gaussian per image
        # Separable: rows then columns, one grouped convolution each (a kernel per image).
        x = F.conv2d(x[None], kernel[:, None, None, :], padding=(0, 2), groups=n)
        return F.conv2d(x, kernel[:, None, :, None], padding=(2, 0), groups=n)[0]

    @staticmethod
    def stroke(x, draw):
        n, h, w = x.shape
        angle = draw.uniform(n, 1, 1, high=math.pi)
        offset = draw.uniform(n, 1, 1, low=-0.4 * min(h, w), high=0.4 * min(h, w))
        width = draw.uniform(n, 1, 1, low=1.0, high=2.5)
        rows = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] - (h - 1) / 2
        cols = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] - (w - 1) / 2
        # Distance of each pixel from the line u cos(a) + v sin(a) = offset, turned into ink
        # with a one-pixel soft edge (antialiased, as a pen on a scan).
        distance = (cols * torch.cos(angle) + rows * torch.sin(angle) - offset).abs()
        ink = (width / 2 + 0.5 - distance).clamp(0, 1)
        return torch.maximum(x, ink)
