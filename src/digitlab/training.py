"""One training loop for both backends: batches, steps, per-epoch evaluation, checkpoints, resume.

The torch backend steps with autograd; the scratch backend runs under torch.no_grad() and drives
`model.backward(loss_fn.backward())`. Everything else (data, shuffling, evaluation, logging,
checkpoints) is shared, so the two backends differ only in how gradients are made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import digitlab
from digitlab import checkpoint, distributed, models
from digitlab.augment import RandomAffine
from digitlab.averaging import WeightAverage
from digitlab.data import Split, as_input, dataset_name, load_split, pixel_stats
from digitlab.distributed import Ranks
from digitlab.errors import DigitlabError
from digitlab.evaluation import evaluate
from digitlab.memory import peak_since, reset_peak
from digitlab.schedule import SCHEDULES, learning_rate, set_learning_rate

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
    schedule: str = "constant"  # or "onecycle" (see digitlab.schedule)
    warmup: float = 0.3  # one-cycle: the fraction of the steps spent climbing to lr
    label_smoothing: float = 0.0
    augment: bool = False  # random rotation, scale and shift of every training image
    average: float = 0.0  # decay of an average of the weights, which is then the saved model
    val_split: int = 0  # training images held out for validation; then the test set is read
    # only after the last epoch
    subset: int | None = None  # train on this many images only
    data_dir: str | None = None  # None: the embedded MNIST
    device: str = "auto"
    recipe: str | None = None  # the recipe the settings came from (digitlab.recipes)
    command: str = ""  # the command line that started the run, for the record


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


def make_optimizer(config: TrainConfig, params):
    if config.backend == "scratch":
        from digitlab import scratch as optim
    else:
        optim = torch.optim
    if config.optimizer == "adam":
        return optim.Adam(
            params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
    if config.optimizer == "sgd":
        return optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    raise DigitlabError(
        f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
    )


def make_loss(backend: str, label_smoothing: float = 0.0):
    if backend == "scratch":
        from digitlab import scratch

        return scratch.CrossEntropyLoss(label_smoothing=label_smoothing)
    return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def train_step(model, loss_fn, optimizer, x, y, backend: str, ranks=SINGLE) -> torch.Tensor:
    """One optimisation step on the batch x (N, 1, H, W), y (N,); returns the batch loss.

    In a data-parallel run the gradients are averaged over the ranks before the step: by DDP
    (the torch backend's model is wrapped in it) or by one all_reduce (scratch)."""
    optimizer.zero_grad()
    if backend == "scratch":
        with torch.no_grad():
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward(), input_grad=False)
            if ranks.world > 1:
                distributed.average_gradients(model.parameters())
    else:
        loss = loss_fn(model(x), y)
        loss.backward()
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
    if not 0 < config.warmup < 1:
        raise DigitlabError(f"warmup {config.warmup}: must be between 0 and 1")
    if not 0 <= config.average < 1:
        raise DigitlabError(f"average {config.average}: must be 0 (none) or a decay below 1")
    models.layers_of(config.backend)


def run_config(config: TrainConfig, epochs_done: int, mean: float, std: float, sizes) -> dict:
    """The config.json of a run: how to rebuild, rerun and use the model."""
    record = dataclasses.asdict(config)
    record.update(
        digitlab_version=digitlab.__version__,
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
    config = checkpoint.read_config(out / checkpoint.CONFIG)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in config.items() if k in fields})
    config.betas = tuple(config.betas)  # JSON made it a list
    return config


def fit(
    config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True, log=print
) -> dict:
    """Train `config` into the run folder `out`; with resume=True, continue the run found there.

    After each epoch: validation (if any) and test loss and accuracy appended to out/metrics.jsonl
    (with a validation split, the test set only after the last epoch), then an atomic checkpoint.
    Under torchrun every rank trains its shard and rank 0 alone evaluates and writes.
    Returns {"test_accuracy", "train_seconds", "epochs", "checkpoint", "backend", "model"}.
    """
    check_config(config)
    device = resolve_device(config.device)
    ranks = distributed.start(device)
    if not ranks.main:
        progress, log = False, lambda text: None
    try:
        return _fit(config, Path(out), resume, progress, log, device, ranks)
    finally:
        distributed.stop()


