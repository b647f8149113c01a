"""How well a model knows when not to answer: digits against non-digits.

    python benchmarks/unsure.py [--checkpoint RUN] [--refit]

Scores MNIST's test digits and the non-digit set (digitlab.read.nondigits: letters and symbols from
the installed fonts, hand-drawn letters and symbols, random scribbles, noisy blank pages) three
ways: the "not sure" score the run uses (digitlab.read.unsure: the outlier-exposure head over the
feature distance, or the distance alone for a run fitted before the head), the maximum softmax
probability and the negative free energy. For each: AUROC, and at the threshold that 1% of the
run's validation digits fall below, the share of test digits called unsure and of each family of
non-digits caught; and the non-digits caught where exactly 1% of the test digits are unsure.
--refit first re-fits the run's detector (digitlab.train.calibration.fit_run), writing its
unsure.safetensors and config.json.
"""

from __future__ import annotations

import argparse

import torch

from digitlab.data.mnist import load_split
from digitlab.read import nondigits, unsure
from digitlab.read.predictor import Predictor
from digitlab.train.calibration import fit_run
from digitlab.train.checks import split_training_set
from digitlab.train.settings import TrainConfig


def report(name, validation, digits, others) -> str:
    """One row: (N,) scores of the validation and test digits, {family: (M,) scores}."""
    every = torch.cat(list(others.values()))
    threshold = torch.quantile(validation, unsure.RATE)
    called = (digits < threshold).double().mean().item()
    # The ROC point: the threshold that exactly 1% of the test digits fall below.
    at_test = (every < torch.quantile(digits, unsure.RATE)).double().mean().item()
    cells = [f"{100 * at_test:.1f}%"]
    for v in [every, *others.values()]:
        caught = (v < threshold).double().mean().item()
        cells.append(f"{unsure.auroc(digits, v):.3f} / {100 * caught:.1f}%")
    return f"| {name} | {100 * called:.2f}% | " + " | ".join(cells) + " |"


def main(args) -> None:
    if args.refit:
        print(f"re-fitted: {fit_run(args.checkpoint)}")
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
        "used": {
            k: predictor.distance.scores(predictor.model, predictor.inputs(v))
            for k, v in sets.items()
        }
    }
    for name, fn in unsure.LOGIT_SCORES.items():
        scores[name] = {k: fn(v) for k, v in logits.items()}
    families = [k for k in sets if k not in ("validation", "test")]
    print("\nAUROC / non-digits caught at the threshold (1% of validation digits)\n")
    print(
        "| score | test digits unsure | all caught at 1% of test digits | all | "
        + " | ".join(families)
        + " |"
    )
    print("|---" * (4 + len(families)) + "|")
    for name, by_set in scores.items():
        others = {k: by_set[k] for k in families}
        print(report(name, by_set["validation"], by_set["test"], others))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a run folder (default: the shipped model)")
    parser.add_argument("--refit", action="store_true", help="re-fit the run's detector first")
    main(parser.parse_args())
