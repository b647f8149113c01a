"""Recipes: fixed, named training settings. A run never consults the test set to decide anything
(no early stopping, no picking of epochs): the schedule is set before it starts.

`digitlab train --recipe NAME` starts from a recipe's settings; flags given beside it still win
(e.g. `--backend scratch`, `--seed 3`).

speedrun  the fewest seconds to 99% test accuracy on a laptop CPU: the small `fast` net, one
          epoch in batches of 256, Adam at a peak rate of 0.02 on a one-cycle schedule, label
          smoothing 0.1; chosen over the batches of 128 at 0.01 it had before on 10,000 held-out
          training images (docs/records.md).
best      the highest accuracy from one model within 20 minutes on a laptop CPU: the batch-norm
          `best` net, 32 epochs on randomly rotated, scaled and shifted digits, SGD with Nesterov
          momentum on a one-cycle schedule, label smoothing, an average of the weights; 5,000
          training images held out, on which every epoch is judged, and the test set read once,
          at the end.
sturdy    the best recipe, 40 epochs, with a share of 0.5 of its training images given a shaded
          background, noise, blur or a stray stroke (digitlab.data.augment.Sturdy), for digits
          outside MNIST's clean ones; the share and the length were chosen on corrupted held-out
          training images (`digitlab robustness RUN --on validation`), never on the corrupted
          test set. Seed 1 is the shipped model (src/digitlab/pretrained, docs/reading.md).
"""

from __future__ import annotations

from digitlab.errors import DigitlabError

RECIPES = {
    "speedrun": dict(
        model="fast",
        optimizer="adam",
        lr=0.02,
        betas=(0.8, 0.999),
        batch_size=256,
        epochs=1,
        schedule="onecycle",
        warmup=0.3,
        label_smoothing=0.1,
    ),
    "best": dict(
        model="best",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        batch_size=128,
        epochs=32,
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.1,
        augment=True,
        average=0.999,
        val_split=5000,
    ),
}


RECIPES["sturdy"] = dict(RECIPES["best"], sturdy=0.5, epochs=40)


def settings(name: str) -> dict:
    """The TrainConfig fields that recipe `name` sets."""
    if name not in RECIPES:
        raise DigitlabError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name], recipe=name)
