"""A learner's own nn.Module (`--model FILE.py[:Class]`): loaded, walked and described."""

from pathlib import Path

import pytest
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.nets import own_model

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
    assert own_model.is_file_spec(spec) and own_model.split_spec(spec) == (Path(path), name)
    assert not own_model.is_file_spec("cnn")


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
