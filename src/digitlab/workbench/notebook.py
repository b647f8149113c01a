"""The layer checker in a notebook: `digitlab.check_layers(source)` and the exercise notebook.

check_layers takes a file, or the classes themselves (defined in a notebook's cells), runs the
same checker as `digitlab check --layers` (workbench.layercheck.check_file: a child process, so a
class that hangs or crashes cannot take the kernel with it) and returns a LayerReport, which
Jupyter shows as a table with the maps of wrong positions inline (`_repr_html_`).

Classes from cells have no file to import in the child. Their source is found through their
methods (each method's code object names the cell it was defined in, whose text IPython keeps
in linecache) and written, with the imports of those cells, to a temporary file, which is then
checked like any learner's file. So a class must be defined in a cell (or a file) with at least
one method of its own; what it reads from the notebook's globals must be a module, a class or
function importable from a package, a plain constant (numbers, strings, tuples of them, a torch
dtype or device), or a function or class of the notebook (copied in with it); torch, nn, math,
Tensor, Parameter and Module are imported for it in any case. Anything else (a tensor held in a
notebook variable) is refused with a DigitlabError naming it.
"""

from __future__ import annotations

import ast
import base64
import html
import inspect
import linecache
import symtable
import tempfile
import textwrap
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.workbench import report
from digitlab.workbench.layerfile import NAMES, find_classes
from digitlab.workbench.messages import LANGS, Text

# What a notebook's first cell imports; written above the classes of cells too, so that a class
# relying on them checks as it runs in the notebook.
PREAMBLE = [
    "import math",
    "import torch",
    "from torch import Tensor, nn",
    "from torch.nn import Module, Parameter",
]

# values of a notebook that a file can spell as they are
CONSTANTS = (bool, int, float, str, type(None))


