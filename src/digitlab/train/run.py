"""A run being trained: its state (Run), how it is prepared (data, model, optimizer) and how its
state is saved after an epoch and restored to resume."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from digitlab.data.augment import RandomAffine, Sturdy
from digitlab.data.mnist import Split, load_split, pixel_stats
from digitlab.nets import backends, checkpoint, models, own_model
from digitlab.nets.model_spec import is_file_spec
from digitlab.train import distributed
from digitlab.train.averaging import WeightAverage
from digitlab.train.calibration import calibration
from digitlab.train.checks import check_data, split_training_set
from digitlab.train.distributed import Ranks
from digitlab.train.interrupt import deferred_interrupt
from digitlab.train.run_files import METRICS, keep_metrics, run_config
from digitlab.train.settings import TrainConfig
from digitlab.train.step import make_loss, make_optimizer


@dataclass
class Run:
    """A run being trained: its settings, data, model and the state that resume restores."""

    config: TrainConfig
    out: Path
    backend: backends.Backend
    device: torch.device
    ranks: Ranks
    images: torch.Tensor  # (N, H, W) uint8 training images, on the device
    labels: torch.Tensor  # (N,)
    val: Split
    test: Split
    mean: float
    std: float
    sizes: tuple  # (train, val, test images, (H, W)), for config.json
    model: torch.nn.Module
    net: torch.nn.Module  # what the steps call: the model, or DDP around it
    optimizer: object
    loss_fn: object
    average: WeightAverage | None
    augment: tuple  # RandomAffine and/or Sturdy, applied in that order; () for none
    shuffle: torch.Generator  # the epochs' order: the same on every rank, restored on resume
    notes: dict = field(default_factory=dict)  # a learner's model: its layer table, warnings
    epoch: int = 0  # epochs finished
    train_seconds: float = 0.0

    @property
    def steps_per_epoch(self) -> int:
        local = distributed.local_batch(self.config.batch_size, self.ranks)
        return math.ceil(len(distributed.shard(torch.arange(len(self.labels)), self.ranks)) / local)

    @property
    def final(self) -> torch.nn.Module:
        """The model that is evaluated and saved: the weight average when there is one."""
        return self.average.model if self.average is not None else self.model


def augmentations(config: TrainConfig) -> tuple:
    """The run's batch transforms, in the order they apply: RandomAffine, then Sturdy."""
    transforms = []
    if config.augment:
        transforms.append(RandomAffine())
    if config.sturdy > 0:
        transforms.append(Sturdy(config.sturdy))
    return tuple(transforms)


def make_backend(config: TrainConfig) -> backends.Backend:
    """The run's backend; a learner's file of layers is checked against PyTorch first."""
    if config.backend == "learner":
        from digitlab.workbench.learner import learner_backend

        backends.validate(config.backend, config.layers)
        return learner_backend(config.layers, config.optimizer)
    backend = backends.get(config.backend)
    if is_file_spec(config.model):  # a learner's forward may .view() its maps, which
        return dataclasses.replace(backend, channels_last=False)  # channels-last does not allow
    return backend


def build_model(config: TrainConfig, backend, log) -> tuple[torch.nn.Module, dict]:
    """The run's fresh model, and for a learner's own class what was found walking it before any
    training: {"summary": its layer table, "warnings": [...], "model_file": file, class, args,
    SHA-256}. A wrong size stops here, in one line (nets.own_model.walk)."""
    model = models.build(config.model, backend, config.model_args)
    if not is_file_spec(config.model):
        return model, {}
    out = own_model.walk(model)
    warnings = [own_model.SOFTMAX_WARNING] if own_model.looks_like_probabilities(out) else []
    for warning in warnings:
        log(f"warning: {warning}")
    return model, {
        "summary": own_model.summary(model)["text"],
        "warnings": warnings,
        # how to build the learner's class again, and tell whether its file changed since
        "model_file": own_model.describe(config.model, config.model_args),
    }


def prepare(config: TrainConfig, out: Path, resume: bool, device, ranks: Ranks, log) -> Run:
    """Data (split, normalisation), model, optimizer and loss; the saved state when resuming."""
    backend = make_backend(config)
    if backend.note:
        log(backend.note)
    train_all = load_split(config.data_dir, train=True)
    test = load_split(config.data_dir, train=False)
    check_data(config, train_all, test)
    train_idx, val_idx = split_training_set(config, train_all)
    images, labels = train_all.images[train_idx], train_all.labels[train_idx]
    mean, std = pixel_stats(images)
    torch.manual_seed(config.seed)
    model, notes = build_model(config, backend, log)
    model = backend.memory_format(model.to(device))
    run = Run(
        config=config,
        out=out,
        backend=backend,
        device=device,
        ranks=ranks,
        images=images.to(device),
        labels=labels.to(device),
        val=Split(train_all.images[val_idx], train_all.labels[val_idx], train_all.source),
        test=test,
        mean=mean,
        std=std,
        sizes=(len(train_idx), len(val_idx), len(test), tuple(images.shape[1:])),
        model=model,
        net=backend.parallel(model, ranks),
        optimizer=make_optimizer(config, model.parameters(), backend),
        loss_fn=make_loss(backend, config.label_smoothing),
        average=WeightAverage(model, config.average) if config.average else None,
        augment=augmentations(config),
        shuffle=torch.Generator().manual_seed(config.seed + 1),
        notes=notes,
    )
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
    if resume:
        restore(run, log)
    elif ranks.main:
        (out / METRICS).unlink(missing_ok=True)
        (out / checkpoint.RESUME).unlink(missing_ok=True)
    return run


def restore(run: Run, log) -> None:
    """Weights, optimizer state, RNG states and counters of the last finished epoch."""
    rngs, info = checkpoint.load_resume_state(
        run.out, run.model, run.optimizer, run.average.model if run.average is not None else None
    )
    torch.set_rng_state(rngs["torch"])
    run.shuffle.set_state(rngs["shuffle"])
    run.epoch, run.train_seconds = info["epoch"], info["train_seconds"]
    if run.average is not None:
        run.average.steps = run.epoch * run.steps_per_epoch
    if run.ranks.main:
        keep_metrics(run.out, run.epoch)
    log(f"resuming {run.out} after epoch {run.epoch} of {run.config.epochs}")


def save(run: Run, scores: dict) -> None:
    """Weights and config first, the resume state last: a resume state on disk always has its
    epoch's model beside it. Ctrl-C during the writes waits for them to finish. The config
    records the saved model's scores, so that `digitlab evaluate` and a report agree, and after
    the last epoch its "not sure" threshold."""
    last = None
    if run.epoch == run.config.epochs:
        last = calibration(run.final, run.images, run.labels, run.val, run.mean, run.std, run.out)
    with deferred_interrupt():
        record = run_config(run.config, run.epoch, run.mean, run.std, run.sizes)
        record["processes"] = run.ranks.world
        record["metrics"] = scores
        if "model_file" in run.notes:
            record["model_file"] = run.notes["model_file"]
            record["model_warnings"] = run.notes["warnings"]
        if last is not None:
            record["unsure"] = last
        checkpoint.save(run.out, run.final, record)
        checkpoint.save_resume_state(
            run.out,
            run.model,
            run.optimizer,
            rngs={"torch": torch.get_rng_state(), "shuffle": run.shuffle.get_state()},
            info={
                "epoch": run.epoch,
                "train_seconds": run.train_seconds,
                "model": run.config.model,
            },
            average=run.average.model if run.average is not None else None,
        )
