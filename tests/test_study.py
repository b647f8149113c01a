"""study/ in seconds: what the benchmark compares computes the same thing, and its rows' numbers
agree with each other (how fast anything is, is the benchmarks' business, not a test's)."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from digitlab.nets import models
from digitlab.study import bench


def test_the_study_logs_loops_compute_pytorchs_convolution():
    """The speedup bench reports is between two ways of computing one convolution."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, generator=generator)
    weight = torch.randn(4, 3, 5, 5, generator=generator)
    bias = torch.randn(4, generator=generator)
    expected = F.conv2d(x, weight, bias, padding=2)
    torch.testing.assert_close(bench.study_log_conv(x, weight, bias), expected)


def test_forward_flops_counts_the_multiply_adds_of_convs_and_linears():
    """The count the bench's GFLOP/s rows divide by a time: 2 flops per multiply-add."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 5),
    )
    x = torch.randn(3, 1, 4, 4)
    conv = 2 * (3 * 2 * 4 * 4) * (1 * 3 * 3)  # each of the 96 outputs sums 9 products
    linear = 2 * (3 * 5) * 32  # each of the 15 outputs sums 32 products
    assert bench.forward_flops(net, x) == conv + linear


def test_a_row_states_the_ratio_of_its_rounds_and_their_range():
    r = bench.row("x", {"torch": [2.0, 2.0, 4.0], "scratch": [6.0, 4.0, 8.0]})
    assert r["torch_ms"] == 2.0 and r["scratch_ms"] == 6.0
    assert (r["ratio"], r["ratio_min"], r["ratio_max"], r["rounds"]) == (2.0, 2.0, 3.0, 3)
    assert r["wide"]  # 2.0 to 3.0 around 2.0: more than WIDE
    steady = bench.row("x", {"torch": [2.0, 2.0], "scratch": [2.2, 2.3]})
    assert not steady["wide"] and steady["ratio_min"] == 1.1


def test_the_backends_alternate_who_goes_first():
    calls = []
    runs = {"torch": lambda: calls.append("t"), "scratch": lambda: calls.append("s")}
    samples = bench.alternated(runs, number=1, rounds=3)
    assert calls == ["t", "s", "t", "s", "s", "t", "t", "s"]  # warm-up, then t-s, s-t, t-s
    assert [len(v) for v in samples.values()] == [3, 3]


def test_a_share_of_the_peak_above_one_is_never_printed():
    rows = [{"torch_gflops": 50.0, "scratch_gflops": 120.0}]
    bench.add_shares(rows, peak=100.0)
    assert rows[0]["torch_peak_share"] == 0.5 and rows[0]["scratch_peak_share"] is None


def test_repeats_merge_into_medians_and_the_whole_range():
    a = bench.row("x", {"torch": [1.0, 1.0], "scratch": [1.0, 1.1]})
    b = bench.row("x", {"torch": [1.0, 1.0], "scratch": [1.3, 1.2]})
    c = bench.row("x", {"torch": [1.0, 1.0], "scratch": [1.1, 1.1]})
    merged = bench.merge((a, b, c))
    assert merged["ratio"] == 1.1 and merged["ratio_min"] == 1.0 and merged["ratio_max"] == 1.3
    assert merged["rounds"] == 6 and merged["wide"]


def test_a_records_limit_is_its_arithmetic_over_the_peak():
    """A recipe's row: its arithmetic, the rate it reached and the seconds it would take at the
    machine's peak, consistent with each other (add_limit)."""
    peak = bench.Peak()
    peak.readings = [80.0, 100.0]  # the best reading is the peak
    row = {"seconds_mean": 2.0}
    bench.add_limit(row, "fast", 60000, peak)
    per_image = bench.forward_flops(models.build("fast"), torch.randn(1, 1, 28, 28))
    assert row["gflop"] == round(3 * 60000 * per_image / 1e9, 1)
    assert row["peak_gflops"] == 100.0
    assert row["gflops"] == pytest.approx(row["gflop"] / 2.0, abs=0.1)
    assert row["peak_share"] == pytest.approx(row["gflops"] / 100.0, abs=1e-3)
    assert row["seconds_at_peak"] == pytest.approx(row["gflop"] / 100.0, abs=0.01)


def test_records_warm_each_backend_up_untimed_before_the_timed_seeds(monkeypatch):
    """Each backend trains once on a few batches before any timed seed (the first run in a
    process pays one-off costs), and each timed run's line gives its validation accuracy."""
    calls = []

    def fake_fit(config, out, progress=False, log=print):
        calls.append((config.backend, config.seed, config.subset, config.epochs))
        metrics = {"test_accuracy": 0.99, "val_accuracy": 0.995}
        record = {"dataset": {"train_images": 100}, "metrics": metrics}
        (Path(out) / "config.json").write_text(json.dumps(record), encoding="utf-8")
        return {"test_accuracy": 0.99, "train_seconds": 1.0}

    monkeypatch.setattr(bench, "fit", fake_fit)
    monkeypatch.setattr(bench.Peak, "read", lambda self: self.readings.append(100.0))
    lines = []
    rows = bench.record_rows(["best"], seeds=2, log=lines.append)
    batch = 128  # the best recipe's
    assert calls[:2] == [("torch", 0, 4 * batch, 1), ("scratch", 0, 4 * batch, 1)]
    assert [(b, s, subset) for b, s, subset, _ in calls[2:]] == [
        ("torch", 0, None),
        ("scratch", 0, None),
        ("torch", 1, None),
        ("scratch", 1, None),
    ]
    first = "best torch seed 0: validation accuracy 0.9950, test accuracy 0.9900 in 1.0 s"
    assert lines[0] == first
    assert [row["name"] for row in rows] == [
        "recipe best, torch, 2 seed(s)",
        "recipe best, scratch, 2 seed(s)",
    ]


FAULTS_SCRIPT = """
import resource
from digitlab.study import bench

kept = bench.keep_freed_memory()
step = bench.step_function("cnn", "torch")
for _ in range(10):
    step()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_the_bench_times_steps_without_page_faults():
    """With freed memory kept, a PyTorch cnn step takes no fresh pages from the OS once warm
    (0-15 page faults a step, measured; left to malloc's own rules, 1,600-2,800 in every one of
    five fresh processes). In a fresh process: the setting is for the process's life."""
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True, check=True
    )
    kept, faults = out.stdout.split()
    assert kept == "True" and float(faults) < 100
