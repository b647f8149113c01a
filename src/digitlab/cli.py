"""The `digitlab` command: parse flags, call one function, print. Nothing else lives here.

Parsing imports no torch: each command imports what it needs when it runs, so --help, a bad flag
or a missing file answer at once."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from importlib.metadata import version as package_version
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.study.compare_configs import DEFAULT_CONFIGS, SHARED_FLAGS
from digitlab.train import settings
from digitlab.train.settings import DEVICES, positive_float, positive_int


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (exit 2), not a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def shell_quote(text: str) -> str:
    """`text` as one argument of the user's shell: POSIX quoting, or cmd.exe's on Windows (where
    single quotes are not quotes)."""
    return subprocess.list2cmdline([text]) if sys.platform == "win32" else shlex.quote(text)


def progress_flags(p) -> None:
    """Progress bars show on a terminal; piped into a file or a CI log, one line per epoch."""
    bars = p.add_mutually_exclusive_group()
    bars.add_argument("--quiet", action="store_true", help="no progress bar")
    bars.add_argument(
        "--progress", action="store_true", help="progress bars even when not on a terminal"
    )


def progress_of(args) -> bool | None:
    """False (--quiet), True (--progress) or None: on a terminal only."""
    return False if args.quiet else True if args.progress else None


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on MNIST (or --data-dir)",
        description="Train a model. Under torchrun (torchrun --nproc-per-node=N -m digitlab "
        "train ...) the processes train data-parallel; --batch-size is then the batch of all "
        "processes together.",
    )
    settings.add_flags(p)
    add_lang(p, "the language of what a run on your --layers says")
    p.add_argument("--out", help="run folder (default runs/MODEL-BACKEND)")
    p.add_argument("--resume", metavar="OUT", help="continue the run in OUT")
    progress_flags(p)
    p.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test-set metrics of a checkpoint")
    p.add_argument(
        "checkpoint", metavar="CKPT", help="run folder or its model.safetensors, or 'pretrained'"
    )
    p.add_argument("--data-dir", help="evaluate on this dataset (default: the run's own)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the probabilities over the image and its four "
        "one-pixel shifts (five forward passes)",
    )
    p.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    p.add_argument("--json", action="store_true")


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="the digit in each image file or folder of images")
    p.add_argument("images", nargs="+", metavar="IMG", help="an image file, or a folder of them")
    p.add_argument("--recursive", action="store_true", help="also the images in subfolders")
    p.add_argument("--checkpoint", help="run folder (default: the shipped pretrained model)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--multi", action="store_true", help="read a number of several digits")
    p.add_argument(
        "--explain",
        metavar="DIR",
        help="also write why: saliency and occlusion maps over what the model saw, as PNGs",
    )
    p.add_argument(
        "--runtime",
        choices=["torch", "onnx"],
        default="torch",
        help="onnx: run an exported model (--checkpoint FILE.onnx) with onnxruntime",
    )
    p.add_argument("--json", action="store_true")


def add_app(sub) -> None:
    p = sub.add_parser("app", help="the drawing app in your browser")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=positive_int, default=7860)
    p.add_argument("--checkpoint", help="run folder (default: the shipped pretrained model)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="sign-in (Gradio's auth)")
    p.add_argument("--auth-file", metavar="FILE", help="sign-in: one USER:PASSWORD a line")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="serve off the loopback without sign-in (anyone on the network can train)",
    )


def add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="train several configurations and report side by side",
        description="Each configuration trains with `digitlab train`; the settings below are "
        "shared by all of them.",
    )
    p.add_argument(
        "--configs",
        help=f"comma-separated model/backend/optimizer[/lr] (default {','.join(DEFAULT_CONFIGS)})",
    )
    settings.add_flags(p, SHARED_FLAGS)
    p.add_argument("--out", default="runs/compare", help="report folder (default runs/compare)")
    p.add_argument(
        "--robustness-limit",
        type=positive_int,
        default=1000,
        metavar="N",
        help="MNIST-C accuracy on the first N test images (default 1000)",
    )
    p.add_argument("--no-robustness", action="store_true", help="skip the MNIST-C column")
    progress_flags(p)
    p.add_argument("--json", action="store_true")


def add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="teach a model your handwriting from labelled drawings")
    p.add_argument("checkpoint", metavar="CKPT", help="run folder, or 'pretrained'")
    p.add_argument(
        "--images", required=True, metavar="DIR", help="DIR/<label>/*.png or DIR/<label>_*.png"
    )
    p.add_argument("--out", required=True, metavar="RUN", help="the new run folder")
    p.add_argument("--json", action="store_true")


def add_robustness(sub) -> None:
    p = sub.add_parser(
        "robustness", help="accuracy under the 15 MNIST-C corruptions of the test set"
    )
    p.add_argument("checkpoint", metavar="CKPT", help="run folder, or 'pretrained'")
    p.add_argument(
        "--on",
        choices=["test", "validation"],
        default="test",
        help="corrupt the test set, or the run's held-out training images (to choose settings)",
    )
    p.add_argument("--corruptions", help="comma-separated names (default: all 15)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="the first N images")
    p.add_argument("--seed", type=int, default=0, help="the corruptions' random seed")
    p.add_argument("--data-dir", help="corrupt this dataset's images (default: the run's)")
    p.add_argument("--out", help="folder for the pictures (default: the run folder)")
    p.add_argument("--json", action="store_true")


def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a trained model for deployment")
    p.add_argument("checkpoint", metavar="CKPT", help="run folder or its model.safetensors")
    p.add_argument("--onnx", required=True, metavar="FILE", help="write an ONNX model here")
    p.add_argument("--json", action="store_true")


def add_summary(sub) -> None:
    p = sub.add_parser(
        "summary",
        help="the layer table of a net: output shape and parameters of each child",
    )
    p.add_argument("model", type=settings.model_name, metavar="NAME|FILE.py[:Class]")
    p.add_argument("--model-args", type=settings.json_object, metavar="JSON")
    p.add_argument("--json", action="store_true")


def add_check(sub) -> None:
    p = sub.add_parser(
        "check",
        help="compare every hand-written layer with PyTorch, or yours with --layers",
        description="Without --layers: digitlab.scratch's layers, loss and optimizers against "
        "PyTorch. With --layers FILE.py: your own classes (Conv2d, Linear, ReLU, MaxPool2d, "
        "Flatten, CrossEntropyLoss, SGD, Adam; digitlab's interface or the recruitment "
        "template's), case by case, with what is wrong, where, and the likely bug.",
    )
    p.add_argument("--layers", metavar="FILE.py", help="check the layers in your own file")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="seconds each case of your code may run (default 60)",
    )
    p.add_argument("--pictures", metavar="DIR", help="also write PNG maps of wrong positions")
    p.add_argument(
        "--show-output",
        action="store_true",
        help="show what your code printed (kept out of the report otherwise)",
    )
    add_lang(p, "the report's language")
    p.add_argument("--json", action="store_true")


def add_lang(p, what: str) -> None:
    p.add_argument(
        "--lang",
        choices=["en", "zh"],
        default=None,
        help=f"{what}: en (English) or zh (中文); default zh where the locale is zh_*, else en",
    )


def add_exercise(sub) -> None:
    p = sub.add_parser(
        "exercise", help="write a starter file of layers to fill in, and a short guide"
    )
    p.add_argument("folder", metavar="DIR", help="where to write layers.py and README.md")
    p.add_argument(
        "--style",
        choices=["digitlab", "template"],
        default="digitlab",
        help="digitlab's interface (default) or the recruitment template's",
    )
    p.add_argument(
        "--notebook",
        action="store_true",
        help="also write DIR/layers.ipynb: the guide, a cell per class, a check cell after each",
    )
    add_lang(p, "the language of the guide and the starter's comments")


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="speed of the hand-written layers against PyTorch")
    p.add_argument(
        "--quick", action="store_true", help="fewer repetitions: a first look, not a record"
    )
    p.add_argument(
        "--records",
        action="store_true",
        help="also train the speedrun recipe with both backends over 5 seeds (1 with --quick)",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="run the whole bench N times; each row gives the median over them (default 1)",
    )
    p.add_argument("--json", action="store_true")


def build_parser() -> Parser:
    parser = Parser(prog="digitlab", description="A handwritten-digit lab on PyTorch.")
    parser.add_argument("--version", action="version", version=package_version("digitlab"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def cmd_train(args) -> int:
    from digitlab.train.loop import fit

    if args.lang:  # for the checks of a learner's layers (workbench.messages.default_lang)
        os.environ["DIGITLAB_LANG"] = args.lang

    given = settings.given(args)
    if args.resume:
        out = Path(args.resume)
        config = settings.configure(given, resume=out)
    else:
        config = settings.configure(given, command="digitlab " + shlex.join(args.argv))
        out = Path(args.out) if args.out else settings.default_out(config)
    log = (lambda text: print(text, file=sys.stderr)) if args.json else print
    try:
        result = fit(
            config,
            out,
            resume=bool(args.resume),
            progress=progress_of(args),
            log=log,
            quiet=args.quiet,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; {interrupted_hint(out)}", file=sys.stderr)
        return 130
    if not result:  # a data-parallel rank other than 0: rank 0 reports
        return 0
    if config.layers:  # a learner's layers: the same run on PyTorch's, to read beside it
        result["reference"] = torch_reference(config, out)
    if not args.no_pictures:
        draw_run_pictures(out, config.data_dir, log)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"test accuracy {result['test_accuracy']:.4f} after {result['epochs']} epoch(s), "
        f"{result['train_seconds']:.1f} s of training; checkpoint {result['checkpoint']}"
    )
    if "reference" in result:
        print(
            f"the same run on PyTorch's layers: test accuracy "
            f"{result['reference']['test_accuracy']:.4f}, "
            f"{result['reference']['train_seconds']:.1f} s of training"
        )
    return 0


def interrupted_hint(out: Path) -> str:
    """What Ctrl-C kept, and the command that continues the run."""
    from digitlab.nets import checkpoint

    if (out / checkpoint.RESUME).is_file():
        return (
            f"finished epochs are saved in {out}; continue with: "
            f"digitlab train --resume {shell_quote(str(out))}"
        )
    return "no epoch had finished, so nothing was saved; run the command again"


def torch_reference(config, out: Path) -> dict:
    """A learner's run trained again on PyTorch's layers, into out/torch-reference."""
    import dataclasses

    from digitlab.train.loop import fit

    reference = fit(
        dataclasses.replace(config, backend="torch", layers=None),
        out / REFERENCE,
        progress=False,
        log=lambda text: None,
    )
    return {k: reference[k] for k in ("test_accuracy", "train_seconds")}


REFERENCE = "torch-reference"  # train --layers: the same run on PyTorch's layers, in RUN/this


def draw_run_pictures(run: Path, data_dir, log) -> None:
    """The run's PNGs (learning curves, confusion matrix, digits, filters, feature maps); a
    learner's run's learning curves show its PyTorch twin's beside it."""
    from digitlab.data.mnist import load_split
    from digitlab.read.predictor import Predictor
    from digitlab.study.plots import write_run_pictures
    from digitlab.train.run_files import read_metrics

    reference = read_metrics(run / REFERENCE) or None  # [] where there is no twin
    test = load_split(data_dir, train=False)
    paths = write_run_pictures(Predictor.load(run), read_metrics(run), test, run, reference)
    log(f"pictures: {', '.join(p.name for p in paths)} in {run}")


