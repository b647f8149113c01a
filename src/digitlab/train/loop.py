"""One training loop for every backend: batches, steps, per-epoch evaluation, checkpoints, resume.

A run reads, top to bottom: `fit` checks the settings and joins `prepare` (data, model, optimizer,
resume state), `train_epoch` (the steps of one epoch) and `finish_epoch` (evaluation, metrics,
checkpoint). How a step makes its gradients is the backend's business (nets.backends): autograd
for torch, each layer's hand-written backward for scratch. Everything else is shared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import torch
from tqdm import tqdm

from digitlab.data.augment import RandomAffine, Sturdy
from digitlab.data.mnist import (
    Split,
    as_input,
    class_names,
    dataset_name,
    load_split,
    pixel_stats,
    to_unit,
)
from digitlab.errors import DigitlabError
from digitlab.nets import backends, checkpoint, models
from digitlab.nets.evaluation import evaluate
from digitlab.read import unsure
from digitlab.train import distributed
from digitlab.train.averaging import WeightAverage
from digitlab.train.distributed import Ranks
from digitlab.train.memory import peak_since, reset_peak
from digitlab.train.recipes import settings as recipe_settings
from digitlab.train.schedule import SCHEDULES, learning_rate, set_learning_rate

METRICS = "metrics.jsonl"
# A cross-entropy this high means logits thousands apart: the run has blown up even where the
# numbers are still finite (lr 1e3 takes float32 losses to 1e13 before they overflow).
DIVERGED = 1e3
OPTIMIZERS = ("adam", "sgd")
SINGLE = Ranks()  # a run in one process


@dataclass
class TrainConfig:
    """Everything that defines a run. The defaults are the study log's."""

    model: str = "cnn"
    backend: str = "torch"
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 50
    epochs: int = 1
    seed: int = 0
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam only
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "onecycle" (see digitlab.train.schedule)
    warmup: float = 0.3  # one-cycle: the fraction of the steps spent climbing to lr
    label_smoothing: float = 0.0
    augment: bool = False  # random rotation, scale and shift of every training image
    sturdy: float = 0.0  # share of training images given a shade, noise, blur or stroke
    average: float = 0.0  # decay of an average of the weights, which is then the saved model
    val_split: int = 0  # training images held out for validation; then the test set is read
    # only after the last epoch
    subset: int | None = None  # train on this many images only
    data_dir: str | None = None  # None: the embedded MNIST
    layers: str | None = None  # backend "learner": the learner's file of layers
    device: str = "auto"
    recipe: str | None = None  # the recipe the settings came from (digitlab.train.recipes)
    command: str = ""  # the command line that started the run, for the record


DEFAULTS = TrainConfig()
# The settings a user chooses that define a run: `digitlab train` flags, what must match to
# resume a run, and what makes a finished compare row reusable (epochs aside, which may grow).
RUN_SETTINGS = (
    "model",
    "backend",
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
    "seed",
    "momentum",
    "val_split",
    "subset",
    "data_dir",
    "layers",
    "sturdy",
    "label_smoothing",
    "recipe",
)


def configure(given: dict, resume: str | Path | None = None, **extra) -> TrainConfig:
    """The TrainConfig of a run from the settings a user gave ({RUN_SETTINGS field: value}).

    New run: a recipe's settings first (if one is named), then the given ones on top, then
    `extra` (device, command). Resume: the run's own config.json; a given setting that differs
    is refused, except a larger --epochs.
    """
    if given.get("data_dir") is not None:
        given = {**given, "data_dir": str(Path(given["data_dir"]).expanduser().resolve())}
    if given.get("layers") is not None:
        given = {**given, "layers": str(Path(given["layers"]).expanduser().resolve())}
        given.setdefault("backend", "learner")
    if resume is None:
        if given.get("recipe") is not None:
            given = {**recipe_settings(given["recipe"]), **given}
        return TrainConfig(**given, **extra)
    config = load_resume_config(Path(resume))
    for key, value in given.items():
        if key == "epochs" and value != config.epochs and config.schedule == "onecycle":
            raise DigitlabError(
                f"--epochs {value}: the run in {resume} follows a one-cycle schedule planned for "
                f"{config.epochs} epochs, and a longer run would need another schedule from its "
                "first step; resume it without --epochs, or start a new run with --epochs "
                f"{value}"
            )
        if key == "epochs":
            config.epochs = value
        elif getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise DigitlabError(
                f"{flag} {value}: the run in {resume} was trained with {getattr(config, key)}; "
                f"drop {flag} to resume it, or start a new run with another --out"
            )
    if "device" in extra:
        config.device = extra["device"]
    return config


