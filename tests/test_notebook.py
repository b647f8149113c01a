"""digitlab.check_layers from Python and a notebook, and `digitlab exercise DIR --notebook`.

The notebooks run in a real Jupyter kernel (nbclient, ipykernel): the kernel spec is written
here, for this interpreter, so that a python3 spec elsewhere on the machine cannot pick another
Python, and PYTHONPATH carries the digitlab under test to the kernel and its check's child.
"""

import base64
import importlib.util
import json
import linecache
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

import digitlab
from conftest import run_cli
from digitlab.errors import DigitlabError
from digitlab.workbench.cells import check_layers, classes_of, file_of
from digitlab.workbench.notebook import starter_cells

LEARNERS = Path(__file__).parent / "learners"
SOLUTION = (LEARNERS / "solution.py").read_text(encoding="utf-8")
PNG = '<img src="data:image/png;base64,'


def solution_module():
    spec = importlib.util.spec_from_file_location("nb_solution", LEARNERS / "solution.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planted(tmp_path) -> Path:
    """The solution with Linear's weight gradient doubled: values wrong, so maps to draw."""
    old = "dw = grad_out.t() @ self.x"
    assert SOLUTION.count(old) == 1
    path = tmp_path / "mine.py"
    path.write_text(SOLUTION.replace(old, "dw = 2 * grad_out.t() @ self.x"), encoding="utf-8")
    return path


class Tags(HTMLParser):
    """Counts of start and end tags, to see that the table's tags are balanced."""

    def __init__(self):
        super().__init__()
        self.opened, self.closed = {}, {}

    def handle_starttag(self, tag, attrs):
        self.opened[tag] = self.opened.get(tag, 0) + 1

    def handle_endtag(self, tag):
        self.closed[tag] = self.closed.get(tag, 0) + 1


def test_check_layers_on_a_file_is_the_cli_report(tmp_path, capsys):
    path = planted(tmp_path)
    report = digitlab.check_layers(str(path))
    assert report.ok is False
    code, out, _ = run_cli(capsys, "check", "--layers", path, "--json")
    assert code == 1
    assert json.loads(json.dumps(report.layers)) == json.loads(out)["layers"]
    code, out, _ = run_cli(capsys, "check", "--layers", path)
    assert str(report) == out.rstrip("\n")
    assert "Linear" in repr(report) and "wrong" in repr(report)

    html = report._repr_html_()
    assert html.count(PNG) >= 1
    data = html.split(PNG, 1)[1].split('"', 1)[0]
    assert base64.b64decode(data).startswith(b"\x89PNG")
    tags = Tags()
    tags.feed(html)
    for tag in ("div", "table", "thead", "tbody", "tr", "td", "th", "b", "p"):
        assert tags.opened.get(tag) == tags.closed.get(tag), tag
    assert tags.opened["tr"] == 1 + len(report.result["rows"])


def test_check_layers_on_classes_list_dict_and_module():
    module = solution_module()
    report = check_layers([module.Conv2d, module.Linear, module.CrossEntropyLoss])
    assert report.ok, str(report)
    assert [layer["name"] for layer in report.layers] == ["Conv2d", "Linear", "CrossEntropyLoss"]
    assert "checking the classes Conv2d, Linear, CrossEntropyLoss" in str(report)
    assert PNG not in report._repr_html_()
    assert set(classes_of(vars(module))) == set(classes_of(module))
    assert len(classes_of(module)) == 8


def test_the_file_made_of_classes_imports_what_they_use():
    module = solution_module()
    text = file_of(classes_of(module))
    for line in ("import math", "import torch", "import torch.nn as nn"):
        assert line in text.splitlines()
    assert "import torch.nn.functional as F" in text.splitlines()
    compile(text, "cells.py", "exec")


def run_cell(namespace: dict, text: str, number: int) -> None:
    """Run `text` as IPython runs a cell: its source in linecache under a name of its own."""
    filename = f"<cell {number}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), namespace)


def test_a_cells_class_brings_its_imports_helpers_and_constants():
    namespace = {}
    run_cell(namespace, "import torch\nfrom torch import nn\nSCALE = 2\nheld = torch.ones(2)\n", 1)
    run_cell(namespace, "def double(x):\n    return x * SCALE\n", 2)
    run_cell(
        namespace,
        "class ReLU(nn.Module):\n    def forward(self, x):\n        return double(torch.relu(x))\n",
        3,
    )
    text = file_of(classes_of(namespace))
    lines = text.splitlines()
    assert {"import torch", "import torch.nn as nn", "SCALE = 2"} <= set(lines)
    assert lines.index("def double(x):") < lines.index("class ReLU(nn.Module):")
    scope = {}
    exec(compile(text, "cells.py", "exec"), scope)
    assert scope["ReLU"]().forward(torch.tensor([-1.0, 3.0])).tolist() == [0.0, 6.0]

    run_cell(
        namespace,
        "class Flatten(nn.Module):\n    def forward(self, x):\n        return x + held\n",
        4,
    )
    with pytest.raises(DigitlabError, match="Flatten uses held, a Tensor of the notebook"):
        file_of(classes_of([namespace["Flatten"]]))


def test_what_cannot_be_checked_says_so():
    namespace = {}
    exec("import torch\nclass Linear(torch.nn.Module):\n    def forward(self, x): ...", namespace)
    with pytest.raises(DigitlabError, match="Linear: its source cannot be found"):
        check_layers([namespace["Linear"]])
    with pytest.raises(DigitlabError, match="not one of the classes the check knows"):
        check_layers([dict])
    with pytest.raises(DigitlabError, match="none of Conv2d"):
        check_layers({})


def test_check_layers_is_exported_lazily():
    assert digitlab.check_layers is check_layers
    assert "check_layers" in digitlab.__all__


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """The name of a kernel spec that runs this Python with the digitlab under test."""
    spec = tmp_path / "jupyter" / "kernels" / "digitlab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "digitlab test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    src = str(Path(digitlab.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    return "digitlab-test"


def execute(path: Path, kernel: str, notebook=None):
    """Run every cell of the notebook at `path` (or `notebook`); the notebook with outputs."""
    import nbformat
    from nbclient import NotebookClient

    notebook = notebook or nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, kernel_name=kernel, timeout=600, resources={"metadata": {"path": path.parent}}
    )
    client.execute()
    return notebook


def check_outputs(notebook) -> list[tuple[str, str]]:
    """(text/plain, text/html) of each check cell's result, in order."""
    found = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "digitlab.check_layers(" in cell.source:
            data = cell.outputs[-1]["data"]
            found.append((data["text/plain"], data["text/html"]))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("style", ["digitlab", "template"])
def test_the_starter_notebook_says_not_written_yet(tmp_path, capsys, kernel, style):
    code, out, _ = run_cli(capsys, "exercise", tmp_path / "ex", "--notebook", "--style", style)
    assert code == 0 and "layers.ipynb" in out
    assert (tmp_path / "ex" / "layers.py").is_file()
    notebook = execute(tmp_path / "ex" / "layers.ipynb", kernel)
    outputs = check_outputs(notebook)
    assert len(outputs) == (8 if style == "digitlab" else 3)
    for text, html in outputs:
        assert "not written yet" in text and "TODO" in html
    code, _, err = run_cli(capsys, "exercise", tmp_path / "ex", "--notebook")
    assert code != 0 and "exists already" in err


@pytest.mark.slow
def test_the_notebook_filled_with_the_solution_passes(tmp_path, capsys, kernel):
    import nbformat

    run_cli(capsys, "exercise", tmp_path / "ex", "--notebook")
    path = tmp_path / "ex" / "layers.ipynb"
    notebook = nbformat.read(path, as_version=4)
    _, imports, classes = starter_cells(SOLUTION)
    solved = dict(classes)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "import digitlab" in cell.source:
            cell.source = imports + "\n\nimport digitlab"
        name = re.match(r"(?:class (\w+))?", cell.source)[1]
        if name in solved:
            cell.source = solved.pop(name)
    assert solved == {}
    outputs = check_outputs(execute(path, kernel, notebook))
    assert len(outputs) == 8
    for text, html in outputs:
        assert "all ok" in text and "FAIL" not in html and "TODO" not in html
    assert "all ok: 31 cases of 8 classes match PyTorch" in outputs[-1][0]


def test_importing_digitlab_loads_no_torch_until_check_layers_is_used():
    script = (
        "import sys, digitlab\n"
        "print('torch' in sys.modules, 'nbformat' in sys.modules)\n"
        "digitlab.check_layers\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True"]
