"""The learner's texts in two languages: every English message has its Chinese twin."""

from __future__ import annotations

import ast
import io
import string
import tokenize
from pathlib import Path

from digitlab.workbench.messages import ZH, Text, Texts, as_data, default_lang, from_data

SOURCE = Path(__file__).parents[1] / "src" / "digitlab"
# calls whose first argument is a message id: Text("..."), say("...", lang)
MAKERS = {"Text", "say"}


def msgids() -> dict[str, str]:
    """{msgid: where} for every message written in digitlab's source."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) in MAKERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found[node.args[0].value] = f"{path.relative_to(SOURCE)}:{node.lineno}"
    return found


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_english_message_has_its_chinese_twin_with_the_same_fields():
    english = msgids()
    assert len(english) > 100  # the walk finds the messages (they are many)
    missing = {m: where for m, where in english.items() if m not in ZH}
    assert not missing, "no Chinese for:\n" + "\n".join(f"{w}: {m!r}" for m, w in missing.items())
    for msgid, chinese in ZH.items():
        assert fields(chinese) == fields(msgid), msgid
        assert chinese != msgid and any("\u4e00" <= c <= "\u9fff" for c in chinese), msgid
    unused = set(ZH) - set(english) - EXTRA
    assert not unused, f"catalogue entries no code uses: {sorted(unused)}"


EXTRA: set[str] = set()  # msgids made other than by a literal Text("...") call


def test_a_text_renders_in_either_language_and_survives_the_trip_as_data():
    text = Texts(
        [
            Text("padding {pad} looks ignored", pad=1),
            Text("stride {stride} looks ignored", stride=2),
        ]
    )
    assert str(text) == "padding 1 looks ignored; stride 2 looks ignored"
    assert text.render("zh") == "填充 1 似乎被忽略了；步长 2 似乎被忽略了"
    again = from_data(as_data(text))
    assert again.render("zh") == text.render("zh") and str(again) == str(text)
    nested = Text(
        "{method} changed {name} in place ({what})",
        method="forward",
        name=Text("its input x"),
        what=Text("{wrong} of {total} elements", wrong=3, total=8),
    )
    assert "3 of 8 elements" in str(nested)
    assert "its input x" not in nested.render("zh") and "3" in nested.render("zh")


def test_the_language_follows_the_locale(monkeypatch):
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert default_lang() == "zh"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")  # LC_ALL wins, as POSIX has it
    assert default_lang() == "en"
    monkeypatch.setenv("LC_ALL", "zh_TW.UTF-8")
    assert default_lang() == "zh"


# --- the learner's tools in Chinese, end to end --------------------------------------------
import ast as _ast  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from conftest import assert_one_line_error, run_cli  # noqa: E402
from digitlab.workbench.cases import cases_for  # noqa: E402
from digitlab.workbench.exercise import starter  # noqa: E402
from digitlab.workbench.messages_zh import ZH_CASES, ZH_STARTER_TEXTS  # noqa: E402

LEARNERS = Path(__file__).parent / "learners"
SOLUTION = (LEARNERS / "solution.py").read_text(encoding="utf-8")


def planted_file(tmp_path, old: str, new: str) -> Path:
    assert SOLUTION.count(old) == 1
    path = tmp_path / "mine.py"
    path.write_text(SOLUTION.replace(old, new), encoding="utf-8")
    return path


def without_docstrings(source: str) -> str:
    """The code of a file, its docstrings emptied (comments are not in the AST)."""
    tree = _ast.parse(source)
    for node in _ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], _ast.Expr):
            if isinstance(body[0].value, _ast.Constant) and isinstance(body[0].value.value, str):
                body[0].value.value = ""
    return _ast.dump(tree)


def words_of(source: str) -> list[str]:
    """A file's docstrings (without quotes) and comments (without '# ')."""
    docs = [
        _ast.get_docstring(n, clean=False)
        for n in _ast.walk(_ast.parse(source))
        if isinstance(n, (_ast.Module, _ast.ClassDef, _ast.FunctionDef))
    ]
    lines = io.StringIO(source).readline
    comments = [t.string[2:] for t in tokenize.generate_tokens(lines) if t.type == tokenize.COMMENT]
    return [d for d in docs if d] + comments


def test_the_chinese_starters_are_the_english_ones_with_chinese_words():
    used = set()
    for style in ("digitlab", "template"):
        english, chinese = starter(style, "en"), starter(style, "zh")
        assert without_docstrings(english) == without_docstrings(chinese), style
        assert "保存" in chinese and "保存" not in english
        # Every docstring and comment has its twin, and none is left in English.
        assert set(words_of(english)) <= set(ZH_STARTER_TEXTS), style
        assert not set(words_of(english)) & set(words_of(chinese)), style
        used |= set(words_of(english))
    assert used == set(ZH_STARTER_TEXTS)  # no twin of a text the starters no longer have


