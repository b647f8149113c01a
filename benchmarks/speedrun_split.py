"""Where the speedrun's seconds go, per backend: the same epoch as `digitlab train --recipe
speedrun` (same data, model, optimizer and schedule), timed in five parts: data (indexing and
normalising a batch), forward (with the loss), backward, optimizer step, and the evaluation on
the test set after it.

    python benchmarks/speedrun_split.py [--seed S]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from digitlab.data.mnist import as_input
from digitlab.nets import backends
from digitlab.nets.evaluation import evaluate
from digitlab.train.run import prepare
from digitlab.train.schedule import learning_rate, set_learning_rate
from digitlab.train.settings import configure
from digitlab.train.step import SINGLE


def split(backend: str, seed: int, out: Path) -> dict:
    config = configure({"recipe": "speedrun", "backend": backend, "seed": seed})
    run = prepare(config, out, False, torch.device("cpu"), SINGLE, print)
    parts = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    order = torch.randperm(len(run.labels), generator=run.shuffle)
    steps, size = run.steps_per_epoch, config.batch_size
    run.model.train()
    for k, i in enumerate(range(0, len(order), size)):
        t0 = time.perf_counter()
        set_learning_rate(
            run.optimizer, learning_rate(config.schedule, config.lr, k, steps, config.warmup)
        )
        idx = order[i : i + size]
        x, y = (
            run.backend.memory_format(as_input(run.images[idx], run.mean, run.std)),
            run.labels[idx],
        )
        t1 = time.perf_counter()
        run.optimizer.zero_grad()
        with torch.set_grad_enabled(run.backend.autograd):
            loss = run.loss_fn(run.model(x), y)
            t2 = time.perf_counter()
            if run.backend.autograd:
                loss.backward()
            else:
                backends.backward(run.model, run.loss_fn.backward(), input_grad=False)
        t3 = time.perf_counter()
        run.optimizer.step()
        loss.item()
        t4 = time.perf_counter()
        for part, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[part] += seconds
    t0 = time.perf_counter()
    accuracy = evaluate(run.model, run.test, run.mean, run.std)["accuracy"]
    return {**parts, "evaluation": time.perf_counter() - t0, "test_accuracy": accuracy}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} torch threads; seconds of one speedrun epoch, by part")
    for backend in ("torch", "scratch"):
        with tempfile.TemporaryDirectory() as out:
            result = split(backend, args.seed, Path(out))
        accuracy = result.pop("test_accuracy")
        seconds = "  ".join(f"{k} {v:.2f}" for k, v in result.items())
        print(f"{backend:>8}: {seconds}  (test accuracy {accuracy:.4f})")
