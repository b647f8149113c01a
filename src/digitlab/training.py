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
from digitlab import checkpoint, models
from digitlab.data import Split, as_input, dataset_name, load_split, pixel_stats
from digitlab.errors import DigitlabError
from digitlab.evaluation import evaluate
from digitlab.memory import peak_since, reset_peak

METRICS = "metrics.jsonl"
# A cross-entropy this high means logits thousands apart: the run has blown up even where the
# numbers are still finite (lr 1e3 takes float32 losses to 1e13 before they overflow).
DIVERGED = 1e3
OPTIMIZERS = ("adam", "sgd")


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
    val_split: int = 0  # training images held out for validation
    subset: int | None = None  # train on this many images only
    data_dir: str | None = None  # None: the embedded MNIST
    device: str = "auto"
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
        return optim.Adam(params, lr=config.lr)
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum)
    raise DigitlabError(
        f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
    )


def make_loss(backend: str):
    if backend == "scratch":
        from digitlab import scratch

        return scratch.CrossEntropyLoss()
    return torch.nn.CrossEntropyLoss()


def train_step(model, loss_fn, optimizer, x, y, backend: str) -> torch.Tensor:
    """One optimisation step on the batch x (N, 1, H, W), y (N,); returns the batch loss."""
    optimizer.zero_grad()
    if backend == "scratch":
        with torch.no_grad():
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward(), input_grad=False)
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
    return TrainConfig(**{k: v for k, v in config.items() if k in fields})


def fit(
    config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True, log=print
) -> dict:
    """Train `config` into the run folder `out`; with resume=True, continue the run found there.

    After each epoch: test (and validation) loss and accuracy appended to out/metrics.jsonl, then
    an atomic checkpoint. Returns {"test_accuracy", "train_seconds", "epochs", "checkpoint",
    "backend", "model"}.
    """
    check_config(config)
    out = Path(out)
    device = resolve_device(config.device)
    train_all = load_split(config.data_dir, train=True)
    test = load_split(config.data_dir, train=False)
    if config.model == "cnn" and tuple(train_all.images.shape[1:]) != (28, 28):
        raise DigitlabError(
            f"{train_all.source}: images are {tuple(train_all.images.shape[1:])}, the cnn needs "
            "28x28; use --model fcn"
        )
    train_idx, val_idx = split_training_set(config, train_all)
    images, labels = train_all.images[train_idx], train_all.labels[train_idx]
    val = Split(train_all.images[val_idx], train_all.labels[val_idx], train_all.source)
    mean, std = pixel_stats(images)
    images, labels = images.to(device), labels.to(device)

    torch.manual_seed(config.seed)
    model = models.build(config.model, config.backend).to(device)
    optimizer = make_optimizer(config, model.parameters())
    loss_fn = make_loss(config.backend)
    shuffle = torch.Generator().manual_seed(config.seed + 1)

    epoch, train_seconds = 0, 0.0
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        rngs, info = checkpoint.load_resume_state(out, model, optimizer)
        torch.set_rng_state(rngs["torch"])
        shuffle.set_state(rngs["shuffle"])
        epoch, train_seconds = info["epoch"], info["train_seconds"]
        # Drop metrics of an epoch that was logged but not checkpointed before a crash.
        kept = [r for r in read_metrics(out) if r["epoch"] <= epoch]
        checkpoint.atomic_write(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode())
        log(f"resuming {out} after epoch {epoch} of {config.epochs}")
    else:
        (out / METRICS).unlink(missing_ok=True)
        (out / checkpoint.RESUME).unlink(missing_ok=True)

    sizes = (len(train_idx), len(val_idx), len(test), tuple(images.shape[1:]))
    n, bs = len(labels), config.batch_size
    while epoch < config.epochs:
        epoch += 1
        model.train()
        perm = torch.randperm(n, generator=shuffle).to(device)
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
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            loss = train_step(
                model,
                loss_fn,
                optimizer,
                as_input(images[idx], mean, std),
                labels[idx],
                config.backend,
            ).item()
            if not math.isfinite(loss) or loss > DIVERGED:
                kept = f"epoch {epoch - 1} stays saved in {out}" if epoch > 1 else "nothing saved"
                raise DigitlabError(
                    f"training diverged: the loss became {loss:.3g} at epoch {epoch}, step "
                    f"{i // bs + 1}; the learning rate is likely too high, lower --lr "
                    f"(now {config.lr}); {kept}"
                )
            step_losses.append(loss)
            bar.update(len(idx))
            if len(step_losses) % 20 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - start
        peak_memory = peak_since(memory_start)
        bar.close()
        train_seconds += epoch_seconds

        record = {"epoch": epoch, "train_loss": sum(step_losses) / len(step_losses)}
        test_report = evaluate(model, test, mean, std)
        record.update(test_loss=test_report["loss"], test_accuracy=test_report["accuracy"])
        if len(val):
            val_report = evaluate(model, val, mean, std)
            record.update(val_loss=val_report["loss"], val_accuracy=val_report["accuracy"])
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
            checkpoint.save(out, model, run_config(config, epoch, mean, std, sizes))
            checkpoint.save_resume_state(
                out,
                model,
                optimizer,
                rngs={"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
                info={"epoch": epoch, "train_seconds": train_seconds, "model": config.model},
            )
        val_text = f", val accuracy {record['val_accuracy']:.4f}" if len(val) else ""
        log(
            f"epoch {epoch}/{config.epochs}: train loss {record['train_loss']:.4f}, test loss "
            f"{record['test_loss']:.4f}, test accuracy {record['test_accuracy']:.4f}{val_text} "
            f"({epoch_seconds:.1f} s, {n / epoch_seconds:.0f} img/s)"
        )

    last = read_metrics(out)[-1]
    return {
        "test_accuracy": last["test_accuracy"],
        "train_seconds": last["train_seconds"],
        "epochs": last["epoch"],
        "checkpoint": str(out / checkpoint.WEIGHTS),
        "backend": config.backend,
        "model": config.model,
    }
