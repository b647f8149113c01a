"""Knowing when not to answer: how far an image is from the digits the model learned, and a
threshold chosen on held-out digits.

The score is the Mahalanobis distance in the model's own feature space (Lee et al., "A Simple
Unified Framework for Detecting Out-of-Distribution Samples", 2018): the last conv block's
output, averaged over height and width, compared with each class's mean feature under the
covariance the classes share, both fitted on training images; the nearest class counts.
benchmarks/unsure.py also measures the two scores read off the logits, the maximum softmax
probability (Hendrycks & Gimpel 2017) and the negative free energy (Liu et al. 2020); on the
shipped model, against letters, symbols, scribbles and noisy blanks, the distance separated
digits from the rest best (AUROC 0.961 against 0.948 and 0.913), and it is the one that calls a
drawn letter A or a smiley "not sure".

The threshold is the score that 1% of held-out digits fall below, so about 1% of real digits are
called unsure; the best guess is always still given.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save

from digitlab.nets import models
from digitlab.nets.evaluation import in_batches

RATE = 0.01  # the share of real digits that may be called unsure
FILE = "unsure.safetensors"  # class means and shared precision, beside model.safetensors

LOGIT_SCORES = {
    "energy": lambda logits: logits.double().logsumexp(1),
    "max_softmax": lambda logits: logits.double().softmax(1).max(1).values,
}


def features(model, inputs: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, 1, H, W) normalised inputs -> (N, D) float64: the last conv block's output averaged
    over height and width (D = its channels)."""

    def last_block(m, batch):
        return list(models.blocks(m, batch)[1].values())[-1].double().mean((2, 3))

    return in_batches(model, last_block, inputs, batch_size)


class Distance:
    """Class means (C, D) and the shared precision (D, D); score = -min over classes of the
    squared Mahalanobis distance (higher = more like a digit)."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor):
        self.means, self.precision = means, precision

    @classmethod
    def fit(cls, feats: torch.Tensor, labels: torch.Tensor) -> Distance:
        classes = labels.unique()  # a small subset may lack a class: only those present count
        means = torch.stack([feats[labels == c].mean(0) for c in classes])
        centred = feats - means[torch.searchsorted(classes, labels)]
        covariance = centred.T @ centred / len(feats)
        # A small ridge: channels a ReLU left all-zero would make the covariance singular.
        ridge = 1e-6 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=feats.dtype)
        return cls(means, torch.linalg.inv(covariance + ridge))

    def score(self, feats: torch.Tensor) -> torch.Tensor:
        d = feats[:, None, :] - self.means[None]
        return -torch.einsum("ncd,de,nce->nc", d, self.precision, d).min(1).values

    def save(self, folder: Path) -> None:
        from digitlab.files import atomic_write

        tensors = {"means": self.means.contiguous(), "precision": self.precision.contiguous()}
        atomic_write(folder / FILE, save(tensors))

    @classmethod
    def load(cls, folder: Path) -> Distance | None:
        path = folder / FILE
        if not path.is_file():
            return None
        tensors = load_file(path)
        return cls(tensors["means"], tensors["precision"])


def calibrate(distance: Distance, held_out: torch.Tensor, source: str, rate: float = RATE) -> dict:
    """config.json's "unsure": the score `rate` of the held-out digits' features fall below."""
    threshold = torch.quantile(distance.score(held_out), rate).item()
    return {"score": "mahalanobis", "threshold": threshold, "rate": rate, "held_out": source}


def fit_and_calibrate(model, fit_inputs, fit_labels, held_inputs, source: str, folder: Path):
    """Fit the distance on (fit_inputs, fit_labels), save it into `folder`, and return the
    calibration from `held_inputs` (normalised inputs (N, 1, H, W))."""
    distance = Distance.fit(features(model, fit_inputs), fit_labels)
    distance.save(folder)
    return calibrate(distance, features(model, held_inputs), source)


def is_unsure(model, inputs: torch.Tensor, distance: Distance | None, calibration) -> list[bool]:
    """Per image: below the calibrated threshold? (No calibration: never unsure.)"""
    if distance is None or not calibration:
        return [False] * len(inputs)
    return (distance.score(features(model, inputs)) < calibration["threshold"]).tolist()


def auroc(digit_scores: torch.Tensor, other_scores: torch.Tensor) -> float:
    """The probability that a digit scores above a non-digit (area under the ROC curve)."""
    # Imported here: scipy.stats takes most of a second to import, and every training process
    # imports this module (for the calibration) without needing it.
    from scipy.stats import mannwhitneyu

    u = mannwhitneyu(digit_scores.numpy(), other_scores.numpy()).statistic
    return float(u) / (len(digit_scores) * len(other_scores))
