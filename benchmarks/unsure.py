"""How well a model knows when not to answer: digits against non-digits.

    python benchmarks/unsure.py [--checkpoint RUN]

Scores MNIST's test digits and the non-digit set (digitlab.read.nondigits: letters and symbols from
the installed fonts, random scribbles, noisy blank pages) three ways: the feature distance the
model uses (digitlab.read.unsure), the maximum softmax probability and the negative free energy. For
each: AUROC, and at the threshold that 1% of the run's validation digits fall below, the share of
test digits called unsure and of each kind of non-digit caught.
"""

from __future__ import annotations

import argparse

import torch

from digitlab.data.mnist import load_split
from digitlab.read import nondigits, unsure
from digitlab.read.predictor import Predictor
from digitlab.train.checks import split_training_set
from digitlab.train.settings import TrainConfig


def report(name, validation, digits, others) -> str:
    every = torch.cat(list(others.values()))
    threshold = torch.quantile(validation, unsure.RATE)
    called = (digits < threshold).double().mean().item()
    caught = {k: (v < threshold).double().mean().item() for k, v in others.items()}
    return (
        f"{name:>12}: AUROC {unsure.auroc(digits, every):.4f}; {100 * called:.2f}% of test digits "
        f"unsure, {100 * (every < threshold).double().mean().item():.1f}% of non-digits caught ("
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in caught.items())
        + ")"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a run folder (default: the shipped model)")
    args = parser.parse_args()
    predictor = Predictor.load(args.checkpoint)
    config = predictor.config
    train = load_split(None, train=True)
    held = TrainConfig(val_split=config["val_split"] or 5000, seed=config["seed"])
    _, val_idx = split_training_set(held, train)  # the run's own validation split, rebuilt
    sets = {
        "validation": train.images[val_idx],
        "test": load_split(None, train=False).images,
        **nondigits.build(),
    }
    print(", ".join(f"{len(v)} {k}" for k, v in sets.items()))
    print(f"the model's calibration: {config.get('unsure')}")
    logits = {k: predictor.logits(v) for k, v in sets.items()}
    scores = {
        "mahalanobis": {
            k: predictor.distance.score(unsure.features(predictor.model, predictor.inputs(v)))
            for k, v in sets.items()
        }
    }
    for name, fn in unsure.LOGIT_SCORES.items():
        scores[name] = {k: fn(v) for k, v in logits.items()}
    for name, by_set in scores.items():
        others = {k: v for k, v in by_set.items() if k not in ("validation", "test")}
        print(report(name, by_set["validation"], by_set["test"], others))
