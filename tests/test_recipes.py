"""The recipes end to end on subsets with both backends, and the parts they add: the one-cycle
schedule, the random affine augmentation, the weight average."""

import json
import math

import hypothesis
import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_one_line_error, run_cli
from digitlab.data.augment import RandomAffine
from digitlab.data.mnist import load_split
from digitlab.nets import backends, checkpoint
from digitlab.train import loop
from digitlab.train.averaging import WeightAverage
from digitlab.train.loop import fit
from digitlab.train.recipes import settings
from digitlab.train.schedule import learning_rate
from digitlab.train.settings import TrainConfig

# Each recipe on a subset: (extra flags, accuracy it must pass). Full runs: benchmarks/records.py.
# The speedrun's subset gives its batches of 256 the 23 steps that 3,000 images gave batches of
# 128 before (12 steps read 88% with PyTorch's layers).
# The best recipe's peak rate (SGD, 0.1) needs the full run's long warm-up (2,700 steps); on 24
# steps it wrecks the batch norm statistics, so the subset run peaks at 0.02. It holds out 1,000
# images, not 5,000: judging every epoch on them is most of a subset run's time.
SUBSETS = {
    "speedrun": (["--subset", "6000"], 0.90),
    "best": (["--subset", "1500", "--epochs", "2", "--lr", "0.02", "--val-split", "1000"], 0.85),
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", backends.BACKENDS)
@pytest.mark.parametrize("recipe", list(SUBSETS))
def test_each_recipe_runs_end_to_end_with_each_backend(tmp_path, capsys, recipe, backend):
    extra, floor = SUBSETS[recipe]
    args = ["train", "--recipe", recipe, "--backend", backend, *extra, "--out", tmp_path]
    # The pictures do not depend on the backend: drawn once per recipe (a third of a run's time).
    pictures = [] if backend == "torch" else ["--no-pictures"]
    code, out, err = run_cli(capsys, *args, *pictures, "--quiet", "--json")
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["model"] == settings(recipe)["model"] and result["backend"] == backend
    assert result["test_accuracy"] > floor
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    lr = float(extra[extra.index("--lr") + 1]) if "--lr" in extra else settings(recipe)["lr"]
    assert config["recipe"] == recipe and config["lr"] == lr
    assert config["batch_size"] == settings(recipe)["batch_size"]
    for picture in ("learning_curves.png", "feature_maps.png", "filters.png"):
        if pictures:
            assert not (tmp_path / picture).exists()
        else:
            assert (tmp_path / picture).stat().st_size > 1000
    # The shipped weights load into either backend and give the same logits.
    model, _ = checkpoint.load(tmp_path, backend="torch")
    other, _ = checkpoint.load(tmp_path, backend="scratch")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), other(x), atol=1e-4)


@pytest.mark.slow
def test_best_reads_the_test_set_once_and_saves_the_weight_average(tmp_path, capsys):
    args = ["--recipe", "best", "--subset", "600", "--epochs", "2", "--lr", "0.02", "--quiet"]
    assert run_cli(capsys, "train", *args, "--no-pictures", "--out", tmp_path)[0] == 0
    first, last = loop.read_metrics(tmp_path)
    assert "val_accuracy" in first and "test_accuracy" not in first
    assert "val_accuracy" in last and "test_accuracy" in last
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["dataset"]["val_images"] == 5000 and config["dataset"]["train_images"] == 600
    saved = load_file(tmp_path / "model.safetensors")
    resume = load_file(tmp_path / "resume.safetensors")
    assert torch.equal(saved["out.weight"], resume["average.out.weight"])
    assert not torch.equal(saved["out.weight"], resume["model.out.weight"])


@pytest.mark.slow
def test_flags_beside_a_recipe_win_and_an_unknown_recipe_is_one_line(tmp_path, capsys):
    args = ["train", "--recipe", "speedrun", "--lr", "0.004", "--label-smoothing", "0"]
    assert run_cli(capsys, *args, "--subset", "300", "--out", tmp_path, "--quiet")[0] == 0
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["lr"] == 0.004 and config["label_smoothing"] == 0.0
    assert config["model"] == "fast" and config["batch_size"] == 256
    code, _, err = run_cli(capsys, "train", "--recipe", "fastest")
    assert_one_line_error(code, err, 2, "--recipe", "speedrun")


