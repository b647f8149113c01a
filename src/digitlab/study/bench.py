"""Speed of the hand-written layers against PyTorch's, measured in one run, reported as ratios.

Every row times the same work for both backends in alternated rounds (torch then scratch, then
scratch then torch, ...), so a busy moment slows both alike; a row gives the median ratio over its
rounds and their range, and is marked wide when the range is. Ratios are scratch time / torch
time: below 1 the hand-written code is faster. The machine's matmul peak is read again between
the rows and the best reading is the peak (a busy moment reads low, never high); a share of it
above 1 would say the peak was read in a busy moment, and is not printed.
"""

from __future__ import annotations

import ctypes
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from digitlab import scratch
from digitlab.data.mnist import load_split
from digitlab.nets import backends, models
from digitlab.nets.evaluation import evaluate
from digitlab.read.predictor import Predictor
from digitlab.train.loop import fit
from digitlab.train.recipes import settings
from digitlab.train.settings import TrainConfig
from digitlab.train.step import make_loss, train_step

BATCH = 50


WIDE = 0.25  # a row whose rounds' ratios spread more than this around their median is wide


def median_ms(fn, number: int) -> float:
    """Median over 5 rounds of the mean time of `number` calls, in milliseconds."""
    fn()  # warm up
    rounds = []
    for _ in range(5):
        rounds.append(mean_ms(fn, number))
    return statistics.median(rounds)


