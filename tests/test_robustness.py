"""The MNIST-C corruptions and the robustness command."""

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, run_cli
from digitlab.data.corruptions import CORRUPTIONS, corrupt
from digitlab.data.mnist import load_split

IMAGES = load_split(None, train=False).images[:20].numpy()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_deterministic_keeps_shape_and_range_and_changes_the_image(name):
    a, b = corrupt(IMAGES, name, seed=0), corrupt(IMAGES, name, seed=0)
    assert np.array_equal(a, b)  # the same seed, the same images
    assert a.shape == IMAGES.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - IMAGES).mean() > 1  # it does change the digits
    # Image i draws from its own generator: the first five alone come out the same.
    assert np.array_equal(corrupt(IMAGES[:5], name, seed=0), a[:5])


def test_random_corruptions_follow_the_seed():
    for name in ("shot_noise", "impulse_noise", "glass_blur", "fog", "spatter", "zigzag"):
        assert not np.array_equal(corrupt(IMAGES, name, 0), corrupt(IMAGES, name, 1)), name


def test_zero_strength_is_the_identity():
    """The geometric ones at zero strength, and the line drawers on an empty line, give back
    the image: what changes it is the corruption, not the resampling around it."""
    from digitlab.data import corruptions

    x = IMAGES[0].astype(float)
    assert np.allclose(corruptions._affine(x, rotation=0.0), x, atol=1e-6)
    assert np.allclose(corruptions._affine(x, shear=0.0), x, atol=1e-6)
    assert np.allclose(corruptions._affine(x, scale=(1.0, 1.0)), x, atol=1e-6)
    assert not corruptions.line_from_points(3, 5, 3, 9).any()  # a vertical "line" is no line


