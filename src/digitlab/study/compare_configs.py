"""What `digitlab compare` trains: configurations "model/backend/optimizer[/lr]" over shared
settings, each run by a `digitlab train` command line written from the settings table, and the
cache key that says when a finished row or a half-trained run can be reused. No torch here."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.nets.model_spec import is_file_spec, resolved, split_spec
from digitlab.train.settings import FLAGS, RUN_SETTINGS, TrainConfig

DEFAULT_CONFIGS = (
    "cnn/torch/adam",
    "cnn/scratch/adam",
    "fcn/torch/adam",
    "fcn/scratch/adam",
    "cnn/torch/sgd/0.01",
)
CONFIG_PARTS = ("model", "backend", "optimizer", "lr")  # what a configuration's text sets
# The run settings `digitlab compare` takes as flags, shared by every configuration.
SHARED_FLAGS = tuple(s for s in FLAGS if s.run and s.name not in CONFIG_PARTS)
# What makes a finished row or a half-trained run reusable: the run's settings, epochs aside
# (they may grow).
SETTINGS = tuple(name for name in RUN_SETTINGS if name != "epochs")


def cache_key(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in SETTINGS}


def parse_config(text: str, base: TrainConfig) -> TrainConfig:
    """ "model/backend/optimizer[/lr]" -> a TrainConfig with the shared settings of `base`."""
    from digitlab.train.checks import check_config  # torch: only once a comparison runs

    model, parts = split_config(text.strip())
    if len(parts) not in (2, 3):
        raise DigitlabError(
            f"--configs {text!r}: write model/backend/optimizer[/lr], e.g. cnn/scratch/adam or "
            "my_cnn.py:CNN/torch/adam"
        )
    parts = [model, *parts]
    backend, optimizer = parts[1:3]
    if is_file_spec(model):  # the run may be trained and read from another folder
        model = resolved(model)
    try:
        lr = float(parts[3]) if len(parts) == 4 else base.lr
    except ValueError:
        raise DigitlabError(
            f"--configs {text!r}: the learning rate {parts[3]!r} is not a number"
        ) from None
    config = TrainConfig(
        **{**base.__dict__, "model": model, "backend": backend, "optimizer": optimizer, "lr": lr}
    )
    check_config(config)
    return config


def split_config(text: str) -> tuple[str, list[str]]:
    """("my/dir/cnn.py:CNN", ["torch", "adam"]) from "my/dir/cnn.py:CNN/torch/adam": a model
    that is a learner's file is everything up to its ".py" or ".py:Class", so that its path may
    hold slashes; a built-in model is the first part."""
    found = re.match(r"(.*?\.py(?::\w+)?)/(.*)$", text)
    if found:
        return found.group(1), found.group(2).split("/")
    first, *rest = text.split("/")
    return first, rest


def run_name(text: str) -> str:
    """The folder of a configuration's run: "cnn-torch-adam", "my_cnn.CNN-torch-adam"."""
    model, parts = split_config(text)
    if is_file_spec(model):
        path, name = split_spec(model)
        model = path.stem + (f".{name}" if name else "")
    return "-".join([model, *parts])


def train_command(config: TrainConfig, run: Path, resume: bool, progress: bool) -> list[str]:
    """The `digitlab train` command line that trains (or resumes) `config` into `run`: every
    run setting that is set, as its flag."""
    if resume:
        args = ["--resume", run, "--epochs", config.epochs]
    else:
        args = [
            part
            for s in FLAGS
            if s.run and getattr(config, s.name) is not None
            for part in (s.flag, as_flag_value(getattr(config, s.name)))
        ]
        args += ["--out", run]
    args += ["--device", config.device, "--json", "--no-pictures"]
    args += [] if progress else ["--quiet"]
    return [sys.executable, "-m", "digitlab", "train", *map(str, args)]


def as_flag_value(value) -> str:
    """A setting's value as its flag takes it: JSON for --model-args' object."""
    return json.dumps(value) if isinstance(value, dict) else str(value)
