"""`digitlab exercise DIR --notebook`: the exercise as a Jupyter notebook, DIR/layers.ipynb.

Made from the same starter file as layers.py (workbench.exercise), cut at its classes: the guide
as markdown, a first cell with the starter's imports, then per class a cell with its starter code
and a cell that checks the classes so far with digitlab.check_layers (workbench.cells).
"""

from __future__ import annotations

import ast
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.workbench.exercise import DIGITLAB_STYLE, GUIDE, STEPS, STYLES, TEMPLATE_STYLE

NOTEBOOK = "layers.ipynb"
HOW = """## In this notebook

Fill in a class in its cell and run it, then run the check cell under it: it checks the classes
so far against PyTorch and shows a table, with a map of where a tensor is wrong. `print(report)`
shows the same report as `digitlab check --layers`."""


def notebook_path(folder: str | Path) -> Path:
    """DIR/layers.ipynb; refuses when it exists (the learner's work, perhaps)."""
    path = Path(folder) / NOTEBOOK
    if path.exists():
        raise DigitlabError(f"{path}: exists already (your work?); choose another folder")
    return path


def starter_cells(source: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(the starter's docstring, its import lines, [(class name, class source)]) in file order."""
    tree = ast.parse(source)
    imports = [
        ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    lines = source.splitlines()
    classes = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            classes.append((node.name, "\n".join(lines[first - 1 : node.end_lineno])))
    return ast.get_docstring(tree) or "", "\n".join(imports), classes


def write_notebook(folder: str | Path, style: str = "digitlab", lang: str = "en") -> Path:
    """DIR/layers.ipynb for `style`, its check cells asking for the report in `lang`."""
    import nbformat
    from nbformat import v4

    if style not in STYLES:
        raise DigitlabError(f"--style {style}: choose one of {', '.join(STYLES)}")
    path = notebook_path(folder)
    doc, imports, classes = starter_cells(DIGITLAB_STYLE if style == "digitlab" else TEMPLATE_STYLE)
    guide = GUIDE.format(path=Path(folder) / "layers.py", steps=STEPS[style])
    cells = [
        v4.new_markdown_cell(guide),
        v4.new_markdown_cell(HOW + "\n\n" + doc),
        v4.new_code_cell(imports + "\n\nimport digitlab"),
    ]
    language = "" if lang == "en" else f", lang={lang!r}"
    for k, (_, code) in enumerate(classes):
        so_far = ", ".join(name for name, _ in classes[: k + 1])
        cells += [
            v4.new_code_cell(code),
            v4.new_code_cell(f"digitlab.check_layers([{so_far}]{language})"),
        ]
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, nbformat.writes(notebook).encode())
    return path