def default_out(config: TrainConfig) -> Path:
    """runs/RECIPE-BACKEND or runs/MODEL-BACKEND."""
    return Path(f"runs/{config.recipe or config.model}-{config.backend}")


@contextlib.contextmanager
def deferred_interrupt():
    """Hold back Ctrl-C (SIGINT) until the block is done, then raise it: a checkpoint being
    written is finished first. Outside the main thread signals cannot be caught; no effect."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise DigitlabError(f"--device {name}: unknown; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise DigitlabError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return torch.device(name)


def make_optimizer(config: TrainConfig, params, backend: backends.Backend):
    """The backend's Adam or SGD with the config's settings."""
    if config.optimizer == "adam":
        return backend.optim.Adam(
            params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
    if config.optimizer == "sgd":
        return backend.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    raise DigitlabError(
        f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
    )


def make_loss(backend, label_smoothing: float = 0.0):
    """The backend's cross-entropy (mean over the batch)."""
    backend = backends.get(backend)
    if label_smoothing:
        return backend.loss(label_smoothing=label_smoothing)
    return backend.loss()


def train_step(model, loss_fn, optimizer, x, y, backend, ranks=SINGLE) -> torch.Tensor:
    """One optimisation step on the batch x (N, 1, H, W), y (N,); returns the batch loss.

    In a data-parallel run the gradients are averaged over the ranks before the step: by DDP
    (an autograd backend's model is wrapped in it) or by one all_reduce (hand-written)."""
    optimizer.zero_grad()
    backend = backends.get(backend)
    loss = backend.gradients(model, loss_fn, x, y)
    if not backend.autograd and ranks.world > 1:  # DDP averaged an autograd model's already
        distributed.average_gradients(model.parameters())
    optimizer.step()
    return loss.detach()


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


