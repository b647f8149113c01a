"""Every setting of a training run, in one table (SETTINGS), and how a run's settings are merged.

From the table come: the `digitlab train` flags (with their defaults in --help), the TrainConfig
dataclass (fields and defaults), the settings that must match to resume a run (RUN_SETTINGS), and
`digitlab compare`'s cache key and train command line (study/compare_configs.py). No torch here:
the command line is parsed before torch is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.nets.model_spec import is_file_spec, resolved, split_spec
from digitlab.train.recipes import RECIPES
from digitlab.train.recipes import settings as recipe_settings

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adam", "sgd")
# nets.models.MODELS and nets.backends.NAMES by name, so that parsing a command line needs no
# torch; tests/test_structure.py holds them equal.
MODEL_NAMES = ("cnn", "fcn", "fast", "best")
BACKEND_NAMES = ("torch", "scratch", "learner")


def number(convert, kind: str, allowed, rule: str):
    """An argparse type: text -> convert(text), refused in one line unless allowed(value)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind}") from None
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return parse


positive_float = number(float, "number", lambda v: v > 0, "positive")
positive_int = number(int, "whole number", lambda v: v >= 1, "at least 1")
count = number(int, "whole number", lambda v: v >= 0, "0 or more")
fraction = number(float, "number", lambda v: 0 <= v <= 1, "between 0 and 1")


def model_name(text: str) -> str:
    """An argparse type: a built-in net's name, or a learner's FILE.py[:Class]."""
    if text in MODEL_NAMES or is_file_spec(text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: choose one of {', '.join(MODEL_NAMES)}, or your own FILE.py[:Class]"
    )


def json_object(text: str) -> dict:
    """An argparse type: a JSON object, e.g. '{"width": 32}'."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r}: give a JSON object, e.g. '{{\"width\": 32}}'")
    return value


@dataclass(frozen=True)
class Setting:
    """One row: a TrainConfig field, and its `digitlab train` flag when `help` is given."""

    name: str
    kind: object  # the field's type
    default: object  # a plain value: the defaults are the study log's
    help: str = ""  # the flag's help ({default} is filled in); "" for no flag (a recipe's)
    run: bool = True  # defines the run: must match to resume it, part of compare's cache key
    parse: object = None  # argparse's type=
    choices: tuple | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS = (
    Setting(
        "recipe",
        str | None,
        None,
        "start from fixed settings: speedrun (fastest to 99%%), best (highest accuracy) or "
        "sturdy (best, trained also on shaded, noisy, blurred and stroked digits); other flags "
        "given still win",
        choices=tuple(RECIPES),
    ),
    Setting(
        "model",
        str,
        "cnn",
        "network: " + ", ".join(MODEL_NAMES) + ", or your own nn.Module: FILE.py[:Class] "
        "(default {default})",
        parse=model_name,
        metavar="NAME|FILE.py[:Class]",
    ),
    Setting(
        "model_args",
        dict | None,
        None,
        "your model's constructor arguments, as a JSON object (with --model FILE.py)",
        parse=json_object,
        metavar="JSON",
    ),
    Setting(
        "backend",
        str,
        "torch",
        "layers: PyTorch's, digitlab's hand-written (scratch) or yours (learner, with "
        "--layers) (default {default})",
        choices=BACKEND_NAMES,
    ),
    Setting("optimizer", str, "adam", "default {default}", choices=OPTIMIZERS),
    Setting("lr", float, 1e-3, "learning rate (default {default})", parse=positive_float),
    Setting("batch_size", int, 50, "default {default}", parse=positive_int),
    Setting("epochs", int, 1, "default {default}", parse=positive_int),
    Setting("seed", int, 0, "random seed (default {default})", parse=int),
    Setting("momentum", float, 0.9, "SGD momentum (default {default})", parse=float),
    Setting("nesterov", bool, False),  # SGD only
    Setting("betas", tuple, (0.9, 0.999)),  # Adam only
    Setting("weight_decay", float, 0.0),
    Setting("schedule", str, "constant"),  # or "onecycle" (see digitlab.train.schedule)
    Setting("warmup", float, 0.3),  # one-cycle: the share of the steps spent climbing to lr
    Setting(
        "label_smoothing",
        float,
        0.0,
        "take S from the true class's target and share it over all classes, as PyTorch's "
        "CrossEntropyLoss(label_smoothing=S) (default {default})",
        parse=fraction,
        metavar="S",
    ),
    Setting("augment", bool, False),  # random rotation, scale and shift of every training image
    Setting(
        "sturdy",
        float,
        0.0,
        "give this share of training images a shaded background, noise, blur or a stray "
        "stroke, to read digits outside MNIST's clean ones (default {default})",
        parse=fraction,
        metavar="P",
    ),
    Setting("average", float, 0.0),  # decay of an average of the weights, then the saved model
    Setting(
        "val_split",
        int,
        0,
        "hold out N training images for validation; the test set is then read only after the "
        "last epoch (default {default})",
        parse=count,
        metavar="N",
    ),
    Setting("subset", int | None, None, "train on N images only", parse=positive_int, metavar="N"),
    Setting(
        "data_dir", str | None, None, "folder of MNIST-format IDX files (default: embedded MNIST)"
    ),
    Setting(
        "layers",
        str | None,
        None,
        "train on your own layers from FILE.py (checked first; digitlab.scratch's fill in the "
        "classes it lacks); see digitlab exercise",
        metavar="FILE.py",
    ),
    Setting(
        "device",
        str,
        "auto",
        "auto: a CUDA GPU when there is one (default {default})",
        run=False,  # where a run trains is not part of it: it may resume elsewhere
        choices=DEVICES,
    ),
    Setting("command", str, "", run=False),  # the command line that started the run
)
FLAGS = tuple(s for s in SETTINGS if s.help)
# The settings a user chooses that define a run: what must match to resume it, and (epochs
# aside, which may grow) what makes a finished compare row reusable. A recipe's own settings
# (the rows without a flag) are covered by its name.
RUN_SETTINGS = tuple(s.name for s in FLAGS if s.run)

TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(s.name, s.kind, dataclasses.field(default=s.default)) for s in SETTINGS],
    namespace={"__module__": __name__},
)
TrainConfig.__doc__ = "Everything that defines a run: one field per row of SETTINGS."
DEFAULTS = TrainConfig()


def add_flags(parser: argparse.ArgumentParser, rows=FLAGS) -> None:
    """One flag per row. None of them has an argparse default: None means "not given", so that a
    recipe or a resumed run keeps its own setting; the defaults shown are the table's."""
    for s in rows:
        parser.add_argument(
            s.flag,
            type=s.parse,
            choices=s.choices,
            metavar=s.metavar,
            help=s.help.format(default=s.default),
        )


