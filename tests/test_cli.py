import json
import platform
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from conftest import assert_one_line_error, run_cli, run_subprocess, write_dataset
from digitlab.data.mnist import load_split
from digitlab.nets import models
from digitlab.nets.evaluation import SHIFTS, logits_of, shifted
from digitlab.read.predictor import Predictor


@pytest.mark.slow
def test_evaluate_json_and_table(trained_run, capsys):
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--json", "--no-pictures")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert set(report) == {"accuracy", "per_class", "confusion"}
    metrics = json.loads(
        (trained_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    )
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    confusion = torch.tensor(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10000
    assert [r["support"] for r in report["per_class"]] == confusion.sum(1).tolist()
    assert all(0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 for r in report["per_class"])
    # The same checkpoint given as its weights file, with a human table.
    code, out, _ = run_cli(capsys, "evaluate", trained_run / "model.safetensors", "--no-pictures")
    assert code == 0 and f"accuracy {report['accuracy']:.4f}" in out and "confusion" in out


def test_shifted_moves_one_pixel_and_fills_with_background():
    images = torch.zeros(1, 5, 5, dtype=torch.uint8)
    images[0, 2, 4] = 255  # on the right edge
    for (dy, dx), where in {(1, 0): (3, 4), (-1, 0): (1, 4), (0, -1): (2, 3)}.items():
        moved = shifted(images, dy, dx)
        assert moved.shape == images.shape and moved[0, where[0], where[1]] == 255
        assert moved.sum() == 255
    assert shifted(images, 0, 1).sum() == 0  # moved off the image, not wrapped round


@pytest.mark.slow
def test_evaluate_tta_averages_the_five_shifted_views(trained_run, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", 100, 2000)  # the first 2,000 test digits
    args = ("evaluate", trained_run, "--tta", "--data-dir", data, "--no-pictures")
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    predictor = Predictor.load(trained_run)
    test = load_split(data, train=False)
    views = [
        logits_of(predictor.model, shifted(test.images, dy, dx), predictor.mean, predictor.std)
        for dy, dx in SHIFTS
    ]
    expected = torch.stack([v.softmax(1) for v in views]).mean(0).argmax(1)
    assert report["accuracy"] == pytest.approx((expected == test.labels).float().mean().item())
    assert (expected != views[0].argmax(1)).any()  # the shifts changed some answers
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "one-pixel shifts (--tta)" in out


@pytest.mark.slow
def test_python_dash_m_runs():
    result = run_subprocess("--help")
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--lr", "-1"], "argument --lr: must be positive"),
        (["train", "--lr", "abc"], "argument --lr: 'abc' is not a number"),
        (["train", "--batch-size", "0"], "argument --batch-size: must be at least 1"),
        (["train", "--epochs", "0"], "argument --epochs: must be at least 1"),
        (
            ["train", "--model", "resnet"],
            "argument --model: 'resnet': choose one of cnn, fcn, fast, best, or your own FILE.py",
        ),
        (["train", "--backend", "jax"], "argument --backend: invalid choice"),
        (["train", "--optimizer", "lion"], "argument --optimizer: invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys, args, fragment):
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, 2, fragment)


def test_user_errors_exit_1_with_one_line(tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(b"")  # any file: the checkpoint is refused first
    cases = [
        (["train", "--subset", "100", "--batch-size", "500"], "larger than the 100"),
        (["train", "--data-dir", tmp_path / "nowhere"], "no such folder"),
        (["train", "--resume", tmp_path / "nowhere"], "config.json: missing"),
        (["evaluate", tmp_path / "nowhere"], "no such checkpoint"),
        (["predict", image, "--checkpoint", tmp_path / "none"], "no such checkpoint"),
        (["predict", tmp_path / "missing.png"], "missing.png: no such file"),
        (["compare", "--configs", "cnn/torch", "--out", tmp_path], "write model/backend/optimizer"),
        (["compare", "--configs", "cnn/jax/adam", "--out", tmp_path], "unknown backend 'jax'"),
        (["compare", "--configs", "cnn/torch/adam/fast", "--out", tmp_path], "is not a number"),
    ]
    if not torch.cuda.is_available():
        cases.append((["train", "--device", "cuda"], "no CUDA GPU is available here"))
    for args, fragment in cases:
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, 1, fragment)


def broken_checkpoints(trained_run, tmp_path):
    """Run folders each spoiled in one way, with the message each must give."""
    cases = {}

    def copy(name):
        folder = tmp_path / name
        shutil.copytree(trained_run, folder)
        return folder

    folder = copy("pickle")
    torch.save(torch.nn.Linear(2, 2).state_dict(), folder / "model.safetensors")
    cases[folder] = "pickle"
    folder = copy("corrupt")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases[folder] = "not a valid safetensors file"
    folder = copy("no-config")
    (folder / "config.json").unlink()
    cases[folder] = "config.json: missing"
    folder = copy("bad-config")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    cases[folder] = "not valid JSON"
    folder = copy("other-model")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "model": "fcn"}), encoding="utf-8")
    cases[folder] = "weights of another model than 'fcn'"
    folder = copy("bad-shape")
    state = models.build("cnn").state_dict()
    state["out.weight"] = torch.zeros(10, 100)
    save_file(state, folder / "model.safetensors")
    cases[folder] = "out.weight has shape (10, 100)"
    return cases


