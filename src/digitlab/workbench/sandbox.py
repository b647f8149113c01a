"""The child process that runs a learner's file, and its result channel.

Nothing the learner's code does can crash or hang digitlab: it runs in `python -m
digitlab.workbench.sandbox FILE START SKIP DUMP TIMEOUT`, which sends one JSON line per case on
its stdout (for the cases in SKIP, a comma list of indices, a line saying they were not run).
Each case arms faulthandler.dump_traceback_later(TIMEOUT) into the file DUMP (a thread: Windows
has it too), so that a case that hangs leaves the stack where it was stuck for the parent to
read after it kills the child. Inside
the child, file descriptor 1 is pointed at stderr before their code runs, so that their prints
(Python's or a C library's) go to the parent's output file, apart from the results. The parent
reads the lines on a thread and waits on a queue with a timeout: a case that runs past it is
stopped by killing the child, and the rest of the cases run in a fresh one. Pipes, a thread, a
queue and Popen.kill: the same on Windows, Linux and macOS.
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import torch

from digitlab.workbench.cases import cases_for
from digitlab.workbench.diagnose import Failure
from digitlab.workbench.exceptions import syntax_error_lines, their_traceback
from digitlab.workbench.layerfile import find_classes, import_file, interface_of
from digitlab.workbench.messages import Text
from digitlab.workbench.rows import run_case

STARTUP = 300.0  # seconds the child may take to import torch and digitlab


def worker(path: str, start: int, skip: dict, dump: str, timeout: float) -> None:
    """The child: the file's classes, then one JSON line per case from `start` on; the cases
    in `skip` ({index: the method that hung}) are not run. A case past `timeout` dumps its
    stack into the file `dump`."""
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    stack = open(dump, "w", encoding="utf-8")  # noqa: SIM115 (open while the child lives)
    os.dup2(2, 1)  # their prints, even a C library's, go where stderr goes
    for stream in (sys.stdout, sys.stderr):  # the parent reads UTF-8 whatever the console's
        stream.reconfigure(encoding="utf-8", errors="replace")

    def send(message: dict) -> None:
        results.write(json.dumps(message) + "\n")
        results.flush()

    torch.set_num_threads(1)
    send({"ready": True})  # torch is imported: the learner's time starts now
    faulthandler.dump_traceback_later(timeout, file=stack)
    try:
        classes = find_classes(import_file(path))
    except SyntaxError as e:
        send({"import_error": syntax_error_lines(e), "syntax": True, "line": e.lineno})
        return
    except BaseException as e:  # their file may raise anything at import
        lines = their_traceback(e, {path}) or [f"{type(e).__name__}: {e}"]
        send({"import_error": lines, "syntax": False})
        return
    interfaces = {name: interface_of(name, cls) for name, cls in classes.items()}
    cases = cases_for(classes)
    send({"interfaces": interfaces, "cases": [(c.layer, c.name) for c in cases]})
    for index, case in enumerate(cases):
        if index in skip:
            send(skipped(case, skip[index]))
        elif index >= start:
            faulthandler.dump_traceback_later(timeout, file=stack)
            send(run_case(case, classes, interfaces[case.layer], {path}))
    faulthandler.cancel_dump_traceback_later()


def skipped(case, method: str) -> dict:
    """The row of a case not run: its class hung in `method` in an earlier case."""
    message = Text("not run: {method} hung in an earlier case (as above)", method=method)
    failure = Failure("case", message).as_dict()
    return {
        "layer": case.layer,
        "case": case.name,
        "ok": False,
        "failures": [failure],
        "skipped": True,
    }


class Child:
    """The sandbox running the learner's file from case `start` on; its results come on its
    stdout, its prints (and stderr) go to `output`, a binary file."""

    def __init__(self, path: str, start: int, output, skip: dict, dump: str, timeout: float):
        skips = ",".join(f"{index}:{method}" for index, method in skip.items())
        args = [path, str(start), skips or "-", dump, str(timeout)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digitlab.workbench.sandbox", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=output,
        )
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        self.ended = False

    def started(self, limit: float = STARTUP) -> bool:
        """True once the child has imported torch and digitlab (not the learner's time: on a
        busy machine that alone can take seconds); False if it died or took past `limit`."""
        message = self.next_message(limit)
        return bool(message and message.get("ready"))

    def read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the child closed its end: it ended or died

    def next_message(self, timeout: float) -> dict | None:
        """The next JSON line, or None when the child hangs past `timeout` or dies."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.ended = True
            self.process.wait()
            return None
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join()
        self.process.stdout.close()


if __name__ == "__main__":
    path, start, skips, dump, timeout = sys.argv[1:6]
    pairs = [item.split(":", 1) for item in skips.split(",") if ":" in item]
    worker(str(Path(path)), int(start), {int(k): m for k, m in pairs}, dump, float(timeout))
