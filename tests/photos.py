"""MNIST test digits as if printed on paper and photographed: a soft-edged shadow across the
page, paper grain, a slight tilt, a colour cast and JPEG compression."""

import io

import numpy as np
from PIL import Image


def photo(digit: np.ndarray, rng: np.random.Generator, size: int = 112) -> Image.Image:
    """digit: (28, 28) uint8 MNIST image (bright ink on black) -> an RGB JPEG-compressed photo."""
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR), np.float32) / 255
    page = Image.fromarray(((1 - 0.85 * ink) * 255).astype(np.uint8))  # dark ink, white paper
    page = page.rotate(rng.uniform(-6, 6), resample=Image.BILINEAR, fillcolor=255)
    page = np.asarray(page, dtype=np.float32) / 255
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    across = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)
    depth, edge = rng.uniform(0.35, 0.6), rng.uniform(-0.2, 0.2)
    shadow = 1 - depth / (1 + np.exp(-(across - edge) * 25))
    page = page * shadow * rng.uniform(0.75, 0.95) + rng.normal(0, 0.03, page.shape)
    rgb = np.clip(page[..., None] * rng.uniform(0.85, 1.0, 3), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buffer, "JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue()))
