"""Checkpoints: weights in safetensors (never pickle), config in JSON, all written atomically.

A run folder holds:
  model.safetensors   the weights (a state_dict; same keys for both backends)
  config.json         model, backend, hyperparameters, normalisation, dataset, version
  resume.safetensors  weights, optimizer state and RNG states at the last finished epoch, with
                      the epoch and optimizer settings in its metadata: one file, so it is
                      always consistent with itself
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.nets import models, own_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
RESUME = "resume.safetensors"
PRETRAINED_DIR = Path(__file__).parent.parent / "pretrained"
# What pickle files (torch.save, .pt/.pth/.ckpt) start with: a zip archive or a pickle opcode.
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save(out: Path, model: torch.nn.Module, config: dict) -> None:
    """Write model.safetensors and config.json into the run folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / WEIGHTS, save_safetensors(_contiguous(model.state_dict())))
    atomic_write(out / CONFIG, (json.dumps(config, indent=2) + "\n").encode())


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; refuses pickles without unpickling them."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DigitlabError(f"{path}: cannot be read ({e.strerror}); check the path") from None
    if raw.startswith(PICKLE_MAGICS):
        raise DigitlabError(
            f"{path}: is a pickle (torch.save) file, which digitlab never loads because "
            "unpickling can run code; save the weights with safetensors.torch.save_file"
        )
    try:
        tensors = load_safetensors(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise DigitlabError(
            f"{path}: not a valid safetensors file ({e}); train again or restore the file"
        ) from None
    return tensors, metadata


def resolve(ckpt: str | Path | None) -> tuple[Path, Path]:
    """(weights file, config file) of CKPT: a run folder or the model.safetensors inside it, or
    the shipped model for None and for the word "pretrained" (so every command that takes CKPT
    accepts it)."""
    shipped = ckpt is None or str(ckpt) == "pretrained"
    path = PRETRAINED_DIR if shipped else Path(ckpt).expanduser()
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise DigitlabError(
            f"{ckpt}: no such checkpoint; give a run folder written by digitlab train "
            "or the model.safetensors inside it, or 'pretrained' for the shipped model"
        )
    return path, path.parent / CONFIG


def read_config(path: Path) -> dict:
    """The config.json of a run, checked for the keys a model needs."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitlabError(
            f"{path}: missing; a checkpoint needs the config.json that digitlab train wrote "
            "beside it"
        ) from None
    except (OSError, ValueError) as e:
        raise DigitlabError(
            f"{path}: not valid JSON ({e}); restore the file or train again"
        ) from None
    if not isinstance(config, dict):
        raise DigitlabError(f"{path}: should hold a JSON object; restore the file or train again")
    missing = [k for k in ("model", "normalization") if k not in config]
    if missing:
        raise DigitlabError(
            f"{path}: lacks {', '.join(missing)}; restore the file written by digitlab train"
        )
    return config


def load(ckpt: str | Path | None = None, backend: str = "torch", device: str = "cpu"):
    """(model in eval mode, config) from a checkpoint; None loads the shipped pretrained model."""
    weights_path, config_path = resolve(ckpt)
    config = read_config(config_path)
    state, _ = _read_safetensors(weights_path)
    model = build_recorded(config, weights_path.parent, backend)
    try:
        load_weights(model, state, weights_path, config["model"])
    except DigitlabError as e:
        if changed_model_file(config):
            raise DigitlabError(
                f"{config['model_file']['file']} changed since {weights_path.parent} was "
                "trained and its weights no longer fit the class as it is now; put the file "
                f"back as it was, or train again ({e})"
            ) from None
        raise
    return model.to(device).eval(), config


def build_recorded(config: dict, run: Path, backend: str = "torch"):
    """A fresh model as config.json records it: a built-in net by name, or a learner's class
    loaded again from its file (a line if the file is gone, a warning if it changed)."""
    recorded = config.get("model_file")
    if recorded is None:
        return models.build(config["model"], backend)
    if not Path(recorded["file"]).is_file():
        raise DigitlabError(
            f"{run} was trained on {recorded['class']} from {recorded['file']}, which is gone; "
            "put the file back there to load this run"
        )
    if changed_model_file(config):
        print(
            f"warning: {recorded['file']} changed since {run} was trained (its SHA-256 "
            "differs); loading the weights into the class as it is now",
            file=sys.stderr,
        )
    spec = f"{recorded['file']}:{recorded['class']}"
    return models.build(spec, backend, recorded.get("args"))


def changed_model_file(config: dict) -> bool:
    recorded = config.get("model_file")
    if recorded is None or not Path(recorded["file"]).is_file():
        return False
    return own_model.file_sha256(recorded["file"]) != recorded["sha256"]


def load_weights(model: torch.nn.Module, state: dict, path: Path, name: str) -> None:
    """model.load_state_dict(state), with a one-line error when the weights do not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DigitlabError(
            f"{path}: holds weights of another model than {name!r} (missing "
            f"{missing[:2]}, unexpected {unexpected[:2]}); give a checkpoint of a {name} run"
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise DigitlabError(
                f"{path}: {key} has shape {tuple(state[key].shape)} but model {name!r} needs "
                f"{tuple(value.shape)}; give a checkpoint of a {name} run"
            )
    model.load_state_dict(state)


def save_resume_state(
    out: Path, model, optimizer, rngs: dict[str, torch.Tensor], info: dict, average=None
):
    """Write resume.safetensors: weights (and their running average, a model too, if any),
    optimizer tensors, RNG states; `info` as metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v for k, v in average.state_dict().items()})
    tensors.update({f"rng.{k}": v for k, v in rngs.items()})
    # A learner's own optimizer may keep no state_dict: its run then cannot resume (said then).
    stateful = hasattr(optimizer, "state_dict") and hasattr(optimizer, "load_state_dict")
    optim = optimizer.state_dict() if stateful else {"state": {}, "param_groups": None}
    scalars = {}
    for index, state in optim["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    metadata = {
        "info": json.dumps(info),
        "param_groups": json.dumps(optim["param_groups"]),
        "optim_scalars": json.dumps(scalars),
    }
    atomic_write(out / RESUME, save_safetensors(_contiguous(tensors), metadata))


def load_resume_state(
    out: Path, model, optimizer, average=None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore weights, their average (a model, if any) and the optimizer from
    resume.safetensors; returns (RNG states, info)."""
    path = out / RESUME
    if not path.is_file():
        raise DigitlabError(
            f"{path}: missing, so there is no finished epoch to resume from; "
            "start the run again without --resume"
        )
    tensors, metadata = _read_safetensors(path)
    try:
        info = json.loads(metadata["info"])
        param_groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata["optim_scalars"])
    except (KeyError, ValueError):
        raise DigitlabError(f"{path}: lacks its training metadata; start the run again") from None
    groups = {"model": {}, "rng": {}, "optim": {}}
    for key, value in tensors.items():
        kind, _, rest = key.partition(".")
        groups.setdefault(kind, {})[rest] = value
    load_weights(model, groups["model"], path, info.get("model", "?"))
    if average is not None:
        load_weights(average, groups.get("average", {}), path, info.get("model", "?"))
    if param_groups is None:
        raise DigitlabError(
            f"{path}: this run's optimizer (your own) has no state_dict and load_state_dict, so "
            "its state was not saved and the run cannot resume; train it again"
        )
    state: dict[int, dict] = {}
    for key, value in list(groups["optim"].items()) + list(scalars.items()):
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    return groups["rng"], info
