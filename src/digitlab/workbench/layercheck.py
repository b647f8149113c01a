"""The layer checker: classes against PyTorch, case by case (`digitlab check`).

check_classes(classes) runs the catalogue's cases (workbench.cases) on classes in this process;
check_file(path) runs them on a learner's file in a child process (workbench.sandbox), where
nothing it does can crash or hang digitlab; check_scratch() is `digitlab check` on digitlab's
own layers, which are one more set of classes with a few more cases. All three give the same
result, {"path", "found", "missing", "rows", "ok", "output_lines", "first_output", "output"}, which
workbench.report shows. float32 results are compared with PyTorch's float64 ones within a
tolerance float32 rounding cannot trip (workbench.diagnose), float64 ones within 1e-9.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import linecache
import re
import sys
import tempfile
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.workbench.cases import INIT, cases_for
from digitlab.workbench.diagnose import Failure
from digitlab.workbench.layerfile import NAMES, interface_of
from digitlab.workbench.messages import Text
from digitlab.workbench.rows import run_case
from digitlab.workbench.sandbox import Child

# digitlab.scratch's classes with a torch namesake: a learner's eight and those they do not write
SCRATCH_NAMES = (*NAMES, "BatchNorm2d", "Dropout", "AdaptiveAvgPool2d", "Sequential")


def check_classes(classes: dict[str, type], own: bool = False, source: str = "") -> dict:
    """Every case of every class in {torch name: class}, run here (the classes' prints kept
    apart); `own` adds digitlab's own cases. `source` names them in the report."""
    interfaces = {name: interface_of(name, cls) for name, cls in classes.items()}
    files = {inspect.getsourcefile(cls) for cls in classes.values()}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rows = [
            run_case(case, classes, interfaces[case.layer], files)
            for case in cases_for(classes, own)
        ]
    return result_of(source or ", ".join(classes), interfaces, rows, printed.getvalue())


# The plain version of each layer that has a fast path (scratch/fast/): checked as well, by the
# same cases, so that the lesson and the speed both match PyTorch.
PLAIN = {"Conv2d": "PlainConv2d", "MaxPool2d": "PlainMaxPool2d", "BatchNorm2d": "PlainBatchNorm2d"}


def check_scratch() -> dict:
    """`digitlab check`: digitlab.scratch's classes, through the same cases plus its own; then
    the plain versions of the layers whose public class is a fast path, through theirs."""
    from digitlab import scratch

    classes = {name: getattr(scratch, name) for name in SCRATCH_NAMES}
    result = check_classes(classes, own=True, source="digitlab.scratch")
    plain = {**classes, **{name: getattr(scratch, p) for name, p in PLAIN.items()}}
    checked = check_classes({n: plain[n] for n in PLAIN}, own=True)
    for name, plain_name in PLAIN.items():
        result["found"][plain_name] = checked["found"][name]
    result["rows"] += [{**r, "layer": PLAIN[r["layer"]]} for r in checked["rows"]]
    result["ok"] = all(r["ok"] for r in result["rows"])
    return result


def result_of(source: str, interfaces: dict, rows: list[dict], printed: str) -> dict:
    lines = printed.splitlines()
    return {
        "path": source,
        "found": interfaces,
        "missing": [n for n in NAMES if n not in interfaces],
        "rows": rows,
        "ok": all(r["ok"] for r in rows),
        "output_lines": len(lines),
        "first_output": lines[:3],
        "output": printed,
    }


GRACE = 1.0  # seconds past --timeout the parent waits: the child's stack dump comes first
FRAME = re.compile(r'File "(.*)", line (\d+) in (\S+)')


def check_file(path: str | Path, timeout: float = 60.0) -> dict:
    """Every case of every class the file has, run in a child process, each case under
    `timeout` seconds (a case past it is stopped, where it was stuck shown, the class's
    remaining cases that would run the same method skipped, and the rest run in a fresh
    child)."""
    path = str(Path(path).expanduser().resolve())
    if not Path(path).is_file():
        raise DigitlabError(f"{path}: no such file; give the .py file that holds your layers")
    rows: list[dict] = []
    state: dict = {"names": None, "interfaces": {}, "skip": {}}
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile("w+b") as output:
        dump = str(Path(folder) / "stack.txt")
        while state["names"] is None or len(rows) < len(state["names"]):
            child = Child(path, len(rows), output, state["skip"], dump, timeout)
            try:
                run_child(child, path, timeout, dump, rows, state)
            finally:
                child.stop()
        output.seek(0)
        printed = output.read().decode("utf-8", errors="replace")
    return result_of(path, state["interfaces"], rows, printed)