@pytest.mark.slow
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_an_interrupted_best_run_resumes_to_the_uninterrupted_weights(tmp_path, backend):
    config = TrainConfig(**settings("best"), backend=backend)
    config.subset, config.epochs, config.val_split = 300, 2, 1000

    def stop_after_first_epoch(text):
        if text.startswith("epoch 1/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "parts", progress=False, log=stop_after_first_epoch)
    fit(config, tmp_path / "parts", resume=True, progress=False, log=lambda text: None)
    fit(config, tmp_path / "whole", progress=False, log=lambda text: None)
    a = load_file(tmp_path / "whole/model.safetensors")
    b = load_file(tmp_path / "parts/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_cycle_matches_pytorchs_one_cycle_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    for total, warmup in ((37, 0.3), (469, 0.2), (10, 0.25)):
        optimizer = torch.optim.SGD([p], lr=0.1)
        reference = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, 0.1, total_steps=total, pct_start=warmup
        )
        for step in range(total):
            mine = learning_rate("onecycle", 0.1, step, total, warmup)
            assert math.isclose(mine, optimizer.param_groups[0]["lr"], rel_tol=1e-9, abs_tol=1e-15)
            optimizer.step()
            reference.step()
    assert learning_rate("constant", 0.1, 5, 10, 0.3) == 0.1


def test_random_affine_without_distortion_is_the_identity_and_with_it_keeps_the_digit():
    images = load_split(None, train=False).images[:64].float() / 255
    generator = torch.Generator().manual_seed(0)
    same = RandomAffine(degrees=0, scale=0, shift=0)(images, generator)
    assert torch.allclose(same, images, atol=1e-5)
    moved = RandomAffine(degrees=0, scale=0, shift=3)(images, generator)
    grid = torch.arange(28.0)

    def centre_x(x):
        return (x.sum(1) * grid).sum(1) / x.sum((1, 2))

    shift = centre_x(moved) - centre_x(images)
    assert shift.abs().max() <= 3.3 and shift.abs().mean() > 0.5  # shifted, by at most 3 px
    warped = RandomAffine()(images, generator)
    assert warped.shape == images.shape and 0 <= warped.min() and warped.max() <= 1 + 1e-5
    ink = images.sum((1, 2))
    assert ((warped.sum((1, 2)) - ink).abs() / ink).max() < 0.3  # scaled by at most 10%: area ±21%
    again = RandomAffine()(images, torch.Generator().manual_seed(0))
    first = RandomAffine()(images, torch.Generator().manual_seed(0))
    assert torch.equal(again, first)  # the generator decides everything


def test_weight_average_follows_the_exponential_formula():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
            model[1].running_mean.add_(0.5)
            model[1].num_batches_tracked += 1
        average.update(model)
        decay = min(0.9, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                expected[key] = decay * expected[key] + (1 - decay) * value
            else:
                expected[key] = value.clone()
    for key, value in average.model.state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-5), key


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_speedrun_on_the_gpu(tmp_path, backend):
    config = TrainConfig(**settings("speedrun"), backend=backend, device="cuda", subset=6000)
    result = fit(config, tmp_path, progress=False, log=lambda text: None)
    assert result["test_accuracy"] > 0.9


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    total=hypothesis.strategies.integers(1, 5000),
    warmup=hypothesis.strategies.floats(0, 1, exclude_max=True),
)
def test_one_cycle_any_length_and_warmup(total, warmup):
    """Any steps >= 1, any warm-up in [0, 1): no exception, every rate within (0, peak], and the
    last step at lr / 25e4 (a single step runs at the peak)."""
    rates = [learning_rate("onecycle", 0.1, step, total, warmup) for step in range(total)]
    assert all(0 < r <= 0.1 * (1 + 1e-12) for r in rates)
    expected_last = 0.1 if total == 1 else 0.1 / 25 / 1e4
    assert math.isclose(rates[-1], expected_last, rel_tol=1e-9)


@pytest.mark.slow
def test_best_recipe_on_a_tiny_subset_runs(tmp_path, capsys):
    """600 images in batches of 128 with a 20% warm-up: a warm-up shorter than one step."""
    code, out, err = run_cli(
        capsys,
        "train",
        "--recipe",
        "best",
        "--subset",
        "600",
        "--epochs",
        "1",
        "--out",
        tmp_path,
        "--quiet",
        "--no-pictures",
    )
    assert code == 0, err


@pytest.mark.slow
def test_resume_with_more_epochs_under_one_cycle_is_refused(tmp_path, capsys):
    args = ["--recipe", "speedrun", "--subset", "500", "--out", tmp_path, "--quiet"]
    assert run_cli(capsys, "train", *args, "--no-pictures")[0] == 0
    code, out, err = run_cli(capsys, "train", "--resume", tmp_path, "--epochs", "2")
    assert_one_line_error(code, err, 1, "one-cycle schedule planned for 1 epochs")


@pytest.mark.slow
def test_sturdy_is_the_best_recipe_trained_also_on_faulty_digits(tmp_path, capsys):
    best, sturdy = settings("best"), settings("sturdy")
    assert {**best, "sturdy": 0.5, "epochs": 40, "recipe": "sturdy"} == sturdy
    args = ["--recipe", "sturdy", "--subset", "600", "--epochs", "1", "--lr", "0.02", "--quiet"]
    assert run_cli(capsys, "train", *args, "--no-pictures", "--out", tmp_path)[0] == 0
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["sturdy"] == 0.5 and config["augment"] and config["model"] == "best"
