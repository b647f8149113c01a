"""One case run on one class, as the row the report shows: {"layer", "case", "ok", "failures",
and "traceback", "not_written", "note" where they apply}. An exception in the class's code is
diagnosed here; the case's own checks are workbench.runners' and workbench.loss_and_optimizers'."""

from __future__ import annotations

import copy

import torch
from torch import nn

from digitlab.workbench.diagnose import RTOL64, Failure, close
from digitlab.workbench.exceptions import (
    LearnerError,
    assignment_diagnosis,
    exception_diagnosis,
    failed_assignment,
    method_source,
    their_traceback,
)
from digitlab.workbench.initial import run_init_case
from digitlab.workbench.loss_and_optimizers import run_loss_case, run_optim_case
from digitlab.workbench.messages import Text, as_data
from digitlab.workbench.references import build, make_input, namespace, torch_layer
from digitlab.workbench.runners import (
    copy_state,
    run_accumulate_case,
    run_dropout_case,
    run_layer_case,
    run_network_case,
)

# case.kind -> runner(case, cls, interface, classes) -> [Failure]
RUNNERS = {
    "layer": run_layer_case,
    "accumulate": run_accumulate_case,
    "init": run_init_case,
    "dropout": run_dropout_case,
    "network": run_network_case,
    "loss": run_loss_case,
    "optim": run_optim_case,
}


def run_case(case, classes: dict, interface: str, files) -> dict:
    """The case on classes[case.layer] (the other classes build networks); `files` are the
    source files whose traceback frames are shown."""
    cls = classes[case.layer]
    row = {"layer": case.layer, "case": case.name, "ok": True, "failures": []}
    try:
        failures = RUNNERS[case.kind](case, cls, interface, classes)
    except LearnerError as e:
        what, error = e.args
        diagnosis = exception_diagnosis(error, what, method_source(cls, what))
        # backward runs only after the output matched: say so, it is half the answer
        passed = what == "backward"
        failures = [Failure(what, raised(passed, what, type(error).__name__), diagnosis)]
        assignment = failed_assignment(error)
        if assignment:
            failures = [assignment_failure(passed, *assignment, getattr(e, "ctx", {}))]
        row["traceback"] = their_traceback(error, files)
        row["not_written"] = diagnosis.startswith("not written yet")
    except Exception as e:  # a class's object broke the check itself: say what, go on
        failures = [
            Failure(
                "case",
                Text("could not be checked: {error}: {text}", error=type(e).__name__, text=str(e)),
            )
        ]
        row["traceback"] = their_traceback(e, files)
    row["failures"] = [f.as_dict() for f in failures]
    row["ok"] = not failures
    if row["ok"] and case.kind == "layer" and case.dtype == torch.float32:
        note = float64_note(case, cls, classes)
        row["note"], row["note_text"] = str(note), as_data(note)
    return row


def raised(passed: bool, what: str, error: str) -> Text:
    if passed:  # backward runs only after the output matched
        return Text("the output matches PyTorch; {what} raised {error}", what=what, error=error)
    return Text("{what} raised {error}", what=what, error=error)


def assignment_failure(passed: bool, owner: str, given: tuple, wanted: tuple, ctx: dict):
    """A .grad PyTorch refused for its shape, named with both shapes and the likely cause."""
    tensor, diagnosis = assignment_diagnosis(owner, given, wanted, ctx)
    fields = dict(owner=owner, given=str(given), wanted=str(wanted))
    if passed:
        message = Text(
            "the output matches PyTorch; backward set {owner}.grad to a {given} tensor; "
            "{owner} is {wanted}",
            **fields,
        )
    else:
        message = Text(
            "backward set {owner}.grad to a {given} tensor; {owner} is {wanted}", **fields
        )
    return Failure(tensor, message, diagnosis)


def float64_note(case, cls: type, classes: dict) -> Text | str:
    """float32 passed; does float64 separate right from wrong? "" when it agrees to 1e-9 too
    (or the class cannot run in float64 at all, which is no requirement)."""
    ref = torch_layer(case).double()
    x = make_input(case.shape, case.ties, seed=1).double()
    try:
        with torch.no_grad():
            mine = build(namespace({**classes, case.layer: cls}), case)
            mine = mine.double() if isinstance(mine, nn.Module) else mine
            if not case.train:
                mine.eval()
            if copy_state(mine, ref):
                return ""
            y = mine(x.clone())
    except Exception:
        return ""
    with torch.no_grad():
        y_ref = copy.deepcopy(ref)(x)
    if not torch.is_tensor(y) or y.shape != y_ref.shape or close(y, y_ref, RTOL64):
        return ""
    error = (y.double() - y_ref).abs().max().item()
    if y.dtype != torch.float64:
        return Text(
            "in float64 your output comes back as {dtype} (error {error:.1e}): something inside "
            "is made in float32; create tensors with dtype=x.dtype",
            dtype=str(y.dtype),
            error=error,
        )
    return Text(
        "right in float32, but in float64 the output is off by {error:.1e}: only float64 "
        "separates this from right; a small bug float32 rounding hides",
        error=error,
    )
