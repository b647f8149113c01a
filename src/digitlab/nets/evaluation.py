"""Accuracy, loss, per-class precision and recall, confusion matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digitlab.data.mnist import NUM_CLASSES, Split, as_input


@torch.no_grad()
def logits_of(model, images: torch.Tensor, mean: float, std: float, batch_size: int = 250):
    """Logits (N, C) on the CPU for (N, H, W) images, computed in eval mode in batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(as_input(images[i : i + batch_size].to(device), mean, std)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out)


# Test-time augmentation: the image and its four copies moved one pixel down, up, right, left.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(N, H, W) images moved dy pixels down and dx right (|dy|, |dx| <= 1); the row or column
    uncovered is background (0)."""
    h, w = images.shape[1:]
    padded = F.pad(images, (1, 1, 1, 1))
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def shifted_probabilities(model, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Class probabilities (N, C) averaged over the image and its four one-pixel shifts (SHIFTS):
    test-time augmentation, five forward passes per image."""
    views = [logits_of(model, shifted(images, dy, dx), mean, std) for dy, dx in SHIFTS]
    return torch.stack([v.softmax(1) for v in views]).mean(0)


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES):
    """(C, C) int64 counts; row = true class, column = predicted class."""
    flat = target * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def classification_report(predicted: torch.Tensor, target: torch.Tensor) -> dict:
    """{"accuracy", "per_class": [{"class", "precision", "recall", "support"}], "confusion"}."""
    confusion = confusion_matrix(predicted, target)
    correct = confusion.diag().double()
    predicted_count = confusion.sum(0).double()
    support = confusion.sum(1)
    precision = correct / predicted_count.clamp(min=1)
    recall = correct / support.double().clamp(min=1)
    return {
        "accuracy": correct.sum().item() / max(len(target), 1),
        "per_class": [
            {
                "class": c,
                "precision": precision[c].item(),
                "recall": recall[c].item(),
                "support": int(support[c]),
            }
            for c in range(len(confusion))
        ],
        "confusion": confusion.tolist(),
    }


def evaluate(model, split: Split, mean: float, std: float, tta: bool = False) -> dict:
    """classification_report of `model` on `split`, plus its mean cross-entropy "loss"; with
    tta=True, of the probabilities averaged over the one-pixel shifts (shifted_probabilities)."""
    if tta:
        logits = shifted_probabilities(model, split.images, mean, std).log()
    else:
        logits = logits_of(model, split.images, mean, std)
    report = classification_report(logits.argmax(1), split.labels)
    report["loss"] = F.cross_entropy(logits, split.labels).item()
    return report