def cmd_compare(args) -> int:
    from digitlab.study.compare import compare

    given = settings.given(args, SHARED_FLAGS)
    base = settings.configure(given, device="cpu", command="digitlab " + shlex.join(args.argv))
    configs = args.configs.split(",") if args.configs else list(DEFAULT_CONFIGS)
    log = (lambda text: print(text, file=sys.stderr)) if args.json else print
    limit = None if args.no_robustness else args.robustness_limit
    result = compare(configs, base, args.out, progress=progress_of(args), log=log, robustness=limit)
    if args.json:
        print(json.dumps(result))
        return 0
    keys = [
        "config",
        "parameters",
        "test_accuracy",
        "train_seconds",
        "seconds_per_epoch",
        "inference_per_second",
        "peak_memory_mib",
        "corrupted_accuracy",
    ]
    print("  ".join(f"{k:>20}" for k in keys))
    for row in result["rows"]:
        print("  ".join(f"{str(row.get(k)):>20}" for k in keys))
    print(f"report: {result['report']}")
    return 0


def cmd_evaluate(args) -> int:
    from digitlab.data.mnist import load_split
    from digitlab.nets import checkpoint
    from digitlab.nets.evaluation import evaluate
    from digitlab.read.predictor import Predictor
    from digitlab.train.device import resolve_device

    predictor = Predictor.load(args.checkpoint, device=str(resolve_device(args.device)))
    config = predictor.config
    data_dir = args.data_dir if args.data_dir is not None else config.get("data_dir")
    test = load_split(data_dir, train=False)
    report = evaluate(predictor.model, test, predictor.mean, predictor.std, tta=args.tta)
    run = checkpoint.resolve(args.checkpoint)[0].parent
    if not args.no_pictures and run.resolve() != checkpoint.PRETRAINED_DIR.resolve():
        draw_run_pictures(run, data_dir, lambda text: print(text, file=sys.stderr))
    if args.json:
        print(json.dumps({k: report[k] for k in ("accuracy", "per_class", "confusion")}))
        return 0
    print(
        f"{config['model']} ({config.get('backend', 'torch')}) on {len(test)} test images "
        f"of {config.get('dataset', {}).get('name', 'mnist')}"
        + (", averaged over one-pixel shifts (--tta)" if args.tta else "")
    )
    print(f"accuracy {report['accuracy']:.4f}   loss {report['loss']:.4f}\n")
    names = predictor.classes
    width = max(5, *map(len, names))
    print(f"{'class':>{width}}  precision  recall  support")
    for row in report["per_class"]:
        print(
            f"{names[row['class']]:>{width}}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  "
            f"{row['support']:>7}"
        )
    print("\nconfusion matrix (rows: true class, columns: predicted)")
    print(" " * width + "".join(f"{c:>6}" for c in range(len(report["confusion"]))))
    for c, row in enumerate(report["confusion"]):
        print(f"{names[c]:>{width}}" + "".join(f"{v:>6}" for v in row))
    return 0


