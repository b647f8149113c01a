"""Knowing when not to answer: how far an image is from the digits the model learned, and a
threshold chosen on held-out digits.

The score is a small head on the frozen model, fitted with outlier exposure (Hendrycks et al.,
"Deep Anomaly Detection with Outlier Exposure", 2019): a logistic regression on every conv
block's output averaged over height and width (and the last one's maximum), the logits, their
log-sum-exp (the negative free energy) and two Mahalanobis distances (Lee et al. 2018: each
class's mean under the covariance the classes share; the nearest class counts), one in the last
block's averaged features and one in the earlier blocks' averages with the last block's
maximum (Lee et al.'s feature ensemble: a shape odd at the level of strokes shows there before
the last block has made a digit of it). It learns training digits against synthetic outliers
(read.outliers: Bezier curves, stroke soups, crossing strokes, digit chimeras), never the
measured non-digits (read.nondigits).
benchmarks/unsure.py also measures the two scores read off the logits, the maximum softmax
probability (Hendrycks & Gimpel 2017) and the energy (Liu et al. 2020); on the shipped model the
head separates digits from letters, symbols, scribbles and blanks best (AUROC 0.992 against
0.953 and 0.905; the last block's distance alone, used before, 0.966). A run fitted before the
head existed has the distance alone in its unsure.safetensors; it still works.

The threshold is the score that 1% of held-out digits fall below, so about 1% of real digits are
called unsure; the best guess is always still given.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch.nn import functional as F

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

    def __init__(self, means: torch.Tensor, precision: torch.Tensor, head=None, earlier=None):
        self.means, self.precision = means, precision
        self.head = head  # a Head fitted with outlier exposure, or None (the distance alone)
        self.earlier = earlier  # a Distance on parts_of's "extra" (the head reads it), or None

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
        if self.head is not None:
            for name in ("shift", "scale", "weight", "bias"):
                tensors[f"head_{name}"] = getattr(self.head, name).contiguous()
        if self.earlier is not None:
            tensors["earlier_means"] = self.earlier.means.contiguous()
            tensors["earlier_precision"] = self.earlier.precision.contiguous()
        atomic_write(folder / FILE, save(tensors))

    @classmethod
    def load(cls, folder: Path) -> Distance | None:
        path = folder / FILE
        if not path.is_file():
            return None
        t = load_file(path)
        # A run fitted before the head existed has the distance alone, and one fitted before
        # the earlier blocks' distance has a head without it; both still work.
        head = earlier = None
        if "head_weight" in t:
            head = Head(*(t[f"head_{n}"] for n in ("shift", "scale", "weight", "bias")))
        if "earlier_means" in t:
            earlier = cls(t["earlier_means"], t["earlier_precision"])
        return cls(t["means"], t["precision"], head, earlier)

    def scores(self, model, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised inputs -> (N,) float64 "not sure" scores, higher = more
        like a digit: the head's log-odds, or without a head the distance's score."""
        if self.head is None:
            return self.score(features(model, inputs))
        return self.of_parts(features_and_logits(model, inputs))

    def of_parts(self, parts: dict) -> torch.Tensor:
        """parts_of's dict -> (N,) scores (the head's log-odds; the distance's without one)."""
        if self.head is None:
            return self.score(parts["features"])
        return self.head.score(Head.inputs(parts, self))


def parts_of(model, batch: torch.Tensor) -> dict:
    """One forward of (N, 1, H, W) normalised inputs -> what the head reads, float64:
    {"features": (N, D) the last conv block averaged over height and width (the distance's
    space), "extra": (N, E) every earlier block averaged and the last block's maximum,
    "logits": (N, C)}."""
    out, maps = models.blocks(model, batch)
    maps = [m.double() for m in maps.values()]
    extra = [m.mean((2, 3)) for m in maps[:-1]] + [maps[-1].amax((2, 3))]
    return {"features": maps[-1].mean((2, 3)), "extra": torch.cat(extra, 1), "logits": out.double()}


def features_and_logits(model, inputs: torch.Tensor, batch_size: int = 500) -> dict:
    """parts_of over (N, 1, H, W) normalised inputs, in batches, in eval mode."""
    return in_batches(model, parts_of, inputs, batch_size)


# The L2 penalty. With the last block's distance only, 1e-3 caught 1.6 points more but called
# 2.2% of digits unsure; with both distances, 3e-5 to 1e-3 moved the catch by under a point.
HEAD_DECAY = 1e-4


