import functools
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.data.mnist import load_split

# One epoch on 2,000 images, with a smaller batch and a larger step than the study log's so that
# 80 steps are enough to pass 90%.
SMALL = ["--subset", "2000", "--batch-size", "25", "--lr", "0.002"]


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when `compress`)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_dataset(root: Path, n_train: int, n_test: int, compress=True, sep="-") -> Path:
    """A folder of the four MNIST-format files holding the first images of real MNIST."""
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if compress else ""
    for train, prefix, n in ((True, "train", n_train), (False, "t10k", n_test)):
        split = load_split(None, train)
        write_idx(root / f"{prefix}-images{sep}idx3-ubyte{ext}", split.images[:n].numpy(), compress)
        write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{ext}", split.labels[:n].numpy(), compress)
    return root


def run_cli(capsys, *args):
    """Run `digitlab ARGS` in this process; returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse exits on bad flags
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_subprocess(*args):
    """Run `python -m digitlab ARGS` as a real process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "digitlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_one_line_error(code, err, expected_code=1, *fragments):
    """A user error: the given exit code, one line on stderr, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected_code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A cnn run trained for 1 epoch on 2,000 images, shared by the tests that need a checkpoint."""
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--out", str(out), "--quiet", "--no-pictures", "--seed", "1", *SMALL])
    assert code == 0
    return out


def needs(available: bool, what: str):
    """Skip a test whose dependency is missing, on a developer's machine; under CI (CI=true) the
    test fails instead, so that CI cannot pass by skipping."""
    if available:
        return lambda test: test
    if os.environ.get("CI") != "true":
        return pytest.mark.skip(reason=f"{what} is missing")

    def fail(test):
        @functools.wraps(test)
        def missing(*args, **kwargs):
            pytest.fail(f"CI needs {what}, which is missing; .ci/run installs it")

        return missing

    return fail


@pytest.fixture(autouse=True, scope="session")
def cache_folder(tmp_path_factory):
    """digitlab's cache (MNIST-C's corrupted sets, the drawn outlier pages) goes to a folder of
    the test session, not the user's: subprocesses started by the tests share it."""
    os.environ["DIGITLAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
