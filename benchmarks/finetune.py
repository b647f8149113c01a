"""Teaching the shipped model one hand: before and after, and how long it takes.

    python benchmarks/finetune.py [--per-digit 8]

Draws the blocky, slanted hand of tests/handwriting.py (a crossed 7, a European 1, a slashed 0),
`--per-digit` drawings of each digit, and fine-tunes the shipped model on three quarters of them
(digitlab finetune): accuracy on MNIST's test set and on the held-out quarter, before and after.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.read.predictor import Predictor  # noqa: E402
from digitlab.train.finetune import finetune  # noqa: E402
from handwriting import draw_hand  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-digit", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for digit in range(10):
            (Path(tmp) / "hand" / str(digit)).mkdir(parents=True)
            for k in range(args.per_digit):
                draw_hand(digit, rng).save(Path(tmp) / "hand" / str(digit) / f"{k}.png")
        result = finetune(Predictor.load(), Path(tmp) / "hand", Path(tmp) / "run")
    b, a = result["before"], result["after"]
    print(f"drawings: {result['drawings']}")
    print(f"held-out drawings of the hand: {b['yours']:.1%} -> {a['yours']:.1%}")
    print(f"MNIST test: {b['mnist']:.2%} -> {a['mnist']:.2%}")
    print(f"fine-tuning took {result['seconds']:.1f} s")
