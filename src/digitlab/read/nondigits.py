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


# Hand-drawn shapes: each a few strokes (polylines of (x, y) in a unit box, y down), the way a
# person writes them. Left out as digits' twins: O o Q (0), I i l j (1), Z z (2), S s (5), G b (6),
# B (8), g q a (9, the written one-storey a is a 9 with a short tail).
def arc(cx, cy, rx, ry, start, stop, steps=16) -> list:
    """Points on an ellipse from angle `start` to `stop` (degrees, anticlockwise on the page)."""
    t = np.radians(np.linspace(start, stop, steps))
    return list(zip(cx + rx * np.cos(t), cy - ry * np.sin(t), strict=True))


LETTERS = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.6), (0.75, 0.6)]],
    "C": [arc(0.55, 0.5, 0.45, 0.5, 50, 310)],
    "D": [[(0, 0), (0, 1)], [(0, 0), (0.4, 0), *arc(0.4, 0.5, 0.6, 0.5, 90, -90), (0, 1)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "J": [[(0.3, 0), (1, 0)], [(0.75, 0), (0.75, 0.7), *arc(0.4, 0.7, 0.35, 0.3, 0, -180)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "L": [[(0, 0), (0, 1), (0.8, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "P": [[(0, 1), (0, 0), (0.5, 0), *arc(0.5, 0.25, 0.4, 0.25, 90, -90), (0, 0.5)]],
    "R": [[(0, 1), (0, 0), (0.5, 0), *arc(0.5, 0.25, 0.4, 0.25, 90, -90), (0, 0.5), (1, 1)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "U": [[(0, 0), (0, 0.6), *arc(0.5, 0.6, 0.5, 0.4, 180, 360), (1, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "c": [arc(0.5, 0.7, 0.45, 0.3, 50, 310)],
    "d": [arc(0.45, 0.7, 0.4, 0.3, 0, 360), [(0.85, 0), (0.85, 1)]],
    "e": [[(0.05, 0.7), (0.95, 0.7), *arc(0.5, 0.7, 0.45, 0.3, 0, 310)]],
    "f": [[*arc(0.75, 0.2, 0.25, 0.2, 20, 180), (0.5, 1)], [(0.2, 0.45), (0.85, 0.45)]],
    "h": [[(0, 0), (0, 1)], [(0, 0.7), *arc(0.5, 0.65, 0.5, 0.25, 160, 0), (1, 1)]],
    "k": [[(0, 0), (0, 1)], [(0.8, 0.4), (0, 0.75), (0.8, 1)]],
    "m": [
        [(0, 0.4), (0, 1)],
        [*arc(0.25, 0.6, 0.25, 0.2, 180, 0), (0.5, 1)],
        [*arc(0.75, 0.6, 0.25, 0.2, 180, 0), (1, 1)],
    ],
    "n": [[(0, 0.4), (0, 1)], [*arc(0.5, 0.65, 0.5, 0.25, 180, 0), (1, 1)]],
    "p": [[(0, 0), (0, 1)], arc(0.45, 0.3, 0.45, 0.3, 180, -180)],
    "r": [[(0, 0.4), (0, 1)], arc(0.55, 0.65, 0.55, 0.25, 180, 40)],
    "t": [[(0.4, 0), (0.4, 0.9), (0.6, 1), (0.85, 0.9)], [(0.05, 0.35), (0.85, 0.35)]],
    "u": [[(0, 0.4), (0, 0.75), *arc(0.45, 0.75, 0.45, 0.25, 180, 360)], [(0.9, 0.4), (0.9, 1)]],
    "v": [[(0, 0.4), (0.5, 1), (1, 0.4)]],
    "w": [[(0, 0.4), (0.25, 1), (0.5, 0.6), (0.75, 1), (1, 0.4)]],
    "x": [[(0, 0.4), (1, 1)], [(1, 0.4), (0, 1)]],
    "y": [[(0, 0), (0.5, 0.6)], [(1, 0), (0.2, 1)]],
}

STAR = [(0.5 + 0.5 * np.sin(a), 0.5 - 0.5 * np.cos(a)) for a in np.radians(np.arange(0, 800, 144))]
SYMBOL_STROKES = {
    "+": [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
    "#": [
        [(0.35, 0), (0.25, 1)],
        [(0.75, 0), (0.65, 1)],
        [(0, 0.33), (1, 0.33)],
        [(0, 0.67), (1, 0.67)],
    ],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "@": [arc(0.55, 0.5, 0.2, 0.22, 0, 360), [*arc(0.5, 0.5, 0.5, 0.5, -10, 330)]],
    "&": [
        [
            (1, 1),
            (0.25, 0.35),
            (0.3, 0.05),
            (0.55, 0.1),
            (0.55, 0.3),
            (0.1, 0.65),
            (0.3, 1),
            (0.65, 0.85),
            (0.95, 0.55),
        ]
    ],
    "%": [
        [(0.9, 0), (0.1, 1)],
        arc(0.2, 0.15, 0.17, 0.15, 0, 360),
        arc(0.8, 0.85, 0.17, 0.15, 0, 360),
    ],
    "?": [[*arc(0.5, 0.25, 0.4, 0.25, 160, -90), (0.5, 0.72)], [(0.5, 0.94), (0.5, 1)]],
    "arrow": [[(0, 0.5), (1, 0.5)], [(0.65, 0.15), (1, 0.5), (0.65, 0.85)]],
    "up arrow": [[(0.5, 1), (0.5, 0)], [(0.15, 0.35), (0.5, 0), (0.85, 0.35)]],
    "smiley": [
        arc(0.5, 0.5, 0.5, 0.5, 0, 360, 32),
        [(0.33, 0.3), (0.33, 0.38)],
        [(0.67, 0.3), (0.67, 0.38)],
        arc(0.5, 0.5, 0.3, 0.25, 200, 340),
    ],
    "check": [[(0, 0.6), (0.35, 1), (1, 0)]],
    "star": [STAR],
}


def wobbly(points, rng, jitter: float, wobble: float) -> np.ndarray:
    """A stroke as a person draws it: (K, 2) points resampled every 0.02 along the path, each
    corner moved by up to `jitter`, the path bent by a smooth sideways wave of size `wobble`."""
    corners = np.asarray(points, float) + rng.normal(0, jitter, (len(points), 2))
    steps = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    along = np.concatenate([[0], np.cumsum(steps)])
    t = np.linspace(0, along[-1], max(2, int(along[-1] / 0.02)))
    path = np.stack([np.interp(t, along, corners[:, i]) for i in range(2)], 1)
    phase, freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(1, 4, 2)
    return path + wobble * np.sin(freq * t[:, None] * 2 * np.pi + phase)


def hand_drawn(strokes, rng) -> torch.Tensor | None:
    """One shape written by a hand: random slant, rotation, size, aspect, stroke width, jitter
    and wobble, drawn dark on a white 200x200 page at 2x and scaled down (anti-aliasing), then
    preprocessed as predict does. (28, 28) float in [0, 1], or None for no ink."""
    slant, turn = rng.uniform(-0.35, 0.35), np.radians(rng.uniform(-12, 12))
    height = rng.uniform(160, 300)
    width = height * rng.uniform(0.55, 1.0)
    jitter, wobble = rng.uniform(0, 0.04), rng.uniform(0, 0.025)
    rotate = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    page = Image.new("L", (400, 400), 255)
    pen = ImageDraw.Draw(page)
    pen_width = int(rng.integers(8, 36))
    for stroke in strokes:
        path = wobbly(stroke, rng, jitter, wobble) - 0.5
        path[:, 0] -= slant * path[:, 1]  # a forward slant: the top leans right
        xy = (path * [width, height]) @ rotate.T + 200
        line = [tuple(p) for p in xy]
        pen.line(line, fill=0, width=pen_width, joint="curve")
        for x, y in (line[0], line[-1]):  # round pen ends
            r = pen_width / 2
            pen.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return drawn(page.resize((200, 200), Image.LANCZOS))


def hand_drawn_set(shapes: dict, count: int, seed: int) -> list[torch.Tensor]:
    """`count` drawings cycling through `shapes` ({name: strokes}), each with its own hand."""
    rng = np.random.default_rng(seed)
    names = sorted(shapes)
    out = [hand_drawn(shapes[names[i % len(names)]], rng) for i in range(count)]
    return [image for image in out if image is not None]


def build(
    scribble_count: int = 300, blank_count: int = 100, hand_count: int = 1000, seed: int = 0
) -> dict:
    """{"font letters", "hand letters", "hand symbols", "scribbles", "blanks"}: (N, 28, 28)
    float tensors in [0, 1]."""
    sets = {
        "font letters": rendered_symbols(font_files()),
        "hand letters": hand_drawn_set(LETTERS, hand_count, seed),
        "hand symbols": hand_drawn_set(SYMBOL_STROKES, hand_count // 2, seed + 1),
        "scribbles": scribbles(scribble_count, seed),
        "blanks": noisy_blanks(blank_count, seed),
    }
    return {name: torch.stack(images) for name, images in sets.items() if images}
