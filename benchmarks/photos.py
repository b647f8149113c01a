"""Photo-like digits: MNIST test digits printed and photographed (tests/photos.py), read by the
shipped model through predict's preprocessing.

    python benchmarks/photos.py [--n 500]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.data import load_split  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.predict import Predictor  # noqa: E402
from photos import photo  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    predictor, test, rng = Predictor.load(), load_split(None, False), np.random.default_rng(1)
    right = 0
    for i in range(args.n):
        try:
            right += predictor.read(photo(test.images[i].numpy(), rng)).digit == int(test.labels[i])
        except DigitlabError:  # no ink found counts as wrong
            pass
    print(f"photo-like digits read right: {right} of {args.n} ({right / args.n:.1%})")