class Head:
    """Logistic regression, digits (1) against synthetic outliers (0), on h(x) = [every conv
    block averaged over height and width, the last one's maximum, the logits, their log-sum-exp,
    the Mahalanobis score of the last block's averages and (when fitted) of the other inputs
    from the blocks (parts_of's "extra": the earlier blocks' averages, the last one's maximum)],
    each standardised by the digits' mean and spread: K = D + E + C + 3 inputs (D + E + C + 2
    without the earlier distance). Its log-odds are the "not sure" score."""

    def __init__(self, shift, scale, weight, bias):
        self.shift, self.scale, self.weight, self.bias = shift, scale, weight, bias

    @staticmethod
    def inputs(parts: dict, distance: Distance) -> torch.Tensor:
        """parts_of's {"features", "extra", "logits"} -> (N, K) the head's raw inputs."""
        logits = parts["logits"]
        columns = [
            parts["features"],
            parts["extra"],
            logits,
            logits.logsumexp(1, keepdim=True),
            distance.score(parts["features"])[:, None],
        ]
        if distance.earlier is not None:
            columns.append(distance.earlier.score(parts["extra"])[:, None])
        return torch.cat(columns, 1)

    @classmethod
    def fit(cls, digits: torch.Tensor, others: torch.Tensor, decay: float = HEAD_DECAY) -> Head:
        """digits (N, K), others (M, K) head inputs; the two classes weigh the same, an L2
        penalty `decay` on the weights keeps it smooth (the outliers are not the real ones)."""
        shift, scale = digits.mean(0), digits.std(0) + 1e-6
        x = (torch.cat([digits, others]) - shift) / scale
        y = torch.cat([torch.ones(len(digits)), torch.zeros(len(others))]).double()
        w = torch.where(y == 1, 0.5 / len(digits), 0.5 / len(others))
        params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([params], max_iter=500, line_search_fn="strong_wolfe")

        def loss_fn():
            optimizer.zero_grad()
            z = x @ params[:-1] + params[-1]
            loss = (w * F.binary_cross_entropy_with_logits(z, y, reduction="none")).sum()
            loss = loss + decay * params[:-1].square().sum()
            loss.backward()
            return loss

        optimizer.step(loss_fn)
        params = params.detach()
        return cls(shift, scale, params[:-1].clone(), params[-1:].clone())

    def score(self, raw: torch.Tensor) -> torch.Tensor:
        """(N, K) raw inputs -> (N,) log-odds of being a digit."""
        return (raw - self.shift) / self.scale @ self.weight + self.bias


def calibrate(distance: Distance, held_scores: torch.Tensor, source: str, rate=RATE) -> dict:
    """config.json's "unsure": the score `rate` of the held-out digits' scores (N,) fall below."""
    threshold = torch.quantile(held_scores, rate).item()
    name = "mahalanobis" if distance.head is None else "head (outlier exposure) + mahalanobis"
    return {"score": name, "threshold": threshold, "rate": rate, "held_out": source}


def fit_and_calibrate(
    model, fit_inputs, fit_labels, held_inputs, source: str, folder: Path, exposure=None
):
    """Fit the distance on (fit_inputs, fit_labels) and, given `exposure` (normalised synthetic
    outliers (M, 1, H, W), read.outliers), the earlier blocks' distance and the head on
    fit_inputs against them; save them into `folder`, return the calibration from `held_inputs`.
    All inputs (N, 1, H, W) normalised."""
    parts = features_and_logits(model, fit_inputs)
    distance = Distance.fit(parts["features"], fit_labels)
    if exposure is not None and len(exposure):
        distance.earlier = Distance.fit(parts["extra"], fit_labels)
        others = Head.inputs(features_and_logits(model, exposure), distance)
        distance.head = Head.fit(Head.inputs(parts, distance), others)
    distance.save(folder)
    return calibrate(distance, distance.scores(model, held_inputs), source)


def is_unsure(model, inputs: torch.Tensor, distance: Distance | None, calibration) -> list[bool]:
    """Per image: below the calibrated threshold? (No calibration: never unsure.)"""
    if distance is None or not calibration:
        return [False] * len(inputs)
    return (distance.scores(model, inputs) < calibration["threshold"]).tolist()


def auroc(digit_scores: torch.Tensor, other_scores: torch.Tensor) -> float:
    """The probability that a digit scores above a non-digit (area under the ROC curve)."""
    # Imported here: scipy.stats takes most of a second to import, and every training process
    # imports this module (for the calibration) without needing it.
    from scipy.stats import mannwhitneyu

    u = mannwhitneyu(digit_scores.numpy(), other_scores.numpy()).statistic
    return float(u) / (len(digit_scores) * len(other_scores))
