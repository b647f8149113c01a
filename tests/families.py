"""Families of digit images that are not MNIST's own 28x28, each with its labels, made the same
way (fixed seeds) by benchmarks/reading.py and tests/test_reading.py:

canvas: MNIST test digits redrawn with a round pen of one width on a transparent 280x280
    layer, as the app's sketchpad draws; clean: MNIST test digits inverted to dark on light at 2-4x,
    sharp; soft: MNIST test digits averaged down to 8-12 pixels then upscaled 6-12x bicubically
    (low-resolution scans: thick strokes with soft grey edges); fonts: digits typed in the
    installed DejaVu, Liberation and FreeFont faces; photo and ruled: tests/photos.py.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from skimage.morphology import skeletonize

from digitlab.data.mnist import load_split
from photos import photo

FAMILIES = ("canvas", "clean", "soft", "fonts", "photo", "ruled")
FONTS = sorted(
    p
    for folder in ("dejavu", "liberation", "freefont")
    for p in Path("/usr/share/fonts/truetype", folder).glob("*.ttf")
    if "Math" not in p.name
)


def canvas(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """(28, 28) uint8 MNIST digit -> its centre line drawn with a hard round pen 3-24 pixels
    wide, black on a transparent 280x280 "RGBA" layer: the app's sketchpad input (its strokes'
    alpha is the ink, app.server.canvas_image)."""
    big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BILINEAR)) > 100
    line = skeletonize(big)
    radius = rng.uniform(1.5, 12)
    pen = ndimage.distance_transform_edt(~line) <= radius
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.where(pen, 255, 0)
    return Image.fromarray(rgba, "RGBA")


def clean(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """(28, 28) uint8 MNIST digit -> dark on light "L" image 56-112 pixels wide (a sharp scan)."""
    size = int(rng.integers(56, 113))
    return Image.fromarray(255 - digit).resize((size, size), Image.BICUBIC)


def soft(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """(28, 28) uint8 MNIST digit -> averaged down to 8-12 pixels, upscaled 6-12x bicubically,
    dark on light "L": a low-resolution scan, thick strokes with a wide grey ramp."""
    low = int(rng.integers(8, 13))
    small = Image.fromarray(255 - digit).resize((low, low), Image.BOX)
    return small.resize((low * int(rng.integers(6, 13)),) * 2, Image.BICUBIC)


def font(label: int, rng: np.random.Generator) -> Image.Image:
    """A digit typed in one of FONTS at 40-90 points, dark on a white "L" page."""
    face = ImageFont.truetype(str(FONTS[rng.integers(len(FONTS))]), int(rng.integers(40, 91)))
    image = Image.new("L", (140, 140), 255)
    ImageDraw.Draw(image).text((70, 70), str(label), fill=0, font=face, anchor="mm")
    return image


def family(name: str, n: int, start: int = 0) -> tuple[list[Image.Image], np.ndarray]:
    """n images of the family (MNIST test digits from index start on), and their (n,) labels.
    Seeded by the family's place in FAMILIES: the same images every run."""
    rng = np.random.default_rng(FAMILIES.index(name) + 1)
    test = load_split(None, False)
    digits, labels = test.images[start : start + n].numpy(), test.labels[start : start + n].numpy()
    if name == "fonts":
        labels = np.arange(start, start + n) % 10
        return [font(int(k), rng) for k in labels], labels
    if name in ("photo", "ruled"):  # benchmarks/photos.py's seed, so its figures are these
        rng = np.random.default_rng(1)
        return [photo(d, rng, lined=name == "ruled") for d in digits], labels
    make = {"canvas": canvas, "clean": clean, "soft": soft}[name]
    return [make(d, rng) for d in digits], labels
