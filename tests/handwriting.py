"""One person's "hand" that is not MNIST's: blocky, slanted digits drawn along a seven-segment
frame, with a crossed 7, a European 1 and a slashed 0. Drawn stroke by stroke with a little
jitter, as a person draws the same digit a little differently each time. The shipped model reads
it only partly right: the fine-tuning tests and benchmark teach it this hand.
"""

import numpy as np
from PIL import Image, ImageDraw

# Blocky digits, as some people write them: straight strokes along a seven-segment frame, with a
# crossed 7, a European 1 (flag and base) and a slashed 0. Corners of the frame, y down:
A, B, C, D, E, F = (0.2, 0.1), (0.8, 0.1), (0.2, 0.5), (0.8, 0.5), (0.2, 0.9), (0.8, 0.9)
STROKES = {
    0: [[A, B, F, E, A], [(0.25, 0.85), (0.75, 0.15)]],
    1: [[(0.3, 0.3), (0.55, 0.1), (0.55, 0.9)], [(0.3, 0.9), (0.8, 0.9)]],
    2: [[A, B, D, C, E, F]],
    3: [[A, B, D, F, E], [C, D]],
    4: [[A, C, D], [B, F]],
    5: [[B, A, C, D, F, E]],
    6: [[B, A, E, F, D, C]],
    7: [[A, B, (0.45, 0.9)], [(0.4, 0.5), (0.75, 0.5)]],
    8: [[A, B, F, E, A], [C, D]],
    9: [[D, C, A, B, F, E]],
}


def draw_hand(digit: int, rng: np.random.Generator, size: int = 200) -> Image.Image:
    """One drawing of `digit` in this hand: dark ink on a white page."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    slant = 0.35 + rng.uniform(-0.05, 0.05)
    width = int(rng.integers(5, 8))
    for stroke in STROKES[digit]:
        points = []
        for x, y in stroke:
            x, y = x + rng.normal(0, 0.012), y + rng.normal(0, 0.012)
            x = x + slant * (0.5 - y)  # lean right: the top moves right
            points.append((size * (0.15 + 0.7 * x), size * (0.1 + 0.8 * y)))
        draw.line(points, fill=0, width=width, joint="curve")
    return image