def cmd_predict(args) -> int:
    missing = [path for path in args.images if not Path(path).exists()]
    if missing:  # said before torch loads, in a fraction of a second
        raise DigitlabError(f"{missing[0]}: no such file or folder; check the path")
    from digitlab.read.predictor import Predictor, describe, read_files
    from digitlab.read.preprocess import image_files
    from digitlab.train.device import resolve_device

    if args.runtime == "onnx" and args.checkpoint is None:
        raise DigitlabError(
            "--runtime onnx: give --checkpoint FILE.onnx, written by digitlab export CKPT "
            "--onnx FILE.onnx"
        )
    device = "cpu" if args.runtime == "onnx" else str(resolve_device(args.device))
    if args.explain and args.runtime == "onnx":
        raise DigitlabError("--explain needs the model's backward: use it without --runtime onnx")
    files, not_images = image_files(args.images, args.recursive)
    predictor = Predictor.load(args.checkpoint, runtime=args.runtime, device=device)
    readings, unreadable = read_files(predictor, files, args.multi)
    if not_images + unreadable:
        print(
            f"skipped {not_images + unreadable} file(s) in the folder(s) given: {not_images} "
            f"without an image extension, {unreadable} unreadable as an image",
            file=sys.stderr,
        )
    if not readings:
        raise DigitlabError(f"{', '.join(args.images)}: none of the images could be read")
    predictions = [prediction(predictor, path, reading, args) for path, reading in readings]
    if args.json:
        print(json.dumps({"predictions": predictions}))
        return 0
    for path, reading in readings:
        print(f"{path}: {describe(reading, predictor.classes)}")
    return 0


