"""Synthetic non-digits for outlier exposure: what the "not sure" head (read.unsure) learns to
refuse, besides the training digits it learns to accept.

Deliberately NOT the measured non-digits (read.nondigits): no letter or symbol shapes, no fonts,
nothing from that module. Four kinds, none designed to look like anything:

- random Bezier curves: 1 to 3 cubic curves with random control points, one pen width;
- stroke soups: 3 to 8 short straight strokes scattered over the page;
- crossings: 2 to 4 long straight strokes, each starting on or running through an earlier one;
- digit chimeras: the left (or top) half of one MNIST training digit beside the other half of a
  digit of another class, or two digits of different classes laid over each other, shifted.

The drawn kinds go through the same preprocessing as a drawing (read.preprocess). They are
drawn once (about 15 s) and kept in the cache folder (~/.cache/digitlab/outliers, or
$DIGITLAB_CACHE/outliers), so that later training runs and fine-tunes read them in a moment.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import threading
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors import SafetensorError
from safetensors.torch import load, save

from digitlab.data.mnist import to_unit
from digitlab.errors import DigitlabError
from digitlab.files import atomic_write, cache_dir
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


PAGES = 6000  # the drawn set: 1,500 pages of each drawn kind; a fit asking for fewer takes the
# first pages of each kind, so every fit of up to 6,000 outliers shares one drawing (about 15 s)

_drawing = threading.Lock()  # one drawing at a time: a caller during a warm-up waits for it
_warming: set[tuple[int, int]] = set()


def drawn_pages(count: int, seed: int) -> tuple[torch.Tensor, dict]:
    """The three drawn kinds, count // 4 pages each, prepared: (M, 28, 28), and the random
    generator's state after the drawn set. The pages are the first of each kind in the drawn
    set of max(count, PAGES) pages, which depends on no model or data: it is drawn once and kept
    for the process and on disk (drawn_set). A call during a warm-up (warm_up) waits for that
    drawing and shares it."""
    with _drawing:
        kinds, kept, state = drawn_set(max(count, PAGES) // 4, seed)
    n = count // 4
    return kinds[:, :n][kept[:, :n]], state


def warm_up(count: int, seed: int = 0) -> None:
    """Start drawing what drawn_pages(count, seed) needs in a background thread, once per
    process, so that a later fit finds it ready: the app starts it when a visitor saves a
    drawing, and their Learn then waits for the fine-tune, not for 15 s of drawing."""
    if (count, seed) not in _warming:  # two saves at once may both start one: the lock and
        _warming.add((count, seed))  # the cache make the second a lookup
        threading.Thread(target=drawn_pages, args=(count, seed), daemon=True).start()


@functools.lru_cache(maxsize=2)
def drawn_set(per_kind: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """per_kind pages of each drawn kind, in one random stream (Bezier curves, then stroke
    soups, then crossings): (3, per_kind, 28, 28) prepared pages, (3, per_kind) bool, False
    where a page had no ink left after preprocessing (its slot is zeros), and the generator's
    state after them. Read from the cache folder (files.cache_dir) when a file drawn by this
    same code is there; else drawn, and written there for the next process."""
    path = cache_file(per_kind, seed)
    stored = read_set(path, per_kind) if path else None
    if stored:
        return stored
    rng = np.random.default_rng(seed)
    pages = torch.zeros(3, per_kind, 28, 28)
    kept = torch.zeros(3, per_kind, dtype=torch.bool)
    for k, draw in enumerate((bezier_page, soup_page, crossing_page)):
        for i in range(per_kind):
            page = prepared(draw(rng))
            if page is not None:
                pages[k, i], kept[k, i] = page, True
    state = rng.bit_generator.state
    if path:
        write_set(path, pages, kept, state)
    return pages, kept, state


def cache_file(per_kind: int, seed: int) -> Path | None:
    """The drawn set's file, named by a hash of the code and libraries that draw it (this
    module, preprocessing, data.mnist's to_unit; numpy, Pillow, SciPy, scikit-image): a change
    to any draws anew. None where that cannot be known (no home folder, a library installed
    under another name, no source files): the set is then drawn and not kept."""
    try:
        key = hashlib.sha256()
        for source in (__file__, inspect.getfile(preprocess), inspect.getfile(to_unit)):
            key.update(Path(source).read_bytes())
        for library in ("numpy", "pillow", "scipy", "scikit-image"):
            key.update(version(library).encode())
        folder = cache_dir() / "outliers"
    except (OSError, RuntimeError, ImportError, TypeError):
        return None
    return folder / f"pages-{per_kind}x3-seed{seed}-{key.hexdigest()[:16]}.safetensors"


def read_set(path: Path, per_kind: int) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """drawn_set's pages, kept and state from `path`, or None if it is missing or not a whole
    file of the right shapes (cut short by a full disk, say): the set is then drawn again."""
    try:  # read whole, not memory-mapped: Windows cannot replace a file another process maps
        stored = load(path.read_bytes())
        pages, kept = stored["pages"], stored["kept"]
        state = json.loads(stored["state"].numpy().tobytes())
        np.random.default_rng().bit_generator.state = state  # refused unless a PCG64 state
    except (OSError, KeyError, ValueError, TypeError, SafetensorError):
        return None
    if pages.shape != (3, per_kind, 28, 28) or kept.shape != (3, per_kind):
        return None
    if pages.dtype != torch.float32 or kept.dtype != torch.bool:
        return None
    return pages, kept, state


def write_set(path: Path, pages: torch.Tensor, kept: torch.Tensor, state: dict) -> None:
    """Keep a drawn set at `path` (the state as JSON bytes), and remove the files of the same
    set drawn by other versions. A read-only or full folder, or (Windows) a file held open by
    another process, is skipped: the next process draws the set again."""
    as_bytes = torch.frombuffer(bytearray(json.dumps(state).encode()), dtype=torch.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, save({"pages": pages, "kept": kept, "state": as_bytes}))
        stale = path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.safetensors")
        for old in stale:
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, DigitlabError):
        pass


def build(images: torch.Tensor, labels: torch.Tensor, count: int = 3000, seed: int = 0):
    """(M, 28, 28) float in [0, 1], M <= count: a quarter of each kind (a drawn page with no ink
    left after preprocessing is dropped)."""
    drawn, state = drawn_pages(count, seed)
    rng = np.random.default_rng(seed)
    rng.bit_generator.state = state  # the chimeras go on from where the drawing stopped
    mixed = chimeras(images, labels, count - 3 * (count // 4), rng)
    return torch.cat([drawn, mixed])  # a new tensor: the kept pages cannot be changed through it
