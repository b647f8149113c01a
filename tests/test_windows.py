"""What keeps digitlab working on Windows: no POSIX-only call outside a platform branch, every
text file opened with its encoding, and a learner's prints and report on a console that cannot
encode every character (GBK, a Chinese Windows' default) without a UnicodeEncodeError."""

import ast
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"

# Names Windows' Python lacks or refuses (os.fork, fcntl, resource, Popen's pass_fds, ...).
POSIX_ONLY = {
    "pass_fds",
    "preexec_fn",
    "start_new_session",
    "fork",
    "forkpty",
    "fcntl",
    "resource",
    "killpg",
    "setsid",
    "getpgid",
    "SIGKILL",
    "SIGALRM",
    "alarm",
    "setitimer",
}


def on_platform(test: ast.expr) -> bool:
    """An `if` on sys.platform or os.name (platform.system() too)."""
    text = ast.unparse(test)
    return any(key in text for key in ("sys.platform", "os.name", "platform.system"))


def posix_only_uses(tree: ast.AST, guarded: bool = False):
    """(line, name) of each POSIX-only name used outside an `if` on the platform."""
    for node in ast.iter_child_nodes(tree):
        inside = guarded or (isinstance(node, ast.If) and on_platform(node.test))
        if not inside:
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.keyword):
                name = node.arg
            elif isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                name = next((m for m in mods if m.split(".")[0] in POSIX_ONLY), None)
            if name in POSIX_ONLY:
                yield node.lineno, name
        yield from posix_only_uses(node, inside)


def test_the_scan_finds_a_posix_call_and_spares_a_platform_branch():
    bare = ast.parse("import subprocess\nsubprocess.Popen(['x'], pass_fds=(3,))\nos.fork()\n")
    assert [name for _, name in posix_only_uses(bare)] == ["pass_fds", "fork"]
    branch = ast.parse("if sys.platform != 'win32':\n    import fcntl\n    os.killpg(1, 9)\n")
    assert list(posix_only_uses(branch)) == []
    assert [n for _, n in posix_only_uses(ast.parse("import resource\n"))] == ["resource"]


def test_no_posix_only_call_outside_a_platform_branch():
    found = [
        f"{path.relative_to(SRC)}:{line}: {name}"
        for path in sorted(SRC.rglob("*.py"))
        for line, name in posix_only_uses(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == []


def opened_without_encoding(tree: ast.AST):
    """Lines of open()/Path.open() in text mode, .read_text() and .write_text() without an
    encoding (ruff's PLW1514 misses a Path it cannot tell is one)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in ("read_text", "write_text"):
            yield node.lineno
        elif name == "open" and not isinstance(getattr(node.func, "value", None), ast.Name):
            mode = node.args[1] if len(node.args) > 1 else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
            if not (isinstance(mode, ast.Constant) and "b" in str(mode.value)):
                yield node.lineno


def test_every_text_file_is_opened_with_its_encoding():
    assert list(opened_without_encoding(ast.parse("p.read_text()\nopen(f, 'w')\n"))) == [1, 2]
    found = [
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        for line in opened_without_encoding(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == []


LEARNER = '''"""我的层: a learner's file with Chinese comments."""
from digitlab.scratch import Flatten  # noqa: F401  展平层

print("开始 → 检查 🙂")  # GBK has the Chinese, not the emoji
'''


def test_a_learners_prints_and_report_on_a_gbk_console(tmp_path):
    """The learner's file prints what GBK cannot encode; the check runs through the same child
    process as any other, and neither the child nor the report raises UnicodeEncodeError."""
    path = tmp_path / "我的层.py"
    path.write_text(LEARNER, encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "gbk"}
    outputs = []
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "digitlab", "check", "--layers", str(path), *extra],
            capture_output=True,
            env=env,
            timeout=600,
        )
        out, err = result.stdout.decode("gbk"), result.stderr.decode("gbk")
        assert result.returncode == 0, out + err
        assert "UnicodeEncodeError" not in out + err and "Traceback" not in err, err
        outputs.append(out)
    assert "我的层.py" in outputs[0] and "开始" in outputs[0]  # the path, the first print
