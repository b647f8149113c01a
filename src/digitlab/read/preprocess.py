"""Any image of a digit -> a 28x28 MNIST-like image, the way MNIST itself was made.

MNIST's digits were cropped to their ink, scaled so the longest side is 20 pixels (keeping aspect,
anti-aliased), and placed in a 28x28 field with their centre of mass at the centre. A drawn or
photographed digit looks nothing like that until it gets the same treatment, so every image goes
through `preprocess` before a model sees it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.transform import hough_line, hough_line_peaks

from digitlab.data.mnist import to_unit
from digitlab.errors import DigitlabError

MAX_PIXELS = 25_000_000  # refuse larger images before decoding them (decompression bombs)
FIELD, BOX = 28, 20  # MNIST's field and the box its digits are scaled into
NOISE = 0.2  # ink weaker than this fraction of the strongest ink is paper, not ink
INKY = 0.15  # a pixel this much darker than the paper around it is ink when estimating the paper
FLAT = 0.1  # a border whose brightness spans under this (5th to 95th percentile) is evenly lit
SMOOTH = 16  # the paper is averaged over a Gaussian of the image's size over this
STROKE = 2.5  # MNIST's typical stroke width, in pixels of the 20-pixel box
SPECK = 0.02  # a piece of ink with under this share of the biggest piece's area is a speck
RULE = 0.85  # a straight line through ink over this share of the image's width (or height) is a
# rule of lined or squared paper, when the digit is left after it goes
# The steps of the path, each switchable (benchmarks/reading.py measures each one off in turn):
# shade: divide out the paper's shade (else the paper is the border's median brightness);
# grain: a 3x3 median against paper grain; rules: ruled paper's lines go; specks: crumbs of ink
# go; thicken: thin pens widened to MNIST's. (A step that cut what Otsu's threshold called paper
# went: with the shade divided out it changed no family's reading, and it cut the grey ramp.)
STEPS = frozenset({"shade", "grain", "rules", "specks", "thicken"})
OLD = frozenset({"thicken"})  # the path before the paper-shade step (commit e986216)


def load_image(path: str | Path) -> Image.Image:
    """The first frame of an image file, decoded, with a pixel cap checked before decoding."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise DigitlabError(
                    f"{path}: {image.width}x{image.height} pixels is over the cap of "
                    f"{MAX_PIXELS:,}; scale the image down"
                )
            image.seek(0)  # the first frame of an animation
            image.load()
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise DigitlabError(f"{path}: is a folder; give an image file") from None
    except UnidentifiedImageError:
        raise DigitlabError(
            f"{path}: not an image file Pillow can read; give a PNG, JPEG, BMP or GIF"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DigitlabError(
            f"{path}: declares more pixels than the cap of {MAX_PIXELS:,}; scale the image down"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DigitlabError(
            f"{path}: truncated or corrupt image ({e}); save or export it again"
        ) from None
    return image


def image_files(paths, recursive: bool = False) -> tuple[list[tuple[Path, bool]], int]:
    """The images a command line names: a file as it is (checked when it is read), a folder as
    its files whose extension Pillow opens, sorted by name (recursive: its subfolders' too).
    ([(path, whether it came from a folder)], how many of the folders' files were not images)."""
    opens = {ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    files, skipped = [], 0
    for path in map(Path, paths):
        if not path.is_dir():
            files.append((path, False))
            continue
        found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file())
        images = [p for p in found if p.suffix.lower() in opens]
        if not images:
            what = f"no images among its {len(found)} files" if found else "an empty folder"
            deeper = not recursive and any(p.is_dir() for p in path.iterdir())
            raise DigitlabError(
                f"{path}: {what}; give a folder of PNG, JPEG, BMP or GIF files"
                + ("; --recursive reads its subfolders too" if deeper else "")
            )
        skipped += len(found) - len(images)
        files += [(p, True) for p in images]
    return files, skipped


def gray_of(image: Image.Image) -> np.ndarray:
    """(H, W) float32 brightness in [0, 1] of any image mode, 16-bit included."""
    if image.mode.startswith("I"):  # 16- or 32-bit integer grey
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0, 1)
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    if image.mode != "L":
        image = image.convert("RGBA").convert("RGB").convert("L")
    return to_unit(np.asarray(image))


def alpha_of(image: Image.Image) -> np.ndarray | None:
    """(H, W) float32 opacity in [0, 1], or None when the image has no transparency."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = to_unit(np.asarray(image.convert("RGBA"))[..., 3])
        if alpha.min() < 1.0:
            return alpha
    return None


def ink_of(image: Image.Image, steps: frozenset = STEPS) -> np.ndarray:
    """(H, W) float32 ink in [0, 1]: 1 where the digit is, 0 on the paper.

    Transparency, when present, is the ink (strokes on a transparent layer). Otherwise ink is
    whatever differs from the paper: dark ink on light paper or light ink on dark, found
    automatically (dark_ink), then its darkness relative to the paper (relative_ink).
    """
    ink = alpha_of(image)
    if ink is None:
        gray = gray_of(image)
        ink = relative_ink(gray if dark_ink(gray, steps) else 1 - gray, steps)
    ink = np.clip(ink, 0, None)
    strongest = float(ink.max())
    if strongest < 0.1:
        raise BlankImageError("no ink found: the image is blank or has too little contrast")
    # Rescale so the strongest ink is 1 and faint noise (paper texture, JPEG ringing) is 0.
    ink = np.clip((ink / strongest - NOISE) / (1 - NOISE), 0, 1).astype(np.float32)
    return without_specks(ink) if "specks" in steps else ink


def border_of(gray: np.ndarray) -> np.ndarray:
    """The (2H + 2W,) pixels around an (H, W) image's edge: paper, wherever the digit is."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def dark_ink(gray: np.ndarray, steps: frozenset = STEPS) -> bool:
    """Whether (H, W) brightness in [0, 1] shows dark ink on light paper: whether the border,
    which is paper, is bright. With the "shade" step, the brightest quarter of the border is
    looked at, not its median: a shadow across a photo can cover most of the border, and its
    median is then the shadow's, dark enough to be taken for light ink on dark paper."""
    border = border_of(gray)
    return float(np.percentile(border, 75 if "shade" in steps else 50)) > 0.5


def without_specks(ink: np.ndarray) -> np.ndarray:
    """(H, W) ink with every speck (an 8-connected piece under SPECK of the biggest piece's
    area: a crumb, a dust spot, a dot of noise) set to 0."""
    labels, count = ndimage.label(ink > 0, structure=np.ones((3, 3)))
    if count < 2:
        return ink
    areas = ndimage.sum_labels(ink > 0, labels, range(1, count + 1))
    specks = np.flatnonzero(areas < SPECK * areas.max()) + 1
    return np.where(np.isin(labels, specks), 0, ink).astype(np.float32)


def without_rules(ink: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """(H, W) ink without the rules of lined or squared paper: straight lines, within 10 degrees
    of horizontal or vertical, whose ink runs over RULE of the image's width or height (found by
    a Hough transform). A stroke that crossed a rule is joined again across the gap. When little
    would be left (a long, straight 1 is the whole drawing), the ink is kept as it is.
    solid: (H, W) bool, where the ink is."""
    (h, w), near = solid.shape, np.deg2rad(np.linspace(-10, 10, 21))
    # Hough angles are the lines' normals: near 0 a vertical line, near 90 degrees a horizontal.
    votes, theta, rho = hough_line(solid, np.concatenate([near, near + np.pi / 2]))
    ys, xs = np.mgrid[0:h, 0:w]
    rules, thickest = np.zeros_like(solid), 0.0
    for count, angle, distance in zip(
        *hough_line_peaks(votes, theta, rho, threshold=RULE * min(h, w)), strict=True
    ):
        span = h if abs(np.cos(angle)) > 0.5 else w
        if count < RULE * span:
            continue
        offset = np.abs(xs * np.cos(angle) + ys * np.sin(angle) - distance)
        # The rule's half-thickness, from its ink within 4 pixels, plus a pixel of soft edge.
        half = ((offset <= 4) & solid).sum() / span / 2 + 1
        rules |= offset <= half
        thickest = max(thickest, 2 * half)
    if not rules.any():
        return ink
    cleared = np.where(rules, 0, ink)
    # Join strokes cut by a rule: closings across the rules, kept only where the rules were.
    reach = int(thickest) + 3
    joined = np.maximum(
        ndimage.grey_closing(cleared, size=(reach, 1)), ndimage.grey_closing(cleared, (1, reach))
    )
    cleared = np.where(rules, joined, cleared).astype(np.float32)
    return cleared if (solid & ~rules).sum() > 0.2 * solid.sum() else ink


def paper_of(gray: np.ndarray) -> np.ndarray:
    """(H, W) brightness in [0, 1], dark ink on light paper -> (H, W) brightness of the paper
    alone, shadows and colour casts included. A greyscale closing a third of the image wide (the
    brightest value within the window, then the darkest: wider than a low-resolution scan's
    strokes) gives a first guess; the pixels well under it are ink, and the paper is then a
    Gaussian average of the paper pixels alone (normalised convolution), which follows a
    shadow's edge through the digit without breaking into the closing's blocks. Large images
    are estimated at about 128 pixels and scaled back."""
    h, w = gray.shape
    shrink = max(1, max(h, w) // 128)
    small = gray[::shrink, ::shrink]
    if min(small.shape) >= 56:  # grain smoothed first, or the maximum picks its peaks
        small = ndimage.gaussian_filter(small, 1.5)
    size = max(3, max(small.shape) // 3)
    paper = ndimage.minimum_filter(ndimage.maximum_filter(small, size), size)
    sigma = max(1.0, max(small.shape) / SMOOTH)
    for _ in range(2):
        # Ink and its grey ramp (a pixel of margin) are left out of the paper's average.
        seen = ~ndimage.binary_dilation(small < (1 - INKY) * paper, iterations=2)
        weight = ndimage.gaussian_filter(seen.astype(np.float32), sigma)
        average = ndimage.gaussian_filter(np.where(seen, small, 0).astype(np.float32), sigma)
        paper = np.where(weight > 0.02, average / np.maximum(weight, 1e-6), paper)
    if shrink > 1:
        paper = np.asarray(
            Image.fromarray(paper.astype(np.float32), "F").resize((w, h), Image.BILINEAR)
        )
    return np.maximum(paper, 1e-3)


def relative_ink(gray: np.ndarray, steps: frozenset = STEPS) -> np.ndarray:
    """(H, W) brightness in [0, 1], dark ink on light paper -> (H, W) ink as darkness relative
    to the paper around it: 1 - gray / paper. On clean, evenly lit paper that is the plain
    darkness; under a shadow or a colour cast the paper's own shade is divided out, so the
    shadow is not taken for ink. Without the "shade" step, or when the border (which is paper)
    is evenly lit, the paper is the border's median: an estimate from inside the image would
    take some of a low-resolution scan's thick soft strokes for paper and fade them."""
    border = border_of(gray)
    even = np.percentile(border, 95) - np.percentile(border, 5) <= FLAT
    if "shade" in steps and not even:
        ink = 1 - gray / paper_of(gray)
    else:
        ink = float(np.median(border)) - gray
    # Paper grain and JPEG noise are single pixels; strokes are wider: a 3x3 median drops them.
    # An even, clean border has no grain, and the median would shave a soft stroke's ramp.
    if "grain" in steps and not even and min(gray.shape) >= 56:
        ink = ndimage.median_filter(ink, 3)
    # Rules are looked for among the ink Otsu's threshold tells from the paper.
    if "rules" in steps and ink.max() - ink.min() > 0.1:
        ink = without_rules(ink, ink >= threshold_otsu(ink))
    return ink


class BlankImageError(DigitlabError):
    """An image with no ink in it."""


def stroke_width(ink: np.ndarray) -> float:
    """Rough stroke width in pixels: twice the ink's area over its boundary length."""
    solid = ink > 0.5
    area = solid.sum()
    if area == 0:
        return 1.0
    padded = np.pad(solid, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = area - (solid & interior).sum()
    return 2.0 * area / max(boundary, 1)


def center_digit(ink: np.ndarray, steps: frozenset = STEPS) -> np.ndarray:
    """(H, W) ink of one digit -> (28, 28) float32 MNIST-style image in [0, 1].

    Crop to the ink, thicken strokes too thin to survive the scaling, scale the longest side to
    20 pixels (aspect kept, anti-aliased), place in 28x28 with the centre of mass at the centre.
    """
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        raise BlankImageError("no ink found: the image is blank")
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    # A thin pen on a big canvas would shrink to a faint hairline; widen it to MNIST's stroke.
    missing = int(round(STROKE / scale - stroke_width(ink)))
    if missing >= 2 and "thicken" in steps:
        ink = ndimage.maximum_filter(ink, size=missing // 2 * 2 + 1)  # separable: fast
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(np.ascontiguousarray(ink), "F").resize((new_w, new_h), Image.LANCZOS)
    small = np.clip(np.asarray(small), 0, None)
    small /= max(float(small.max()), 1e-6)
    ys, xs = np.mgrid[0:new_h, 0:new_w]
    total = small.sum()
    com_y, com_x = (ys * small).sum() / total, (xs * small).sum() / total
    # MNIST's centres of mass sit at pixel index (14, 14) on average, measured over its test set.
    top = int(np.clip(round(FIELD / 2 - com_y), 0, FIELD - new_h))
    left = int(np.clip(round(FIELD / 2 - com_x), 0, FIELD - new_w))
    field = np.zeros((FIELD, FIELD), np.float32)
    field[top : top + new_h, left : left + new_w] = small
    return field


def split_digits(ink: np.ndarray, steps: frozenset = STEPS) -> list[np.ndarray]:
    """(H, W) ink of a row of digits -> their (28, 28) MNIST-style images, left to right.

    Each connected stroke (8-connected) is a piece (ink_of has dropped the specks); pieces that
    share most of their horizontal extent are one digit (the detached bar of a 5, the two strokes
    of a 4, the parts of a broken 8). Digits whose strokes touch stay one piece: write them apart.
    """
    labels, count = ndimage.label(ink > 0, structure=np.ones((3, 3)))
    if count == 0:
        raise BlankImageError("no ink found: the image is blank")
    pieces = ndimage.find_objects(labels)
    groups: list[list[int]] = []  # piece indices, each group one digit
    for i in sorted(range(count), key=lambda i: pieces[i][1].start):
        left, right = pieces[i][1].start, pieces[i][1].stop
        for group in groups:
            g_left = min(pieces[j][1].start for j in group)
            g_right = max(pieces[j][1].stop for j in group)
            overlap = min(right, g_right) - max(left, g_left)
            if overlap > 0.5 * min(right - left, g_right - g_left):
                group.append(i)
                break
        else:
            groups.append([i])
    groups.sort(key=lambda g: min(pieces[j][1].start for j in g))
    return [
        center_digit(np.where(np.isin(labels, [j + 1 for j in g]), ink, 0), steps) for g in groups
    ]


def preprocess_multi(image: str | Path | Image.Image, steps: frozenset = STEPS) -> torch.Tensor:
    """An image of a number written left to right -> (K, 28, 28) float32, one image per digit.
    steps: which of STEPS to take (all by default; OLD is the path before the paper's shade)."""
    name = image if isinstance(image, (str, Path)) else "image"
    if isinstance(image, (str, Path)):
        image = load_image(image)
    try:
        return torch.from_numpy(np.stack(split_digits(ink_of(image, steps), steps)))
    except BlankImageError as e:
        raise BlankImageError(f"{name}: {e}; give an image with digits on it") from None


def preprocess(image: str | Path | Image.Image, steps: frozenset = STEPS) -> torch.Tensor:
    """An image (file path or PIL image) of one digit -> (28, 28) float32 tensor in [0, 1].
    steps: which of STEPS to take (all by default; OLD is the path before the paper's shade)."""
    name = image if isinstance(image, (str, Path)) else "image"
    if isinstance(image, (str, Path)):
        image = load_image(image)
    try:
        return torch.from_numpy(center_digit(ink_of(image, steps), steps))
    except BlankImageError as e:
        raise BlankImageError(f"{name}: {e}; give an image with a digit on it") from None
