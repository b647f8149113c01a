"""One training loop for every backend: batches, steps, per-epoch evaluation, checkpoints, resume.

A run reads, top to bottom: `fit` checks the settings and joins `prepare` (data, model, optimizer,
resume state; train.run), `train_epoch` (the steps of one epoch) and `finish_epoch` (evaluation,
metrics, checkpoint). How a step makes its gradients is the backend's business (nets.backends):
autograd for torch, each layer's hand-written backward for scratch. Everything else is shared.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from digitlab.data.mnist import as_input, to_unit
from digitlab.errors import DigitlabError
from digitlab.nets import checkpoint
from digitlab.nets.evaluation import evaluate
from digitlab.train import distributed
from digitlab.train.checks import check_config
from digitlab.train.device import resolve_device
from digitlab.train.memory import peak_since, reset_peak
from digitlab.train.run import Run, prepare, save
from digitlab.train.run_files import append_metrics, read_metrics
from digitlab.train.schedule import learning_rate, set_learning_rate
from digitlab.train.settings import TrainConfig
from digitlab.train.step import train_step

# A cross-entropy this high means logits thousands apart: the run has blown up even where the
# numbers are still finite (lr 1e3 takes float32 losses to 1e13 before they overflow).
DIVERGED = 1e3


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


EARLY = 20  # steps: a blow-up this early on a learner's layers is rarely the learning rate


def check_loss(run: Run, loss: float, epoch: int, step: int) -> None:
    """Stop at once when the loss blows up, saying what to change and what stays saved."""
    if math.isfinite(loss) and loss <= DIVERGED:
        return
    kept = f"epoch {epoch - 1} stays saved in {run.out}" if epoch > 1 else "nothing saved"
    cause = f"the learning rate is likely too high, lower --lr (now {run.config.lr})"
    if run.backend.name == "learner" and epoch == 1 and step <= EARLY:
        from digitlab.workbench.messages import Text, default_lang

        text = Text(
            "training diverged: the loss became {loss:.3g} at epoch {epoch}, step {step}; on your "
            "own layers a blow-up in the first steps most often comes from the initial weights "
            "(torch.empty, or randn without 1/sqrt(fan_in)) or from a backward; digitlab check "
            "--layers checks both; if it passes, lower --lr (now {lr}); nothing saved",
            loss=loss,
            epoch=epoch,
            step=step,
            lr=run.config.lr,
        )
        raise DigitlabError(text.render(default_lang()))
    raise DigitlabError(
        f"training diverged: the loss became {loss:.3g} at epoch {epoch}, step {step}; {cause}; "
        f"{kept}"
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


def fit(
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool | None = None,
    log=print,
    quiet: bool = False,
) -> dict:
    """Train `config` into the run folder `out`; with resume=True, continue the run found there.

    After each epoch: validation (if any) and test loss and accuracy appended to out/metrics.jsonl
    (with a validation split, the test set only after the last epoch), then an atomic checkpoint.
    Under torchrun every rank trains its shard and rank 0 alone evaluates and writes. A progress
    bar shows on a terminal (progress=None), always (True) or never (False); the log gets one
    line per epoch, and a learner's model's layer table first unless `quiet`. Returns
    {"test_accuracy", "train_seconds", "epochs", "checkpoint", "backend", "model"}.
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
        if "summary" in run.notes and not quiet:
            log(run.notes["summary"])
        while run.epoch < config.epochs:
            losses, seconds, peak_mib = train_epoch(run, run.epoch + 1, progress)
            run.epoch += 1
            run.train_seconds += seconds
            if ranks.main:
                finish_epoch(run, losses, seconds, peak_mib, log)
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
