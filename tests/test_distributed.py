"""Data-parallel training: two real processes started by torchrun on 127.0.0.1, over gloo."""

import json
import subprocess

import pytest

from conftest import run_cli
from digitlab import backends, distributed, training

RUN = ["--subset", "2000", "--batch-size", "50", "--seed", "2", "--quiet", "--no-pictures"]


def torchrun(*args, processes=2):
    return subprocess.run(
        distributed.torchrun_command(processes, *map(str, args)),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_two_processes_train_in_step_like_one_and_resume(tmp_path, capsys, backend):
    out = tmp_path / "two"
    done = torchrun("train", *RUN, "--backend", backend, "--out", out)
    assert done.returncode == 0, done.stderr
    # Every rank checked its weights against rank 0's, bit for bit, at the end of the run.
    assert "the 2 processes ended with identical weights" in done.stdout
    assert done.stdout.count("test accuracy") == 2  # rank 0 alone reports: epoch line and result
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    two = training.read_metrics(out)[-1]["test_accuracy"]

    single = tmp_path / "one"
    code, _, err = run_cli(capsys, "train", *RUN, "--backend", backend, "--out", single)
    assert code == 0, err
    one = training.read_metrics(single)[-1]["test_accuracy"]
    assert two > 0.8 and abs(two - one) <= 0.01

    resumed = torchrun("train", "--resume", out, "--epochs", "2", "--quiet", "--no-pictures")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert [r["epoch"] for r in training.read_metrics(out)] == [1, 2]


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    done = torchrun("train", "--subset", "200", "--batch-size", "25", "--out", tmp_path)
    assert done.returncode != 0
    assert "--batch-size 25: must divide evenly among the 2 processes" in done.stderr