@pytest.mark.slow
def test_broken_checkpoints_are_one_line_errors(trained_run, tmp_path, capsys):
    for folder, fragment in broken_checkpoints(trained_run, tmp_path).items():
        code, _, err = run_cli(capsys, "evaluate", folder)
        assert_one_line_error(code, err, 1, fragment)


@pytest.mark.slow
def test_pickle_checkpoint_is_refused_in_a_real_process(trained_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(trained_run, folder)
    torch.save({"weights": torch.zeros(3)}, folder / "model.safetensors")
    result = run_subprocess("evaluate", folder)
    assert_one_line_error(result.returncode, result.stderr, 1, "never loads")


@pytest.mark.slow
def test_check_command_reports_every_case_ok(capsys):
    """digitlab check: digitlab.scratch's classes through the layer checker, in its JSON."""
    code, out, err = run_cli(capsys, "check", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] is True
    layers = {layer["name"]: layer for layer in result["layers"]}
    assert set(layers) == {
        *("Conv2d", "Linear", "ReLU", "MaxPool2d", "Flatten", "CrossEntropyLoss", "SGD", "Adam"),
        *("BatchNorm2d", "Dropout", "AdaptiveAvgPool2d", "Sequential"),
        *("PlainConv2d", "PlainMaxPool2d", "PlainBatchNorm2d"),  # the lessons, beside the fast
    }
    # each plain layer goes through the cases of its fast twin
    for plain in ("Conv2d", "MaxPool2d", "BatchNorm2d"):
        fast_cases = [c["case"] for c in layers[plain]["cases"]]
        assert [c["case"] for c in layers["Plain" + plain]["cases"]] == fast_cases
    for layer in layers.values():
        assert set(layer) >= {"name", "interface", "ok", "cases"} and layer["ok"], layer
        for case in layer["cases"]:
            assert set(case) >= {"case", "ok", "tensor", "max_abs_error", "diagnosis"}
            assert case["ok"] and case["tensor"] is None, case
    cases = [case["case"] for layer in layers.values() for case in layer["cases"]]
    for expected in ("eval: running statistics", "the CNN (whole network)", "float64", "batch 1"):
        assert any(expected in case for case in cases), expected
    code, out, _ = run_cli(capsys, "check")
    assert code == 0 and "all ok: 92 cases of 15 classes match PyTorch" in out


@pytest.mark.slow
def test_bench_command_prints_ratios_from_one_run():
    # Its own process: the bench keeps freed memory for the rest of the process's life.
    done = run_subprocess("bench", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert result["freed_memory_kept"] is glibc
    steps = [r for r in rows if r["name"].startswith("training step")]
    assert [r["name"].split()[2] for r in steps] == ["cnn", "fcn", "fast"]
    layers = [r["name"] for r in rows if r["name"].startswith("forward+backward")]
    assert len(layers) == 7 and len(set(layers)) == 7  # one row per layer, each named for it
    assert "forward+backward conv2 Conv2d(16, 32, 5, 1, 2)" in layers
    peak = rows[0]
    assert peak["name"].startswith("matmul peak") and peak["gflops"] > 0
    conv2 = next(r for r in rows if r["name"].startswith("forward+backward conv2"))
    # 3 x 2 x 50*32*14*14 outputs x 16*5*5 inputs: 0.75 GFLOP in the row's time
    flops = 3 * 2 * 50 * 32 * 14 * 14 * 16 * 25
    # GFLOP/s are rounded to 0.1 in the row (abs): a slow, loaded machine's 4.4 is 4.45 rounded
    assert conv2["torch_gflops"] == pytest.approx(
        flops / conv2["torch_ms"] / 1e6, rel=0.01, abs=0.05
    )
    # the share is printed to 3 decimals: equal up to that rounding (and the gflops' own)
    share = conv2["scratch_gflops"] / peak["gflops"]
    assert 0 < conv2["scratch_peak_share"] == pytest.approx(share, rel=0.01, abs=5e-4)
    assert all("torch_gflops" in r for r in steps)
    for r in rows:
        if "ratio" in r and "torch_ms" in r:
            assert r["torch_ms"] > 0 and r["scratch_ms"] > 0
            # the median of the rounds' ratios (alternated rounds), within their range
            assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"] and r["rounds"] >= 2
            assert isinstance(r["wide"], bool)
        for share in (r.get("torch_peak_share"), r.get("scratch_peak_share")):
            assert share is None or 0 < share <= 1  # never above the peak
    loops = next(r for r in rows if "study log" in r["name"])
    # The speedup is the row's own two timings' ratio (how fast is the benchmarks' business;
    # that the loops and scratch.Conv2d compute the same is test_study's).
    assert loops["speedup"] == pytest.approx(loops["loops_ms"] / loops["scratch_ms"], rel=0.02)
    memory = next(r for r in rows if "memory" in r["name"])
    assert memory["torch_mib"] >= 0 and memory["scratch_mib"] >= 0


@pytest.mark.slow
def test_output_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    """`digitlab predict *.png | head -1`: the reader closes the pipe; no BrokenPipeError trace."""
    from PIL import Image, ImageDraw

    paths = []
    for i in range(3):
        image = Image.new("L", (56, 56), 255)
        ImageDraw.Draw(image).line([(28, 8), (28 + i, 48)], fill=0, width=5)
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    child = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "predict", *map(str, paths), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # gone before the child writes: it has torch to import first
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
