"""The 15 corruptions of MNIST-C (Mu & Gilmer, "MNIST-C: A Robustness Benchmark for Computer
Vision", 2019), written anew on scipy, scikit-image and Pillow with the paper's parameters (the
severities its google-research/mnist-c release uses for each).

Every corruption maps one (28, 28) float image in [0, 255] (MNIST's: bright ink on black) and a
numpy Generator to a (28, 28) float image in [0, 255]. Deterministic for a generator's seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import feature, filters, transform

SIZE = 28
CENTRE = 13.5


def shot_noise(x, rng):
    """Poisson noise: photon counts at 3 per unit of brightness."""
    c = 3
    return np.clip(rng.poisson(x / 255 * c) / c, 0, 1) * 255


def impulse_noise(x, rng):
    """Salt and pepper on 17% of the pixels, half each."""
    x = x / 255
    hit = rng.random(x.shape) < 0.17
    salt = rng.random(x.shape) < 0.5
    x = np.where(hit, salt.astype(float), x)
    return x * 255


def glass_blur(x, rng):
    """Blur (sigma 0.7), shuffle each pixel with a neighbour up to 1 away, twice, blur again."""
    sigma, delta, iterations = 0.7, 1, 2
    x = np.uint8(filters.gaussian(x / 255, sigma=sigma) * 255).astype(float)
    # The swaps run in order (a pixel may move twice), so they stay a loop; on plain Python
    # lists, with the random draws made up front, it is some 20 times faster than on numpy.
    pixels = x.tolist()
    positions = [
        (h, w) for h in range(SIZE - delta, delta, -1) for w in range(SIZE - delta, delta, -1)
    ]
    for _ in range(iterations):
        coins = rng.random(len(positions)) < 0.5
        moves = rng.integers(-delta, delta, size=(len(positions), 2)).tolist()
        for (h, w), coin, (dy, dx) in zip(positions, coins.tolist(), moves, strict=True):
            if coin:
                h2, w2 = h + dy, w + dx
                pixels[h][w], pixels[h2][w2] = pixels[h2][w2], pixels[h][w]
    x = np.array(pixels)
    return np.clip(filters.gaussian(x / 255, sigma=sigma), 0, 1) * 255


def motion_blur(x, rng):
    """A streak: the image averaged along a line of radius 10 at an angle in [-45, 45] degrees,
    its samples weighted by a Gaussian of sigma 3 (what ImageMagick's motion blur does)."""
    radius, sigma = 10, 3
    angle = np.deg2rad(rng.uniform(-45, 45))
    steps = np.arange(radius + 1)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    weights /= weights.sum()
    out = np.zeros_like(x, dtype=float)
    for step, weight in zip(steps, weights, strict=True):
        out += weight * ndimage.shift(x, (-step * np.sin(angle), step * np.cos(angle)), order=1)
    return np.clip(out, 0, 255)


def _affine(x, **params):
    """skimage's AffineTransform about the image centre (13.5, 13.5)."""
    aff = transform.AffineTransform(**params)
    (a1, a2), (b1, b2) = aff.params[0, :2], aff.params[1, :2]
    centred = transform.AffineTransform(
        **params, translation=[CENTRE * (1 - a1 - a2), CENTRE * (1 - b1 - b2)]
    )
    return np.clip(transform.warp(x / 255, inverse_map=centred), 0, 1) * 255


def shear(x, rng):
    return _affine(x, shear=0.4 * rng.choice([-1, 1]))


def scale(x, rng):
    return _affine(x, scale=(1 / 0.7, 1 / 0.7))


def rotate(x, rng):
    return _affine(x, rotation=0.4 * rng.choice([-1, 1]))


def translate(x, rng):
    dx, dy = 3 * rng.choice([-1, 1], size=2)
    aff = transform.AffineTransform(translation=[dx, dy])
    return np.clip(transform.warp(x / 255, inverse_map=aff), 0, 1) * 255


def brightness(x, rng):
    """+0.5 on the value channel of HSV; for a grey image that is +0.5 on every pixel."""
    return np.clip(x / 255 + 0.5, 0, 1) * 255


def stripe(x, rng):
    """The left and right quarters inverted."""
    x = np.array(x, dtype=float)
    x[:, :7] = 255 - x[:, :7]
    x[:, 21:] = 255 - x[:, 21:]
    return x


def plasma(rng, size: int = 256, decay: float = 1.4) -> np.ndarray:
    """A diamond-square fractal heightmap in [0, 1] (the fog's texture)."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def noisy_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares = squares + np.roll(squares, -1, axis=1)
        grid[half:size:step, half:size:step] = noisy_mean(squares)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = noisy_mean(left)
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = noisy_mean(top)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def fog(x, rng):
    """A fractal haze of strength 3 over the image, rescaled so the digit's peak stays."""
    strength = 3.0
    x = x / 255
    peak = x.max()
    x = x + strength * plasma(rng)[:SIZE, :SIZE]
    return np.clip(x * peak / (peak + strength), 0, 1) * 255


def spatter(x, rng):
    """Mud: blobs of grey (63) where smoothed noise crosses a threshold."""
    loc, scale_, sigma, threshold, mask_sigma = 0.65, 0.3, 1, 0.65, 1.5
    x = x / 255
    liquid = filters.gaussian(rng.normal(loc, scale_, x.shape), sigma=sigma)
    liquid[liquid < threshold] = 0
    mask = filters.gaussian((liquid > threshold).astype(float), sigma=mask_sigma)
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1) * 255


