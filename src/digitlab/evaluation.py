"""Accuracy, loss, per-class precision and recall, confusion matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digitlab.data import NUM_CLASSES, Split, as_input


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


def evaluate(model, split: Split, mean: float, std: float) -> dict:
    """classification_report of `model` on `split`, plus its mean cross-entropy "loss"."""
    logits = logits_of(model, split.images, mean, std)
    report = classification_report(logits.argmax(1), split.labels)
    report["loss"] = F.cross_entropy(logits, split.labels).item()
    return report