def _fit(config, out, resume, progress, log, device, ranks: Ranks) -> dict:
    train_all = load_split(config.data_dir, train=True)
    test = load_split(config.data_dir, train=False)
    if config.model != "fcn" and tuple(train_all.images.shape[1:]) != (28, 28):
        raise DigitlabError(
            f"{train_all.source}: images are {tuple(train_all.images.shape[1:])}, the "
            f"{config.model} needs 28x28; use --model fcn"
        )
    train_idx, val_idx = split_training_set(config, train_all)
    images, labels = train_all.images[train_idx], train_all.labels[train_idx]
    val = Split(train_all.images[val_idx], train_all.labels[val_idx], train_all.source)
    mean, std = pixel_stats(images)
    images, labels = images.to(device), labels.to(device)
    local_batch = distributed.local_batch(config.batch_size, ranks)

    torch.manual_seed(config.seed)
    model = models.build(config.model, config.backend).to(device)
    net = model  # what the steps call
    if config.backend == "torch":
        # Channels-last activations: PyTorch's CPU convolutions and pooling are faster so.
        net = model = model.to(memory_format=torch.channels_last)
        if ranks.world > 1:  # DDP averages the gradients during the backward
            net = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = make_optimizer(config, model.parameters())
    loss_fn = make_loss(config.backend, config.label_smoothing)
    average = WeightAverage(model, config.average) if config.average else None
    augment = RandomAffine() if config.augment else None
    shuffle = torch.Generator().manual_seed(config.seed + 1)  # the same order on every rank
    distort = torch.Generator()  # augmentation: seeded per epoch and rank, so resume needs no state

    epoch, train_seconds = 0, 0.0
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
    if resume:
        rngs, info = checkpoint.load_resume_state(
            out, model, optimizer, average.model if average is not None else None
        )
        torch.set_rng_state(rngs["torch"])
        shuffle.set_state(rngs["shuffle"])
        epoch, train_seconds = info["epoch"], info["train_seconds"]
        if ranks.main:
            # Drop metrics of an epoch that was logged but not checkpointed before a crash.
            kept = [r for r in read_metrics(out) if r["epoch"] <= epoch]
            checkpoint.atomic_write(
                out / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode()
            )
        log(f"resuming {out} after epoch {epoch} of {config.epochs}")
    elif ranks.main:
        (out / METRICS).unlink(missing_ok=True)
        (out / checkpoint.RESUME).unlink(missing_ok=True)

    sizes = (len(train_idx), len(val_idx), len(test), tuple(images.shape[1:]))
    n = len(labels)
    steps_per_epoch = math.ceil(len(distributed.shard(torch.arange(n), ranks)) / local_batch)
    total_steps = steps_per_epoch * config.epochs
    if average is not None:
        average.steps = epoch * steps_per_epoch
    while epoch < config.epochs:
        epoch += 1
        model.train()
        order = distributed.shard(torch.randperm(n, generator=shuffle), ranks).to(device)
        distort.manual_seed(config.seed * 1_000_003 + epoch * 1009 + ranks.rank)
        step_losses = []
        bar = tqdm(
            total=n,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="img",
            unit_scale=True,
            disable=not progress,
            mininterval=0.5,
            leave=False,
        )
        memory_start = reset_peak()
        start = time.perf_counter()
        for k, i in enumerate(range(0, len(order), local_batch)):
            step = (epoch - 1) * steps_per_epoch + k
            set_learning_rate(
                optimizer,
                learning_rate(config.schedule, config.lr, step, total_steps, config.warmup),
            )
            idx = order[i : i + local_batch]
            batch = images[idx]
            if augment is not None:
                batch = augment(batch.float() / 255, distort)
            x = as_input(batch, mean, std)
            if config.backend == "torch":
                x = x.contiguous(memory_format=torch.channels_last)
            loss = train_step(net, loss_fn, optimizer, x, labels[idx], config.backend, ranks)
            loss = distributed.mean(loss, ranks).item()
            if not math.isfinite(loss) or loss > DIVERGED:
                kept = f"epoch {epoch - 1} stays saved in {out}" if epoch > 1 else "nothing saved"
                raise DigitlabError(
                    f"training diverged: the loss became {loss:.3g} at epoch {epoch}, step "
                    f"{k + 1}; the learning rate is likely too high, lower --lr "
                    f"(now {config.lr}); {kept}"
                )
            if average is not None:
                average.update(model)
            step_losses.append(loss)
            bar.update(len(idx) * ranks.world)
            if len(step_losses) % 20 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - start
        peak_memory = peak_since(memory_start)
        bar.close()
        train_seconds += epoch_seconds
        if config.backend == "scratch":
            distributed.share_buffers(model, ranks)  # DDP does this for the torch backend
        if not ranks.main:
            continue

        final = average.model if average is not None else model
        record = {"epoch": epoch, "train_loss": sum(step_losses) / len(step_losses)}
        if len(val):
            val_report = evaluate(final, val, mean, std)
            record.update(val_loss=val_report["loss"], val_accuracy=val_report["accuracy"])
        if not len(val) or epoch == config.epochs:
            test_report = evaluate(final, test, mean, std)
            record.update(test_loss=test_report["loss"], test_accuracy=test_report["accuracy"])
        record.update(
            epoch_seconds=epoch_seconds,
            train_seconds=train_seconds,
            peak_memory_mib=peak_memory,
            step_loss=[round(v, 5) for v in step_losses],
        )
        append_metrics(out, record)
        # Weights and config first, the resume state last: a resume state on disk always has
        # its epoch's model beside it. Ctrl-C during the writes waits for them to finish.
        with deferred_interrupt():
            run = run_config(config, epoch, mean, std, sizes)
            run["processes"] = ranks.world
            checkpoint.save(out, final, run)
            checkpoint.save_resume_state(
                out,
                model,
                optimizer,
                rngs={"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
                info={"epoch": epoch, "train_seconds": train_seconds, "model": config.model},
                average=average.model if average is not None else None,
            )
        scores = "".join(
            f", {name} loss {record[f'{name}_loss']:.4f}, {name} accuracy "
            f"{record[f'{name}_accuracy']:.4f}"
            for name in ("val", "test")
            if f"{name}_accuracy" in record
        )
        log(
            f"epoch {epoch}/{config.epochs}: train loss {record['train_loss']:.4f}{scores} "
            f"({epoch_seconds:.1f} s, {n / epoch_seconds:.0f} img/s)"
        )

    distributed.check_same_weights(model, ranks)
    if ranks.world > 1:
        log(f"data parallel: the {ranks.world} processes ended with identical weights")
    if not ranks.main:
        return {}
    last = read_metrics(out)[-1]
    return {
        "test_accuracy": last["test_accuracy"],
        "train_seconds": last["train_seconds"],
        "epochs": last["epoch"],
        "checkpoint": str(out / checkpoint.WEIGHTS),
        "backend": config.backend,
        "model": config.model,
    }
