"""A finished run's "not sure" threshold (read.unsure), fitted and saved beside its model."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from digitlab.data.mnist import Split, as_input, load_split
from digitlab.files import atomic_write
from digitlab.nets import checkpoint
from digitlab.read import outliers, unsure
from digitlab.train.checks import split_training_set
from digitlab.train.settings import TrainConfig

EXPOSURE = 6000  # synthetic outliers the head learns to refuse (read.outliers: drawn once, kept)


def warm_up() -> None:
    """Start drawing, in the background, the outlier pages every fit takes its own from
    (outliers.warm_up; read from the cache folder where they are kept already): the app's Learn
    (train.finetune) then finds them drawn."""
    outliers.warm_up(EXPOSURE)


def calibration(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    val: Split,
    mean: float,
    std: float,
    out: Path,
    held_name: str = "validation split",
) -> dict | None:
    """ "Not sure" (read.unsure): the feature distance and the outlier-exposure head (against
    as many synthetic outliers, read.outliers, up to EXPOSURE) fitted on up to 10,000 training
    images and saved beside the model, its threshold from held-out digits: the validation split, or
    without one a third of the training images kept out of the fit (seen in training, so
    somewhat more test digits than 1% may come out unsure; --val-split N is the better way).
    images (N, H, W) uint8 training images, labels (N,); held_name names `val` in the record.
    Returns the threshold's record, or None when there are too few images to set one."""
    images, labels = images.cpu(), labels.cpu()
    if len(val):
        held, source = val.images, f"{held_name} ({len(val)} images)"
        fit_images, fit_labels = images[:10_000], labels[:10_000]
    else:
        cut = min(len(images) // 3, 5000)
        if cut < 10:  # too few images to fit a distance and set a threshold: never unsure
            return None
        held, source = images[:cut], f"{cut} training images kept out of the fit (no --val-split)"
        fit_images, fit_labels = images[cut : cut + 10_000], labels[cut : cut + 10_000]
    exposure = outliers.build(fit_images, fit_labels, min(EXPOSURE, len(fit_images)))
    return unsure.fit_and_calibrate(
        model,
        as_input(fit_images, mean, std),
        fit_labels,
        as_input(held, mean, std),
        source,
        out,
        exposure=as_input(exposure, mean, std),
    )


def fit_run(run_dir: str | Path | None = None) -> dict:
    """Re-fit a finished run's "not sure" (unsure.safetensors and config.json's "unsure") on
    its own weights, as `digitlab train` does when it writes the run: the distance and head on
    10,000 of the run's training images (and synthetic outliers), the threshold on its
    validation split rebuilt from its seed. None: the shipped model. Returns the calibration."""
    model, config = checkpoint.load(run_dir)
    folder = checkpoint.resolve(run_dir)[0].parent
    train = load_split(None, train=True)
    settings = TrainConfig(val_split=config.get("val_split") or 5000, seed=config["seed"])
    train_idx, val_idx = split_training_set(settings, train)
    val = Split(train.images[val_idx], train.labels[val_idx], "validation split")
    norm = config["normalization"]
    found = calibration(
        model,
        train.images[train_idx],
        train.labels[train_idx],
        val,
        norm["mean"],
        norm["std"],
        folder,
    )
    config["unsure"] = found
    atomic_write(checkpoint.resolve(run_dir)[1], (json.dumps(config, indent=2) + "\n").encode())
    return found
