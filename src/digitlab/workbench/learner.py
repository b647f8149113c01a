"""The "learner" backend: a run on a learner's file of layers (`train --layers FILE.py`), checked
against PyTorch first, with digitlab.scratch's classes where the file has none."""

from __future__ import annotations

import types
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.workbench.layerfile import (
    LAYERS,
    NAMES,
    adapt,
    find_classes,
    import_file,
    interface_of,
)


def learner_backend(path: str | Path, optimizer: str = "adam"):
    """The "learner" backend: the file's classes where it has them, digitlab.scratch's elsewhere.

    The file is checked first (workbench.layercheck, in a child process); a class the run needs
    that fails refuses the run with the check's summary. Template layers are adapted."""
    from digitlab import scratch
    from digitlab.nets import backends
    from digitlab.workbench.layercheck import check_file

    result = check_file(path)
    unused = {"SGD", "Adam"} - {optimizer.upper() if optimizer == "sgd" else optimizer.title()}
    failing = sorted({r["layer"] for r in result["rows"] if not r["ok"]} - unused)
    if failing:
        from digitlab.workbench.report import summary

        raise DigitlabError(
            f"{path}: {', '.join(failing)} {'do' if len(failing) > 1 else 'does'} not match "
            f"PyTorch yet ({summary(result)}"
            f"{initialisation(result)}); not training on them: see digitlab check --layers {path}"
        )
    found = find_classes(import_file(path))
    own = {name: adapt(name, cls, interface_of(name, cls)) for name, cls in found.items()}
    own = {name: cls for name, cls in own.items() if name not in unused}
    layers = types.SimpleNamespace(
        **{
            **{k: getattr(scratch, k) for k in scratch.__all__},
            **{k: own[k] for k in own if k in LAYERS},
        }
    )
    optim = types.SimpleNamespace(
        SGD=own.get("SGD", scratch.SGD), Adam=own.get("Adam", scratch.Adam)
    )
    loss = smoothing_checked(own["CrossEntropyLoss"]) if "CrossEntropyLoss" in own else None
    yours = [f"{n} ({interface_of(n, found[n])})" for n in own]
    theirs = [n for n in NAMES if n not in own and n not in unused]
    used = [r for r in result["rows"] if r["layer"] not in unused]
    note = (
        f"checked against PyTorch: all {len(used)} cases of the classes this run uses pass; "
        f"your classes from {Path(path).name}: {', '.join(yours)}; digitlab.scratch's: "
        + ", ".join([*theirs, "any other layer the net needs (Sequential, BatchNorm2d, ...)"])
    )
    loss = loss or scratch.CrossEntropyLoss
    return backends.Backend("learner", layers, optim, loss, autograd=False, note=note)


def initialisation(result: dict) -> str:
    """'; X's initial parameters: ...' for each class whose constructor's parameters fail."""
    from digitlab.workbench.cases import INIT

    said = [
        f"; {row['layer']}'s initialisation: {row['failures'][0]['message']}"
        for row in result["rows"]
        if row["case"] == INIT and not row["ok"]
    ]
    return "".join(said)


def smoothing_checked(loss: type):
    """The learner's CrossEntropyLoss as a run makes it. digitlab check tests it without label
    smoothing; a run with smoothing (the recipes use it) first compares it with PyTorch's at that
    value, and refuses in one line with the fix if it does not take the argument or disagrees."""

    def make(label_smoothing: float = 0.0):
        if not label_smoothing:
            return loss()
        check_smoothing(loss, label_smoothing)
        return loss(label_smoothing=label_smoothing)

    return make


def check_smoothing(loss: type, label_smoothing: float) -> None:
    """DigitlabError unless the learner's `loss` class, made with `label_smoothing`, gives
    PyTorch's loss and dL/dlogits."""
    from digitlab.workbench.cases import Case
    from digitlab.workbench.exceptions import LearnerError
    from digitlab.workbench.loss_and_optimizers import run_loss_case

    fix = "or train on it without smoothing: add --label-smoothing 0"
    kwargs = {"label_smoothing": label_smoothing}
    case = Case("CrossEntropyLoss", "label smoothing", "loss", kwargs=kwargs, shape=(8, 10))
    try:
        failures = run_loss_case(case, loss)
    except LearnerError as e:
        raise DigitlabError(
            f"this run smooths labels by {label_smoothing} (a recipe or --label-smoothing), and "
            f"your CrossEntropyLoss(label_smoothing={label_smoothing}) raised "
            f"{type(e.__cause__).__name__}: give its __init__ that argument, as PyTorch's, {fix}"
        ) from e
    if failures:
        raise DigitlabError(
            f"your CrossEntropyLoss(label_smoothing={label_smoothing}) does not match PyTorch's "
            f"({failures[0].tensor}: {failures[0].message}; PyTorch's targets: 1 - S + S/C for "
            f"the true class, S/C for each other, S = {label_smoothing}, C classes); fix it, {fix}"
        )
