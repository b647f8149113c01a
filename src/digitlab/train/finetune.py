"""Teach a model one person's handwriting: fine-tune a copy on their labelled drawings, mixed
with MNIST training digits so that it does not forget the rest.

    digitlab finetune CKPT --images DIR --out RUN [--json]

DIR holds `<label>/*.png` or files named `<label>_*.png` (label 0-9), as the app saves them.
Every fourth drawing of each digit (at least one drawing when there are four or more) is held out
to judge the result: accuracy on MNIST's test set and on the held-out drawings, before and after.
The result is a new run folder, written only when everything worked; the model it started from
is never touched.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import torch

from digitlab.data.augment import RandomAffine
from digitlab.data.mnist import Split, load_split, to_unit
from digitlab.errors import DigitlabError
from digitlab.nets import checkpoint
from digitlab.nets.evaluation import classification_report
from digitlab.read.preprocess import preprocess
from digitlab.train.calibration import calibration

MIN_DRAWINGS = 5
STEPS, BATCH, LR = 60, 32, 3e-4
NAME = re.compile(r"^(\d+)_")


def read_drawings(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    """(images (N, 28, 28) float in [0, 1], labels (N,), paths), prepared as predict prepares
    them. Each unreadable file or bad label is a one-line DigitlabError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DigitlabError(f"{folder}: no such folder of drawings; save some from the app first")
    images, labels, paths = [], [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        label = label_of(path, folder)
        images.append(preprocess(path))  # a DigitlabError naming the file when unreadable
        labels.append(label)
        paths.append(path)
    if len(images) < MIN_DRAWINGS:
        raise DigitlabError(
            f"{folder}: {len(images)} drawing(s); fine-tuning needs at least {MIN_DRAWINGS}: "
            "save more from the app (or DIR/<label>/*.png)"
        )
    return torch.stack(images), torch.tensor(labels), paths


def label_of(path: Path, folder: Path) -> int:
    parent = path.parent.name if path.parent != folder else None
    text = parent if parent is not None else (NAME.match(path.name) or [None, None])[1]
    if text is None or not text.isdigit() or not 0 <= int(text) <= 9:
        raise DigitlabError(
            f"{path}: no label 0-9 in its folder or name; put it in DIR/<label>/ or name it "
            "<label>_anything.png"
        )
    return int(text)


def held_out_mask(labels: torch.Tensor) -> torch.Tensor:
    """Every fourth drawing of each label, when there are several of it."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        where = torch.nonzero(labels == label).flatten()
        if len(where) >= 4:
            mask[where[3::4]] = True
    if not mask.any():  # few drawings of many digits: hold out every fourth of all
        mask[3::4] = True
    return mask


def scores(predictor, images, labels, mnist) -> dict:
    mnist_report = classification_report(predictor.logits(mnist.images).argmax(1), mnist.labels)
    yours = (predictor.logits(images).argmax(1) == labels).double().mean().item()
    return {"mnist": mnist_report["accuracy"], "yours": yours}


def finetune(predictor, images_dir, out, seed: int = 0, progress=None, steps: int = STEPS) -> dict:
    """Fine-tune a copy of `predictor`'s model for `steps` steps; returns {"before", "after",
    "checkpoint", "seconds", "drawings"}. progress(fraction) is called as it goes."""
    if Path(out).exists():
        raise DigitlabError(f"{out}: exists already; choose a new run folder")
    images, labels, _ = read_drawings(images_dir)
    held = held_out_mask(labels)
    mnist_test = load_split(None, train=False)
    before = scores(predictor, images[held], labels[held], mnist_test)
    model = copy_of(predictor)
    start = time.perf_counter()
    train_steps(predictor, model, images[~held], labels[~held], seed, progress, steps)
    seconds = time.perf_counter() - start
    tuned = type(predictor)(model.eval(), predictor.config)
    after = scores(tuned, images[held], labels[held], mnist_test)
    save_run(predictor, model, Path(out), images_dir, labels, held, after)
    return {
        "before": before,
        "after": after,
        "checkpoint": str(Path(out) / checkpoint.WEIGHTS),
        "seconds": seconds,
        "drawings": {"train": int((~held).sum()), "held_out": int(held.sum())},
    }


def save_run(predictor, model, out: Path, images_dir, labels, held, after) -> None:
    """The fine-tuned run: weights, config and its own "not sure" distance (the weights
    changed, so the features did), written into a hidden folder beside `out` and then renamed:
    the run appears whole or not at all."""
    if out.exists():
        raise DigitlabError(f"{out}: exists already; choose a new run folder")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    mnist = load_split(None, train=True)
    held_out = Split(mnist.images[10_000:15_000], mnist.labels[10_000:15_000], mnist.source)
    found = calibration(
        model,
        mnist.images[:10_000],
        mnist.labels[:10_000],
        held_out,
        predictor.mean,
        predictor.std,
        partial,
        held_name="MNIST training images kept out of the fit",
    )
    config = {
        **predictor.config,
        "finetuned_from": predictor.config.get("command") or "the shipped model",
        "handwriting": {
            "drawings": len(labels),
            "held_out": int(held.sum()),
            "per_label": {str(k): n for k, n in sorted(Counter(labels.tolist()).items())},
            "dir": str(images_dir),
        },
        "metrics": {"test_accuracy": after["mnist"]},
        "unsure": found,
    }
    checkpoint.save(partial, model, config)
    partial.rename(out)


def copy_of(predictor):
    """A copy of the predictor's model to train (the original keeps answering meanwhile)."""
    return copy.deepcopy(predictor.model)


def train_steps(predictor, model, images, labels, seed: int, progress, steps=STEPS) -> None:
    """`steps` steps of Adam: each batch half the person's drawings (randomly distorted, so a few
    drawings go a long way) and half MNIST training digits."""
    g = torch.Generator().manual_seed(seed)
    mnist = load_split(None, train=True)
    augment = RandomAffine()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for step in range(steps):
        mine = torch.randint(len(images), (BATCH // 2,), generator=g)
        theirs = torch.randint(len(mnist), (BATCH // 2,), generator=g)
        batch = torch.cat([augment(images[mine], g), to_unit(mnist.images[theirs])])
        target = torch.cat([labels[mine], mnist.labels[theirs]])
        optimizer.zero_grad()
        loss_fn(model(predictor.inputs(batch)), target).backward()
        optimizer.step()
        if progress is not None:
            progress((step + 1) / steps)
