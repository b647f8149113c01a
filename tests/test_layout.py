"""The lab's layout: subpackages whose imports flow one way (docs/architecture.md draws them).

Every import of one digitlab module by another counts, at the top of a file or inside a function:
an import inside a function is still a dependency, only a later one."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"

# From the ground up; a part may import its own modules and those of the parts below it.
# Keep in step with docs/architecture.md.
LEVELS = (
    ("errors",),
    ("files",),  # atomic writes; raises DigitlabError
    ("scratch",),
    ("data",),
    ("nets",),
    ("read",),
    ("workbench",),
    ("train",),
    ("study",),
    ("app",),
    ("cli",),
    ("__main__", "__init__"),
)
LEVEL = {part: i for i, parts in enumerate(LEVELS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports_of(path: Path) -> set[str]:
    """The digitlab modules `path` imports, module-level and function-level alike."""
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from digitlab.x import y` names module digitlab.x.y when that is a module
            for a in node.names:
                found.add(f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base)
    return {m for m in found if m.split(".")[0] == "digitlab"}


def is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {
        module_name(p): imports_of(p) - {module_name(p)}
        for p in SRC.rglob("*.py")
        if "__pycache__" not in p.parts
    }


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_is_on_a_level():
    assert sorted({part_of(m) for m in graph()} - set(LEVEL)) == []


def test_no_import_runs_upward():
    upward = [
        f"{m} -> {d}"
        for m, deps in graph().items()
        for d in deps
        if part_of(d) != part_of(m) and LEVEL[part_of(d)] >= LEVEL[part_of(m)]
    ]
    assert upward == []


def test_no_cycle_between_modules():
    edges, cycles = graph(), []

    def visit(module, path):
        if module in path:
            cycles.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        for dep in sorted(edges.get(module, ())):
            visit(dep, [*path, module])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        visit(module, [])
    assert cycles == []


def test_scratch_is_a_leaf():
    """The hand-written layers need torch alone: nothing else of digitlab."""
    outside = {
        f"{m} -> {d}"
        for m, deps in graph().items()
        if part_of(m) == "scratch"
        for d in deps
        if part_of(d) != "scratch"
    }
    assert outside == set()


def test_the_lab_has_parts():
    """At least five subpackages of three or more modules each."""
    sizes = {
        p.name: len([f for f in p.glob("*.py") if f.name != "__init__.py"])
        for p in SRC.iterdir()
        if (p / "__init__.py").is_file()
    }
    assert len([n for n in sizes.values() if n >= 3]) >= 5, sizes


def test_the_graph_sees_function_level_imports(tmp_path):
    """The checker itself: an import inside a function counts."""
    path = SRC / "nets" / "backends.py"
    assert "digitlab.scratch.module" in imports_of(path)  # imported inside backward()