def mean_ms(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1000


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep the memory a process frees instead of handing it back to the
    OS, and to serve large blocks from it: True where done (Linux with glibc), False where not
    (another C library, or glibc refused). Left to its own rules, malloc handed a step's
    multi-megabyte temporaries back after a step and the next step took fresh pages from the
    OS, each a page fault and a page zeroed: 1,600-2,800 faults per PyTorch `cnn` step in each
    of five fresh processes (0-15 with the memory kept). How many depended on the order of the
    allocations, and that, not the layers, swayed the step rows (the `cnn` ratio 1.04-1.18 over
    three runs of the same code; 1.07-1.10 over five with the memory kept). A training run's
    allocator mostly settles by itself (50-130 faults per speedrun step), so this is the
    bench's alone. It lasts for the process's life."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # Blocks up to 32 MiB (glibc's own ceiling for its moving threshold) from the heap, and
    # up to 1 GiB of freed memory kept at its top. (mallopt returns 0 where it refuses.)
    kept_blocks = bool(mallopt(m_mmap_threshold, 32 << 20))
    return bool(mallopt(m_trim_threshold, 1 << 30)) and kept_blocks


def alternated(runs: dict, number: int, rounds: int) -> dict[str, list[float]]:
    """{backend: [mean ms of `number` calls, one per round]}: the backends take turns within a
    round, and the first of a round alternates, so that a busy moment slows both alike."""
    for fn in runs.values():
        fn()  # warm up
    samples = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            samples[name].append(mean_ms(runs[name], number))
    return samples


def forward_backward(layer, x: torch.Tensor, backend: backends.Backend):
    """A function running forward and backward of `layer` on x with the backend's machinery."""
    if not backend.autograd:

        def run():
            y = layer(x)
            layer.backward(torch.ones_like(y))

    else:
        x = x.clone().requires_grad_(True)

        def run():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            y = layer(x)
            y.backward(torch.ones_like(y))

    return run


# The CNN's layers at their shapes for a batch of 50.
LAYERS = [
    ("conv1 Conv2d(1, 16, 5, 1, 2)", lambda m: m.Conv2d(1, 16, 5, 1, 2), (BATCH, 1, 28, 28)),
    ("ReLU (16, 28, 28)", lambda m: m.ReLU(), (BATCH, 16, 28, 28)),
    ("MaxPool2d(2) (16, 28, 28)", lambda m: m.MaxPool2d(2), (BATCH, 16, 28, 28)),
    ("conv2 Conv2d(16, 32, 5, 1, 2)", lambda m: m.Conv2d(16, 32, 5, 1, 2), (BATCH, 16, 14, 14)),
    ("ReLU (32, 14, 14)", lambda m: m.ReLU(), (BATCH, 32, 14, 14)),
    ("MaxPool2d(2) (32, 14, 14)", lambda m: m.MaxPool2d(2), (BATCH, 32, 14, 14)),
    ("out Linear(1568, 10)", lambda m: m.Linear(32 * 7 * 7, 10), (BATCH, 32 * 7 * 7)),
]


def matmul_peak_gflops(n: int = 2048, number: int = 3) -> float:
    """This machine's matrix-multiply speed now, GFLOP/s: one large float32 torch.matmul, the
    best of `number` runs (the ceiling any convolution or Linear written as products can reach)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = float("inf")
    for _ in range(number):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


class Peak:
    """The matmul peak read again between the rows of a bench: the best reading is the peak."""

    def __init__(self):
        self.readings: list[float] = []

    def read(self) -> None:
        self.readings.append(matmul_peak_gflops())

    def row(self) -> dict:
        return {
            "name": f"matmul peak: 2048x2048 float32, {torch.get_num_threads()} threads, best of "
            f"{len(self.readings)} readings between the rows",
            "gflops": round(max(self.readings), 1),
            "gflops_min": round(min(self.readings), 1),
        }


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x2 of the Conv2d and Linear layers in one forward pass of x (torch layers);
    ReLU, pooling and the rest are memory-bound and left out."""
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * output.numel() * per_output
        elif isinstance(layer, torch.nn.Linear):
            total += 2 * output.numel() * layer.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return total


def layer_rows(number: int = 20, peak: Peak | None = None, rounds: int = 5) -> list[dict]:
    rows = []
    for name, make, shape in LAYERS:
        x = torch.randn(shape)
        runs = {}
        for backend_name in ("torch", "scratch"):
            backend = backends.get(backend_name)
            runs[backend_name] = forward_backward(make(backend.layers), x, backend)
        # forward, dL/dW and dL/dx: three products of the forward's size
        flops = 3 * forward_flops(make(torch.nn), x)
        rows.append(row(f"forward+backward {name}", alternated(runs, number, rounds), flops))
        if peak is not None:
            peak.read()
    return rows


def row(name: str, samples: dict, flops: int = 0) -> dict:
    """Median times, the median ratio over the rounds and its range (wide: True when the range
    is more than WIDE around the median), and where there is arithmetic to count, each backend's
    GFLOP/s (their shares of the peak are added at the end: add_shares)."""
    ratios = [s / t for s, t in zip(samples["scratch"], samples["torch"], strict=True)]
    times = {b: statistics.median(v) for b, v in samples.items()}
    ratio = statistics.median(ratios)
    out = {
        "name": name,
        "torch_ms": round(times["torch"], 3),
        "scratch_ms": round(times["scratch"], 3),
        "ratio": round(ratio, 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "rounds": len(ratios),
        "wide": (max(ratios) - min(ratios)) / ratio > WIDE,
    }
    if flops:
        for backend in ("torch", "scratch"):
            out[f"{backend}_gflops"] = round(flops / (times[backend] / 1000) / 1e9, 1)
    return out


def add_shares(rows: list[dict], peak: float) -> None:
    """Each backend's share of the peak; none where it would be above 1 (the peak was read in a
    busy moment: such a share is impossible)."""
    for r in rows:
        for backend in ("torch", "scratch"):
            if f"{backend}_gflops" in r:
                share = r[f"{backend}_gflops"] / peak
                r[f"{backend}_peak_share"] = round(share, 3) if share <= 1 else None


def step_function(model_name: str, backend: str, batch: int = BATCH, device: str = "cpu"):
    """One full training step (forward, loss, backward, Adam) of a model on a fixed batch, set
    up as digitlab train does (the torch backend channels-last)."""
    backend = backends.get(backend)
    torch.manual_seed(0)
    model = backend.memory_format(models.build(model_name, backend).to(device))
    x = backend.memory_format(torch.randn(batch, 1, 28, 28, device=device))
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer = backend.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = make_loss(backend)
    if device == "cpu":
        return lambda: train_step(model, loss_fn, optimizer, x, y, backend)

    def step_and_wait():  # GPU work is queued; time it done
        train_step(model, loss_fn, optimizer, x, y, backend)
        torch.cuda.synchronize()

    return step_and_wait


# (model, batch): the study log's nets at its batch, the speedrun's net at the speedrun's batch.
STEPS = (("cnn", BATCH), ("fcn", BATCH), ("fast", settings("speedrun")["batch_size"]))


def step_rows(
    number: int = 20, device: str = "cpu", peak: Peak | None = None, rounds: int = 5
) -> list[dict]:
    rows = []
    for model_name, batch in STEPS:
        runs = {b: step_function(model_name, b, batch, device) for b in ("torch", "scratch")}
        samples = alternated(runs, number, rounds)
        # About three forwards' arithmetic: forward, dL/dW, dL/dx (the first layer's is skipped)
        flops = 3 * forward_flops(models.build(model_name), torch.randn(batch, 1, 28, 28))
        name = f"training step {model_name} (batch {batch}, Adam, {device})"
        rows.append(row(name, samples, flops if device == "cpu" else 0))
        if peak is not None:
            peak.read()
    return rows


def study_log_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The study log's conv2d forward: nested Python loops over images, channels and pixels."""
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    pad = k // 2
    xp = torch.zeros(n, c, h + 2 * pad, w + 2 * pad)
    xp[:, :, pad : pad + h, pad : pad + w] = x
    y = torch.zeros(n, o, h, w)
    for i in range(n):
        for j in range(o):
            for r in range(h):
                for s in range(w):
                    y[i, j, r, s] = (xp[i, :, r : r + k, s : s + k] * weight[j]).sum() + bias[j]
    return y


def study_log_row(images: int = 2) -> dict:
    """The study log's loops on a few images, scaled to a batch of 50, against scratch.Conv2d."""
    conv = scratch.Conv2d(1, 16, 5, 1, 2)
    x = torch.randn(BATCH, 1, 28, 28)
    start = time.perf_counter()
    loops = study_log_conv(x[:images], conv.weight.detach(), conv.bias.detach())
    loop_ms = (time.perf_counter() - start) * 1000 * BATCH / images
    if (loops - conv(x[:images])).abs().max() > 1e-4:
        raise AssertionError("the study log's loops and scratch.Conv2d disagree")
    ms = median_ms(lambda: conv(x), 20)
    return {
        "name": "conv1 forward, batch 50: study log's loops / scratch.Conv2d",
        "loops_ms": round(loop_ms, 1),
        "scratch_ms": round(ms, 3),
        "speedup": round(loop_ms / ms, 1),
    }


MEMORY_SCRIPT = """
import sys
from digitlab.study.bench import step_function
from digitlab.train.memory import peak_since, reset_peak

step = step_function("cnn", sys.argv[1])
start = reset_peak()
for _ in range(int(sys.argv[2])):
    step()
print(peak_since(start))
"""


def memory_row(steps: int = 20) -> dict:
    """Peak resident memory that training steps add, each backend in a fresh process (Linux)."""
    mib = {}
    for backend in ("torch", "scratch"):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, backend, str(steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        mib[backend] = float(out.stdout.strip().splitlines()[-1])
    return {
        "name": f"peak memory added by {steps} cnn training steps (MiB)",
        "torch_mib": mib["torch"],
        "scratch_mib": mib["scratch"],
        "ratio": round(mib["scratch"] / max(mib["torch"], 0.1), 3),
    }


def shifted_accuracy(run) -> float:
    """Test accuracy of a finished run with test-time augmentation (evaluation.SHIFTS)."""
    predictor = Predictor.load(run)
    test = load_split(predictor.config.get("data_dir"), train=False)
    return evaluate(predictor.model, test, predictor.mean, predictor.std, tta=True)["accuracy"]


def record_rows(
    recipes=("speedrun",),
    seeds: int = 5,
    log=print,
    names=tuple(backends.BACKENDS),
    tta: bool = False,
) -> list[dict]:
    """Each recipe with each backend in `names`, trained once per seed 0..seeds-1 on the full
    data: seconds of training and the spread of test accuracy. Each backend first warms up
    (warm_up), untimed; then the backends alternate seed by seed, so a busy machine slows both
    alike; with both, the scratch row's ratio is its mean seconds over torch's. Each run logs a
    line (with its validation accuracy where the recipe holds images out). tta=True adds the
    test accuracy with test-time augmentation, measured after training (not in its seconds)."""
    rows, peak = [], Peak()
    for recipe in recipes:
        runs = {backend: [] for backend in names}
        for backend in names:
            warm_up(recipe, backend)
        for seed in range(seeds):
            peak.read()  # between the runs: the peak of the hour the runs trained in
            for backend in names:
                runs[backend].append(record_run(recipe, backend, seed, tta, log))
        for backend, results in runs.items():
            seconds = [r["train_seconds"] for r in results]
            accuracy = [r["test_accuracy"] for r in results]
            rows.append(
                {
                    "name": f"recipe {recipe}, {backend}, {seeds} seed(s)",
                    "seconds_mean": round(statistics.mean(seconds), 2),
                    "seconds_max": round(max(seconds), 2),
                    "accuracy_mean": round(statistics.mean(accuracy), 5),
                    "accuracy_std": round(statistics.pstdev(accuracy), 5),
                    "accuracy_min": min(accuracy),
                    "accuracy_max": max(accuracy),
                    "reached_99": f"{sum(a >= 0.99 for a in accuracy)} of {len(accuracy)}",
                    "threads": torch.get_num_threads(),
                }
            )
            add_limit(rows[-1], settings(recipe)["model"], results[0]["images"], peak)
            if tta:
                shifted = [r["tta_accuracy"] for r in results]
                rows[-1]["tta_accuracy_mean"] = round(statistics.mean(shifted), 5)
                rows[-1]["tta_accuracy_min"] = min(shifted)
        if len(names) == 2:
            rows[-1]["ratio"] = round(rows[-1]["seconds_mean"] / rows[-2]["seconds_mean"], 3)
    return rows


def record_run(recipe: str, backend: str, seed: int, tta: bool, log) -> dict:
    """One timed run of record_rows: fit's result with the images it trained on (and the test
    accuracy with test-time augmentation if tta); logs one line."""
    config = TrainConfig(**{**settings(recipe), "backend": backend, "seed": seed})
    with tempfile.TemporaryDirectory() as out:
        result = fit(config, out, progress=False, log=lambda text: None)
        recorded = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))
        result["images"] = recorded["dataset"]["train_images"] * config.epochs
        validation = recorded["metrics"].get("val_accuracy")
        if tta:
            result["tta_accuracy"] = shifted_accuracy(out)
    log(
        f"{recipe} {backend} seed {seed}: "
        + (f"validation accuracy {validation:.4f}, " if validation is not None else "")
        + f"test accuracy {result['test_accuracy']:.4f} in {result['train_seconds']:.1f} s"
        + (f", with --tta {result['tta_accuracy']:.4f}" if tta else "")
    )
    return result


def warm_up(recipe: str, backend: str) -> None:
    """Train `recipe` on `backend` for four batches, untimed. The first run in a process pays
    once for what later runs reuse (torch's threads started, oneDNN's kernels chosen for each
    shape, memory first touched): about a second of the speedrun's 2.5, which seed 0 of the
    backend timed first paid alone."""
    recipe_settings = settings(recipe)
    subset = 4 * recipe_settings["batch_size"]
    config = TrainConfig(**{**recipe_settings, "backend": backend, "epochs": 1, "subset": subset})
    with tempfile.TemporaryDirectory() as out:
        fit(config, out, progress=False, log=lambda text: None)


def add_limit(row: dict, model: str, images: int, peak: Peak) -> None:
    """The physical limit of a run: its arithmetic (about three forwards' multiply-adds per
    training image: forward, dL/dW, dL/dx; the first layer's dL/dx is not needed but counted)
    over its mean seconds, as a share of the matmul peak read between the runs, and the seconds
    the arithmetic alone would take at that peak."""
    flops = 3 * images * forward_flops(models.build(model), torch.randn(1, 1, 28, 28))
    best = max(peak.readings)
    row["gflop"] = round(flops / 1e9, 1)
    row["gflops"] = round(flops / row["seconds_mean"] / 1e9, 1)
    row["peak_gflops"] = round(best, 1)
    row["peak_share"] = round(flops / row["seconds_mean"] / 1e9 / best, 3)
    row["seconds_at_peak"] = round(flops / best / 1e9, 2)


def run_all(quick: bool = False, records: bool = False, repeat: int = 1) -> dict:
    """Every row; `repeat` times the whole bench and gives each row's median over the repeats
    (the range over every round of every repeat). Keeps freed memory for the rest of the
    process's life (keep_freed_memory)."""
    number, rounds = (5, 2) if quick else (20, 5)
    memory_kept = keep_freed_memory()
    peak = Peak()
    peak.read()
    repeats = [layer_rows(number, peak, rounds) + step_rows(number, peak=peak, rounds=rounds)]
    for _ in range(repeat - 1):
        repeats.append(
            layer_rows(number, peak, rounds) + step_rows(number, peak=peak, rounds=rounds)
        )
    timed = [merge(same) for same in zip(*repeats, strict=True)]
    add_shares(timed, max(peak.readings))
    rows = [peak.row(), *timed, study_log_row(1 if quick else 2), memory_row(5 if quick else 20)]
    if records:
        rows += record_rows(seeds=1 if quick else 5, log=lambda text: print(text, file=sys.stderr))
    return {"rows": rows, "repeat": repeat, "freed_memory_kept": memory_kept}


def merge(rows: tuple[dict, ...]) -> dict:
    """One row from the same row of several repeats: median times and ratio, the whole range."""
    if len(rows) == 1:
        return rows[0]
    out = dict(rows[0])
    for key in ("torch_ms", "scratch_ms", "ratio", "torch_gflops", "scratch_gflops"):
        if key in out:
            out[key] = round(statistics.median(r[key] for r in rows), 3)
    out["ratio_min"] = min(r["ratio_min"] for r in rows)
    out["ratio_max"] = max(r["ratio_max"] for r in rows)
    out["rounds"] = sum(r["rounds"] for r in rows)
    out["wide"] = (out["ratio_max"] - out["ratio_min"]) / out["ratio"] > WIDE
    return out