def prediction(predictor, path: Path, reading, args) -> dict:
    """predict --json's item for one image: the first digit's fields (with --multi also the
    number and every digit), and with --explain the paths of the maps written."""
    item = {
        "path": str(path),
        "digit": reading.digit,
        "confidence": reading.confidence,
        "unsure": reading.unsure[0],
        "probabilities": [round(v, 6) for v in reading.probabilities[0].tolist()],
    }
    if args.multi:
        item["text"] = reading.text
        item["digits"] = [
            {"digit": int(q.argmax()), "confidence": q.max().item(), "unsure": u}
            for q, u in zip(reading.probabilities, reading.unsure, strict=True)
        ]
    if args.explain:
        from digitlab.read.explain import write_explanations

        paths = write_explanations(predictor, reading, args.explain, path.stem)
        item["explanations"] = [str(p) for p in paths]
    return item


def cmd_finetune(args) -> int:
    from digitlab.read.predictor import Predictor
    from digitlab.train.finetune import finetune

    if Path(args.out).exists():
        raise DigitlabError(f"--out {args.out}: exists already; choose a new run folder")
    result = finetune(Predictor.load(args.checkpoint), args.images, args.out)
    if args.json:
        print(json.dumps(result))
        return 0
    b, a = result["before"], result["after"]
    print(
        f"your held-out drawings: {b['yours']:.1%} -> {a['yours']:.1%}; MNIST test: "
        f"{b['mnist']:.2%} -> {a['mnist']:.2%} ({result['seconds']:.1f} s); {result['checkpoint']}"
    )
    return 0


