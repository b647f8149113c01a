"""How well a model reads digits that are not MNIST-clean: accuracy under the 15 corruptions of
MNIST-C (digitlab.data.corruptions), on the test set of the run's dataset, or (`--on validation`) on
the run's own held-out training images: where a setting such as `--sturdy` may be chosen without
ever looking at the corrupted test set.

    digitlab robustness CKPT [--on test|validation] [--corruptions a,b] [--limit N] [--seed S]
                             [--out DIR] [--json]

The corrupted test sets are made once and cached (atomically, as .npy files, under ~/.cache/
digitlab or $DIGITLAB_CACHE), keyed by the test images' hash, the corruption and the seed; each
image draws from its own generator, so a --limit run reuses the first images of a larger one.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from digitlab.data.corruptions import CORRUPTIONS, corrupt
from digitlab.data.mnist import Split, load_split
from digitlab.errors import DigitlabError
from digitlab.files import atomic_write, cache_dir


def names_of(text: str | None) -> list[str]:
    """--corruptions a,b,... -> the names, checked; None -> all 15."""
    if not text:
        return list(CORRUPTIONS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise DigitlabError(
            f"--corruptions {text}: unknown {', '.join(unknown) or 'list'}; choose from "
            f"{', '.join(CORRUPTIONS)}"
        )
    return names


def images_for(config: dict, on: str, data_dir) -> Split:
    """The clean images to corrupt: the test split, or ("validation") the training images that
    the run with this config.json held out (the same ones, chosen by its seed)."""
    from digitlab.train.checks import split_training_set
    from digitlab.train.settings import config_of

    if on == "test":
        return load_split(data_dir, train=False)
    run = config_of(config)
    if run.val_split == 0:
        raise DigitlabError(
            "--on validation: this run held out no training images (it was trained with "
            "--val-split 0); train with --val-split N, or use --on test"
        )
    train = load_split(data_dir, train=True)
    _, val_idx = split_training_set(run, train)
    return Split(train.images[val_idx], train.labels[val_idx], f"{train.source}, held out")


def corrupted(
    images: torch.Tensor, name: str, seed: int, cache: Path | None = None
) -> torch.Tensor:
    """(N, 28, 28) uint8 images under corruption `name`, from the cache when there."""
    raw = images.numpy()
    key = hashlib.sha256(raw.tobytes()).hexdigest()[:16]
    folder = (cache or cache_dir()) / "mnist-c" / key
    path = folder / f"{name}-seed{seed}.npy"
    if path.is_file():
        try:
            stored = np.load(path)
            if stored.shape == raw.shape:
                return torch.from_numpy(stored)
        except (OSError, ValueError):
            pass  # a damaged cache file is made again
    made = corrupt(raw, name, seed)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, made)
    atomic_write(path, buffer.getvalue())
    return torch.from_numpy(made)


def evaluate_robustness(predictor, test, names, limit=None, seed=0, cache=None) -> dict:
    """{"clean_accuracy", "mean_corruption_accuracy", "mean_corruption_error", "rows":
    [{"corruption", "accuracy", "error", "relative_error"}], "samples": {name: (image, answer)}}.
    relative_error is the error over the clean error, None where the clean error is 0."""
    images, labels = test.images[:limit], test.labels[:limit]
    clean_answers = predictor.logits(images).argmax(1)
    clean = (clean_answers == labels).double().mean().item()
    rows, samples = [], {}
    for name in names:
        bad = corrupted(images, name, seed, cache)
        answers = predictor.logits(bad).argmax(1)
        accuracy = (answers == labels).double().mean().item()
        error = 1 - accuracy
        rows.append(
            {
                "corruption": name,
                "accuracy": accuracy,
                "error": error,
                "relative_error": error / (1 - clean) if clean < 1 else None,
            }
        )
        samples[name] = (bad[0], int(answers[0]))
    mean = float(np.mean([r["accuracy"] for r in rows]))
    return {
        "clean_accuracy": clean,
        "mean_corruption_accuracy": mean,
        "mean_corruption_error": 1 - mean,
        "images": len(labels),
        "rows": rows,
        "samples": samples,
        "clean_sample": (images[0], int(clean_answers[0]), int(labels[0])),
    }


def table(result: dict) -> str:
    """evaluate_robustness's rows as a table: accuracy, error and error over the clean error;
    where the clean error is 0 that ratio is undefined, and the table says so instead."""
    ratio = result["clean_accuracy"] < 1
    lines = [
        f"{'corruption':<14} {'accuracy':>9} {'error':>7}"
        + (f" {'error / clean error':>20}" if ratio else "   (clean error 0: ratio undefined)")
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['corruption']:<14} {r['accuracy']:>9.4f} {r['error']:>7.4f}"
            + (f" {r['relative_error']:>20.1f}" if ratio else "")
        )
    return "\n".join(lines)


def write_robustness_pictures(result: dict, out: Path, title: str) -> list[Path]:
    """robustness.png (the first test digit under every corruption, with the model's answer) and
    robustness_bars.png (accuracy per corruption against the clean accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from digitlab.study.plots import MISTAKE, RIGHT, save

    out.mkdir(parents=True, exist_ok=True)
    image, answer, truth = result["clean_sample"]
    panels = [("clean", image, answer), *[(n, im, a) for n, (im, a) in result["samples"].items()]]
    columns = 8
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.7 + 0.5))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, (name, picture, said) in zip(np.atleast_1d(axes).ravel(), panels, strict=False):
        ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=255)
        # A frame, so white parts of an image (stripe's inverted sides) don't merge with the page.
        ax.axis("on")
        ax.set(xticks=[], yticks=[])
        for spine in ax.spines.values():
            spine.set_color("#999999")
        ax.set_title(f"{name}\nread {said}", fontsize=8, color=RIGHT if said == truth else MISTAKE)
    fig.suptitle(f"{title}: one digit (a {truth}) under every corruption")
    paths = [save(fig, out / "robustness.png")]
    fig, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    names = [r["corruption"] for r in result["rows"]]
    ax.barh(names, [100 * r["accuracy"] for r in result["rows"]], color="#4c78a8")
    ax.axvline(100 * result["clean_accuracy"], color="black", linestyle="--", label="clean")
    ax.invert_yaxis()
    ax.set(xlabel="accuracy (%)", xlim=(0, 100), title=f"{title}: accuracy under each corruption")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    paths.append(save(fig, out / "robustness_bars.png"))
    return paths
