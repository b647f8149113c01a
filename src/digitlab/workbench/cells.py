"""`digitlab.check_layers`: the layer checker from Python, on a file or on classes.

A notebook's classes have no file the checker's child process (workbench.sandbox) could import,
so their source is written to one: each class's text (from the cell that defined it, which
IPython keeps in linecache), after one import line per name it uses from the notebook's globals
(`torch`, `nn`, `F`, `math`, ...), and the functions and classes of the notebook it calls. That
file then goes through check_file like any learner's file: one checker, the same child process,
the same report.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import symtable
import sys
import tempfile
import textwrap
import types
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.workbench.layercheck import check_file
from digitlab.workbench.layerfile import NAMES, find_classes
from digitlab.workbench.layerreport import LayerReport

# values a notebook may hold as plain names that a file can spell as they are
LITERALS = (int, float, str, bool, type(None))


def check_layers(source, lang: str = "en", timeout: float = 60.0) -> LayerReport:
    """Check a learner's layers against PyTorch, as `digitlab check --layers` does.

    `source`: a .py file's path; or the classes themselves: a list of them
    (`[Conv2d, Linear]`), a dict {name: class} (`globals()` of a notebook does), or a module.
    Classes are found by their torch names (Conv2d, Linear, ReLU, MaxPool2d, Flatten,
    CrossEntropyLoss, SGD, Adam). A class given itself must be defined in a file or a notebook
    cell (its source is read from there) and have at least one method; the names it uses must be
    imports (modules, or functions and classes of an installed package), plain constants, or
    functions and classes of the notebook, which are copied in as well. The classes run in a
    child process, each case under `timeout` seconds; `lang` is the language of the report's
    text. Returns a LayerReport: .ok, .layers (the --json "layers"), str() the CLI's text, and a
    table with the maps of wrong positions when a notebook shows it.
    """
    if isinstance(source, (str, Path)):
        return LayerReport(check_file_here(source, timeout), lang)
    classes = classes_of(source)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.py"
        path.write_text(file_of(classes), encoding="utf-8")
        result = check_file_here(path, timeout)
    result["path"] = "the classes " + ", ".join(classes)
    return LayerReport(result, lang)


def check_file_here(path, timeout: float) -> dict:
    """check_file, with the traceback of a file that cannot be imported in the error itself:
    a notebook shows the error, and no CLI is there to print its lines above it."""
    try:
        return check_file(path, timeout=timeout)
    except DigitlabError as e:
        lines = getattr(e, "lines", None)
        if lines:
            raise DigitlabError("\n".join([*lines, str(e)])) from None
        raise


def classes_of(source) -> dict[str, type]:
    """{torch name: class} from a list of classes, a dict of names or a module."""
    if isinstance(source, types.ModuleType):
        found = find_classes(source)
    elif isinstance(source, dict):
        found = {n: source[n] for n in NAMES if inspect.isclass(source.get(n))}
    else:
        found = {}
        for cls in source:
            if not inspect.isclass(cls) or cls.__name__ not in NAMES:
                raise DigitlabError(
                    f"{cls!r}: not one of the classes the check knows ({', '.join(NAMES)})"
                )
            found[cls.__name__] = cls
    if not found:
        raise DigitlabError(f"none of {', '.join(NAMES)} given; pass the classes to check")
    return found


def file_of(classes: dict[str, type]) -> str:
    """The text of a file defining `classes` as they were written: the imports of the names they
    use, the notebook's functions and classes they use, then the classes."""
    imports: list[str] = []
    helpers: list[str] = []
    bodies = [source_of(cls) for cls in classes.values()]
    done = {id(cls) for cls in classes.values()}
    todo = [(cls, text) for cls, text in zip(classes.values(), bodies, strict=True)]
    while todo:
        owner, text = todo.pop(0)
        scope = namespace_of(owner)
        for name in sorted(free_names(text)):
            if name not in scope or id(scope[name]) in done:
                continue  # a builtin, or already in the file
            value = scope[name]
            line = import_line(name, value)
            if line:
                imports += [line] * (line not in imports)
            elif inspect.isfunction(value) or inspect.isclass(value):
                done.add(id(value))
                helper = source_of(value)
                helpers.insert(0, helper)  # before what uses it (a base class must be)
                todo.append((value, helper))
            else:
                raise DigitlabError(
                    f"{owner.__name__} uses {name}, a {type(value).__name__} of the notebook that "
                    "a file cannot import; make it a constant, import it, or define it in the class"
                )
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join([*helpers, *bodies]) + "\n"


def free_names(text: str) -> set[str]:
    """The global names the code reads and does not define itself."""
    top = symtable.symtable(text, "cell", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    names, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        names |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
    return names - defined


def import_line(name: str, value) -> str:
    """The line that binds `name` to `value` in a file, or "" when no import can."""
    if isinstance(value, types.ModuleType):
        real = value.__name__
        return f"import {real}" if real == name else f"import {real} as {name}"
    if isinstance(value, LITERALS) or (
        isinstance(value, tuple) and all(isinstance(v, LITERALS) for v in value)
    ):
        return f"{name} = {value!r}"
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    if module is None or module.__name__ == "__main__" or not hasattr(module, "__file__"):
        return ""  # defined in the notebook (or nowhere a file can import from)
    for attr in (getattr(value, "__qualname__", ""), name, getattr(value, "__name__", "")):
        if attr and getattr(module, attr, None) is value:
            alias = "" if attr == name else f" as {name}"
            return f"from {module.__name__} import {attr}{alias}"
    return ""


def functions_of(cls: type) -> list[types.FunctionType]:
    """The plain functions behind a class's methods (decorators unwrapped)."""
    found = []
    for value in vars(cls).values():
        value = getattr(value, "__func__", getattr(value, "fget", value))
        value = inspect.unwrap(value) if callable(value) else value
        if inspect.isfunction(value):
            found.append(value)
    return found


def namespace_of(obj) -> dict:
    """The globals `obj`'s code reads: a notebook's namespace for its cells' classes."""
    if inspect.isfunction(obj):
        return obj.__globals__
    functions = functions_of(obj)
    if functions:
        return functions[0].__globals__
    return vars(sys.modules[obj.__module__]) if obj.__module__ in sys.modules else {}


def source_of(obj) -> str:
    """The source text of a class or function, from its file or its notebook cell. inspect
    finds a class through its module's file, which a notebook's __main__ has not; its methods'
    code still names the cell, whose text IPython keeps in linecache."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        pass
    for function in functions_of(obj) if inspect.isclass(obj) else []:
        code = function.__code__
        lines = linecache.getlines(code.co_filename)
        for node in ast.walk(ast.parse("".join(lines))) if lines else []:
            if (
                isinstance(node, ast.ClassDef)
                and node.name == obj.__name__
                and node.lineno <= code.co_firstlineno <= node.end_lineno
            ):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                return textwrap.dedent("".join(lines[first - 1 : node.end_lineno]))
    raise DigitlabError(
        f"{obj.__name__}: its source cannot be found; define it in a file or a notebook cell "
        "(a class needs at least one method of its own)"
    )
