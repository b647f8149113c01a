"""Images that are not digits, to measure how well the model knows when not to answer.

Three real sources, each brought to the 28x28 the model sees by the same preprocessing as a
drawing: letters and symbols rendered from the fonts installed on the machine (Debian's DejaVu,
Liberation and FreeFont packages), random scribbles, and blank pages with noise. Letters that are
digits' twins in most fonts (O, o, l, I, S, Z, B, g, q, ...) are left out: calling an "O" a 0 is
no mistake.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from digitlab.read.preprocess import BlankImageError, preprocess

FONT_DIR = Path("/usr/share/fonts")
SYMBOLS = "ACEFHKMNPRTUVWXYacefhkmnprtuvwxy+=#@%&?!*<>$~{}"


def font_files(root: Path = FONT_DIR) -> list[Path]:
    """The TrueType fonts installed under `root`, sorted (so the set is the same each time)."""
    return sorted(root.rglob("*.ttf"))


def drawn(image: Image.Image) -> torch.Tensor | None:
    """A drawing, prepared as predict prepares one; None when it holds no ink."""
    try:
        return preprocess(image)
    except BlankImageError:
        return None


def rendered_symbols(fonts: list[Path], symbols: str = SYMBOLS) -> list[torch.Tensor]:
    out = []
    for path in fonts:
        font = ImageFont.truetype(str(path), 120)
        for symbol in symbols:
            canvas = Image.new("L", (200, 200), 255)
            ImageDraw.Draw(canvas).text((40, 20), symbol, font=font, fill=0)
            image = drawn(canvas)
            if image is not None:
                out.append(image)
    return out


def scribbles(count: int, seed: int) -> list[torch.Tensor]:
    """Random pen strokes: 3 to 7 points joined by a thick line, on a 200x200 page."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        canvas = Image.new("L", (200, 200), 255)
        points = [tuple(p) for p in rng.uniform(20, 180, (rng.integers(3, 8), 2))]
        ImageDraw.Draw(canvas).line(points, fill=0, width=int(rng.integers(8, 18)), joint="curve")
        image = drawn(canvas)
        if image is not None:
            out.append(image)
    return out


def noisy_blanks(count: int, seed: int) -> list[torch.Tensor]:
    """Empty pages with sensor noise and specks, as the model would see them (28x28 in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        page = (torch.rand(28, 28, generator=g) * torch.rand(1, generator=g) * 0.5).float()
        out.append(page)
    return out


def build(scribble_count: int = 300, blank_count: int = 100, seed: int = 0) -> dict:
    """{"symbols", "scribbles", "blanks"}: (N, 28, 28) float tensors in [0, 1]."""
    sets = {
        "symbols": rendered_symbols(font_files()),
        "scribbles": scribbles(scribble_count, seed),
        "blanks": noisy_blanks(blank_count, seed),
    }
    return {name: torch.stack(images) for name, images in sets.items() if images}
