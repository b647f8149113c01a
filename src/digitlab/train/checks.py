"""The settings and data refused before any training, each in one line saying what to change."""

from __future__ import annotations

import torch

from digitlab.data.mnist import Split
from digitlab.errors import DigitlabError
from digitlab.nets import backends, models
from digitlab.train.schedule import SCHEDULES
from digitlab.train.settings import OPTIMIZERS, TrainConfig


def check_config(config: TrainConfig) -> None:
    models.check_model(config.model, config.backend)
    if config.model_args and config.model in models.MODELS:
        raise DigitlabError(
            f"--model-args: the built-in {config.model} takes none; they are for your own model "
            "(--model FILE.py[:Class])"
        )
    if config.optimizer not in OPTIMIZERS:
        raise DigitlabError(
            f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if not config.lr > 0:
        raise DigitlabError(f"--lr {config.lr}: must be positive; try 0.001")
    if config.batch_size < 1:
        raise DigitlabError(f"--batch-size {config.batch_size}: must be at least 1; try 50")
    if config.epochs < 1:
        raise DigitlabError(f"--epochs {config.epochs}: must be at least 1")
    if config.schedule not in SCHEDULES:
        raise DigitlabError(
            f"unknown schedule {config.schedule!r}; choose one of {', '.join(SCHEDULES)}"
        )
    if not 0 <= config.warmup < 1:
        raise DigitlabError(f"warmup {config.warmup}: must be at least 0 and below 1")
    if not 0 <= config.average < 1:
        raise DigitlabError(f"average {config.average}: must be 0 (none) or a decay below 1")
    backends.validate(config.backend, config.layers)


def check_data(config: TrainConfig, train: Split, test: Split) -> None:
    """The image size must be one the model reads, and the same in the training and test files:
    found before any training, not after an epoch."""
    train_hw, test_hw = tuple(train.images.shape[1:]), tuple(test.images.shape[1:])
    if train_hw != test_hw:
        raise DigitlabError(
            f"{train.source}: the training images are {train_hw[0]}x{train_hw[1]} but the test "
            f"images are {test_hw[0]}x{test_hw[1]}; give a --data-dir whose four files come "
            "from one dataset"
        )
    if config.model == "fcn":
        if min(train_hw) < 28:
            raise DigitlabError(
                f"{train.source}: images are {train_hw[0]}x{train_hw[1]}, the fcn needs at least "
                "28x28; resize the data"
            )
    elif train_hw != (28, 28):
        raise DigitlabError(
            f"{train.source}: images are {train_hw[0]}x{train_hw[1]}, the {config.model} needs "
            "28x28; use --model fcn"
        )


def split_training_set(config: TrainConfig, train: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices) into the training split, chosen by the seed."""
    n = len(train)
    if config.val_split < 0 or config.val_split >= n:
        raise DigitlabError(
            f"--val-split {config.val_split}: must be between 0 and {n - 1} "
            f"(the training set has {n} images)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    val_idx, train_idx = perm[: config.val_split], perm[config.val_split :]
    if config.subset is not None:
        if not 0 < config.subset <= len(train_idx):
            raise DigitlabError(f"--subset {config.subset}: must be between 1 and {len(train_idx)}")
        train_idx = train_idx[: config.subset]
    if config.batch_size > len(train_idx):
        raise DigitlabError(
            f"--batch-size {config.batch_size}: larger than the {len(train_idx)} training "
            "images; choose a smaller batch"
        )
    return train_idx, val_idx
