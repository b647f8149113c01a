"""Synthetic non-digits for outlier exposure: what the "not sure" head (read.unsure) learns to
refuse, besides the training digits it learns to accept.

Deliberately NOT the measured non-digits (read.nondigits): no letter or symbol shapes, no fonts,
nothing from that module. Four kinds, none designed to look like anything:

- random Bezier curves: 1 to 3 cubic curves with random control points, one pen width;
- stroke soups: 3 to 8 short straight strokes scattered over the page;
- crossings: 2 to 4 long straight strokes, each starting on or running through an earlier one;
- digit chimeras: the left (or top) half of one MNIST training digit beside the other half of a
  digit of another class, or two digits of different classes laid over each other, shifted.

The drawn kinds go through the same preprocessing as a drawing (read.preprocess).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch
from PIL import Image, ImageDraw

from digitlab.data.mnist import to_unit
from digitlab.read.preprocess import BlankImageError, preprocess


def prepared(page: Image.Image) -> torch.Tensor | None:
    """A 200x200 page drawn dark on white -> (28, 28) float in [0, 1] as predict sees it."""
    try:
        return preprocess(page)
    except BlankImageError:
        return None


def bezier_page(rng) -> Image.Image:
    """1 to 3 random cubic Bezier curves on a 200x200 page, anti-aliased (drawn at 2x)."""
    page = Image.new("L", (400, 400), 255)
    pen, width = ImageDraw.Draw(page), int(rng.integers(10, 36))
    t = np.linspace(0, 1, 40)[:, None]
    for _ in range(rng.integers(1, 4)):
        p0, p1, p2, p3 = rng.uniform(40, 360, (4, 2))
        curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        pen.line([tuple(p) for p in curve], fill=0, width=width, joint="curve")
    return page.resize((200, 200), Image.LANCZOS)


def soup_page(rng) -> Image.Image:
    """3 to 8 short straight strokes (20 to 120 pixels of 400) scattered over the page."""
    page = Image.new("L", (400, 400), 255)
    pen, width = ImageDraw.Draw(page), int(rng.integers(10, 36))
    for _ in range(rng.integers(3, 9)):
        start = rng.uniform(60, 340, 2)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(20, 120)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        pen.line([tuple(start), tuple(end)], fill=0, width=width)
    return page.resize((200, 200), Image.LANCZOS)


def crossing_page(rng) -> Image.Image:
    """2 to 4 long straight strokes at random angles, each after the first starting on (or
    running through) one drawn before: random crossings and junctions, no planned shape."""
    page = Image.new("L", (400, 400), 255)
    pen, width = ImageDraw.Draw(page), int(rng.integers(10, 36))
    strokes = []
    for _ in range(rng.integers(2, 5)):
        if strokes:
            a, b = strokes[rng.integers(0, len(strokes))]
            start = a + rng.uniform(0, 1) * (b - a)
        else:
            start = rng.uniform(80, 320, 2)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(60, 260)
        end = np.clip(start + length * np.array([np.cos(angle), np.sin(angle)]), 20, 380)
        if strokes and rng.random() < 0.5:  # through the other stroke, not only from it
            start = start - (end - start) * rng.uniform(0, 0.8)
        strokes.append((start, end))
        pen.line([tuple(start), tuple(end)], fill=0, width=width)
    return page.resize((200, 200), Image.LANCZOS)


def chimeras(images: torch.Tensor, labels: torch.Tensor, count: int, rng) -> torch.Tensor:
    """(count, 28, 28) float: halves of two digits of different classes joined, or two such
    digits overlaid with a shift. images (N, 28, 28) uint8 training digits, labels (N,)."""
    out = torch.empty(count, 28, 28)
    for k in range(count):
        i, j = rng.integers(0, len(images), 2)
        while labels[i] == labels[j]:
            j = rng.integers(0, len(images))
        a, b = to_unit(images[i]), to_unit(images[j])
        kind = rng.integers(0, 3)
        if kind == 0:  # left half of one, right half of the other
            out[k] = torch.cat([a[:, :14], b[:, 14:]], 1)
        elif kind == 1:  # top of one, bottom of the other
            out[k] = torch.cat([a[:14], b[14:]], 0)
        else:
            dy, dx = (int(v) for v in rng.integers(-6, 7, 2))
            out[k] = torch.maximum(a, b.roll((dy, dx), (0, 1)))
    return out


_drawing = threading.Lock()  # one drawing at a time: a caller during a warm-up waits for it
_warming: set[tuple[int, int]] = set()


def drawn_pages(count: int, seed: int) -> tuple[torch.Tensor, dict]:
    """The three drawn kinds, count // 4 pages each, prepared: (M, 28, 28), and the random
    generator's state after them. Kept for the process: they depend on no model or data, and
    drawing 4,500 takes about 15 s, which every training run and fine-tune would pay again.
    A call during a warm-up (warm_up) waits for that drawing and shares it."""
    with _drawing:
        return _drawn_pages(count, seed)


def warm_up(count: int, seed: int = 0) -> None:
    """Start drawing drawn_pages(count, seed) in a background thread, once per process, so that
    a later fit finds them ready: the app starts it when a visitor saves a drawing, and their
    Learn then waits for the fine-tune, not for 15 s of drawing."""
    if (count, seed) not in _warming:  # two saves at once may both start one: the lock and the
        _warming.add((count, seed))  # cache make the second a lookup
        threading.Thread(target=drawn_pages, args=(count, seed), daemon=True).start()


@functools.lru_cache(maxsize=4)
def _drawn_pages(count: int, seed: int) -> tuple[torch.Tensor, dict]:
    rng = np.random.default_rng(seed)
    drawn = []
    for page in (bezier_page, soup_page, crossing_page):
        drawn += [prepared(page(rng)) for _ in range(count // 4)]
    return torch.stack([x for x in drawn if x is not None]), rng.bit_generator.state


def build(images: torch.Tensor, labels: torch.Tensor, count: int = 3000, seed: int = 0):
    """(M, 28, 28) float in [0, 1], M <= count: a quarter of each kind (a drawn page with no ink
    left after preprocessing is dropped)."""
    drawn, state = drawn_pages(count, seed)
    rng = np.random.default_rng(seed)
    rng.bit_generator.state = state  # the chimeras go on from where the drawing stopped
    mixed = chimeras(images, labels, count - 3 * (count // 4), rng)
    return torch.cat([drawn, mixed])  # a new tensor: the kept pages cannot be changed through it
