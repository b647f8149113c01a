"""The checker in a notebook: digitlab.check_layers and `digitlab exercise DIR --notebook`,
executed by a real Jupyter kernel."""

from __future__ import annotations

import ast
import json
import linecache
import math
import os
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

import digitlab
from conftest import run_cli
from digitlab.errors import DigitlabError

LEARNERS = Path(__file__).parent / "learners"
SOLUTION = (LEARNERS / "solution.py").read_text(encoding="utf-8")
HEADER = SOLUTION[: SOLUTION.index("\nclass ")]  # the docstring and the imports


def class_source(name: str, source: str = SOLUTION) -> str:
    """One class of `source`, as its own text."""
    lines = source.splitlines()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name)
    return "\n".join(lines[node.lineno - 1 : node.end_lineno])


BAD_BIAS = ("db = grad_out.sum(0)", "db = 2 * grad_out.sum(0)")


def linear_file(tmp_path) -> Path:
    """A file with the solution's Linear whose bias gradient is doubled."""
    text = HEADER + "\n\n" + class_source("Linear").replace(*BAD_BIAS) + "\n"
    path = tmp_path / "mine.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_layers_on_a_file_says_what_the_cli_says(tmp_path, capsys):
    path = linear_file(tmp_path)
    report = digitlab.check_layers(path)
    code, out, _ = run_cli(capsys, "check", "--layers", path, "--json")
    assert code == 1 and report.ok is False
    assert report.layers == json.loads(out.splitlines()[-1])["layers"]
    code, out, _ = run_cli(capsys, "check", "--layers", path)
    assert str(report) == out.rstrip("\n")
    bias = next(c for c in report.layers[0]["cases"] if not c["ok"])
    assert bias["tensor"] == "dL/db (bias.grad)"
    page = report._repr_html_()
    assert page.startswith("<div>") and page.endswith("</div>") and page.count("<tr>") > 3
    assert '<img src="data:image/png;base64,' in page and "dL/db (bias.grad)" in page
    tags = Tags()
    tags.feed(page)
    assert tags.opened == tags.closed and tags.opened["tr"] == 1 + len(report.result["rows"])


class Tags(HTMLParser):
    """Counts of each start and end tag (<img/> counts as both), to see the tags balanced."""

    def __init__(self):
        super().__init__()
        self.opened, self.closed = Counter(), Counter()

    def handle_starttag(self, tag, attrs):
        self.opened[tag] += 1

    def handle_endtag(self, tag):
        self.closed[tag] += 1


def test_check_layers_takes_a_notebooks_globals_and_a_module():
    from digitlab.workbench.notebook import classes_of

    notebook = {"__name__": "__main__"}
    cell = HEADER + "\n\n" + class_source("ReLU") + "\n\nx = torch.ones(3)\nLinear = nn.Linear\n"
    run_cell(notebook, cell.replace("nn.Linear", "'not a class'"), "<globals>")
    report = digitlab.check_layers(notebook)
    assert report.ok and [layer["name"] for layer in report.layers] == ["ReLU"]
    module = type(math)("solution")
    exec(compile(SOLUTION, str(LEARNERS / "solution.py"), "exec"), vars(module))
    assert list(classes_of(module)) == list(classes_of(vars(module))) and len(module.__dict__) > 8
    with pytest.raises(DigitlabError, match="got no classes"):
        digitlab.check_layers({"Conv": nn.Conv2d})


def run_as_cell(code: str, name: str) -> dict:
    """Run `code` as IPython runs a cell: compiled under a name that is no file, with its text
    kept in linecache; returns the cell's namespace."""
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    namespace = {"__name__": "__main__", "math": math, "torch": torch, "nn": nn}
    exec(compile(code, name, "exec"), namespace)
    return namespace


def test_check_layers_on_classes_from_cells_without_a_file():
    good = run_as_cell(class_source("ReLU"), "<cell-1>")["ReLU"]
    bad = class_source("Linear").replace(*BAD_BIAS).replace("class Linear", "class MyLinear")
    mine = run_as_cell(bad, "<cell-2>")["MyLinear"]
    report = digitlab.check_layers({"ReLU": good, "Linear": mine})
    assert not report.ok and str(report).startswith("checking your classes ReLU, Linear")
    verdicts = {layer["name"]: layer["ok"] for layer in report.layers}
    assert verdicts == {"ReLU": True, "Linear": False}
    assert digitlab.check_layers([good]).ok
    with pytest.raises(DigitlabError, match="named as torch names them"):
        digitlab.check_layers([mine])
    with pytest.raises(DigitlabError, match="lang='fr': choose one of en, zh"):
        digitlab.check_layers([good], lang="fr")


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """The name of a kernel spec that runs this very Python with the digitlab under test: a
    `python3` spec elsewhere on the machine (a user's Jupyter) could start another Python."""
    spec = tmp_path / "jupyter" / "kernels" / "digitlab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "digitlab test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    src = str(Path(digitlab.__file__).resolve().parents[1])  # the kernel, and its check's child
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    return "digitlab-test"


