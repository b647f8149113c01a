"""digitlab check --layers: a learner's own layers against PyTorch, with a diagnosis per bug.

Each broken variant is the suite's own solution (tests/learners/solution.py) with one bug put in
by a text substitution; the check must flag the right class and tensor and name the bug.
"""

import json
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, run_cli
from digitlab.workbench import report
from digitlab.workbench.cases import INIT
from digitlab.workbench.layercheck import check_file

LEARNERS = Path(__file__).parent / "learners"
SOLUTION = (LEARNERS / "solution.py").read_text(encoding="utf-8")
# The study log's level-2 file as its author left it, kept verbatim in the repository.
SEED = LEARNERS / "level2_template.py"
TEMPLATE = (LEARNERS / "template_solution.py").read_text(encoding="utf-8")


def variant(tmp_path, old: str, new: str, name: str = "mine.py", source: str = SOLUTION) -> Path:
    assert source.count(old) == 1, old
    path = tmp_path / name
    path.write_text(source.replace(old, new), encoding="utf-8")
    return path


def failures_of(result, layer):
    return [
        (f["tensor"], f["message"], f["diagnosis"])
        for row in result["rows"]
        if row["layer"] == layer
        for f in row["failures"]
    ]


def only_layer_failing(result, layer):
    bad = {row["layer"] for row in result["rows"] if not row["ok"]}
    assert bad == {layer}, bad


