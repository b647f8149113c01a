"""Photo-like digits: MNIST test digits printed and photographed (tests/photos.py), read by the
shipped model through predict's preprocessing; `--lined` prints them on ruled paper with specks.

    python benchmarks/photos.py [--n 500] [--lined] [--checkpoint RUN]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.data.mnist import load_split  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.read.predictor import Predictor  # noqa: E402
from photos import photo  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--lined", action="store_true", help="on ruled paper, with specks")
    parser.add_argument("--checkpoint", help="run folder (default: the shipped model)")
    args = parser.parse_args()
    predictor, test, rng = (
        Predictor.load(args.checkpoint),
        load_split(None, False),
        np.random.default_rng(1),
    )
    right = 0
    for i in range(args.n):
        try:
            right += predictor.read(
                photo(test.images[i].numpy(), rng, lined=args.lined)
            ).digit == int(test.labels[i])
        except DigitlabError:  # no ink found counts as wrong
            pass
    kind = "photo-like digits on ruled paper" if args.lined else "photo-like digits"
    print(f"{kind} read right: {right} of {args.n} ({right / args.n:.1%})")