class LayerReport:
    """The check of a learner's classes.

    ok        True when every case of every class matches PyTorch
    layers    [{"name", "interface", "ok", "cases": [...]}]: `check --layers --json`'s "layers"
    str()     the text report `digitlab check --layers` prints
    _repr_html_()  a table, one row per case, the map of wrong positions inline (PNG)
    """

    def __init__(self, result: dict, lang: str = "en"):
        self.result, self.lang = result, lang
        self.ok = result["ok"]
        self.layers = report.as_json(result)["layers"]

    def __str__(self) -> str:
        return "\n".join(report.format_report(self.result, lang=self.lang))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for row in self.result["rows"]:
            first = row["failures"][0] if row["failures"] else {}
            state = "ok" if row["ok"] else "TODO" if row.get("not_written") else "FAIL"
            cells = [
                row["layer"],
                row["case"],
                state,
                first.get("tensor") or "",
                f"{first['max_abs_error']:.3g}" if first.get("max_abs_error") is not None else "",
                first.get("diagnosis") or first.get("message") or "",
            ]
            picture = map_image(row, first) if first else ""
            rows.append(
                "<tr>"
                + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                + f"<td>{picture}</td></tr>"
            )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("class", "case", "", "tensor", "max abs error", "likely", "where")
        )
        summary = html.escape(report.summary(self.result, lang=self.lang))
        return (
            f"<div><p><b>{summary}</b></p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )


def map_image(row: dict, failure: dict) -> str:
    """An <img> of the wrong positions of a failed tensor (red = wrong), or "" without a map."""
    png = report.map_png(row, failure)
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="wrong positions" width="160"/>'


def check_layers(source, lang: str = "en", timeout: float = 60.0) -> LayerReport:
    """Check a learner's layers against PyTorch. `source`: a .py file's path, or the classes:
    a list of them (each named as torch names it: Conv2d, Linear, ...), a dict {torch name:
    class}, or a module. A class given itself needs a method of its own and, for what it reads
    from the notebook, what the module's docstring says; `lang` is the report's language,
    `timeout` the seconds each case may run. Returns a LayerReport (.ok, .layers, str(),
    _repr_html_()); raises DigitlabError when a class's source cannot be found or it reads a
    notebook value a file cannot hold."""
    if lang not in LANGS:
        raise DigitlabError(f"lang={lang!r}: choose one of {', '.join(LANGS)}")
    if isinstance(source, (str, Path)):
        from digitlab.workbench.layercheck import check_file

        return LayerReport(check_file(source, timeout=timeout), lang)
    classes = classes_of(source)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "your_layers.py"
        path.write_text(source_file(classes), encoding="utf-8")
        from digitlab.workbench.layercheck import check_file

        result = check_file(path, timeout=timeout)
    result["path"] = "your classes " + ", ".join(classes)
    return LayerReport(result, lang)


def classes_of(source) -> dict[str, type]:
    """{torch name: class} from a list of classes, a dict or a module. From a dict, the classes
    held under torch's names: {"Conv2d": MyConv}, or a notebook's globals() with all else in it."""
    if isinstance(source, dict):
        classes = {n: c for n, c in source.items() if n in NAMES and inspect.isclass(c)}
    elif inspect.ismodule(source):
        classes = find_classes(source)
    else:
        classes = {cls.__name__: cls for cls in source}
    unknown = [n for n in classes if n not in NAMES]
    if unknown or not classes or not all(inspect.isclass(c) for c in classes.values()):
        raise DigitlabError(
            f"check_layers: give classes named as torch names them ({', '.join(NAMES)}); got "
            f"{', '.join(unknown) or 'no classes'}; another name: pass {{'Conv2d': MyConv}}"
        )
    return classes


def source_file(classes: dict[str, type]) -> str:
    """A module holding the classes' source, the imports of the cells they come from, the
    notebook's own functions and classes they call (copied above them), and
    `TorchName = TheirName` where they differ."""
    imports, bodies, helpers = list(PREAMBLE), [], {}
    for name, cls in classes.items():
        cell_imports, body = class_in_cell(cls)
        bodies.append(body)
        imports += cell_imports + names_it_uses(cls, body, helpers)
        if cls.__name__ != name:
            bodies.append(f"{name} = {cls.__name__}")
    checked = {cls.__name__ for cls in classes.values()}
    copied, todo = [], list(helpers)
    while todo:  # grows as it runs: a helper's own helpers
        name = todo.pop(0)
        value, known = helpers[name], len(helpers)
        if name not in checked:
            cell_imports, text = class_in_cell(value) if inspect.isclass(value) else ([], None)
            text = text or function_text(value)
            imports += cell_imports + names_it_uses(value, text, helpers)
            copied.insert(0, text)  # before what uses it: a base class must come first
        todo += list(helpers)[known:]
    head = "\n".join(dict.fromkeys(imports))
    return head + "\n\n\n" + "\n\n\n".join([*copied, *bodies]) + "\n"


def class_in_cell(cls: type) -> tuple[list[str], str]:
    """(the import lines of the cell that defines `cls`, the class's own text in it)."""
    text = cell_text(cls)
    lines, imports, body = text.splitlines(), [], None
    for node in ast.parse(text).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
        elif isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            body = "\n".join(lines[start - 1 : node.end_lineno])  # the last definition
    return imports, body


def free_names(text: str) -> set[str]:
    """The global names `text` reads and does not bind itself: what its cell took from the
    notebook (a method's local `x` is not the notebook's `x`)."""
    top = symtable.symtable(text, "cell", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    names, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        names |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
    return names - bound


def names_it_uses(owner, body: str, helpers: dict) -> list[str]:
    """Lines that bind, in the checked file, the names `body` (the source of `owner`, a class
    or function of a notebook) reads from the notebook's globals as the notebook bound them:
    modules (`import torch.nn.functional as F`), importable classes and functions (`from torch
    import Tensor as Tensor`), plain constants (`EPS = 1e-05`). A notebook imports in one cell
    and uses in another. The notebook's own functions and classes go into `helpers`, to be
    copied; any other value (a tensor in a variable) cannot be written in a file: refused."""
    import sys

    namespace = namespace_of(owner)
    lines = []
    for name in sorted(free_names(body) & namespace.keys()):
        value = namespace[name]
        home = getattr(value, "__module__", None)
        if inspect.ismodule(value):
            lines.append(f"import {value.__name__} as {name}")
        elif isinstance(value, CONSTANTS) or (
            isinstance(value, tuple) and all(isinstance(v, CONSTANTS) for v in value)
        ):
            lines.append(f"{name} = {value!r}")
        elif torch_constant(value):
            lines.append(f"{name} = {torch_constant(value)}")
        elif (inspect.isfunction(value) or inspect.isclass(value)) and home == owner.__module__:
            helpers.setdefault(name, value)
        elif home and home in sys.modules and name_in(sys.modules[home], value):
            lines.append(f"from {home} import {value.__name__} as {name}")
        else:
            raise DigitlabError(
                f"check_layers: {owner.__name__} uses {name}, a {type(value).__name__} held by "
                "the notebook, which the checked file cannot have; make it a constant, import "
                "it, or compute it in the class"
            )
    return lines


def torch_constant(value) -> str:
    """A torch.dtype or torch.device as the file spells it (`torch.float32`,
    `torch.device('cpu')`); "" for anything else."""
    import torch  # here, not at the top: a notebook that reaches this has imported it already

    if isinstance(value, torch.dtype):
        return repr(value)
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    return ""


def name_in(module, value) -> bool:
    """Whether `module` holds `value` under its own name (so that an import line finds it)."""
    return getattr(module, getattr(value, "__name__", ""), None) is value


def function_text(function) -> str:
    """The source of a function of the notebook that a checked class calls."""
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise DigitlabError(
            f"check_layers: cannot find the source of {function.__name__}, which your classes "
            "call; define it in a notebook cell or import it from a file"
        ) from None


def namespace_of(owner) -> dict:
    """The globals a notebook's class or function reads: its methods' (IPython's user
    namespace in a kernel), else its module's."""
    import sys

    for value in [owner] if inspect.isfunction(owner) else list(vars(owner).values()):
        function = getattr(value, "__func__", value)  # staticmethod, classmethod
        if inspect.isfunction(function):
            return function.__globals__
    return vars(sys.modules.get(owner.__module__, object))


def cell_text(cls: type) -> str:
    """The text of the cell (or file) that defines `cls`, found through its own methods."""
    for value in vars(cls).values():
        function = getattr(value, "__func__", value)  # staticmethod, classmethod
        code = getattr(function, "__code__", None)
        if code is not None:
            lines = linecache.getlines(code.co_filename)
            if lines:
                return "".join(lines)
    raise DigitlabError(
        f"check_layers: cannot find the source of {cls.__name__} (a class needs a method of its "
        "own, defined in a notebook cell or a file); check its file with check_layers(PATH)"
    )


def intro(docstring: str, steps: str) -> Text:
    """The notebook's first cell: the starter's docstring, the order to go in, how to check."""
    return Text(
        """# Your own layers, in a notebook

{docstring}

The order to go in:
{steps}

Fill in a class's cell, run it, then run the check cell below it: it compares your classes with
PyTorch on small cases chosen to break naive code and says, for each failure, which tensor is
wrong, where (the red map), and the likely bug. A class not written yet shows "not written yet".
When every check says all ok, train the study CNN on your layers: save the classes in a file and
run `digitlab train --layers layers.py` (the file `layers.py` beside this notebook has the same
starter code).""",
        docstring=docstring,
        steps=steps,
    )


def notebook_cells(source: str, steps: str, lang: str = "en") -> list[tuple[str, str]]:
    """[(kind, text)] of the exercise notebook from a starter file's `source`: the guide
    (markdown, in `lang`), the imports, then each class's cell followed by a check of the
    classes so far."""
    tree = ast.parse(source)
    lines = source.splitlines()
    cells = [("markdown", intro(ast.get_docstring(tree), steps).render(lang))]
    option = ', lang="zh"' if lang == "zh" else ""
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    setup = [lines[n.lineno - 1] for n in imports] + ["", "from digitlab import check_layers"]
    cells.append(("code", "\n".join(setup)))
    done = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            cells.append(("markdown", f"## {node.name}"))
            cells.append(("code", "\n".join(lines[start - 1 : node.end_lineno])))
            done.append(node.name)
            cells.append(("code", f"check_layers([{', '.join(done)}]{option})"))
    return cells


def write_notebook(path: Path, source: str, steps: str, lang: str = "en") -> Path:
    """Write the exercise notebook (nbformat 4) for the starter `source` to `path`."""
    import nbformat

    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    book.cells = [make[kind](text) for kind, text in notebook_cells(source, steps, lang)]
    nbformat.validate(book)
    from digitlab.files import atomic_write

    atomic_write(path, nbformat.writes(book).encode("utf-8"))
    return path
