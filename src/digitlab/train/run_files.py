"""What a run folder holds beside the checkpoint: metrics.jsonl (one line per epoch) and the
record of config.json (how to rebuild, rerun and use the model)."""

from __future__ import annotations

import dataclasses
import json
import os
from importlib.metadata import version as package_version
from pathlib import Path

from digitlab.data.mnist import class_names, dataset_name
from digitlab.files import atomic_write
from digitlab.train.settings import TrainConfig

METRICS = "metrics.jsonl"


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
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def append_metrics(out: Path, record: dict) -> None:
    with open(out / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def keep_metrics(out: Path, epochs: int) -> None:
    """Drop the metrics of an epoch that was logged but not checkpointed before a crash."""
    kept = [r for r in read_metrics(out) if r["epoch"] <= epochs]
    atomic_write(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode())
