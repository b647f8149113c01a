"""Every family of images (tests/families.py) read by the shipped model through predict's
preprocessing: the full path, the old one (before the paper-shade step) and the full path with
each step off in turn, in one table; then the stroke width the model sees, per family, beside
MNIST's own.

    python benchmarks/reading.py [--limit 300] [--checkpoint RUN]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.morphology import skeletonize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.data.mnist import load_split  # noqa: E402
from digitlab.read.predictor import Predictor  # noqa: E402
from digitlab.read.preprocess import OLD, STEPS, BlankImageError, preprocess  # noqa: E402
from families import FAMILIES, family  # noqa: E402

ORDER = ("shade", "grain", "rules", "specks", "thicken")  # the path's own order
assert set(ORDER) == STEPS
PATHS = {"full": STEPS, "old": OLD} | {f"-{step}": STEPS - {step} for step in ORDER}


def seen(images, steps: frozenset) -> torch.Tensor:
    """The (N, 28, 28) digits the model sees; an image where no ink is found is all zeros."""
    out = []
    for image in images:
        try:
            out.append(preprocess(image, steps))
        except BlankImageError:
            out.append(torch.zeros(28, 28))
    return torch.stack(out)


def stroke(digits: torch.Tensor) -> float:
    """Median stroke width, in pixels, of (N, 28, 28) digits in [0, 1]: each digit's ink mass
    over the length of its skeleton (the ink over half its strongest, thinned to one pixel)."""
    widths = [
        float(d.sum()) / max(int(skeletonize(d.numpy() > 0.5).sum()), 1)
        for d in digits
        if d.max() > 0
    ]
    return float(np.median(widths))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=300, help="images per family")
    parser.add_argument("--checkpoint", help="run folder (default: the shipped model)")
    parser.add_argument("--paths", help="comma-separated columns (default: all)")
    args = parser.parse_args()
    predictor, start = Predictor.load(args.checkpoint), time.perf_counter()
    paths = args.paths.split(",") if args.paths else list(PATHS)
    print(f"{'family':8}" + "".join(f"{p:>9}" for p in paths) + "   stroke (full, old)")
    for name in FAMILIES:
        images, labels = family(name, args.limit)
        row, widths = [], {}
        for path in paths:
            digits = seen(images, PATHS[path])
            right = (predictor.probabilities(digits).argmax(1).numpy() == labels).mean()
            row.append(f"{right:9.1%}")
            if path in ("full", "old"):
                widths[path] = stroke(digits)
        print(f"{name:8}" + "".join(row) + "   " + ", ".join(f"{w:.2f}" for w in widths.values()))
    mnist = load_split(None, True).images[:1000].float() / 255
    print(f"MNIST training digits' stroke: {stroke(mnist):.2f} pixels (ink mass / skeleton)")
    print(f"({args.limit} images per family, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
