"""A finished run's "not sure" threshold (read.unsure), fitted and saved beside its model."""

from __future__ import annotations

from pathlib import Path

import torch

from digitlab.data.mnist import Split, as_input
from digitlab.read import unsure


def calibration(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    val: Split,
    mean: float,
    std: float,
    out: Path,
) -> dict | None:
    """ "Not sure" (read.unsure): the feature distance fitted on up to 10,000 training images
    and saved beside the model, its threshold from held-out digits: the validation split, or
    without one a third of the training images kept out of the fit (seen in training, so
    somewhat more test digits than 1% may come out unsure; --val-split N is the better way).
    images (N, H, W) uint8 training images, labels (N,). Returns the threshold's record, or None
    when there are too few images to set one."""
    images, labels = images.cpu(), labels.cpu()
    if len(val):
        held, source = val.images, f"validation split ({len(val)} images)"
        fit_images, fit_labels = images[:10_000], labels[:10_000]
    else:
        cut = min(len(images) // 3, 5000)
        if cut < 10:  # too few images to fit a distance and set a threshold: never unsure
            return None
        held, source = images[:cut], f"{cut} training images kept out of the fit (no --val-split)"
        fit_images, fit_labels = images[cut : cut + 10_000], labels[cut : cut + 10_000]
    return unsure.fit_and_calibrate(
        model, as_input(fit_images, mean, std), fit_labels, as_input(held, mean, std), source, out
    )