def test_digitlab_scratch_reexported_passes_everything(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text(
        "from digitlab.scratch import (  # noqa: F401\n"
        "    SGD, Adam, Conv2d, CrossEntropyLoss, Flatten, Linear, MaxPool2d, ReLU,\n)\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "check", "--layers", path, "--json")
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"]
    names = {layer["name"]: layer["interface"] for layer in report["layers"]}
    assert set(names) == {
        "Conv2d",
        "Linear",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "CrossEntropyLoss",
        "SGD",
        "Adam",
    }
    assert names["Conv2d"] == "digitlab" and names["SGD"] == "torch.optim"
    for layer in report["layers"]:
        for case in layer["cases"]:
            assert set(case) >= {"case", "ok", "tensor", "max_abs_error", "diagnosis"}


def test_the_suites_solution_passes(capsys):
    code, out, err = run_cli(capsys, "check", "--layers", LEARNERS / "solution.py")
    assert code == 0, out
    assert "all ok: 31 cases of 8 classes match PyTorch" in out


# (what to break, the class and tensor that must be flagged, words of the diagnosis)
BUGS = {
    "missing 1/N": (
        ("return grad / len(self.target) * grad_out", "return grad * grad_out"),
        "CrossEntropyLoss",
        "dL/dlogits",
        "the 1/N of the mean over the batch (N = 4) is missing",
    ),
    "factor 2": (
        ("dw = grad_out.t() @ self.x", "dw = 2 * grad_out.t() @ self.x"),
        "Linear",
        "dL/dW (weight.grad)",
        "a factor 2",
    ),
    "padding value (border)": (
        ("xp = F.pad(x, (p, p, p, p))", "xp = F.pad(x, (p, p, p, p), value=1.0)"),
        "Conv2d",
        "output",
        "only the border",
    ),
    "padding ignored": (
        ("p = self.padding\n        xp", "p = 0\n        xp"),
        "Conv2d",
        "output",
        "padding 1 looks ignored",
    ),
    "stride ignored": (
        (
            "win = xp.unfold(2, self.k, self.stride).unfold(3, self.k, self.stride)",
            "win = xp.unfold(2, self.k, 1).unfold(3, self.k, 1)",
        ),
        "Conv2d",
        "output",
        "stride 2 looks ignored",
    ),
    "transposed weight gradient": (
        ("dw = grad_out.t() @ self.x", "dw = self.x.t() @ grad_out"),
        "Linear",
        "dL/dW (weight.grad)",
        "transposed",
    ),
    "sign flip": (
        ("return grad_out * self.mask", "return -grad_out * self.mask"),
        "ReLU",
        "dL/dx",
        "sign is flipped",
    ),
    "bias missing": (
        ("y = y + self.bias.view(1, -1, 1, 1)", "y = y"),
        "Conv2d",
        "output",
        "bias is missing",
    ),
    "bias twice": (
        ("y = y + self.bias.view(1, -1, 1, 1)", "y = y + 2 * self.bias.view(1, -1, 1, 1)"),
        "Conv2d",
        "output",
        "bias is added twice",
    ),
    "kernel flipped": (
        (
            'torch.einsum("nchwij,ocij->nohw", win, self.weight)',
            'torch.einsum("nchwij,ocij->nohw", win, self.weight.flip(2, 3))',
        ),
        "Conv2d",
        "output",
        "kernel is flipped",
    ),
    "overlapping windows overwritten": (
        (
            "dx[:, :, i : i + s * oh : s, j : j + s * ow : s] += routed",
            "dx[:, :, i : i + s * oh : s, j : j + s * ow : s] = routed",
        ),
        "MaxPool2d",
        "dL/dx",
        "overlapping windows' gradients overwrite each other",
    ),
    "ties to every maximum": (
        (
            "routed = grad_out * (self.argmax == i * self.k + j)",
            "routed = grad_out * (self.win[..., i, j] == self.y)",
        ),
        "MaxPool2d",
        "dL/dx",
        "went to every maximum",
    ),
    "no max subtraction": (
        ("shifted = logits - logits.max(1, keepdim=True).values", "shifted = logits"),
        "CrossEntropyLoss",
        "loss",
        "subtract each row's max",
    ),
    "gradient of sum(y)": (
        ("return grad_out @ self.weight", "return torch.ones_like(grad_out) @ self.weight"),
        "Linear",
        "dL/dx",
        "ignores the grad_out",
    ),
    "set instead of accumulate": (
        (
            "self.weight.grad = dw if self.weight.grad is None else self.weight.grad + dw\n"
            "        if self.bias is not None:\n            db = grad_out.sum((0, 2, 3))",
            "self.weight.grad = dw\n"
            "        if self.bias is not None:\n            db = grad_out.sum((0, 2, 3))",
        ),
        "Conv2d",
        "dL/dW (weight.grad)",
        "SET where they should accumulate",
    ),
    "state never saved": (
        ("        self.x = x\n", ""),
        "Linear",
        "backward",
        "backward reads self.x, which forward never saved",
    ),
    "bias gradient (1, out)": (
        ("db = grad_out.sum(0)", "db = grad_out.sum(0, keepdim=True)"),
        "Linear",
        "dL/db (self.bias.grad)",
        "by broadcasting, which hides bugs",
    ),
    "weights left as torch.empty": (
        (
            "nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
            "nn.Parameter(torch.empty(out_features, in_features))",
        ),
        "Linear",
        "weight (as constructed)",
        "not initialised: torch.empty",
    ),
    "weights all zeros": (
        (
            "nn.Parameter(torch.empty(shape).uniform_(-bound, bound))",
            "nn.Parameter(torch.zeros(shape))",
        ),
        "Conv2d",
        "weight (as constructed)",
        "every unit starts the same",
    ),
    "weights from randn, unscaled": (
        (
            "nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
            "nn.Parameter(torch.randn(out_features, in_features))",
        ),
        "Linear",
        "weight (as constructed)",
        "too large",
    ),
    "weight decay ignored": (
        (
            "g = p.grad + self.weight_decay * p\n            if self.momentum",
            "g = p.grad\n            if self.momentum",
        ),
        "SGD",
        "parameter 0 after step 1",
        "weight_decay looks ignored",
    ),
    "momentum state not kept": (
        ("                self.buffers[k] = b\n", ""),
        "SGD",
        "parameter 0 after step 2",
        "momentum looks ignored",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(BUGS))
def test_each_bug_is_flagged_on_its_class_and_tensor_and_named(tmp_path, bug):
    (old, new), layer, tensor, words = BUGS[bug]
    source = variant(tmp_path, old, new)
    if bug == "ties to every maximum":  # keep what the broken backward reads
        text = source.read_text(encoding="utf-8").replace(
            "y, self.argmax = flat.max(-1)",
            "y, self.argmax = flat.max(-1)\n        self.win, self.y = win, y",
        )
        source.write_text(text, encoding="utf-8")
    result = check_file(source, timeout=60)
    only_layer_failing(result, layer)
    found = failures_of(result, layer)
    assert any(t == tensor and words in d for t, _, d in found), found


def test_study_log_file_report(capsys):
    """The seed: forwards right where they are, padding and stride ignored (the template's trap),
    backwards not written, and the loss overflowing at large logits."""
    code, out, err = run_cli(capsys, "check", "--layers", SEED)
    assert code == 1
    assert "found: Conv2d (template), Linear (template), CrossEntropyLoss (template)" in out
    assert "not in the file: ReLU, MaxPool2d, Flatten, SGD, Adam" in out
    assert "padding 2 looks ignored" in out and "stride 2 looks ignored" in out
    assert "pass stride=self.stride[0], padding=self.padding[0]" in out
    assert "the output matches PyTorch; backward raised AttributeError" in out
    assert "not written yet" in out and "return self.input.grad" in out
    assert "subtract each row's max before exp" in out
    # its Linear leaves weight and bias as torch.empty: the constructor's case says so
    assert "FAIL  the parameters as your constructor makes them" in out
    assert "weight holds NaN or inf in 1000 of 1000 elements" in out
    assert "likely: not initialised: torch.empty leaves whatever was in memory" in out
    code, out, err = run_cli(capsys, "check", "--layers", SEED, "--json")
    report = json.loads(out.strip().splitlines()[-1])
    conv = next(layer for layer in report["layers"] if layer["name"] == "Conv2d")
    assert conv["interface"] == "template" and not conv["ok"]
    first = conv["cases"][0]
    assert first["case"].startswith("3x3, padding 0") and first["not_written"]
    assert conv["cases"][-1]["case"] == INIT and conv["cases"][-1]["ok"]  # _ConvNd initialises
    linear = next(layer for layer in report["layers"] if layer["name"] == "Linear")
    assert linear["cases"][-1]["tensor"] == "weight (as constructed)"


def test_maps_of_wrong_positions_in_text_and_png(tmp_path, capsys):
    source = variant(
        tmp_path, "xp = F.pad(x, (p, p, p, p))", "xp = F.pad(x, (p, p, p, p), value=1.0)"
    )
    code, out, err = run_cli(capsys, "check", "--layers", source, "--pictures", tmp_path / "maps")
    assert code == 1
    # the 3x3, padding 1 case on 5x5: the ring of outputs next to the padding is wrong
    assert "#####\n          #...#\n          #...#\n          #...#\n          #####" in out
    pictures = list((tmp_path / "maps").glob("*.png"))
    assert pictures and all(p.stat().st_size > 1000 for p in pictures)


def test_a_map_wrong_everywhere_says_so_in_its_title():
    row = {"layer": "Linear", "case": "5 -> 3, batch 4"}
    everywhere = {"tensor": "output", "wrong": 12, "total": 12, "where": [[True] * 3] * 4}
    assert "output: every element wrong (12 of 12)" in report.picture_title(row, everywhere)
    partly = {**everywhere, "wrong": 5}
    assert "every element" not in report.picture_title(row, partly)
    assert "red = wrong" in report.picture_title(row, partly)


def test_not_written_exercise_bodies_and_a_cuda_file(tmp_path):
    source = variant(
        tmp_path,
        "    def backward(self, grad_out):\n        return grad_out * self.mask",
        "    def backward(self, grad_out):\n        raise NotImplementedError",
    )
    result = check_file(source)
    assert all(row["not_written"] for row in result["rows"] if row["layer"] == "ReLU")
    if not torch.cuda.is_available():
        cuda = variant(tmp_path, "self.mask = x > 0", "self.mask = (x > 0).to('cuda')", "c.py")
        found = failures_of(check_file(cuda), "ReLU")
        assert any("'cuda'" in d and "no GPU" in d for _, _, d in found), found


def test_a_file_with_none_of_the_classes_is_one_line(tmp_path, capsys):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "--layers", path)
    assert_one_line_error(code, err, 1, "defines none of Conv2d")


def test_import_error_and_syntax_error_are_reported(tmp_path, capsys):
    raising = tmp_path / "raising.py"
    raising.write_text(
        "import torch\n\nraise RuntimeError('my file is broken')\n", encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "check", "--layers", raising)
    assert_one_line_error(code, err, 1, "raised an exception when imported", "my file is broken")
    assert "raising.py, line 3" in out  # their own frame
    broken = tmp_path / "broken.py"
    broken.write_text(
        "class Linear:\n    def forward(self, x)\n        return x\n", encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "check", "--layers", broken)
    assert_one_line_error(code, err, 1, "syntax error", "line 2")
    # shown once, as Python shows it: the line, then a caret under the column of the error
    assert (out + err).count("expected ':'") == 1, out + err
    lines = out.splitlines()
    source = next(i for i, line in enumerate(lines) if "def forward(self, x)" in line)
    column = lines[source].index("def forward(self, x)") + len("def forward(self, x)")
    assert lines[source + 1].strip() == "^" and lines[source + 1].index("^") == column, out
    assert 'broken.py", line 2' in out and "SyntaxError: expected ':'" in out


@pytest.mark.slow
def test_endless_loop_wrong_type_and_prints_do_not_stop_the_check(tmp_path, capsys):
    source = variant(
        tmp_path,
        "    def forward(self, x):\n        self.mask = x > 0\n        return x * self.mask",
        "    def forward(self, x):\n        while True:\n            pass",
    )
    text = source.read_text(encoding="utf-8")
    text = text.replace(  # Flatten returns a list; Linear prints a lot
        "        return x.reshape(len(x), -1)", "        return x.reshape(len(x), -1).tolist()"
    ).replace(
        "        self.x = x\n", "        self.x = x\n        print('debug ' * 20 + '\\n' * 5000)\n"
    )
    source.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "--layers", source, "--timeout", "3", "--json")
    assert code == 1
    report = json.loads(out.strip().splitlines()[-1])
    layers = {layer["name"]: layer for layer in report["layers"]}
    first, second = layers["ReLU"]["cases"]  # the first hangs; the second is not run
    assert "endless loop" in first["diagnosis"], first
    assert "did not finish within 3 s" in first["failures"][0]["message"]
    assert "it was stuck at the line shown below" in first["failures"][0]["message"]
    assert (
        first["traceback"][0].startswith("mine.py, line") and "in forward" in first["traceback"][0]
    )
    assert first["traceback"][1].strip() in ("while True:", "pass"), first["traceback"]
    assert second["failures"][0]["message"] == "not run: forward hung in an earlier case (as above)"
    assert "list, not a tensor" in layers["Flatten"]["cases"][0]["diagnosis"] or any(
        "list" in f["message"] for f in layers["Flatten"]["cases"][0]["failures"]
    )
    assert layers["Linear"]["ok"] and layers["Conv2d"]["ok"]  # the other classes still ran
    assert report["output_lines"] > 5000


@pytest.mark.parametrize("style", ["digitlab", "template"])
def test_exercise_then_check_says_not_written_yet_for_every_class(tmp_path, capsys, style):
    code, out, err = run_cli(capsys, "exercise", tmp_path / "ex", "--style", style)
    assert code == 0, err
    layers = tmp_path / "ex" / "layers.py"
    assert "digitlab check --layers" in (tmp_path / "ex" / "README.md").read_text(encoding="utf-8")
    result = check_file(layers)
    expected = {"Conv2d", "Linear", "CrossEntropyLoss"}
    if style == "digitlab":
        expected |= {"ReLU", "MaxPool2d", "Flatten", "SGD", "Adam"}
    assert set(result["found"]) == expected
    rows = [row for row in result["rows"] if row["case"] != INIT]  # the constructors are done
    assert rows and all(row.get("not_written") for row in rows)
    assert all(row["ok"] for row in result["rows"] if row["case"] == INIT)
    # A second exercise into the same folder would overwrite the learner's work: refused.
    code, out, err = run_cli(capsys, "exercise", tmp_path / "ex")
    assert_one_line_error(code, err, 1, "exists already")


def test_train_refuses_layers_that_fail_the_check(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "train", "--layers", SEED, "--subset", "500", "--out", tmp_path / "run"
    )
    assert_one_line_error(code, err, 1, "Conv2d, CrossEntropyLoss, Linear do not match PyTorch")
    # the study log's Linear leaves its weight as torch.empty: the refusal names that
    assert "Linear's initialisation: weight holds NaN" in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_train_refuses_label_smoothing_the_learners_loss_does_not_take(capsys, tmp_path):
    """The recipes smooth labels; the solution's CrossEntropyLoss takes no label_smoothing."""
    args = ["train", "--layers", LEARNERS / "solution.py", "--recipe", "speedrun"]
    code, out, err = run_cli(capsys, *args, "--subset", "500", "--out", tmp_path / "run")
    assert_one_line_error(code, err, 1, "label_smoothing", "--label-smoothing 0")
    assert not (tmp_path / "run" / "model.safetensors").exists()


SMOOTHED = """
    def __init__(self, label_smoothing=0.0):
        super().__init__()
        self.s = label_smoothing

    def forward(self, logits, target):
        shifted = logits - logits.max(1, keepdim=True).values
        log_p = shifted - shifted.exp().sum(1, keepdim=True).log()
        k = logits.shape[1]
        self.q = torch.full_like(log_p, SHARE / k)
        self.q[torch.arange(len(target)), target] += 1 - SHARE
        self.p = log_p.exp()
        return -(self.q * log_p).sum(1).mean()

    def backward(self, grad_out=1.0):
        return (self.p - self.q) / len(self.p) * grad_out
"""


@pytest.mark.parametrize("share, fits", [("self.s", True), ("0.0", False)])
def test_a_learners_smoothed_loss_is_checked_against_pytorchs(tmp_path, share, fits):
    """A loss that takes label_smoothing is compared with PyTorch's with it before a run uses
    it; one that takes the argument but ignores it is refused, naming the fix."""
    from digitlab.errors import DigitlabError
    from digitlab.train import step
    from digitlab.workbench.learner import learner_backend

    start = SOLUTION.index("class CrossEntropyLoss(nn.Module):\n")
    old = SOLUTION[start : SOLUTION.index("\n\n\n", start)]
    new = "class CrossEntropyLoss(nn.Module):" + SMOOTHED.replace("SHARE", share).rstrip()
    path = variant(tmp_path, old, new)
    backend = learner_backend(str(path))
    # a passing check says so before the run (SGD, unused by an Adam run, not counted)
    assert "checked against PyTorch: all 28 cases of the classes this run uses pass" in backend.note
    if fits:
        loss = step.make_loss(backend, 0.1)
        assert loss.s == 0.1 and type(loss).__module__.startswith("learner_")
    else:
        with pytest.raises(DigitlabError, match="does not match PyTorch.*--label-smoothing 0"):
            step.make_loss(backend, 0.1)


@pytest.mark.slow
def test_train_on_the_completed_exercise_reaches_97_percent(tmp_path, capsys):
    """The suite's solution (every class its own, BatchNorm2d from digitlab.scratch) in the
    speedrun's net, one epoch on 5,000 images, beside the same run on PyTorch's layers."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--layers",
        LEARNERS / "solution.py",
        "--recipe",
        "speedrun",
        "--subset",
        "5000",
        "--batch-size",
        "16",
        "--lr",
        "0.005",
        "--label-smoothing",
        "0",
        "--out",
        out,
        "--json",
        "--no-pictures",
    )
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["backend"] == "learner" and result["test_accuracy"] >= 0.97
    assert abs(result["test_accuracy"] - result["reference"]["test_accuracy"]) < 0.01
    assert "your classes from solution.py: Conv2d (digitlab)" in err
    assert "digitlab.scratch's: any other layer" in err  # all its own, SGD (unused) aside
    # The checkpoint has torch's keys: it loads into PyTorch's layers.
    from digitlab.nets import checkpoint

    model, config = checkpoint.load(out)
    assert config["layers"].endswith("solution.py")


@pytest.mark.slow
def test_study_cnn_on_template_layers_learns_as_pytorch_does(tmp_path, capsys):
    """The study log's file finished in the template's shape trains the study CNN; digitlab.scratch
    supplies ReLU, MaxPool2d, Flatten and Adam. Same seed, same data: the same accuracy."""
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--layers",
        LEARNERS / "template_solution.py",
        "--subset",
        "2000",
        "--batch-size",
        "25",
        "--lr",
        "0.002",
        "--out",
        tmp_path / "run",
        "--json",
        "--no-pictures",
    )
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert "Conv2d (template)" in err and "digitlab.scratch's: ReLU, MaxPool2d, Flatten" in err
    assert result["test_accuracy"] > 0.9
    assert abs(result["test_accuracy"] - result["reference"]["test_accuracy"]) < 0.005


@pytest.mark.slow
def test_float64_says_when_only_it_separates_right_from_wrong(tmp_path):
    """A bug below float32's rounding passes in float32; the report says float64 shows it."""
    source = variant(tmp_path, "return x * self.mask", "return x * self.mask + 1e-7")
    result = check_file(source)
    relu = [row for row in result["rows"] if row["layer"] == "ReLU"]
    assert all(row["ok"] for row in relu)
    assert all("only float64 separates" in row["note"] for row in relu), relu
    made32 = variant(
        tmp_path,
        "return y if self.bias is None else y + self.bias",
        "return (y if self.bias is None else y + self.bias).float()",
        "f.py",
    )
    linear = [row for row in check_file(made32)["rows"] if row["case"] == "5 -> 3, batch 4"]
    assert "made in float32" in linear[0]["note"]


def test_digitlabs_own_cases_catch_a_fresh_dropout_mask_and_batch_norm_stuck_in_training():
    """The cases only digitlab.scratch gets: a Dropout whose backward draws a new mask, and a
    BatchNorm2d that ignores eval(), each fail on their own case, named."""
    from digitlab import scratch
    from digitlab.workbench.layercheck import check_classes

    class Dropout(scratch.Dropout):
        def backward(self, grad_out, input_grad=True):
            self.forward(torch.ones_like(grad_out))  # a new mask, not forward's
            return super().backward(grad_out)

    class BatchNorm2d(scratch.BatchNorm2d):
        def train(self, mode=True):
            return super().train(True)

    result = check_classes({"Dropout": Dropout, "BatchNorm2d": BatchNorm2d}, own=True)
    wrong = {(row["layer"], row["case"]) for row in result["rows"] if not row["ok"]}
    assert wrong == {
        ("Dropout", "p 0.25 in training: the mask forward used, scaled by 1/(1-p)"),
        ("BatchNorm2d", "eval: running statistics"),
    }, wrong
    dropout = next(row for row in result["rows"] if row["case"].startswith("p 0.25"))
    assert dropout["failures"][0]["tensor"] == "dL/dx"
    assert "the mask forward used" in dropout["failures"][0]["diagnosis"]


def init_rows(result):
    return {row["layer"]: row for row in result["rows"] if row["case"] == INIT}


@pytest.mark.slow
def test_template_weights_left_as_torch_empty_fail_and_fair_inits_pass(tmp_path):
    """torch.empty in the template's Linear is 'not initialised'; He's normal init and a zero
    bias are fair starts, and the init case does not flag them."""
    empty = variant(
        tmp_path,
        "Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
        "Parameter(torch.empty(out_features, in_features))",
        source=TEMPLATE,
    )
    result = check_file(empty)
    only_layer_failing(result, "Linear")
    failure = init_rows(result)["Linear"]["failures"][0]
    assert failure["tensor"] == "weight (as constructed)"
    assert "not initialised" in failure["diagnosis"]
    fair = variant(
        tmp_path,
        "nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
        "nn.Parameter(torch.randn(out_features, in_features) * math.sqrt(2 / in_features))",
        "fair.py",
    )
    fair = variant(
        tmp_path,
        "nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))",
        "nn.Parameter(torch.zeros(out_features))",
        "fair.py",
        source=fair.read_text(encoding="utf-8"),
    )
    assert check_file(fair)["ok"]


def test_a_blow_up_in_the_first_steps_on_own_layers_points_at_init_and_backward():
    from types import SimpleNamespace

    from digitlab.errors import DigitlabError
    from digitlab.train.loop import check_loss

    def run(backend):
        return SimpleNamespace(
            backend=SimpleNamespace(name=backend), config=SimpleNamespace(lr=0.01), out="o"
        )

    with pytest.raises(DigitlabError, match="initial weights .* or from a backward"):
        check_loss(run("learner"), float("nan"), 1, 1)
    with pytest.raises(DigitlabError, match="learning rate is likely too high") as e:
        check_loss(run("torch"), float("nan"), 1, 1)
    assert "initial weights" not in str(e.value)


# A template file's backward sets a .grad of the wrong shape and PyTorch refuses it: the report
# reads both shapes from the failed line. (what to break, class, tensor, message, diagnosis)
TEMPLATE_SHAPES = {
    "padding not cropped": (
        (
            "self.input.grad = dx[:, :, p : dx.shape[2] - p, p : dx.shape[3] - p]",
            "self.input.grad = dx",
        ),
        "Conv2d",
        "dL/dx (self.input.grad)",
        "set self.input.grad to a (2, 2, 7, 7) tensor; self.input is (2, 2, 5, 5)",
        "crop the padding off (1 pixel on each side",
    ),
    "bias not summed over the batch": (
        ("self.bias.grad = ones.sum(0)", "self.bias.grad = ones"),
        "Linear",
        "dL/db (self.bias.grad)",
        "set self.bias.grad to a (4, 3) tensor; self.bias is (3,)",
        "not summed over the batch",
    ),
    "bias summed over the wrong axis": (
        ("self.bias.grad = ones.sum(0)", "self.bias.grad = ones.sum(1)"),
        "Linear",
        "dL/db (self.bias.grad)",
        "set self.bias.grad to a (4,) tensor; self.bias is (3,)",
        "summed over the wrong axes",
    ),
    "weight gradient transposed": (
        ("self.weight.grad = ones.t() @ self.input", "self.weight.grad = self.input.t() @ ones"),
        "Linear",
        "dL/dW (self.weight.grad)",
        "set self.weight.grad to a (5, 3) tensor; self.weight is (3, 5)",
        "transposed",
    ),
    "a shape no pattern explains": (
        ('"nohw,nchwij->ocij", ones, self.windows', '"nohw,nchwij->oc", ones, self.windows'),
        "Conv2d",
        "dL/dW (self.weight.grad)",
        "set self.weight.grad to a (1, 1) tensor; self.weight is (1, 1, 3, 3)",
        "check the shape each step produces",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(TEMPLATE_SHAPES))
def test_a_template_grad_of_the_wrong_shape_is_named_with_both_shapes(tmp_path, bug):
    (old, new), layer, tensor, message, words = TEMPLATE_SHAPES[bug]
    result = check_file(variant(tmp_path, old, new, source=TEMPLATE))
    only_layer_failing(result, layer)
    failure = next(row for row in result["rows"] if not row["ok"])["failures"][0]
    assert failure["tensor"] == tensor and message in failure["message"], failure
    assert words in failure["diagnosis"], failure
    if bug == "a shape no pattern explains":  # no guess where none fits
        assert not any(w in failure["diagnosis"] for w in ("padding", "transposed", "batch"))


def planted(tmp_path, source: str, *pairs) -> Path:
    """`source` with each (old, new) substituted (each old found once), as mine.py."""
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    path = tmp_path / "mine.py"
    path.write_text(source, encoding="utf-8")
    return path


FLIP = ('->nchwij", grad_out, self.weight)', '->nchwij", grad_out, self.weight.flip(2, 3))')
STRIDED = "dxp[:, :, i : i + s * oh : s, j : j + s * ow : s] += dwin[..., i, j]"
OVERLAP = "only pixels that several windows share are wrong"
# Conv2d's backward broken one way, in either interface: (source, substitutions, tensor, words)
CONV_BACKWARD = {
    "kernel flipped once too often": (SOLUTION, [FLIP], "dL/dx", "rotated by 180 degrees"),
    "kernel flipped once too often (template)": (
        TEMPLATE,
        [('->nchwij", ones, self.weight)', '->nchwij", ones, self.weight.flip(2, 3))')],
        "dL/dx",
        "rotated by 180 degrees",
    ),
    "padding cropped at the wrong offset": (
        SOLUTION,
        [("return dxp[:, :, p : shape[2] - p", "return dxp[:, :, : shape[2] - 2 * p")],
        "dL/dx",
        "the padding is cropped at the wrong offset (dxp[:, :, 0:",  # 0:H
    ),
    "padding cropped at the wrong offset (template)": (
        TEMPLATE,
        [("dx[:, :, p : dx.shape[2] - p, p : dx.shape[3] - p]", "dx[:, :, 2 * p :, 2 * p :]")],
        "dL/dx",
        "the padding is cropped at the wrong offset",
    ),
    "stride ignored in backward (dL/dx)": (
        SOLUTION,
        [(STRIDED, "dxp[:, :, i : i + oh, j : j + ow] += dwin[..., i, j]")],
        "dL/dx",
        "stride 2 is ignored in backward",
    ),
    "stride ignored in backward (dL/dW)": (
        SOLUTION,
        [
            ("self.saved = (xp.shape, win)", "self.saved = (xp.shape, win, xp)"),
            ("shape, win = self.saved", "shape, win, xp = self.saved"),
            (
                'dw = torch.einsum("nohw,nchwij->ocij", grad_out, win)',
                "dense = xp.unfold(2, self.k, 1).unfold(3, self.k, 1)\n"
                "        dense = dense[:, :, : grad_out.shape[2], : grad_out.shape[3]]\n"
                '        dw = torch.einsum("nohw,nchwij->ocij", grad_out, dense)',
            ),
        ],
        "dL/dW (weight.grad)",
        "stride 2 is ignored in backward",
    ),
    "overlapping windows overwritten": (
        SOLUTION,
        [(STRIDED, STRIDED.replace("+=", "="))],
        "dL/dx",
        OVERLAP,
    ),
    "kernel transposed: no pattern fits, no guess": (
        SOLUTION,
        [(FLIP[0], FLIP[0].replace("self.weight", "self.weight.transpose(2, 3)"))],
        "dL/dx",
        "",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(CONV_BACKWARD))
def test_conv_backward_bugs_are_named_from_the_numbers_and_only_where_they_fit(tmp_path, bug):
    """Each failing case names the bug on the right tensor; the overlap hint comes only for
    an overwrite, and a bug no pattern fits gets the counts and the map but no guess."""
    source, pairs, tensor, words = CONV_BACKWARD[bug]
    result = check_file(planted(tmp_path, source, *pairs))
    only_layer_failing(result, "Conv2d")
    failing = [row["failures"][0] for row in result["rows"] if not row["ok"]]
    assert failing
    for failure in failing:
        assert failure["tensor"] == tensor, failure
        if words:
            assert words in failure["diagnosis"], failure
        else:
            assert failure["diagnosis"] == "" and failure["where"], failure
        if words != OVERLAP:
            assert OVERLAP not in failure["diagnosis"], failure


def test_all_zeros_is_said_in_plain_words(tmp_path):
    result = check_file(variant(tmp_path, "return grad_out * self.mask", "return 0 * grad_out"))
    found = failures_of(result, "ReLU")
    assert found and all(d == "it is all zeros" for _, _, d in found), found


# A method that changes the tensor it was handed: (source, old, new, class, tensor, method)
IN_PLACE = {
    "loss forward subtracts the max in place": (
        SOLUTION,
        "shifted = logits - logits.max(1, keepdim=True).values",
        "logits -= logits.max(1, keepdim=True).values\n        shifted = logits",
        "CrossEntropyLoss",
        "its input (the logits)",
        "forward",
    ),
    "loss forward subtracts the max in place (template)": (
        TEMPLATE,
        "shifted = input - input.max(1, keepdim=True).values",
        "input -= input.max(1, keepdim=True).values\n        shifted = input",
        "CrossEntropyLoss",
        "its input (the logits)",
        "forward",
    ),
    "ReLU forward zeroes its input": (
        SOLUTION,
        "        return x * self.mask",
        "        x[~self.mask] = 0\n        return x",
        "ReLU",
        "its input x",
        "forward",
    ),
    "ReLU backward masks grad_out in place": (
        SOLUTION,
        "return grad_out * self.mask",
        "grad_out *= self.mask\n        return grad_out",
        "ReLU",
        "grad_out",
        "backward",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(IN_PLACE))
def test_in_place_changes_to_the_callers_tensors_are_named(tmp_path, bug):
    """Their results are right, so only comparing the tensor handed in shows these."""
    source, old, new, layer, tensor, method = IN_PLACE[bug]
    result = check_file(variant(tmp_path, old, new, source=source))
    only_layer_failing(result, layer)
    found = failures_of(result, layer)
    assert found and all(t == tensor for t, _, _ in found), found
    assert all(f"{method} changed {tensor} in place" in m for _, m, _ in found), found
    assert all("make a new tensor" in d for _, _, d in found), found


def test_failures_with_one_cause_collapse_to_one_block(tmp_path, capsys):
    code, out, err = run_cli(capsys, "check", "--layers", planted(tmp_path, SOLUTION, FLIP))
    assert code == 1
    assert out.count("rotated by 180 degrees") == 1, out
    assert "  FAIL  3x3, padding 1: dL/dx is wrong in 100 of 100 elements (same as above)" in out
    assert out.count("(same as above)") == 5, out


def test_train_refuses_torch_empty_weights_naming_initialisation(tmp_path, capsys):
    path = variant(
        tmp_path,
        "nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
        "nn.Parameter(torch.empty(out_features, in_features))",
    )
    code, out, err = run_cli(capsys, "train", "--layers", path, "--out", tmp_path / "run")
    assert_one_line_error(code, err, 1, "Linear does not match PyTorch yet")
    assert "Linear's initialisation: weight holds NaN or inf in 1000 of 1000 elements" in err


def test_show_output_shows_what_the_learners_code_printed(tmp_path, capsys):
    path = variant(
        tmp_path, "        self.x = x\n", "        self.x = x\n        print('x is', x.shape)\n"
    )
    code, out, err = run_cli(capsys, "check", "--layers", path)
    assert code == 0 and "--show-output shows them" in out and "  | x is" not in out
    code, out, err = run_cli(capsys, "check", "--layers", path, "--show-output")
    assert code == 0 and "  | x is torch.Size([4, 5])" in out, out


@pytest.mark.slow
def test_a_hang_in_backward_skips_the_classes_other_cases_but_not_its_constructors(tmp_path):
    source = variant(
        tmp_path,
        "        return grad_out @ self.weight\n",
        "        while grad_out is not None:\n            dw = dw + 0\n"
        "        return grad_out @ self.weight\n",
    )
    result = check_file(source, timeout=2)
    rows = {row["case"]: row for row in result["rows"] if row["layer"] == "Linear"}
    hung = rows["5 -> 3, batch 4"]
    assert hung["method"] == "backward" and "in backward" in hung["traceback"][0], hung
    for case in (
        "7 -> 4, batch 1",
        "6 -> 6 (square), batch 3",
        "gradients over two backward calls",
    ):
        assert rows[case]["skipped"], rows[case]
        assert "backward hung in an earlier case (as above)" in rows[case]["failures"][0]["message"]
    assert rows[INIT]["ok"]  # the constructor runs no backward: still checked
    only_layer_failing(result, "Linear")


@pytest.mark.slow
def test_an_import_that_hangs_shows_where(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text("n = 0\nwhile n < 1:\n    n = n * 2\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "--layers", path, "--timeout", "2")
    assert_one_line_error(code, err, 1, "importing it did not finish within 2 s", "line above")
    assert "mine.py, line 3, in <module>" in out or "mine.py, line 2, in <module>" in out, out