def test_robustness_command_prints_15_rows_writes_pictures_and_caches(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    args = ["robustness", "pretrained", "--limit", "200", "--out", tmp_path / "out", "--json"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["rows"]) == 15
    assert [r["corruption"] for r in result["rows"]] == list(CORRUPTIONS)
    assert result["clean_accuracy"] > 0.98
    accuracies = [r["accuracy"] for r in result["rows"]]
    assert result["mean_corruption_accuracy"] == pytest.approx(np.mean(accuracies))
    assert min(accuracies) < result["clean_accuracy"]
    for picture in ("robustness.png", "robustness_bars.png"):
        assert (tmp_path / "out" / picture).stat().st_size > 10_000
    cached = sorted((tmp_path / "cache" / "mnist-c").rglob("*.npy"))
    assert len(cached) == 15
    stamps = [p.stat().st_mtime_ns for p in cached]
    code, again, _ = run_cli(capsys, *args)  # a second run reads the cache, same numbers
    assert json.loads(again.strip().splitlines()[-1]) == result
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_robustness_table_and_bad_flags(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "robustness",
        "pretrained",
        "--corruptions",
        "stripe,fog",
        "--limit",
        "50",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    assert "stripe" in out and "fog" in out and "mean corruption accuracy" in out
    code, out, err = run_cli(capsys, "robustness", "pretrained", "--corruptions", "rain")
    assert_one_line_error(code, err, 1, "unknown rain")


def test_sturdy_augmentation_follows_the_seed_keeps_range_and_touches_a_share_p():
    from digitlab.data.augment import Draws, Sturdy

    x = torch.from_numpy(load_split(None, train=False).images[:2000].numpy()).float() / 255

    def run(p, seed=0):
        return Sturdy(p)(x, torch.Generator().manual_seed(seed))

    a = run(0.5)
    assert torch.equal(a, run(0.5)) and not torch.equal(a, run(0.5, seed=1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    changed = (a - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.45 < changed.float().mean() < 0.55  # about half the images, the other half as given
    assert torch.equal(run(0.0), x)
    draw = Draws(torch.Generator().manual_seed(0), "cpu")
    for fault in Sturdy.faults:
        out = getattr(Sturdy, fault)(x[:50], draw)
        assert out.shape == (50, 28, 28) and out.min() >= 0 and out.max() <= 1, fault
        assert ((out - x[:50]).abs().flatten(1).amax(1) > 0.05).all(), fault  # every image hit


def test_robustness_on_held_out_training_images_and_refused_without_them(
    tmp_path, capsys, trained_run
):
    from digitlab.read.predictor import Predictor
    from digitlab.study.robustness import images_for
    from digitlab.train.checks import split_training_set
    from digitlab.train.settings import config_of

    config = Predictor.load(None).config  # the shipped model held out 5,000 training images
    held_out = images_for(config, "validation", None)
    train = load_split(None, train=True)
    _, val_idx = split_training_set(config_of(config), train)
    assert len(held_out) == config["val_split"] == 5000
    assert torch.equal(held_out.images, train.images[val_idx])
    args = ["robustness", "pretrained", "--on", "validation", "--corruptions", "fog"]
    code, out, err = run_cli(capsys, *args, "--limit", "100", "--out", tmp_path / "out")
    assert code == 0, err
    assert "on 100 held-out training images" in out
    code, out, err = run_cli(capsys, "robustness", trained_run, "--on", "validation")
    assert_one_line_error(code, err, 1, "held out no training images")


def test_sturdy_training_reads_foggy_and_bright_digits_better(tmp_path, capsys):
    """The same short run with and without --sturdy 0.5, scored on corrupted held-out training
    images: the faults it trains on (shaded paper) carry over to MNIST-C's fog and brightness."""
    scores = {}
    for share in ("0", "0.5"):
        out = tmp_path / share
        common = ["--subset", "5000", "--val-split", "1000", "--quiet", "--no-pictures"]
        code, _, err = run_cli(capsys, "train", "--sturdy", share, "--out", out, *common)
        assert code == 0, err
        assert json.loads((out / "config.json").read_text(encoding="utf-8"))["sturdy"] == float(
            share
        )
        args = ["robustness", out, "--on", "validation", "--corruptions", "fog,brightness"]
        code, text, err = run_cli(capsys, *args, "--json")
        assert code == 0, err
        scores[share] = json.loads(text.strip().splitlines()[-1])
    plain, sturdy = scores["0"], scores["0.5"]
    assert sturdy["mean_corruption_accuracy"] > plain["mean_corruption_accuracy"] + 0.2
    assert sturdy["clean_accuracy"] > plain["clean_accuracy"] - 0.02
    code, _, err = run_cli(capsys, "train", "--sturdy", "1.5")
    assert code == 2 and "between 0 and 1" in err


def test_a_clean_error_of_0_leaves_the_ratio_undefined_not_huge(tmp_path, capsys):
    """The shipped model reads the first 50 test digits all right: no error / clean error."""
    args = ["robustness", "pretrained", "--corruptions", "stripe,fog", "--limit", "50"]
    code, out, err = run_cli(capsys, *args, "--out", tmp_path, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["clean_accuracy"] == 1.0
    assert [r["relative_error"] for r in result["rows"]] == [None, None]
    code, out, err = run_cli(capsys, *args, "--out", tmp_path)
    assert code == 0, err
    assert "clean error 0: ratio undefined" in out.splitlines()[0]
    rows = out.splitlines()[1:3]
    assert [len(r.split()) for r in rows] == [3, 3], out  # name, accuracy, error: no ratio


def test_the_table_gives_the_ratio_where_the_clean_error_is_not_0():
    from digitlab.study.robustness import table

    row = {"corruption": "fog", "accuracy": 0.9, "error": 0.1, "relative_error": 10.0}
    lines = table({"clean_accuracy": 0.99, "rows": [row]}).splitlines()
    assert lines[0].split()[-4:] == ["error", "/", "clean", "error"]
    assert lines[1].split() == ["fog", "0.9000", "0.1000", "10.0"]