def cmd_robustness(args) -> int:
    import time

    from digitlab.nets import checkpoint
    from digitlab.read.predictor import Predictor
    from digitlab.study import robustness

    names = robustness.names_of(args.corruptions)
    predictor = Predictor.load(args.checkpoint)
    data_dir = args.data_dir if args.data_dir is not None else predictor.config.get("data_dir")
    start = time.perf_counter()
    images = robustness.images_for(predictor.config, args.on, data_dir)
    result = robustness.evaluate_robustness(predictor, images, names, args.limit, args.seed)
    seconds = time.perf_counter() - start
    run = checkpoint.resolve(args.checkpoint)[0].parent
    out = Path(args.out) if args.out else run
    if out.resolve() == checkpoint.PRETRAINED_DIR.resolve():
        out = Path("runs/robustness-pretrained")  # never write into the package
    title = predictor.config["model"] + (", held-out training images" * (args.on != "test"))
    paths = robustness.write_robustness_pictures(result, out, title)
    keys = ("clean_accuracy", "mean_corruption_accuracy")
    if args.json:
        fields = ("corruption", "accuracy", "error", "relative_error")
        rows = [{k: r[k] for k in fields} for r in result["rows"]]
        print(json.dumps({**{k: result[k] for k in keys}, "rows": rows}))
        return 0
    print(robustness.table(result))
    print(
        f"clean accuracy {result['clean_accuracy']:.4f}; mean corruption accuracy "
        f"{result['mean_corruption_accuracy']:.4f} (mean error "
        f"{result['mean_corruption_error']:.4f}) on {result['images']} "
        f"{'test' if args.on == 'test' else 'held-out training'} images, "
        f"{seconds:.1f} s"
    )
    print(f"pictures: {', '.join(str(p) for p in paths)}")
    return 0


def cmd_export(args) -> int:
    from digitlab.read.export import export_onnx

    result = export_onnx(args.checkpoint, args.onnx)
    if args.json:
        print(json.dumps(result))
    else:
        dynamic = ", ".join(result["dynamic"])
        print(f"wrote {result['onnx']} ({result['model']}; dynamic {dynamic})")
    return 0


def cmd_summary(args) -> int:
    """digitlab summary NAME|FILE.py[:Class]: a learner's class is walked first, so that a
    wrong size is its one line, not a table."""
    from digitlab.nets import models, own_model
    from digitlab.nets.model_spec import is_file_spec

    model = models.build(args.model, "torch", args.model_args)
    if is_file_spec(args.model):
        own_model.walk(model)
    table = own_model.summary(model)
    if args.json:
        rows = [{k: r[k] for k in ("name", "output_shape", "parameters")} for r in table["layers"]]
        print(json.dumps({"layers": rows, "parameters": table["parameters"]}))
    else:
        print(table["text"])
    return 0


def cmd_app(args) -> int:
    import importlib.util

    from digitlab.app.server import launch, sign_in

    accounts = sign_in(args.host, args.auth, args.auth_file, args.no_auth)

    if importlib.util.find_spec("gradio") is None:
        raise DigitlabError(
            "the app needs Gradio, which is not installed; pip install 'digitlab[app]'"
        )
    launch(args.host, args.port, args.checkpoint, accounts)
    return 0


def cmd_check(args) -> int:
    """digitlab check [--layers FILE.py]: digitlab.scratch's classes, or the file's, case by
    case against PyTorch; exit 0 only when every case passes."""
    from digitlab.workbench import report
    from digitlab.workbench.layercheck import check_scratch

    result = check_layers(args) if args.layers else check_scratch()
    if args.json:
        print(json.dumps(report.as_json(result)))
    else:
        print("\n".join(report.format_report(result, args.show_output, language(args))))
    if args.pictures:
        paths = report.write_pictures(result, args.pictures)
        print(f"{len(paths)} map(s) of wrong positions in {args.pictures}", file=sys.stderr)
    return 0 if result["ok"] else 1


