"""The shape of the source: every function (method, nested function) fits on a screen."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"
MAX_LINES = 60  # from the def line to the function's last line, decorators not counted

# The modules directly in src/digitlab (cli.py, errors.py, __main__.py, ...) form one group.
TOP = "top_level"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())


def modules(package: str) -> list[Path]:
    if package == TOP:
        return sorted(SRC.glob("*.py"))
    return sorted((SRC / package).rglob("*.py"))


def long_functions(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    name = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
                    found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_every_package_is_checked():
    """A new subpackage is checked without anyone adding it here."""
    checked = {p for package in [*PACKAGES, TOP] for p in modules(package)}
    assert checked == set(SRC.rglob("*.py"))
    assert {"data", "nets", "read", "scratch", "study", "train", "workbench"} <= set(PACKAGES)


def test_the_check_finds_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def ok():\n    pass\n\n\ndef long():\n{body}", "utf-8")
    (tmp_path / "short.py").write_text(f"def short():\n{body[: body.rindex('    x')]}", "utf-8")
    found = long_functions([tmp_path / "long.py", tmp_path / "short.py"])
    assert [f.split()[1] for f in found] == ["long"]


@pytest.mark.parametrize("package", [*PACKAGES, TOP])
def test_every_function_fits_on_a_screen(package):
    assert long_functions(modules(package)) == [], f"functions over {MAX_LINES} lines"
