"""MNIST test digits as if printed on paper and photographed: a soft-edged shadow across the
page, paper grain, a slight tilt, a colour cast and JPEG compression; `lined=True` prints them
on ruled paper with a few specks of dust as well."""

import io

import numpy as np
from PIL import Image


def photo(
    digit: np.ndarray, rng: np.random.Generator, size: int = 112, lined: bool = False
) -> Image.Image:
    """digit: (28, 28) uint8 MNIST image (bright ink on black) -> an RGB JPEG-compressed photo."""
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR), np.float32) / 255
    page = 1 - 0.85 * ink  # dark ink, white paper
    if lined:
        page = page * paper_marks(rng, size)
    page = Image.fromarray((page * 255).astype(np.uint8))
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


def paper_marks(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) shade of ruled paper: rules 1-2 pixels thick every 25-40 pixels, right across
    the page (sometimes a margin rule down it too), and 3-8 specks of dust."""
    shade = np.ones((size, size), np.float32)
    gap = rng.uniform(25, 40)
    for top in np.arange(rng.uniform(0, gap), size, gap):
        shade[int(top) : int(top) + rng.integers(1, 3)] *= rng.uniform(0.45, 0.65)
    if rng.random() < 0.3:
        left = int(rng.uniform(0.05, 0.2) * size)
        shade[:, left : left + 2] *= 0.55
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(3, 9)):
        y, x, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.8, 2.0)
        shade[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] *= rng.uniform(0.1, 0.4)
    return shade