def test_every_case_a_learner_meets_has_a_chinese_name():
    import importlib.util

    names = set()
    for file in ("solution.py", "template_solution.py"):
        spec = importlib.util.spec_from_file_location(file[:-3], LEARNERS / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from digitlab.workbench.layerfile import find_classes

        names |= {case.name for case in cases_for(find_classes(module), False)}
    assert names and names <= set(ZH_CASES), names - set(ZH_CASES)


def test_check_in_chinese_names_the_bug_on_the_right_class_and_tensor(tmp_path, capsys):
    path = planted_file(tmp_path, "db = grad_out.sum(0)", "db = 2 * grad_out.sum(0)")
    code, out, _ = run_cli(capsys, "check", "--layers", path, "--lang", "zh")
    english_code, english, _ = run_cli(capsys, "check", "--layers", path, "--lang", "en")
    assert code == english_code == 1
    linear = out.split("\nLinear (")[1].split("\n\n")[0]
    assert "dL/db (bias.grad) 的 3 个元素中有 3 个不对" in linear, linear
    assert "可能的原因：是 PyTorch 的 2 倍" in linear
    assert "FAIL  5 -> 3，批量 4" in linear
    assert out.splitlines()[-1].endswith("在 Linear 中")
    assert "twice PyTorch's value" in english and "twice" not in out
    # --json stays in English, for tools, whatever the language
    _, as_json, _ = run_cli(capsys, "check", "--layers", path, "--json", "--lang", "zh")
    assert "twice PyTorch's value" in as_json


def test_exercise_in_chinese_writes_a_chinese_guide_and_a_starter_that_checks(tmp_path, capsys):
    code, _, _ = run_cli(capsys, "exercise", tmp_path / "ex", "--lang", "zh", "--notebook")
    guide = (tmp_path / "ex" / "README.md").read_text(encoding="utf-8")
    layers = (tmp_path / "ex" / "layers.py").read_text(encoding="utf-8")
    book = (tmp_path / "ex" / "layers.ipynb").read_text(encoding="utf-8")
    assert code == 0 and guide.startswith("# 你自己的层") and "反向传播" in layers
    assert "建议的顺序" in book and 'lang=\\"zh\\"' in book
    code, out, _ = run_cli(
        capsys, "check", "--layers", tmp_path / "ex" / "layers.py", "--lang", "zh"
    )
    assert code == 1 and "还没写" in out and "not written" not in out


def test_train_refuses_in_chinese_naming_the_initialisation(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DIGITLAB_LANG", raising=False)
    path = planted_file(
        tmp_path,
        "nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))",
        "nn.Parameter(torch.empty(out_features, in_features))",
    )
    args = ["train", "--layers", path, "--out", tmp_path / "run", "--lang", "zh"]
    code, _, err = run_cli(capsys, *args)
    os.environ.pop("DIGITLAB_LANG", None)  # set by --lang for the run
    assert_one_line_error(code, err, 1, "Linear 还和 PyTorch 不一致")
    assert "Linear 的初始化：weight 的 1000 个元素中有 1000 个是 NaN 或 inf" in err


def test_a_chinese_locale_gets_chinese_and_a_gbk_console_does_not_crash(tmp_path):
    path = planted_file(tmp_path, "db = grad_out.sum(0)", "db = 2 * grad_out.sum(0)")
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "PYTHONIOENCODING": "gbk"}
    for name in ("LC_ALL", "LC_MESSAGES", "DIGITLAB_LANG"):
        env.pop(name, None)
    child = subprocess.run(
        [sys.executable, "-m", "digitlab", "check", "--layers", str(path)],
        capture_output=True,
        env=env,
        timeout=600,
    )
    out = child.stdout.decode("gbk")
    assert child.returncode == 1, child.stderr.decode("gbk", errors="replace")
    assert "可能的原因：是 PyTorch 的 2 倍" in out and "Traceback" not in child.stderr.decode("gbk")


def test_a_file_that_cannot_be_checked_is_refused_in_chinese(tmp_path, capsys):
    code, _, err = run_cli(capsys, "check", "--layers", tmp_path / "nope.py", "--lang", "zh")
    assert_one_line_error(code, err, 1, "nope.py：文件不存在；请给出包含你的层的 .py 文件")
    code, _, err = run_cli(capsys, "check", "--layers", tmp_path / "nope.py", "--lang", "en")
    assert_one_line_error(code, err, 1, "nope.py: no such file; give the .py file")
