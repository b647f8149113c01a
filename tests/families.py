"""Families of real-looking digit images with known labels, shared by benchmarks/reading.py and
tests/test_reading.py. Each is made from MNIST's test digits (or rendered from fonts), seeded, so
a family's accuracy measures the preprocessing on that kind of image, not the handwriting.

    canvas   drawn on the app's canvas: hard black brush strokes on white, 280x280
    clean    a clean scan: dark ink on light paper, 3x, sharp
    soft     a soft low-resolution scan: averaged down to 8-12 px, then upscaled 6-12x bicubically
    font     a printed digit: a font of DejaVu, Liberation or FreeFont at 40-90 px, turned a little
    photo    printed and photographed (tests/photos.py): shadow, grain, tilt, colour cast, JPEG
    ruled    the same on ruled paper, with specks of dust
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.read.nondigits import font_files
from photos import photo

FAMILIES = ("canvas", "clean", "soft", "font", "photo", "ruled")


def canvas(digit: np.ndarray, rng) -> Image.Image:
    big = Image.fromarray(digit).resize((280, 280), Image.BILINEAR)
    ink = np.asarray(big) > 100  # the brush: solid, hard-edged strokes
    return Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("RGB")


def clean(digit: np.ndarray, rng) -> Image.Image:
    paper = 235 + int(rng.integers(0, 20))
    image = Image.fromarray(digit).resize((84, 84), Image.BICUBIC)
    darkness = np.asarray(image, dtype=np.float32) / 255
    return Image.fromarray((paper - darkness * (paper - 20)).astype(np.uint8))


def soft(digit: np.ndarray, rng) -> Image.Image:
    low = int(rng.integers(8, 13))
    scale = int(rng.integers(6, 13))
    small = Image.fromarray(digit).resize((low, low), Image.BOX)  # averaged down
    big = np.asarray(small.resize((low * scale, low * scale), Image.BICUBIC), dtype=np.float32)
    return Image.fromarray(np.clip(250 - big * 230 / 255, 0, 255).astype(np.uint8))


_FONTS: list = []


def font(label: int, rng) -> Image.Image:
    if not _FONTS:
        _FONTS.extend(p for p in font_files() if "Math" not in p.name)
    face = ImageFont.truetype(
        str(_FONTS[int(rng.integers(len(_FONTS)))]), int(rng.integers(40, 91))
    )
    image = Image.new("L", (140, 140), 255)
    ImageDraw.Draw(image).text((70, 70), str(label), fill=20, font=face, anchor="mm")
    return image.rotate(float(rng.uniform(-8, 8)), fillcolor=255, resample=Image.BICUBIC)


def images(family: str, digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> list:
    """The family's image of each (28, 28) uint8 MNIST digit (or, for fonts, of each label)."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    if family == "font":
        return [font(int(label), rng) for label in labels]
    if family in ("photo", "ruled"):
        return [photo(d, rng, lined=family == "ruled") for d in digits]
    make = {"canvas": canvas, "clean": clean, "soft": soft}[family]
    return [make(d, rng) for d in digits]
