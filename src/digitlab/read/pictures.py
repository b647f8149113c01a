"""Pictures put together from numpy arrays, for the "why" maps, the feature mosaic and the app:
a caption, pictures one above the other or side by side. Every picture is (H, W, 3) uint8 on a
white page."""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def font_of(size: int):
    """Pillow's own font at `size` pixels, loaded once (the app captions every answer)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def caption(text: str, height: int = 18, size: int = 10) -> np.ndarray:
    """A line of black text on white, as wide as the text: (height, W, 3) uint8."""
    from PIL import Image, ImageDraw

    font = font_of(size)
    image = Image.new("RGB", (int(font.getlength(text)) + 4, height), "white")
    ImageDraw.Draw(image).text((2, (height - size) // 2 - 1), text, fill="black", font=font)
    return np.asarray(image)


def stack(pictures: list[np.ndarray], gap: int = 0) -> np.ndarray:
    """Pictures (H_i, W_i, 3) one above the other, left-aligned, `gap` white rows under each:
    (sum H_i + gaps, max W_i, 3)."""
    width = max(p.shape[1] for p in pictures)
    return np.concatenate(
        [
            np.pad(p, ((0, gap), (0, width - p.shape[1]), (0, 0)), constant_values=255)
            for p in pictures
        ]
    )


def beside(pictures: list[np.ndarray], gap: int = 0) -> np.ndarray:
    """Pictures (H_i, W_i, 3) side by side, top-aligned, `gap` white columns after each:
    (max H_i, sum W_i + gaps, 3)."""
    height = max(p.shape[0] for p in pictures)
    return np.concatenate(
        [
            np.pad(p, ((0, height - p.shape[0]), (0, gap), (0, 0)), constant_values=255)
            for p in pictures
        ],
        axis=1,
    )


def white(height: int, width: int) -> np.ndarray:
    """A blank (height, width, 3) uint8 page."""
    return np.full((height, width, 3), 255, np.uint8)
