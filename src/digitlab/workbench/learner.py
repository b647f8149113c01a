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
from digitlab.workbench.messages import Text, default_lang


def learner_backend(path: str | Path, optimizer: str = "adam"):
    """The "learner" backend: the file's classes where it has them, digitlab.scratch's elsewhere.

    The file is checked first (workbench.layercheck, in a child process); a class the run needs
    that fails refuses the run with the check's summary. Template layers are adapted."""
    from digitlab import scratch
    from digitlab.nets import backends
    from digitlab.workbench.layercheck import check_file

    lang = default_lang()
    result = check_file(path)
    unused = {"SGD", "Adam"} - {optimizer.upper() if optimizer == "sgd" else optimizer.title()}
    failing = sorted({r["layer"] for r in result["rows"] if not r["ok"]} - unused)
    if failing:
        raise refusal(path, failing, result, lang)
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
    note = Text(
        "checked against PyTorch: all {count} cases of the classes this run uses pass; your "
        "classes from {file}: {yours}; digitlab.scratch's: {theirs}any other layer the net "
        "needs (Sequential, BatchNorm2d, ...)",
        count=len(used),
        file=Path(path).name,
        yours=", ".join(yours),
        theirs="".join(f"{name}, " for name in theirs),
    ).render(lang)
    loss = loss or scratch.CrossEntropyLoss
    return backends.Backend("learner", layers, optim, loss, autograd=False, note=note)


def refusal(path, failing: list[str], result: dict, lang: str) -> DigitlabError:
    """The one line that refuses a run on classes that fail the check."""
    from digitlab.workbench.report import summary

    fields = dict(
        path=str(path),
        classes=", ".join(failing),
        summary=summary(result, lang),
        init=initialisation(result, lang),
    )
    if len(failing) > 1:
        text = Text(
            "{path}: {classes} do not match PyTorch yet ({summary}{init}); not training on "
            "them: see digitlab check --layers {path}",
            **fields,
        )
    else:
        text = Text(
            "{path}: {classes} does not match PyTorch yet ({summary}{init}); not training "
            "on it: see digitlab check --layers {path}",
            **fields,
        )
    return DigitlabError(text.render(lang))


def initialisation(result: dict, lang: str = "en") -> str:
    """'; X's initialisation: ...' for each class whose constructor's parameters fail."""
    from digitlab.workbench.cases import INIT
    from digitlab.workbench.report import text_of

    said = [
        Text(
            "; {layer}'s initialisation: {message}",
            layer=row["layer"],
            message=text_of(row["failures"][0], "message", lang),
        ).render(lang)
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

    lang = default_lang()
    kwargs = {"label_smoothing": label_smoothing}
    case = Case("CrossEntropyLoss", "label smoothing", "loss", kwargs=kwargs, shape=(8, 10))
    try:
        failures = run_loss_case(case, loss)
    except LearnerError as e:
        refusal = Text(
            "this run smooths labels by {s} (a recipe or --label-smoothing), and your "
            "CrossEntropyLoss(label_smoothing={s}) raised {error}: give its __init__ that "
            "argument, as PyTorch's, or train on it without smoothing: add --label-smoothing 0",
            s=label_smoothing,
            error=type(e.__cause__).__name__,
        )
        raise DigitlabError(refusal.render(lang)) from e
    if failures:
        refusal = Text(
            "your CrossEntropyLoss(label_smoothing={s}) does not match PyTorch's ({tensor}: "
            "{message}; PyTorch's targets: 1 - S + S/C for the true class, S/C for each other, "
            "S = {s}, C classes); fix it, or train on it without smoothing: add "
            "--label-smoothing 0",
            s=label_smoothing,
            tensor=failures[0].tensor,
            message=failures[0].message,
        )
        raise DigitlabError(refusal.render(lang))
