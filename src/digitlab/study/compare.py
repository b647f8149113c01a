"""Several configurations trained on the same data and seed, measured side by side, reported.

A configuration is "model/backend/optimizer[/lr]", e.g. "cnn/scratch/adam" or "cnn/torch/sgd/0.01".
Each one trains with `digitlab train` in a process of its own into OUT/runs/NAME (checkpoints and
all) and leaves its measured row in OUT/runs/NAME/row.json; a rerun skips finished rows and
resumes unfinished runs, so a long comparison can be stopped and started again.
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import time
from pathlib import Path

import torch

from digitlab.data.mnist import load_split
from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.nets import backends, checkpoint, models, own_model
from digitlab.nets.model_spec import is_file_spec
from digitlab.read.predictor import Predictor
from digitlab.study import plots
from digitlab.study.compare_configs import cache_key, parse_config, run_name, train_command
from digitlab.train.run import make_backend
from digitlab.train.run_files import read_metrics
from digitlab.train.settings import TrainConfig, load_resume_config

COLUMNS = [
    ("config", "configuration"),
    ("parameters", "parameters"),
    ("test_accuracy", "test accuracy"),
    ("train_seconds", "training s"),
    ("seconds_per_epoch", "s / epoch"),
    ("inference_per_second", "inference images/s"),
    ("peak_memory_mib", "peak memory MiB"),
    ("corrupted_accuracy", "corrupted accuracy (MNIST-C mean)"),
]


def inference_rate(predictor: Predictor, test) -> float:
    """Test images classified per second, in batches of 250 (the best of three passes)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        predictor.logits(test.images)
        best = min(best, time.perf_counter() - start)
    return len(test) / best


def run_training(command: list[str], name: str) -> dict:
    """Run a training process (one per configuration, so no row's allocations or warm caches
    flatter or burden the next); returns its --json result."""
    process = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if process.returncode != 0:
        raise DigitlabError(f"{name}: training failed (exit {process.returncode}); see above")
    return json.loads(process.stdout.strip().splitlines()[-1])


def model_label(config: TrainConfig) -> str:
    """A built-in net's name, or a learner's model named after their class."""
    if not is_file_spec(config.model):
        return config.model
    return own_model.describe(config.model, config.model_args)["class"]


def measure(name: str, config: TrainConfig, run: Path, progress: bool, log) -> dict:
    """Train (or resume) one configuration and return its row; cached in run/row.json."""
    settings = cache_key(config)
    row_file = run / "row.json"
    if row_file.is_file():
        row = json.loads(row_file.read_text(encoding="utf-8"))
        if row.get("settings") == settings and row.get("epochs") == config.epochs:
            log(f"{name}: done before, skipped")
            return row
    resume = (run / checkpoint.RESUME).is_file()
    if resume:
        saved = load_resume_config(run)
        resume = cache_key(saved) == settings
    log(f"{name}: {'resuming' if resume else 'training'}")
    result = run_training(train_command(config, run, resume, progress), name)
    # The row's own layers (a learner's too) classify the test set for the inference rate.
    backend = make_backend(config)
    predictor = Predictor.load(run, backend=backend)
    test = load_split(config.data_dir, train=False)
    metrics = read_metrics(run)
    row = {
        "config": name,
        "model": model_label(config),
        "backend": config.backend,
        "autograd": backend.autograd,  # False: hand-written backward (scratch's or a learner's)
        "optimizer": config.optimizer,
        "lr": config.lr,
        "epochs": config.epochs,
        "settings": settings,
        "parameters": models.count_parameters(predictor.model),
        "test_accuracy": result["test_accuracy"],
        "train_seconds": round(result["train_seconds"], 2),
        "seconds_per_epoch": round(result["train_seconds"] / result["epochs"], 2),
        "inference_per_second": round(inference_rate(predictor, test)),
        # Resident memory the training steps needed at their peak, beyond what the process held
        # before them (interpreter, libraries, the dataset): the model's own cost.
        "peak_memory_mib": max((r.get("peak_memory_mib") or 0) for r in metrics) or None,
        "curve": [
            {
                "epoch": r["epoch"],
                "test_accuracy": r["test_accuracy"],
                "train_seconds": r["train_seconds"],
            }
            for r in metrics
            if "test_accuracy" in r  # with --val-split, the test set is read after the last epoch
        ],
        "step_loss": [v for r in metrics for v in r["step_loss"]],
    }
    atomic_write(row_file, json.dumps(row).encode())
    return row


def add_robustness(row: dict, run: Path, config: TrainConfig, limit: int) -> dict:
    """The row's accuracy under each MNIST-C corruption (first `limit` test images) and their
    mean; kept in row.json, so a rerun only recomputes it for another limit."""
    from digitlab.study.robustness import evaluate_robustness, names_of

    if row.get("robustness_images") == limit:
        return row
    test = load_split(config.data_dir, train=False)
    result = evaluate_robustness(Predictor.load(run), test, names_of(None), limit)
    row["corrupted_accuracy"] = result["mean_corruption_accuracy"]
    row["corruptions"] = {r["corruption"]: r["accuracy"] for r in result["rows"]}
    row["robustness_images"] = limit
    atomic_write(run / "row.json", json.dumps(row).encode())
    return row


