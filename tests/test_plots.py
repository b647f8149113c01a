"""The pictures of a run and the compare report: real PNGs, not blank, readable by a browser."""

import json
import shutil
import subprocess

import numpy as np
from PIL import Image

from conftest import needs, run_cli, write_dataset
from digitlab.study.compare_configs import DEFAULT_CONFIGS

CHROMIUM = shutil.which("chromium")
# name -> (width, height) in pixels, from each figure's size at 100 dpi (feature_maps: its own).
RUN_PICTURES = {
    "learning_curves.png": (1100, 400),
    "confusion_matrix.png": (700, 600),
    "predictions.png": (1040, 810),
    "confident_mistakes.png": (1040, 510),
    "filters.png": (960, 320),
    "feature_maps.png": (872, 219),  # drawn at its own size: the input beside the mosaic
}


def assert_real_picture(path, size=None):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        if size:
            assert image.size == size, path.name
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 10, f"{path.name} looks blank"  # plots, digits and text, not one colour


def test_train_and_evaluate_write_every_picture(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for name in RUN_PICTURES:
        (run / name).unlink(missing_ok=True)
    code, _, err = run_cli(capsys, "evaluate", run)
    assert code == 0, err
    for name, size in RUN_PICTURES.items():
        assert_real_picture(run / name, size)


def test_train_writes_pictures_unless_told_not_to(tmp_path, capsys):
    args = ["train", "--subset", "300", "--quiet"]
    assert run_cli(capsys, *args, "--out", tmp_path / "a")[0] == 0
    assert all((tmp_path / "a" / name).is_file() for name in RUN_PICTURES)
    assert run_cli(capsys, *args, "--out", tmp_path / "b", "--no-pictures")[0] == 0
    assert not any((tmp_path / "b" / name).exists() for name in RUN_PICTURES)


def test_compare_reports_each_configuration_and_resumes(tmp_path, capsys):
    # The first 2,000 of MNIST's test digits: each row evaluates and times inference on them.
    data = write_dataset(tmp_path / "data", 400, 2000)
    configs = "cnn/torch/adam,cnn/scratch/adam,cnn/torch/sgd/0.05"
    out_dir = tmp_path / "report"
    common = ["--data-dir", data, "--robustness-limit", "300", "--out", out_dir, "--quiet"]
    args = ["compare", "--configs", configs, "--subset", "400", *common]
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    rows = result["rows"]
    assert [r["config"] for r in rows] == configs.split(",")
    for r in rows:
        assert r["parameters"] == 28938 and 0.3 < r["test_accuracy"] <= 1
        assert 0 < r["train_seconds"] == r["seconds_per_epoch"] < 120
        assert r["inference_per_second"] > 100 and r["peak_memory_mib"] > 0
        assert 0.05 < r["corrupted_accuracy"] < r["test_accuracy"]  # MNIST-C, 300 images
    # Same seed, same data: the hand-written layers follow PyTorch's run closely.
    assert abs(rows[0]["test_accuracy"] - rows[1]["test_accuracy"]) < 0.02
    report = (out_dir / "report.md").read_text(encoding="utf-8")
    assert sum(line.startswith("| cnn/") for line in report.splitlines()) == 3
    for name in ("curves.png", "accuracy_vs_time.png", "robustness.png"):
        assert_real_picture(out_dir / name)
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3 and "cnn/scratch/adam" in html
    assert "corrupted accuracy" in report
    # A rerun redoes nothing.
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and err.count("done before, skipped") + out.count("done before") == 3
    # Other settings are another comparison: nothing stale is reused.
    code, out, err = run_cli(
        capsys, "compare", "--configs", "cnn/torch/adam", "--subset", "300", *common
    )
    assert code == 0 and "cnn/torch/adam: training" in out and "done before" not in out


@needs(CHROMIUM is not None, "chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path, capsys):
    args = [
        "compare",
        "--configs",
        "cnn/torch/adam",
        "--subset",
        "200",
        "--out",
        tmp_path,
        "--no-robustness",
    ]
    assert run_cli(capsys, *args, "--quiet")[0] == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1400",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert_real_picture(shot, (1200, 1400))


def test_default_configurations_cover_both_backends_models_and_optimizers():
    parts = [c.split("/") for c in DEFAULT_CONFIGS]
    assert {"cnn", "fcn"} <= {p[0] for p in parts}
    assert {"torch", "scratch"} <= {p[1] for p in parts}
    assert {"adam", "sgd"} <= {p[2] for p in parts}
    for required in ("cnn/torch/adam", "cnn/scratch/adam", "fcn/torch/adam"):
        assert required in DEFAULT_CONFIGS
    assert any(c.startswith("cnn/torch/sgd") for c in DEFAULT_CONFIGS)


def test_smoothed_loss_follows_a_short_run():
    """The smoothed curve averages over about 2% of a run's steps: in a 235-step run (the
    speedrun's) a loss that drops at step 20 is followed within 25 steps, and a constant stays
    itself (bias correction)."""
    from digitlab.study.plots import smooth

    losses = [2.0] * 20 + [0.5] * 215
    smoothed = smooth(losses)
    assert abs(smoothed[45] - 0.5) < 0.01 and abs(smoothed[10] - 2.0) < 1e-9
    assert np.allclose(smooth([0.3] * 5000), 0.3)


def test_a_learners_run_draws_its_pytorch_twins_loss_beside_its_own(tmp_path, capsys, monkeypatch):
    """train --layers trains the same run on PyTorch's layers: the learner's learning curves
    show both losses, named in the legend; a run of its own shows only its own."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    from digitlab.study import plots
    from digitlab.train.loop import read_metrics

    drawn, real_save = {}, plots.save

    def keep(fig, path):
        drawn[Path(path).name] = fig.axes[0]
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save", keep)
    solution = Path(__file__).parent / "learners" / "solution.py"
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--layers", solution, "--subset", "300", "--out", run)
    assert code == 0, err
    ax = drawn["learning_curves.png"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "your layers",
        "PyTorch's layers",
    ]
    smoothed = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    twin = [v for r in read_metrics(run / "torch-reference") for v in r["step_loss"]]
    own = [v for r in read_metrics(run) for v in r["step_loss"]]
    assert np.allclose(smoothed[0].get_ydata(), plots.smooth(own))
    assert np.allclose(smoothed[1].get_ydata(), plots.smooth(twin))
    assert len(ax.get_lines()) == 4  # each run's loss per step, faint, and smoothed
    assert smoothed[0].get_color() != smoothed[1].get_color()
    alone = plots.learning_curves_figure(read_metrics(run))
    assert [t.get_text() for t in alone.axes[0].get_legend().get_texts()] == [
        "per step",
        "smoothed",
    ]
    plt.close("all")
