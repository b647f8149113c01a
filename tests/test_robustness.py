"""The MNIST-C corruptions and the robustness command."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from digitlab.corruptions import CORRUPTIONS, corrupt
from digitlab.data import load_split

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
    from digitlab import corruptions

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


def test_robustness_table_and_bad_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
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