def line_from_points(c0, r0, c1, r1) -> np.ndarray:
    """A soft line from (column c0, row r0) to (c1, r1): brightness log(1 - d/2.3) + 1 at a
    distance d from it, zero beyond 2.3 pixels and outside the columns c0..c1."""
    if c1 == c0:
        return np.zeros((SIZE, SIZE))
    cc, rr = np.meshgrid(np.arange(SIZE, dtype=float), np.arange(SIZE, dtype=float), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rr - (slope * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


def dotted_line(x, rng):
    """A line across the image, every other pair of columns left out."""
    r0, r1 = rng.integers(0, 27, size=2)
    line = line_from_points(0, r0, 27, r1)
    for start in range(0, SIZE, 4):  # columns 0-1, 4-5, ... dark; 2-3, 6-7, ... drawn
        line[:, start : start + 2] = 0
    return np.clip(x / 255 + line, 0, 1) * 255


def zigzag(x, rng):
    """A zigzag of 2x2-pixel teeth across columns 2 to 25 at a random height and tilt."""
    x = x / 255
    a = b = 2.0
    c0, c1 = 2, 25
    r0 = int(rng.integers(0, 27))
    r1 = r0 + int(rng.integers(-5, 5))
    theta = np.arctan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / np.cos(theta)
    points = [(0.0, 0.0)]
    teeth = int((length - a) // (2 * a)) + 1
    for i in range(teeth):
        points.append(((2 * i + 1) * a, (-1) ** i * b))
    last = (2 * a) * (length // (2 * a))
    if length != last:
        points.append((length, points[-1][1] / (2 * (length - last))))
    ends = (
        np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        @ np.array(points).T
    )
    cs, rs = ends[0] + c0, ends[1] + r0
    for i in range(1, len(cs)):
        x = np.clip(x + line_from_points(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
    return x * 255


def canny_edges(x, rng):
    """Only the edges of the strokes (Canny, scikit-image's defaults)."""
    return feature.canny(x / 255).astype(float) * 255


CORRUPTIONS = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}


def corrupt(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28) uint8 under corruption `name`; image i draws from
    its own generator (seed, i), so a subset gets the same corrupted images as the whole."""
    fn = CORRUPTIONS[name]
    index = list(CORRUPTIONS).index(name)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        rng = np.random.default_rng([seed, index, i])
        out[i] = np.clip(np.round(fn(image.astype(float), rng)), 0, 255).astype(np.uint8)
    return out