def language(args) -> str:
    """--lang, or the locale's language (workbench.messages.default_lang)."""
    if getattr(args, "lang", None):
        return args.lang
    from digitlab.workbench.messages import default_lang

    return default_lang()


def check_layers(args) -> dict:
    """The check of the file given with --layers; a file that cannot be imported shows its
    traceback (or its syntax error, as Python shows it) once, then the one-line error."""
    from digitlab.workbench.layercheck import check_file

    try:
        return check_file(args.layers, timeout=args.timeout)
    except DigitlabError as e:
        lines = getattr(e, "lines", None)
        if lines and args.json:
            print(json.dumps({"layers": [], "ok": False, "error": str(e), "traceback": lines}))
        elif lines:
            print("\n".join(lines))
        raise


def cmd_exercise(args) -> int:
    from digitlab.workbench.exercise import write_exercise

    layers, guide, *book = write_exercise(args.folder, args.style, args.notebook, language(args))
    print(f"wrote {layers} ({args.style} style) and {guide}" + "".join(f" and {b}" for b in book))
    print(f"fill in a class, then: digitlab check --layers {layers}")
    if book:
        print(f"or open {book[0]} in Jupyter: each class has its check cell")
    return 0


def cmd_bench(args) -> int:
    from digitlab.study.bench import WIDE, run_all

    result = run_all(quick=args.quick, records=args.records, repeat=args.repeat)
    if args.json:
        print(json.dumps(result))
        return 0
    for row in result["rows"]:
        print(f"{row['name']:<58} {bench_values(row)}")
    if result["freed_memory_kept"]:
        print("freed memory kept in the process (glibc's mallopt): page faults kept out of rows")
    else:
        print("freed memory left to the allocator (no glibc mallopt): page faults may sway rows")
    wide = [row["name"] for row in result["rows"] if row.get("wide")]
    if wide:
        print(
            f"warning: the rounds of {len(wide)} row(s) spread more than {WIDE:.0%} around their "
            "median (a busy machine, or a row too short to time steadily): read them with care, "
            "run again when the machine is quiet, or with --repeat 3",
            file=sys.stderr,
        )
    return 0


def bench_values(row: dict) -> str:
    """A bench row's numbers as text: the ratio with its range over the rounds."""
    shown = {k: v for k, v in row.items() if k not in ("name", "ratio_min", "ratio_max", "wide")}
    text = "  ".join(f"{k} {v}" for k, v in shown.items() if k not in ("ratio", "rounds"))
    if "ratio_min" in row:
        text += f"  ratio {row['ratio']} ({row['ratio_min']}-{row['ratio_max']} over "
        text += f"{row['rounds']} rounds{', WIDE' if row['wide'] else ''})"
    elif "ratio" in row:
        text += f"  ratio {row['ratio']}"
    return text


# name: (the function that adds its flags, the function that runs it)
COMMANDS = {
    "train": (add_train, cmd_train),
    "evaluate": (add_evaluate, cmd_evaluate),
    "predict": (add_predict, cmd_predict),
    "compare": (add_compare, cmd_compare),
    "app": (add_app, cmd_app),
    "check": (add_check, cmd_check),
    "bench": (add_bench, cmd_bench),
    "export": (add_export, cmd_export),
    "summary": (add_summary, cmd_summary),
    "exercise": (add_exercise, cmd_exercise),
    "finetune": (add_finetune, cmd_finetune),
    "robustness": (add_robustness, cmd_robustness),
}


def error_text(error: DigitlabError, args) -> str:
    """The error's line, in the learner's language where it is one of their messages (a
    workbench.messages.Text)."""
    message = error.args[0] if error.args else ""
    if hasattr(message, "render"):
        return message.render(language(args))
    return str(error)


def quiet_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit cannot fail a second time
    (the recipe of Python's documentation for SIGPIPE)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):  # a console that cannot encode a character (a GBK
        if hasattr(stream, "reconfigure"):  # one, an emoji) shows "?" rather than crash
            stream.reconfigure(errors="replace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `digitlab` alone: what it can do
        parser.print_help()
        return 0
    args.argv = argv
    try:
        return COMMANDS[args.command][1](args)
    except DigitlabError as e:
        print(f"digitlab {args.command}: error: {error_text(e, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ndigitlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `digitlab predict *.png | head`: the reader has gone, as planned
        quiet_stdout()
        return 141  # what a shell reports for a command stopped by SIGPIPE
