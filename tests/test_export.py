"""ONNX export: the exported graph, run by onnxruntime, gives PyTorch's logits."""

import json

import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, run_cli
from digitlab.data.mnist import load_split
from digitlab.nets import checkpoint, models
from digitlab.nets.evaluation import logits_of
from digitlab.read import unsure
from digitlab.read.onnx_model import OnnxModel

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def test_digits():
    split = load_split(None, train=False)
    return split.images[:100], split.labels[:100]


def train_and_export(tmp_path, capsys, model, detector: bool = True):
    """A short run of `model` exported to ONNX; detector=False removes its "not sure" detector
    first, as a run from before the detector existed."""
    run = tmp_path / model
    args = ["--model", model, "--subset", "500", "--batch-size", "50", "--lr", "0.003"]
    assert run_cli(capsys, "train", *args, "--out", run, "--quiet", "--no-pictures")[0] == 0
    if not detector:
        (run / unsure.FILE).unlink()
    code, out, err = run_cli(capsys, "export", run, "--onnx", tmp_path / f"{model}.onnx", "--json")
    assert code == 0, err
    return run, json.loads(out.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("model", list(models.MODELS))
def test_exported_logits_match_pytorch_on_100_test_digits(tmp_path, capsys, test_digits, model):
    detector = model != "fast"  # one net exported without the detector, as an older run
    run, result = train_and_export(tmp_path, capsys, model, detector)
    assert result["model"] == model and result["unsure"] == detector
    assert result["dynamic"] == (["batch", "height", "width"] if model == "fcn" else ["batch"])
    torch_model, config = checkpoint.load(run)
    norm = config["normalization"]
    images, _ = test_digits
    expected = logits_of(torch_model, images, norm["mean"], norm["std"])
    onnx_model = OnnxModel(result["onnx"])
    assert (onnx_model.logits(images) - expected).abs().max() < 1e-4
    assert (onnx_model.logits(images[:7]) - expected[:7]).abs().max() < 1e-4  # another batch size
    logits, doubts = onnx_model.read(images)  # with the margin when there is one: one run
    assert (logits - expected).abs().max() < 1e-4 and len(doubts) == 100
    if not detector:
        assert doubts == [False] * 100
    if model == "fcn":  # any size from 28x28 up: digits placed on a 56x84 canvas
        big = torch.zeros(100, 56, 84, dtype=torch.uint8)
        big[:, 10:38, 30:58] = images
        expected = logits_of(torch_model, big, norm["mean"], norm["std"])
        assert expected.shape == (100, 10)
        assert (onnx_model.logits(big) - expected).abs().max() < 1e-4


@pytest.mark.slow
def test_predict_with_the_onnx_runtime_agrees_with_torch(tmp_path, capsys, test_digits):
    run, result = train_and_export(tmp_path, capsys, "cnn")
    images, _ = test_digits
    paths = []
    for i in range(5):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - images[i].numpy()).resize((112, 112)).save(path)
        paths.append(path)
    code, out, err = run_cli(capsys, "predict", *paths, "--checkpoint", run, "--json")
    assert code == 0, err
    by_torch = json.loads(out)["predictions"]
    code, out, err = run_cli(
        capsys, "predict", *paths, "--runtime", "onnx", "--checkpoint", result["onnx"], "--json"
    )
    assert code == 0, err
    by_onnx = json.loads(out)["predictions"]
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert a["digit"] == b["digit"]
        pairs = zip(a["probabilities"], b["probabilities"], strict=True)
        assert max(abs(p - q) for p, q in pairs) < 1e-4


def test_onnx_mistakes_are_one_line(tmp_path, capsys):
    image = tmp_path / "digit.png"
    Image.fromarray(255 - load_split(None, train=False).images[0].numpy()).save(image)
    code, _, err = run_cli(capsys, "predict", image, "--runtime", "onnx")
    assert_one_line_error(code, err, 1, "--runtime onnx: give --checkpoint FILE.onnx")
    code, _, err = run_cli(
        capsys, "predict", image, "--runtime", "onnx", "--checkpoint", tmp_path / "no.onnx"
    )
    assert_one_line_error(code, err, 1, "no such ONNX file", "digitlab export")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    code, _, err = run_cli(capsys, "predict", image, "--runtime", "onnx", "--checkpoint", bad)
    assert_one_line_error(code, err, 1, "not an ONNX model onnxruntime can load")
    code, _, err = run_cli(capsys, "export", tmp_path / "missing", "--onnx", tmp_path / "x.onnx")
    assert_one_line_error(code, err, 1, "no such checkpoint")