def run_child(child: Child, path: str, timeout: float, dump: str, rows: list, state: dict):
    """The rows one child sends, appended to `rows`, until it ends or a case hangs or crashes
    (that case's row then says so, and state["skip"] gets the class's cases it would hang)."""
    if not child.started():
        raise DigitlabError(
            f"the process to check {path} in did not start (exit code "
            f"{child.process.poll()}); is digitlab installed for {sys.executable}?"
        )
    first = child.next_message(timeout + GRACE)
    if first is None or "import_error" in first:
        raise import_failure(path, first, timeout, child, stuck_at(dump, path)[0])
    state["interfaces"], names = first["interfaces"], first["cases"]
    state["names"] = names
    if not names:
        raise DigitlabError(
            f"{path}: defines none of {', '.join(NAMES)}; write at least one "
            "(digitlab exercise DIR gives a starter file)"
        )
    while len(rows) < len(names):
        message = child.next_message(timeout + GRACE)
        if message is not None:
            rows.append(message)
            continue
        child.stop()  # a hang or a crash: this case fails, the rest go on
        row = lost_case(*names[len(rows)], child, timeout, stuck_at(dump, path))
        rows.append(row)
        for index in range(len(rows), len(names)):
            layer, case = names[index]
            if row.get("method") and layer == row["layer"]:
                if case != INIT or row["method"] == "__init__":
                    state["skip"][index] = row["method"]
        return


def stuck_at(dump: str, path: str) -> tuple[list[str], str]:
    """(the learner's frames where the child was stuck, as traceback lines; the method of
    theirs the check had called) from faulthandler's dump; ([], "") when there is none."""
    try:
        text = Path(dump).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], ""
    text = text.rsplit("Timeout (", 1)[-1]  # the last dump (a slow case may have left one)
    frames = [(int(n), name) for f, n, name in FRAME.findall(text) if f == path][::-1]
    lines = []
    for number, name in frames[-4:]:
        lines.append(f"{Path(path).name}, line {number}, in {name}")
        lines.append(f"    {linecache.getline(path, number).strip()}")
    return lines, frames[0][1] if frames else ""


def lost_case(layer: str, case: str, child: Child, timeout: float, stuck: tuple) -> dict:
    alive, process = not child.ended, child.process
    lines, method = stuck if alive else ([], "")
    if alive and lines:
        message = Text(
            "did not finish within {timeout:g} s; stopped, the other cases ran; it was stuck at "
            "the line shown below",
            timeout=timeout,
        )
    elif alive:
        message = Text(
            "did not finish within {timeout:g} s; stopped, the other cases ran", timeout=timeout
        )
    else:
        message = Text(
            "the process running your code died (exit code {code})", code=process.returncode
        )
    failure = Failure(
        "case",
        message,
        Text("an endless loop? look for a loop whose condition never changes") if alive else "",
    )
    return {
        "layer": layer,
        "case": case,
        "ok": False,
        "failures": [failure.as_dict()],
        "timeout": alive,
        "traceback": lines,
        "method": method,
    }


def import_failure(
    path: str, message: dict | None, timeout: float, child, stuck: list
) -> DigitlabError:
    """The one-line error for a file that cannot be imported; its `lines` (their traceback, the
    syntax error as Python shows it, or where an import that hung was stuck) are printed once,
    above it."""
    if message is None and not child.ended:
        error = DigitlabError(
            f"{path}: importing it did not finish within {timeout:g} s; move work out of the "
            "module level or raise --timeout" + ("; it was stuck at the line above" * bool(stuck))
        )
        error.lines = stuck
        return error
    if message is None:
        return DigitlabError(
            f"{path}: the process importing it died (exit code {child.process.returncode}); "
            "does the file call exit() or crash the interpreter at import?"
        )
    lines = message["import_error"]
    if message["syntax"]:
        error = DigitlabError(
            f"{path}: has a syntax error at line {message['line']} (shown above); fix it and "
            "check again"
        )
    else:
        error = DigitlabError(f"{path}: raised an exception when imported: {lines[-1].strip()}")
    error.lines = lines
    return error
