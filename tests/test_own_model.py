"""A learner's own nn.Module (`--model FILE.py[:Class]`): loaded, walked and described."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from torch import nn

from conftest import assert_one_line_error, needs, run_cli
from digitlab.cli import main
from digitlab.data.mnist import load_split
from digitlab.errors import DigitlabError
from digitlab.nets import model_spec, own_model

STUDY_LOG_CNN = Path(__file__).parent / "own" / "study_log_cnn.py"
SOURCE = STUDY_LOG_CNN.read_text(encoding="utf-8")


def variant(tmp_path: Path, old: str, new: str, name: str = "my_cnn.py") -> str:
    assert old in SOURCE
    path = tmp_path / name
    path.write_text(SOURCE.replace(old, new), encoding="utf-8")
    return str(path)


def test_the_study_logs_class_builds_and_walks_to_logits():
    model = own_model.build(str(STUDY_LOG_CNN))
    out = own_model.walk(model)
    assert tuple(out.shape) == (2, 10) and not own_model.looks_like_probabilities(out)
    assert own_model.describe(str(STUDY_LOG_CNN))["class"] == "CNN"


@pytest.mark.parametrize(
    "spec, path, name",
    [
        ("my_cnn.py", "my_cnn.py", None),
        ("dir/sub/my_cnn.py:CNN", "dir/sub/my_cnn.py", "CNN"),
        ("C:/Users/me/cnn.py:Net", "C:/Users/me/cnn.py", "Net"),
    ],
)
def test_a_spec_splits_from_the_right(spec, path, name):
    assert model_spec.is_file_spec(spec) and model_spec.split_spec(spec) == (Path(path), name)
    assert not model_spec.is_file_spec("cnn")


def test_a_wrong_linear_is_named_in_the_learners_terms(tmp_path):
    path = variant(tmp_path, "nn.Linear(32 * 7 * 7, 10)", "nn.Linear(32 * 6 * 6, 10)")
    with pytest.raises(DigitlabError) as e:
        own_model.walk(own_model.build(path))
    assert str(e.value) == (
        "self.out = Linear(1152 -> 10) gets 1568 features: after conv2's pooling the maps are "
        "32 x 7 x 7 = 1568; use nn.Linear(32 * 7 * 7, 10)"
    )


def test_a_wrong_conv_channel_count_and_a_missing_flatten_are_named():
    class Channels(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 8, 5), nn.Conv2d(4, 8, 3)

        def forward(self, x):
            return self.conv2(self.conv1(x))

    class Unflat(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.out = nn.Conv2d(1, 8, 5), nn.Linear(8 * 24 * 24, 10)

        def forward(self, x):
            return self.out(self.conv(x))

    with pytest.raises(DigitlabError, match=r"self.conv2 = Conv2d\(4 -> 8\) gets 8 channels"):
        own_model.walk(Channels())
    with pytest.raises(DigitlabError, match="gets maps of 8 x 24 x 24, not flat.*nn.Flatten"):
        own_model.walk(Unflat())


def test_outputs_that_are_not_ten_logits_are_refused(tmp_path):
    path = variant(tmp_path, "nn.Linear(32 * 7 * 7, 10)", "nn.Linear(32 * 7 * 7, 20)")
    with pytest.raises(DigitlabError, match=r"output is \(2, 20\).*needs \(2, 10\) logits"):
        own_model.walk(own_model.build(path))


def test_a_softmax_at_the_end_looks_like_probabilities(tmp_path):
    path = variant(tmp_path, "        return output\n", "        return output.softmax(1)\n")
    assert own_model.looks_like_probabilities(own_model.walk(own_model.build(path)))


def test_the_walk_leaves_batch_norm_as_it_was():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(2704, 10))
    own_model.walk(model)
    assert model.training and model[1].num_batches_tracked.item() == 0


def test_files_and_classes_that_cannot_be_used_are_one_line(tmp_path):
    with pytest.raises(DigitlabError, match="no such model file"):
        own_model.build(str(tmp_path / "gone.py"))
    two = tmp_path / "two.py"
    two.write_text(SOURCE + "\n\nclass Other(nn.Module):\n    pass\n", encoding="utf-8")
    with pytest.raises(DigitlabError, match=r"2 nn.Module classes \(CNN, Other\).*two.py:Class"):
        own_model.build(str(two))
    with pytest.raises(DigitlabError, match="no nn.Module class 'Net'"):
        own_model.build(f"{two}:Net")
    args = variant(tmp_path, "def __init__(self):", "def __init__(self, width):", "args.py")
    with pytest.raises(DigitlabError, match="--model-args"):
        own_model.build(args)
    broken = variant(tmp_path, "def forward(self, x):", "def forward(self, x)", "broken.py")
    with pytest.raises(DigitlabError, match=r"broken.py:\d+: expected ':'"):
        own_model.build(broken)


def test_the_summary_lists_every_child_with_shape_and_parameters():
    table = own_model.summary(own_model.build(str(STUDY_LOG_CNN)))
    rows = {row["name"]: row for row in table["layers"]}
    assert rows["conv2.2"]["output_shape"] == [1, 32, 7, 7]
    assert rows["out"]["parameters"] == 32 * 7 * 7 * 10 + 10
    assert table["parameters"] == 28938 and "Conv2d" in table["text"]


# Through the lab: the commands on a learner's own class, from their file.


@pytest.fixture(scope="module")
def study_log_run(tmp_path_factory):
    """The study log's level-1 class trained by `digitlab train --model FILE.py`: one epoch of
    the full MNIST, as its author ran it (batch 50, Adam at 0.001)."""
    folder = tmp_path_factory.mktemp("own")
    model = folder / "my_cnn.py"
    model.write_text(SOURCE, encoding="utf-8")
    out = folder / "run"
    assert main(["train", "--model", str(model), "--out", str(out), "--quiet"]) == 0
    return model, out


@pytest.mark.slow
def test_the_study_logs_class_trains_to_98_percent_and_goes_through_the_lab(
    study_log_run, tmp_path, capsys
):
    model, run = study_log_run
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["metrics"]["test_accuracy"] >= 0.98
    assert config["model_file"]["class"] == "CNN" and config["model_file"]["sha256"]
    assert (run / "feature_maps.png").is_file() and (run / "filters.png").is_file()
    code, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert code == 0 and json.loads(out)["accuracy"] == config["metrics"]["test_accuracy"]
    seven = tmp_path / "seven.png"
    Image.fromarray(255 - load_split(None, False).images[0].numpy()).save(seven)
    code, out, err = run_cli(capsys, "predict", seven, "--checkpoint", run, "--explain", tmp_path)
    assert code == 0 and out.startswith(f"{seven}: 7 ("), err
    assert list(tmp_path.glob("*why*.png")) or list(tmp_path.glob("*.png"))
    code, out, err = run_cli(capsys, "robustness", run, "--limit", "50", "--corruptions", "fog")
    assert code == 0 and "fog" in out, err


@pytest.mark.slow
def test_the_study_logs_class_exports_to_onnx(study_log_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model, run = study_log_run
    onnx = tmp_path / "cnn.onnx"
    assert run_cli(capsys, "export", run, "--onnx", onnx)[0] == 0
    seven = tmp_path / "seven.png"
    Image.fromarray(255 - load_split(None, False).images[0].numpy()).save(seven)
    code, out, err = run_cli(capsys, "predict", seven, "--runtime", "onnx", "--checkpoint", onnx)
    assert code == 0 and ": 7 (" in out, err


@pytest.mark.slow
def test_compare_puts_a_learners_class_beside_the_built_in_cnn(tmp_path, capsys):
    model = tmp_path / "models" / "my_cnn.py"
    model.parent.mkdir()
    model.write_text(SOURCE, encoding="utf-8")
    configs = f"{model}:CNN/torch/adam,cnn/torch/adam"
    code, out, err = run_cli(
        capsys,
        "compare",
        "--configs",
        configs,
        "--subset",
        "2000",
        "--no-robustness",
        "--out",
        tmp_path / "report",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    assert [r["model"] for r in rows] == ["CNN", "cnn"]
    assert rows[0]["parameters"] == rows[1]["parameters"] == 28938
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "CNN" in report and "cnn" in report


def test_a_wrong_linear_and_a_softmax_are_said_before_any_epoch(tmp_path, capsys):
    wrong = variant(tmp_path, "nn.Linear(32 * 7 * 7, 10)", "nn.Linear(32 * 6 * 6, 10)")
    code, out, err = run_cli(capsys, "train", "--model", wrong, "--out", tmp_path / "a")
    assert_one_line_error(code, err, 1, "self.out = Linear(1152 -> 10) gets 1568 features")
    assert "epoch" not in out and not (tmp_path / "a" / "metrics.jsonl").exists()
    soft = variant(
        tmp_path, "        return output\n", "        return output.softmax(1)\n", "s.py"
    )
    code, out, err = run_cli(
        capsys,
        "train",
        "--model",
        soft,
        "--out",
        tmp_path / "b",
        "--subset",
        "200",
        "--no-pictures",
    )
    assert code == 0, err
    lines = out.splitlines()
    warned = next(i for i, line in enumerate(lines) if "look like probabilities" in line)
    assert "remove the softmax" in lines[warned]
    assert warned < next(i for i, line in enumerate(lines) if line.startswith("epoch 1"))
    config = json.loads((tmp_path / "b" / "config.json").read_text(encoding="utf-8"))
    assert any("remove the softmax" in w for w in config["model_warnings"])


def test_scratch_is_refused_for_a_learners_model(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "train", "--model", STUDY_LOG_CNN, "--backend", "scratch", "--out", tmp_path
    )
    assert_one_line_error(code, err, 1, "--backend scratch", "--backend torch")


def test_a_changed_and_a_missing_model_file_are_said(tmp_path, capsys):
    path = Path(variant(tmp_path, "x.size(0)", "x.size(0)"))  # the file as it is
    run = tmp_path / "run"
    args = ["--subset", "200", "--no-pictures", "--quiet", "--out", run]
    assert run_cli(capsys, "train", "--model", path, *args)[0] == 0
    path.write_text(SOURCE + "\n# a comment added later\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "evaluate", run)
    assert code == 0 and f"warning: {path} changed since {run} was trained" in err
    path.write_text(SOURCE.replace("10)  # 输出是10个类", "10, bias=False)"), encoding="utf-8")
    code, _, err = run_cli(capsys, "evaluate", run)
    assert_one_line_error(code, err.split("\n", 1)[1], 1, "no longer fit the class")
    path.unlink()
    code, _, err = run_cli(capsys, "evaluate", run)
    assert_one_line_error(code, err, 1, f"trained on CNN from {path}, which is gone")


def test_summary_prints_the_layer_table_and_says_a_wrong_size(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "summary", STUDY_LOG_CNN, "--json")
    table = json.loads(out)
    assert code == 0 and table["parameters"] == 28938
    assert {"name": "out", "output_shape": [1, 10], "parameters": 15690} in table["layers"]
    wrong = variant(tmp_path, "nn.Linear(32 * 7 * 7, 10)", "nn.Linear(32 * 6 * 6, 10)")
    code, _, err = run_cli(capsys, "summary", wrong)
    assert_one_line_error(code, err, 1, "use nn.Linear(32 * 7 * 7, 10)")


@pytest.mark.slow
@needs(shutil.which("chromium") is not None, "chromium (apt-get install chromium)")
def test_the_app_reads_with_a_learners_run_through_the_real_server(study_log_run):
    """The learner's run in the app's menu (it lists runs/), chosen, and a drawn 7 read by it."""
    pytest.importorskip("gradio")
    from playwright.sync_api import sync_playwright

    from test_app import open_canvas, serve, stroke, wait_for_message, wait_for_number

    _, run = study_log_run
    demo, url = serve(run.parent)
    try:
        with sync_playwright() as p:
            browser, page, (cx, cy, h) = open_canvas(p, url, height=1000)
            page.locator("#model input").click()
            page.locator("[role=option]", has_text=str(run)).first.click()
            assert page.locator("#model input").input_value() == str(run)
            top, bottom = (cy - 0.35 * h, cy + 0.38 * h)
            stroke(page, [(cx - 0.25 * h, top), (cx + 0.25 * h, top), (cx - 0.05 * h, bottom)], 4)
            wait_for_number(page, "7")
            wait_for_message(page, f"(model {run.name})")
            browser.close()
    finally:
        demo.close()
