"""How well the shipped model reads each family of real-looking digits (tests/families.py),
through predict's preprocessing with every step on, the old path (before the paper's shade was
divided out: plain darkness, faint ink dropped, thin strokes thickened), and each step off in
turn; and the stroke width the model sees, beside MNIST's.

    python benchmarks/reading.py [--n 300] [--checkpoint RUN]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.data.mnist import load_split  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.read.predictor import Predictor  # noqa: E402
from digitlab.read.preprocess import STEPS, preprocess  # noqa: E402
from families import FAMILIES, images  # noqa: E402

OLD = frozenset({"faint", "thicken"})
ORDER = ("paper", "grain", "rules", "otsu", "faint", "specks", "thicken")
COLUMNS = {"all": STEPS, "old": OLD, **{f"-{s}": STEPS - {s} for s in ORDER}}


def stroke_width(digits: torch.Tensor) -> float:
    """The mean stroke width of (N, 28, 28) digits in pixels: ink mass over the length of its
    skeleton (the ink thinned to one pixel wide), both of the ink above half."""
    from skimage.morphology import skeletonize

    widths = []
    for d in digits.numpy():
        length = skeletonize(d > 0.5).sum()
        if length:
            widths.append(d.sum() / length)
    return float(np.mean(widths))


def accuracy(predictor, pictures, labels, steps) -> tuple[float, torch.Tensor]:
    seen, right = [], []
    for picture, label in zip(pictures, labels, strict=True):
        try:
            seen.append(preprocess(picture, steps))
            right.append(int(label))
        except DigitlabError:  # no ink found: wrong
            pass
    digits = torch.stack(seen)
    guesses = predictor.probabilities(digits).argmax(1)
    return float((guesses == torch.tensor(right)).sum()) / len(labels), digits


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300, help="images per family")
    parser.add_argument("--checkpoint", help="run folder (default: the shipped model)")
    args = parser.parse_args()
    torch.manual_seed(0)
    start, predictor, test = time.time(), Predictor.load(args.checkpoint), load_split(None, False)
    train = load_split(None, True)
    print(
        f"{'family':<8}" + "".join(f"{c:>9}" for c in COLUMNS) + "   width (MNIST "
        f"{stroke_width(train.images[:1000].float() / 255):.2f})"
    )
    for k, family in enumerate(FAMILIES):
        index = slice(k * args.n, (k + 1) * args.n)  # each family its own digits
        digits, labels = test.images[index].numpy(), test.labels[index].numpy()
        pictures = images(family, digits, labels)
        row, width = [], 0.0
        for name, steps in COLUMNS.items():
            value, seen = accuracy(predictor, pictures, labels, steps)
            row.append(value)
            width = stroke_width(seen) if name == "all" else width
        print(f"{family:<8}" + "".join(f"{v:>9.1%}" for v in row) + f"   {width:.2f}")
    print(f"{args.n} images per family, {time.time() - start:.0f} s")