def curves_figure(rows: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for row in rows:
        # Dashed for the hand-written layers: where they match PyTorch, both lines show.
        autograd = row["autograd"] if "autograd" in row else backends.get(row["backend"]).autograd
        hand_written = not autograd
        style = "--" if hand_written else "-"
        losses = row["step_loss"]
        on_top = 3 if hand_written else 2
        (line,) = ax_loss.plot(
            range(1, len(losses) + 1),
            plots.smooth(losses),
            style,
            label=row["config"],
            zorder=on_top,
        )
        ax_acc.plot(
            [c["epoch"] for c in row["curve"]],
            [100 * c["test_accuracy"] for c in row["curve"]],
            "o" + style,
            color=line.get_color(),
            label=row["config"],
        )
    ax_acc.set_xticks(range(1, max(len(row["curve"]) for row in rows) + 1))
    plots.plain_log_axis(ax_loss)
    ax_loss.set(
        xlabel="training step", ylabel="smoothed training loss (log scale)", title="learning curves"
    )
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return plots.save(fig, path)


def accuracy_time_figure(rows: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    for row in rows:
        seconds = [c["train_seconds"] for c in row["curve"]]
        accuracy = [100 * c["test_accuracy"] for c in row["curve"]]
        ax.plot(seconds, accuracy, "o-")
        ax.annotate(
            row["config"],
            (seconds[-1], accuracy[-1]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.margins(x=0.25, y=0.15)
    ax.set(
        xlabel="training seconds (this machine)",
        ylabel="test accuracy (%)",
        title="accuracy against training time (up and left is better)",
    )
    ax.grid(alpha=0.3)
    return plots.save(fig, path)


def robustness_figure(rows: list[dict], path: Path) -> Path:
    """Accuracy under each corruption, one bar per row, grouped by corruption."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows[0]["corruptions"])
    fig, ax = plt.subplots(figsize=(12, 4.5), constrained_layout=True)
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        heights = [100 * row["corruptions"][n] for n in names]
        ax.bar(np.arange(len(names)) + k * width, heights, width, label=row["config"])
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=40, ha="right")
    ax.set(ylabel="accuracy (%)", ylim=(0, 100), title="accuracy under each MNIST-C corruption")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def cell(key: str, value) -> str:
    if value is None:
        return "n/a"
    if key in ("test_accuracy", "corrupted_accuracy"):
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_report(rows: list[dict], out: Path, settings: str) -> Path:
    """report.md and a self-contained report.html (pictures inlined) in `out`."""
    figures = [
        curves_figure(rows, out / "curves.png"),
        accuracy_time_figure(rows, out / "accuracy_vs_time.png"),
    ]
    if all("corruptions" in row for row in rows):
        figures.append(robustness_figure(rows, out / "robustness.png"))
    header = [title for _, title in COLUMNS]
    table = [[cell(key, row.get(key)) for key, _ in COLUMNS] for row in rows]
    md = [
        "# digitlab compare",
        "",
        settings,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    md += ["| " + " | ".join(line) + " |" for line in table]
    md += [""] + [f"![{p.stem}]({p.name})" for p in figures] + [""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")

    def img(p: Path) -> str:
        data = base64.b64encode(p.read_bytes()).decode()
        return f'<img alt="{p.stem}" src="data:image/png;base64,{data}">'

    head = "".join(f"<th>{html.escape(t)}</th>" for t in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in table
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>digitlab compare</title><style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.4em 0.8em; text-align: right; }}
th {{ background: #eef3fb; }} td:first-child {{ text-align: left; font-family: monospace; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
</style></head><body>
<h1>digitlab compare</h1><p>{html.escape(settings)}</p>
<table><tr>{head}</tr>{body}</table>
{"".join(img(p) for p in figures)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def compare(
    configs: list[str],
    base: TrainConfig,
    out: str | Path,
    progress: bool = True,
    log=print,
    robustness: int | None = 1000,
) -> dict:
    """Train and measure each configuration (and, unless robustness is None, its accuracy on
    the first `robustness` test images under the 15 MNIST-C corruptions); write the report.
    {"report", "rows"}."""
    out = Path(out)
    parsed = {name: parse_config(name, base) for name in configs}
    rows = []
    for name, config in parsed.items():
        run = out / "runs" / run_name(name)
        row = measure(name, config, run, progress, log)
        if robustness:
            row = add_robustness(row, run, config, robustness)
        rows.append(row)
    subset = f"{base.subset} training images" if base.subset else "all training images"
    settings = (
        f"{base.epochs} epoch(s), batch {base.batch_size}, seed {base.seed}, {subset}, "
        f"on {torch.get_num_threads()} CPU threads"
    )
    report = write_report(rows, out, settings)
    table = [
        {k: v for k, v in row.items() if k not in ("curve", "step_loss", "settings", "corruptions")}
        for row in rows
    ]
    return {"report": str(report), "rows": table}
