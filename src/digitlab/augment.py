"""Data augmentation: a random affine distortion per image, applied to a whole batch at once.

Each image gets its own rotation, scale and shift (the ways people's digits differ from MNIST's
centred ones), drawn from the given generator. One affine_grid + grid_sample call warps the batch:
no loop over images, same code on CPU and GPU.
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