def given(args: argparse.Namespace, rows=FLAGS) -> dict:
    """{setting: value} of the flags given on the command line."""
    return {s.name: getattr(args, s.name) for s in rows if getattr(args, s.name) is not None}


def configure(given: dict, resume: str | Path | None = None, **extra) -> TrainConfig:
    """The TrainConfig of a run from the settings a user gave ({field: value}).

    New run: a recipe's settings first (if one is named), then the given ones on top, then
    `extra` (command). Resume: the run's own config.json; a given run setting that differs is
    refused, except a larger --epochs; the others (device) are the given ones or the defaults.
    """
    for key in ("data_dir", "layers"):  # a run can be resumed or compared from another folder
        if given.get(key) is not None:
            given = {**given, key: str(Path(given[key]).expanduser().resolve())}
    if given.get("layers") is not None:
        given.setdefault("backend", "learner")
    if given.get("model") is not None and is_file_spec(given["model"]):
        given = {**given, "model": resolved(given["model"])}
    if resume is None:
        if given.get("recipe") is not None:
            given = {**recipe_settings(given["recipe"]), **given}
        return TrainConfig(**given, **extra)
    config = load_resume_config(Path(resume))
    for key in RUN_SETTINGS:
        if key in given:
            check_resumable(config, key, given[key], resume)
    for s in FLAGS:
        if not s.run:
            setattr(config, s.name, given.get(s.name, s.default))
    config.epochs = given.get("epochs", config.epochs)
    return config


def check_resumable(config: TrainConfig, key: str, value, resume) -> None:
    """Refuse a given setting that differs from the run's: only --epochs may grow, and only
    without a one-cycle schedule (planned for the run's epochs from its first step)."""
    if key == "epochs" and value != config.epochs and config.schedule == "onecycle":
        raise DigitlabError(
            f"--epochs {value}: the run in {resume} follows a one-cycle schedule planned for "
            f"{config.epochs} epochs, and a longer run would need another schedule from its "
            f"first step; resume it without --epochs, or start a new run with --epochs {value}"
        )
    if key != "epochs" and getattr(config, key) != value:
        flag = "--" + key.replace("_", "-")
        raise DigitlabError(
            f"{flag} {value}: the run in {resume} was trained with {getattr(config, key)}; "
            f"drop {flag} to resume it, or start a new run with another --out"
        )


def load_resume_config(out: Path) -> TrainConfig:
    """The TrainConfig of the run in `out`, from its config.json."""
    from digitlab.nets import checkpoint  # torch: only once a run is resumed

    return config_of(checkpoint.read_config(out / checkpoint.CONFIG))


def config_of(recorded: dict) -> TrainConfig:
    """The TrainConfig of a run from its config.json's fields (a field it lacks: the default)."""
    fields = {s.name for s in SETTINGS}
    config = TrainConfig(**{k: v for k, v in recorded.items() if k in fields})
    config.betas = tuple(config.betas)  # JSON made it a list
    return config


def default_out(config: TrainConfig) -> Path:
    """runs/RECIPE-BACKEND or runs/MODEL-BACKEND (a learner's model: its file's name)."""
    model = split_spec(config.model)[0].stem if is_file_spec(config.model) else config.model
    return Path(f"runs/{config.recipe or model}-{config.backend}")
