"""Accuracy, loss, per-class precision and recall, confusion matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digitlab.data.mnist import NUM_CLASSES, Split, as_input


@torch.no_grad()
def in_batches(model, forward, x: torch.Tensor, batch_size: int = 250):
    """forward(model, batch) over x (N, ...) in batches on the model's device, in eval mode and
    without gradients, the model's train/eval mode restored after; the results concatenated on
    the CPU: a tensor (N, ...), or for a forward returning a dict, a dict of them. The one
    batched eval-mode forward: logits, the "not sure" features and the feature maps use it."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        parts = [
            forward(model, x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k].cpu() for p in parts]) for k in parts[0]}
    return torch.cat([p.cpu() for p in parts])


def logits_of(model, images: torch.Tensor, mean: float, std: float, batch_size: int = 250):
    """Logits (N, C) float32 on the CPU for (N, H, W) images, in eval mode, in batches."""
    return in_batches(model, lambda m, b: m(as_input(b, mean, std)).float(), images, batch_size)


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
