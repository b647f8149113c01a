"""The shape of the code (one home per concept) and the small fixes that came with it."""

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, needs, run_cli, write_dataset, write_idx
from digitlab.data.mnist import as_input, class_names, load_split
from digitlab.nets import backends, models
from digitlab.read.predictor import Predictor
from digitlab.train import settings, step

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"
FASHION = "/usr/share/datasets/fashion-mnist"


def test_no_module_tests_a_backend_by_its_name():
    """One place decides what a backend does: the record in backends.py."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "backends.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                names = [c.value for c in node.comparators if isinstance(c, ast.Constant)]
                if any(n in ("torch", "scratch") for n in names):
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_a_batch_through_as_input_is_normalised(dtype):
    """data.mnist.as_input is where model input comes from: bytes are scaled to [0, 1] first,
    floats are taken as already in [0, 1]; both come out as (N, 1, H, W) (x - mean) / std."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8, generator=generator)
    images = pixels if dtype == torch.uint8 else pixels.float() / 255
    mean, std = 0.1307, 0.3081
    x = as_input(images, mean, std)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    expected = (pixels.double() / 255 - mean) / std
    torch.testing.assert_close(x[:, 0].double(), expected, rtol=0, atol=1e-5)
    # A black pixel and a white one land where the formula puts them.
    edges = as_input(torch.tensor([[[0, 255]]], dtype=torch.uint8), mean, std)
    torch.testing.assert_close(edges.flatten(), torch.tensor([-mean / std, (1 - mean) / std]))


def test_a_new_backend_is_one_record(tmp_path):
    """A backend made of scratch's layers under another name trains through the same loop."""
    scratch = backends.get("scratch")
    other = backends.Backend("other", scratch.layers, scratch.optim, scratch.loss, autograd=False)
    model = models.build("cnn", other)
    assert type(model.conv1[0]).__module__ == "digitlab.scratch.fast.conv"
    x, y = torch.randn(4, 1, 28, 28), torch.arange(4)
    loss_fn = step.make_loss(other)
    opt = other.optim.SGD(model.parameters(), lr=0.1)
    before = model.out.weight.clone()
    step.train_step(model, loss_fn, opt, x, y, other)
    assert not torch.equal(before, model.out.weight)


def test_torch_models_carry_no_hand_written_backward():
    assert not hasattr(models.build("cnn", "torch"), "backward")