def execute(path: Path, kernel: str) -> list[str]:
    """Run every cell of the notebook at `path` in a real Jupyter kernel (the spec `kernel`);
    returns each code cell's text output, joined."""
    import nbclient
    import nbformat

    book = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(book, timeout=600, kernel_name=kernel).execute(cwd=str(path.parent))
    texts = []
    for cell in book.cells:
        if cell.cell_type == "code":
            parts = [o.get("text", "") for o in cell.outputs]
            parts += [o.get("data", {}).get("text/plain", "") for o in cell.outputs]
            texts.append("".join(parts))
    return texts


@pytest.mark.slow
def test_the_exercise_notebook_runs_in_jupyter_before_and_after_it_is_filled(
    tmp_path, capsys, kernel
):
    import nbformat

    code, out, _ = run_cli(capsys, "exercise", tmp_path / "ex", "--notebook")
    path = tmp_path / "ex" / "layers.ipynb"
    assert code == 0 and str(path) in out
    outputs = execute(path, kernel)
    checks = [o for o in outputs if o.startswith("checking your classes")]
    assert len(checks) == 8, outputs
    assert all("not written yet" in c for c in checks), checks[0]
    assert "all ok" not in checks[-1]

    book = nbformat.read(path, as_version=4)
    book.cells[1].source = HEADER + "\nfrom digitlab import check_layers\n"
    for cell in book.cells:
        if cell.cell_type == "code" and cell.source.startswith("class "):
            cell.source = class_source(ast.parse(cell.source).body[0].name)
    filled = tmp_path / "filled.ipynb"
    nbformat.write(book, filled)
    checks = [o for o in execute(filled, kernel) if o.startswith("checking your classes")]
    assert len(checks) == 8
    assert all("all ok:" in c.splitlines()[-1] for c in checks), checks
    assert "all ok: " in checks[-1] and "of 8 classes match PyTorch" in checks[-1]


def run_cell(namespace: dict, code: str, name: str) -> None:
    """Run `code` in the notebook `namespace` as IPython runs a cell (its text in linecache)."""
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    exec(compile(code, name, "exec"), namespace)


def test_a_class_from_a_cell_brings_the_notebooks_helpers_and_constants():
    from digitlab.workbench.notebook import classes_of, source_file

    notebook = {"__name__": "__main__"}
    run_cell(
        notebook, "import torch\nfrom torch import nn\nSCALE = 2\nKIND = torch.float32\n", "<c1>"
    )
    run_cell(notebook, "x = torch.ones(2)\nheld = torch.ones(2)\n", "<c2>")
    run_cell(notebook, "def scale(x):\n    return x * SCALE\n", "<c3>")
    run_cell(notebook, "def double(x):\n    return scale(x).to(KIND)\n", "<c3b>")
    relu = (
        "class ReLU(nn.Module):\n    def forward(self, x):\n        return torch.relu(double(x))\n"
    )
    run_cell(notebook, relu, "<c4>")
    text = source_file(classes_of([notebook["ReLU"]]))
    lines = text.splitlines()
    assert {"SCALE = 2", "KIND = torch.float32"} <= set(lines)  # from the notebook's cells
    assert lines.index("def scale(x):") < lines.index("def double(x):")  # a helper's helper
    assert lines.index("def double(x):") < lines.index("class ReLU(nn.Module):")
    scope = {}  # the notebook's x, a tensor, is not the methods' own x: not refused
    exec(compile(text, "your_layers.py", "exec"), scope)
    assert scope["ReLU"]().forward(torch.tensor([-1.0, 3.0])).tolist() == [0.0, 6.0]

    flatten = "class Flatten(nn.Module):\n    def forward(self, y):\n        return y + held\n"
    run_cell(notebook, flatten, "<c5>")
    with pytest.raises(DigitlabError, match="Flatten uses held, a Tensor held by the notebook"):
        digitlab.check_layers([notebook["Flatten"]])


@pytest.mark.slow
def test_the_template_styles_notebook_runs_in_jupyter(tmp_path, capsys, kernel):
    code, _, _ = run_cli(capsys, "exercise", tmp_path / "ex", "--notebook", "--style", "template")
    assert code == 0
    outputs = execute(tmp_path / "ex" / "layers.ipynb", kernel)
    checks = [o for o in outputs if o.startswith("checking your classes")]
    assert len(checks) == 3, outputs  # Conv2d, Linear, CrossEntropyLoss
    assert all("(template)" in c and "not written yet" in c for c in checks), checks[-1]