def check_config(config: TrainConfig) -> None:
    if config.model not in models.MODELS:
        raise DigitlabError(
            f"unknown model {config.model!r}; choose one of {', '.join(models.MODELS)}"
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


def run_config(config: TrainConfig, epochs_done: int, mean: float, std: float, sizes) -> dict:
    """The config.json of a run: how to rebuild, rerun and use the model."""
    record = dataclasses.asdict(config)
    record.update(
        digitlab_version=package_version("digitlab"),
        epochs_done=epochs_done,
        shuffle=True,
        normalization={"mean": mean, "std": std},
        dataset={
            "name": dataset_name(config.data_dir),
            "train_images": sizes[0],
            "val_images": sizes[1],
            "test_images": sizes[2],
            "image_size": list(sizes[3]),
            "num_classes": 10,
            "classes": class_names(config.data_dir),
        },
    )
    return record


def read_metrics(out: Path) -> list[dict]:
    path = out / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_metrics(out: Path, record: dict) -> None:
    with open(out / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_resume_config(out: Path) -> TrainConfig:
    """The TrainConfig of the run in `out`, from its config.json."""
    return config_of(checkpoint.read_config(out / checkpoint.CONFIG))


def config_of(recorded: dict) -> TrainConfig:
    """The TrainConfig of a run from its config.json's fields (a field it lacks: the default)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in recorded.items() if k in fields})
    config.betas = tuple(config.betas)  # JSON made it a list
    return config


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
    return backends.get(config.backend)


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
    model = backend.memory_format(models.build(config.model, backend).to(device))
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
        # Drop metrics of an epoch that was logged but not checkpointed before a crash.
        kept = [r for r in read_metrics(run.out) if r["epoch"] <= run.epoch]
        checkpoint.atomic_write(
            run.out / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode()
        )
    log(f"resuming {run.out} after epoch {run.epoch} of {run.config.epochs}")


def train_epoch(run: Run, epoch: int, progress: bool) -> tuple[list[float], float, float]:
    """The steps of epoch `epoch` (1-based) over this rank's shard of a fresh shuffle.
    Returns (the loss of every step, seconds, peak memory in MiB)."""
    config, ranks = run.config, run.ranks
    run.model.train()
    order = distributed.shard(torch.randperm(len(run.labels), generator=run.shuffle), ranks)
    order = order.to(run.device)
    # Augmentation is seeded per epoch and rank, so resume needs no state for it.
    distort = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 1009 + ranks.rank)
    local_batch = distributed.local_batch(config.batch_size, ranks)
    total_steps = run.steps_per_epoch * config.epochs
    bar = tqdm(
        total=len(run.labels),
        desc=f"epoch {epoch}/{config.epochs}",
        unit="img",
        unit_scale=True,
        disable=not progress,
        mininterval=0.5,
        leave=False,
    )
    losses = []
    memory_start = reset_peak()
    start = time.perf_counter()
    for k, i in enumerate(range(0, len(order), local_batch)):
        step = (epoch - 1) * run.steps_per_epoch + k
        lr = learning_rate(config.schedule, config.lr, step, total_steps, config.warmup)
        set_learning_rate(run.optimizer, lr)
        idx = order[i : i + local_batch]
        batch = run.images[idx]
        if run.augment:
            batch = to_unit(batch)
            for transform in run.augment:
                batch = transform(batch, distort)
        x = run.backend.memory_format(as_input(batch, run.mean, run.std))
        loss = train_step(
            run.net, run.loss_fn, run.optimizer, x, run.labels[idx], run.backend, ranks
        )
        loss = distributed.mean(loss, ranks).item()
        check_loss(run, loss, epoch, k + 1)
        if run.average is not None:
            run.average.update(run.model)
        losses.append(loss)
        bar.update(len(idx) * ranks.world)
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    bar.close()
    # Batch norm's running statistics: each rank updated its own (DDP hands rank 0's out before
    # every forward, then each rank's own batches move them); average them at the epoch's end.
    distributed.average_buffers(run.model, ranks)
    return losses, seconds, peak_since(memory_start)


def check_loss(run: Run, loss: float, epoch: int, step: int) -> None:
    """Stop at once when the loss blows up, saying what to change and what stays saved."""
    if math.isfinite(loss) and loss <= DIVERGED:
        return
    kept = f"epoch {epoch - 1} stays saved in {run.out}" if epoch > 1 else "nothing saved"
    raise DigitlabError(
        f"training diverged: the loss became {loss:.3g} at epoch {epoch}, step {step}; the "
        f"learning rate is likely too high, lower --lr (now {run.config.lr}); {kept}"
    )


def finish_epoch(run: Run, losses: list[float], seconds: float, peak_mib: float, log) -> None:
    """Rank 0, after epoch run.epoch: evaluate, append to metrics.jsonl, checkpoint, log."""
    config, epoch = run.config, run.epoch
    record = {"epoch": epoch, "train_loss": sum(losses) / len(losses)}
    if len(run.val):
        report = evaluate(run.final, run.val, run.mean, run.std)
        record.update(val_loss=report["loss"], val_accuracy=report["accuracy"])
    if not len(run.val) or epoch == config.epochs:
        report = evaluate(run.final, run.test, run.mean, run.std)
        record.update(test_loss=report["loss"], test_accuracy=report["accuracy"])
    record.update(
        epoch_seconds=seconds,
        train_seconds=run.train_seconds,
        peak_memory_mib=peak_mib,
        step_loss=[round(v, 5) for v in losses],
    )
    append_metrics(run.out, record)
    # config.json records the epoch's scores; the per-step losses stay in metrics.jsonl.
    keys = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
    save(run, {k: record[k] for k in keys if k in record})
    scores = "".join(
        f", {name} loss {record[f'{name}_loss']:.4f}, {name} accuracy "
        f"{record[f'{name}_accuracy']:.4f}"
        for name in ("val", "test")
        if f"{name}_accuracy" in record
    )
    log(
        f"epoch {epoch}/{config.epochs}: train loss {record['train_loss']:.4f}{scores} "
        f"({seconds:.1f} s, {len(run.labels) / seconds:.0f} img/s)"
    )


def save(run: Run, scores: dict) -> None:
    """Weights and config first, the resume state last: a resume state on disk always has its
    epoch's model beside it. Ctrl-C during the writes waits for them to finish. The config
    records the saved model's scores, so that `digitlab evaluate` and a report agree, and after
    the last epoch its "not sure" threshold."""
    last = calibration(run) if run.epoch == run.config.epochs else None
    with deferred_interrupt():
        record = run_config(run.config, run.epoch, run.mean, run.std, run.sizes)
        record["processes"] = run.ranks.world
        record["metrics"] = scores
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


def calibration(run: Run) -> dict | None:
    """ "Not sure" (read.unsure): the feature distance fitted on up to 10,000 training images
    and saved beside the model, its threshold from held-out digits: the validation split, or
    without one a third of the training images kept out of the fit (seen in training, so
    somewhat more test digits than 1% may come out unsure; --val-split N is the better way)."""
    images, labels = run.images.cpu(), run.labels.cpu()
    if len(run.val):
        held, source = run.val.images, f"validation split ({len(run.val)} images)"
        fit_images, fit_labels = images[:10_000], labels[:10_000]
    else:
        cut = min(len(images) // 3, 5000)
        if cut < 10:  # too few images to fit a distance and set a threshold: never unsure
            return None
        held, source = images[:cut], f"{cut} training images kept out of the fit (no --val-split)"
        fit_images, fit_labels = images[cut : cut + 10_000], labels[cut : cut + 10_000]
    return unsure.fit_and_calibrate(
        run.final,
        as_input(fit_images, run.mean, run.std),
        fit_labels,
        as_input(held, run.mean, run.std),
        source,
        run.out,
    )


def fit(
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    log=print,
) -> dict:
    """Train `config` into the run folder `out`; with resume=True, continue the run found there.

    After each epoch: validation (if any) and test loss and accuracy appended to out/metrics.jsonl
    (with a validation split, the test set only after the last epoch), then an atomic checkpoint.
    Under torchrun every rank trains its shard and rank 0 alone evaluates and writes. A progress
    bar shows on a terminal (progress=None), always (True) or never (False); the log gets one
    line per epoch. Returns {"test_accuracy", "train_seconds", "epochs", "checkpoint", "backend",
    "model"}.
    """
    check_config(config)
    device = resolve_device(config.device)
    ranks = distributed.start(device)
    if progress is None:
        progress = sys.stderr.isatty()
    if not ranks.main:
        progress, log = False, lambda text: None
    try:
        run = prepare(config, Path(out), resume, device, ranks, log)
        while run.epoch < config.epochs:
            losses, seconds, peak_mib = train_epoch(run, run.epoch + 1, progress)
            run.epoch += 1
            run.train_seconds += seconds
            if ranks.main:
                finish_epoch(run, losses, seconds, peak_mib, log)
        distributed.perturb_for_test(run.model, ranks)
        distributed.check_same_weights(run.model, ranks)
        if ranks.world > 1:
            log(f"data parallel: the {ranks.world} processes ended with identical weights")
        distributed.stop(finished=True)
    finally:
        distributed.stop()  # after an error; a no-op once stopped
    return result_of(run) if ranks.main else {}


def result_of(run: Run) -> dict:
    last = read_metrics(run.out)[-1]
    return {
        "test_accuracy": last["test_accuracy"],
        "train_seconds": last["train_seconds"],
        "epochs": last["epoch"],
        "checkpoint": str(run.out / checkpoint.WEIGHTS),
        "backend": run.config.backend,
        "model": run.config.model,
    }