def test_help_texts_show_trainconfig_defaults(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert f"learning rate (default {settings.DEFAULTS.lr})" in text
    assert f"default {settings.DEFAULTS.batch_size}" in text
    for row in settings.FLAGS:  # every flag of the table, and no other setting's
        assert row.flag in text


def test_one_table_of_settings_serves_cli_config_and_resume():
    from digitlab.cli import build_parser

    assert [f.name for f in dataclasses.fields(settings.TrainConfig)] == [
        s.name for s in settings.SETTINGS
    ]
    assert settings.DEFAULTS.lr == next(s.default for s in settings.SETTINGS if s.name == "lr")
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    dests = {a.dest for a in commands.choices["train"]._actions}
    assert {s.name for s in settings.FLAGS} <= dests
    # The names written in the table so that parsing needs no torch are the real ones.
    assert settings.MODEL_NAMES == tuple(models.MODELS)
    assert settings.BACKEND_NAMES == backends.NAMES


def test_recipe_and_resume_merge_in_training(tmp_path):
    config = settings.configure({"recipe": "speedrun", "seed": 3})
    assert config.model == "fast" and config.lr == 0.02 and config.seed == 3
    assert config.recipe == "speedrun"


def test_train_and_test_images_of_different_sizes_fail_before_training(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", 300, 100)
    small = load_split(None, False).images[:100, 2:-2, 2:-2].numpy()  # 24x24
    (root / "t10k-images-idx3-ubyte.gz").unlink()
    write_idx(root / "t10k-images-idx3-ubyte.gz", small, compress=True)
    code, out, err = run_cli(
        capsys, "train", "--data-dir", root, "--out", tmp_path / "run", "--quiet"
    )
    assert_one_line_error(code, err, 1, "28x28", "24x24")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no epoch was trained


def test_fcn_refuses_images_smaller_than_28(tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    for prefix, train in (("train", True), ("t10k", False)):
        split = load_split(None, train)
        write_idx(root / f"{prefix}-images-idx3-ubyte", split.images[:200, 4:-4, 4:-4].numpy())
        write_idx(root / f"{prefix}-labels-idx1-ubyte", split.labels[:200].numpy())
    code, out, err = run_cli(
        capsys, "train", "--model", "fcn", "--data-dir", root, "--out", tmp_path / "r", "--quiet"
    )
    assert_one_line_error(code, err, 1, "20x20", "at least 28x28")


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal(tmp_path):
    """Piped into a file, a run prints one line per epoch and no bar; --progress forces it."""
    args = ["train", "--subset", "300", "--epochs", "2", "--no-pictures"]
    runs = {}
    for name, extra in (("piped", []), ("forced", ["--progress"])):
        process = subprocess.run(
            [sys.executable, "-m", "digitlab", *args, "--out", str(tmp_path / name), *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert process.returncode == 0, process.stderr
        runs[name] = process
    piped = runs["piped"]
    assert "img/s]" not in piped.stderr and "\r" not in piped.stderr
    assert sum(line.startswith("epoch ") for line in piped.stdout.splitlines()) == 2
    assert "img/s]" in runs["forced"].stderr


def test_class_names_come_from_classes_txt(tmp_path):
    root = write_dataset(tmp_path / "data", 10, 10)
    assert class_names(root) is None
    (root / "classes.txt").write_text(
        "\n".join(f"class {c}" for c in range(10)) + "\n", encoding="utf-8"
    )
    assert class_names(root)[3] == "class 3"
    (root / "classes.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(Exception, match="lists 2 class names"):
        class_names(root)


@pytest.mark.slow
@needs(os.path.isdir(FASHION), "Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_shows_class_names(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", "--data-dir", FASHION, "--subset", "500", "--out", run, "--quiet"
    )
    assert code == 0, err
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["dataset"]["classes"][9] == "Ankle boot"
    predictor = Predictor.load(run)
    assert predictor.classes[0] == "T-shirt/top"
    code, out, err = run_cli(capsys, "evaluate", run, "--no-pictures")
    assert code == 0 and "Ankle boot" in out and "Trouser" in out
    # The pictures name the classes and speak of images, not digits.
    from digitlab.study.plots import predictions_grid

    test = load_split(FASHION, False)
    path = predictions_grid(
        test.images[:8].numpy(),
        [0] * 8,
        [1] * 8,
        tmp_path / "p.png",
        classes=predictor.classes,
        what="images",
    )
    assert np.asarray(Image.open(path)).std() > 10


def test_one_epoch_accuracy_axis_is_whole_epochs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from digitlab.study import plots

    captured = {}
    real_save = plots.save

    def keep(fig, path):
        captured["ticks"] = fig.axes[1].get_xticks()
        captured["xlim"] = fig.axes[1].get_xlim()
        return real_save(fig, path)

    plots.save = keep
    try:
        plots.learning_curves(
            [{"epoch": 1, "step_loss": [2.0, 1.0], "test_accuracy": 0.9}], tmp_path / "c.png"
        )
    finally:
        plots.save = real_save
        plt.close("all")
    visible = [t for t in captured["ticks"] if captured["xlim"][0] <= t <= captured["xlim"][1]]
    assert all(float(t).is_integer() for t in visible) and 1.0 in visible


def test_parsing_the_command_line_imports_neither_torch_nor_matplotlib():
    """--help, a bad flag and a missing image answer at once: no command's heavy imports load
    before the command runs."""
    script = (
        "import sys\n"
        "from digitlab.cli import build_parser, main\n"
        "build_parser().parse_args(['train', '--recipe', 'speedrun', '--lr', '0.1'])\n"
        "build_parser().parse_args(['compare', '--sturdy', '0.5'])\n"
        "assert main(['predict', 'missing.png']) == 1\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "missing.png: no such file" in done.stderr


def test_version_and_no_command(capsys):
    from importlib.metadata import version

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == version("digitlab")
    code, out, err = run_cli(capsys)
    assert code == 0 and "usage: digitlab" in out and "train" in out and err == ""


# A value for every run setting: not its default, and valid for a tiny run. A new run setting
# fails the compare test below until it is given one here.
TINY = {
    "recipe": "speedrun",
    "model": "fcn",
    "backend": "learner",
    "optimizer": "sgd",
    "lr": 0.05,
    "batch_size": 20,
    "epochs": 2,
    "seed": 3,
    "momentum": 0.5,
    "label_smoothing": 0.05,
    "sturdy": 0.25,
    "val_split": 40,
    "subset": 100,
    "data_dir": None,  # the tiny dataset, written by the test
    "layers": None,  # a learner's file, written by the test
}
# The settings of a learner's own model: a second run, on torch's layers.
OWN = {"model": None, "model_args": {"width": 4}, "backend": "torch", "layers": None}
OWN_NET = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 5)
        self.out = nn.Linear(width * 24 * 24, 10)

    def forward(self, x):
        return self.out(self.conv(x).flatten(1))
"""


def compare_one(tmp_path, capsys, values: dict) -> dict:
    """`digitlab compare` of one configuration with every setting in `values` given; the
    trained run's config.json."""
    from digitlab.study.compare_configs import CONFIG_PARTS

    configs = "/".join(str(values[name]) for name in CONFIG_PARTS)
    flags = [
        part
        for s in settings.FLAGS
        if s.name in values and s.name not in CONFIG_PARTS and values[s.name] is not None
        for part in (
            s.flag,
            json.dumps(values[s.name]) if s.name == "model_args" else values[s.name],
        )
    ]
    code, _, err = run_cli(
        capsys,
        "compare",
        "--configs",
        configs,
        *flags,
        "--out",
        tmp_path,
        "--no-robustness",
        "--quiet",
    )
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    return json.loads((run / "config.json").read_text(encoding="utf-8"))


def test_compare_passes_every_run_setting_to_the_run(tmp_path, capsys):
    """compare's train command is written from the table: every run setting reaches the trained
    run's config.json (compare once dropped six of them)."""
    layers, net = tmp_path / "layers.py", tmp_path / "net.py"
    layers.write_text("from digitlab.scratch import *  # noqa: F403\n", encoding="utf-8")
    net.write_text(OWN_NET, encoding="utf-8")
    data = str(write_dataset(tmp_path / "data", 200, 50))
    values = {**TINY, "data_dir": data, "layers": str(layers)}
    own = {**TINY, "data_dir": data, **OWN, "model": f"{net}:Net"}
    assert set(values) | set(own) == set(settings.RUN_SETTINGS)
    defaults = {s.name: s.default for s in settings.SETTINGS}
    assert all(values[n] != defaults[n] for n in values)
    assert all(own[n] != defaults[n] for n in ("model", "model_args"))
    recorded = compare_one(tmp_path / "layers", capsys, values)
    assert {name: recorded[name] for name in values} == values
    recorded = compare_one(tmp_path / "own", capsys, own)
    assert {name: recorded[name] for name in own} == own
