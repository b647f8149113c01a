"""study/ in seconds: what the benchmark compares computes the same thing, and its rows' numbers
agree with each other (how fast anything is, is the benchmarks' business, not a test's)."""

import torch
import torch.nn.functional as F

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


def test_a_row_states_the_ratio_of_its_own_times():
    r = bench.row("x", {"torch": 2.0, "scratch": 5.0})
    assert r["torch_ms"] == 2.0 and r["scratch_ms"] == 5.0
    assert r["ratio"] == 2.5
